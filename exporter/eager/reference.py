"""The eager reference: built from a source and a seed, or rebuilt from a manifest and checked.

Weights are initialised on the CPU under ``torch.manual_seed(seed)`` (inside
``fork_rng``, so the caller's random state is untouched) and then moved to the
device. numpy's and Python's global generators are seeded with the same seed for the build
(and restored after it), so a constructor that draws features with ``np.random`` or ``random``
rebuilds the same too: the same seed gives the same weights on every device, which is what lets
``verify`` rebuild the exact model that ``export`` wrote. ``rebuild`` does that for every
command that needs the eager model of an artifact folder (verify, predict, inspect, bench),
and checks it against the state digest recorded at export.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..artifacts.manifest import Manifest
from ..config import PRECISIONS, check_device
from ..errors import DeviceError, ModelNotFoundError, UsageError, first_line
from .probing import by_name
from .sources import ModelSource
from .weights import load_recorded_weights

if TYPE_CHECKING:
    from ..config import VerifyConfig


def resolve_device(text: str) -> torch.device:
    """``auto`` is CUDA when available (as the seed article does), else the CPU."""
    check_device(text)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {text} was asked for, but this torch build sees no CUDA device: use --device cpu (or auto)"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0..)")
        device = torch.device("cuda", index)
    return device


def device_for(wanted: str | None, recorded: str) -> torch.device:
    """The device to run an artifact folder's models on: ``wanted`` (``--device``), else the one it was
    exported on, which must exist here (a folder exported on CUDA asks for --device cpu on a CPU machine)."""
    if wanted is None and recorded.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            f"this artifact was exported on {recorded} and this machine has no CUDA: "
            "pass --device cpu to verify on the CPU"
        )
    return resolve_device(wanted or recorded)


def build(source: ModelSource, seed: int, device: torch.device) -> nn.Module:
    """Instantiate the source's class with seeded weights, in eval mode, on ``device``."""
    if source.kind == "transformers":  # the architecture from its recorded config; the weights are loaded after
        from . import saved_folder

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return saved_folder.build(source.config or {}, source.target, source.task).to(device)
    cls = source.load_class()
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelNotFoundError(f"{source.target} is not an nn.Module subclass")
    with torch.random.fork_rng(devices=[]), _seeded_globals(seed):
        torch.manual_seed(seed)
        try:
            model = cls()
        except TypeError as error:
            raise ModelNotFoundError(
                f"{source.target} cannot be built without arguments ({first_line(error)}): "
                "give it defaults, or wrap it in a class that takes none"
            ) from error
        except (Exception, SystemExit) as error:  # the user's constructor may raise anything, or exit
            raise ModelNotFoundError(f"building {source.target} failed: {first_line(error)}") from None
    return model.eval().to(device)


@contextlib.contextmanager
def _seeded_globals(seed: int) -> Iterator[None]:
    """numpy's and Python's global generators seeded from ``seed`` while a model is built, then restored.

    numpy's legacy seed takes 32 bits: the seed is folded into them (the same seed, the same state)."""
    import random

    import numpy as np

    saved = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements; tied (shared) tensors are counted once, as ``parameters()`` yields them once."""
    return sum(p.numel() for p in model.parameters())


def state_sha256(model: nn.Module) -> str:
    """A digest of every parameter and buffer (name, dtype, shape, bytes), device independent."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict(keep_vars=False).items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # the array's own buffer, not a .tobytes() copy: hashing a 1 GB model would otherwise copy 1 GB
        digest.update((t if t.dtype != torch.bfloat16 else t.view(torch.int16)).numpy().reshape(-1))
    return digest.hexdigest()


def state_digests(model: nn.Module) -> dict[str, str]:
    """sha256 of each parameter and buffer (dtype, shape, bytes), by name: what tells which tensor a
    forward pass changed."""
    found = {}
    for name, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach().to("cpu").contiguous()
        digest = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update((t if t.dtype != torch.bfloat16 else t.view(torch.int16)).numpy().reshape(-1))
        found[name] = digest.hexdigest()
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Names of the tensors whose digest differs between two ``state_digests``."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def rebuild(
    folder: Path,
    manifest: Manifest,
    config: VerifyConfig,
    device: torch.device,
    problems: list[str] | None = None,
    blobs: dict[str, bytes] | None = None,
) -> nn.Module:
    """The eager model the manifest describes, checked against its recorded state digest.

    ``config`` supplies ``source`` (the code, never taken from the folder itself) and
    ``weights``. A digest mismatch is appended to ``problems`` (or raised as UsageError when
    None). ``blobs``: files already hash-checked (a weights file not among them is checked
    here). Raises ReferenceUnavailable when the recorded weights fail their hash check.
    """
    signed = manifest.refusal(False) is None  # the user's own export (or a folder they signed): its word holds
    source = ModelSource.from_manifest(manifest.model).trusted(config.source, signed)
    model = build(source, int(manifest.model.get("seed", 0)), device)
    precision = manifest.model.get("dtype")
    if precision is not None:  # exported in half precision: the reference runs in it too
        if precision not in PRECISIONS:
            raise UsageError(f"the manifest's model.dtype {precision!r} is not one of {', '.join(PRECISIONS)}")
        model = model.to(getattr(torch, precision))
    load_recorded_weights(model, manifest, config, folder, blobs)
    recorded = manifest.model.get("state_sha256")
    actual = state_sha256(model)
    if recorded != actual:
        problem = (
            f"the rebuilt eager model (state sha256 {actual[:12]}...) is not the one exported "
            f"({str(recorded)[:12]}...): the model code or torch's initialisation changed since export, or its "
            "constructor draws from a generator this tool does not seed (torch, numpy and Python's global ones "
            "are seeded; a numpy default_rng(), a CUDA generator, time or os.urandom are not)"
        )
        if problems is None:
            raise UsageError(problem)
        problems.append(problem)
    names = tuple(str(i.get("name")) for i in manifest.inputs if isinstance(i, dict))
    return by_name(model, names) if names else model  # called as export called it: inputs by name


class Held:
    """The eager model with one owner, so that verification can let it go before any runtime loads its
    own copy of the weights (the weights held once), and have it again for a step that needs it after
    (localising a failure, the half-precision comparison) from ``again``: rebuilt, or the caller's own.

    ``model``: the model, made again by ``again`` when it was released. ``release``: drop this
    holder's reference (the model is freed unless someone else holds it).
    """

    def __init__(self, model: nn.Module | None, again: Callable[[], nn.Module]) -> None:
        self._model = model
        self._again = again

    @classmethod
    def given(cls, model: nn.Module) -> Held:
        """A model the caller keeps: releasing it frees nothing, and having it again costs nothing."""
        return cls(model, lambda: model)

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self._again()
        return self._model

    @property
    def released(self) -> bool:
        return self._model is None

    def release(self) -> None:
        self._model = None
