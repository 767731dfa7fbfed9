"""Checkpoints, loaded safely: ``torch.load(weights_only=True)`` or safetensors, never full unpickling.

A weights file is read once, hashed, and parsed from those bytes; a safetensors file is hashed as a
stream and memory-mapped, so its tensors are never read into a second buffer beside the model. Real checkpoints
come in a few shapes, which are accepted and reported: keys prefixed ``module.``
(DataParallel) or ``_orig_mod.`` (torch.compile), and training dicts holding the
weights under ``state_dict``, ``model_state_dict`` or ``model``. Loading is strict:
every missing key, unexpected key and shape mismatch is listed in one error.

``export`` keeps a copy of the loaded state in the artifact folder (``weights.pt``,
bound by sha256 like every artifact), so ``verify`` never reads outside the folder.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..artifacts.integrity import read_member, sha256_bytes, sha256_file
from ..artifacts.manifest import Manifest
from ..errors import CheckpointError, ReferenceUnavailable, first_line

FILE_NAME = "weights.pt"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a state_dict from ``path``; returns it and what was learned (format, sha256, notes)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"--weights {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"weights file {path} is empty")
    if path.suffix == ".safetensors":
        # hashed as a stream, then memory-mapped: its tensors are the file's pages, never read into a
        # second buffer (the model copies them in, and the mapping goes with ``state``)
        info: dict[str, Any] = {"path": str(path.resolve()), "sha256": sha256_file(path), "notes": []}
        info["format"] = "safetensors"
        state = _safetensors(path)
    else:
        data = path.read_bytes()
        info = {"path": str(path.resolve()), "sha256": sha256_bytes(data), "notes": [], "format": "state_dict"}
        state = _torch_load(data, path)
    state = _unwrap(state, path, info["notes"])
    return state, info


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)  # memory-mapped
    except (SafetensorError, ValueError, RuntimeError, OSError) as error:
        raise CheckpointError(f"{path} is not a valid safetensors file: {first_line(error)}") from None


def _torch_load(data: bytes, path: Path) -> Any:
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            names = []
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise CheckpointError(
                f"{path} is a TorchScript archive, not a state_dict: export from the Python model, "
                "or save its weights with torch.save(model.state_dict(), FILE)"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on stderr
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(error))
        if found:
            raise CheckpointError(
                f"{path} holds Python objects beyond tensors ({found[1]}), which only full unpickling could "
                "build; that can run arbitrary code, so it is refused: save a plain state_dict or .safetensors"
            ) from None
        detail = re.search(r"(Unsupported [^\n]+)", str(error))
        raise CheckpointError(
            f"{path} is not a checkpoint the safe loader (weights_only=True) can read"
            f"{f' ({detail[1]})' if detail else ''}; full unpickling could run code, so it is never tried: "
            "save a plain state_dict or .safetensors"
        ) from None
    except Exception as error:  # corrupt input makes the unpickler raise almost anything
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {first_line(error)}"
        ) from None


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())
    )


def _unwrap(obj: Any, path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    if not _is_state(obj) and isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if _is_state(obj.get(key)):
                notes.append(f"weights taken from the training checkpoint's {key!r} entry")
                obj = obj[key]
                break
    if not _is_state(obj):
        kind = type(obj).__name__
        raise CheckpointError(
            f"{path} holds a {kind}, not a state_dict of tensors (nor one under {', '.join(WRAPPER_KEYS)})"
        )
    odd = [k for k, v in obj.items() if v.layout != torch.strided or v.is_quantized]
    if odd:
        raise CheckpointError(f"{path} holds sparse or quantised tensors ({', '.join(odd[:3])}): save dense weights")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            notes.append(f"stripped the {prefix!r} prefix from every key")
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def apply(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> list[str]:
    """Strictly load ``state`` into ``model``; one CheckpointError lists every problem.

    Returns notes naming each dtype cast made (float64 weights into a float32 model, say);
    integer values for a floating-point tensor are refused.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes)}")
    integers = [
        k for k, v in expected.items() if k in state and v.is_floating_point() and not state[k].is_floating_point()
    ]
    if integers:
        problems.append(f"integer values for floating-point tensors: {', '.join(integers[:3])}")
    if problems:
        raise CheckpointError(f"{where} does not fit the model: {' | '.join(problems)}")
    casts = sorted(
        {
            f"{state[k].dtype} to {v.dtype}".replace("torch.", "")
            for k, v in expected.items()
            if state[k].dtype != v.dtype
        }
    )
    model.load_state_dict(state, strict=True)
    return [f"cast {cast}, the model's dtype (load_state_dict casts silently)" for cast in casts]


def save_copy(model: nn.Module, folder: Path) -> str:
    """Write the model's loaded state into the artifact folder; returns its relative path."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (folder / FILE_NAME).write_bytes(buffer.getbuffer())  # by Python: torch's C++ writer aborts on a full disk
    return FILE_NAME


def load_recorded_weights(
    model: nn.Module, manifest: Manifest, config, folder: Path, blobs: dict[str, bytes] | None = None
) -> None:
    """Load the weights the manifest records (from the folder's own hash-checked copy).

    Raises CheckpointError when ``--weights`` names another file than the one used at export,
    ReferenceUnavailable when the folder's copy is missing or fails its hash check.
    """
    record = manifest.model.get("weights")
    if not record:
        return
    original = record.get("original") or {}
    if config.weights is not None:
        given = sha256_bytes(Path(config.weights).read_bytes()) if Path(config.weights).is_file() else None
        if given != original.get("sha256"):
            raise CheckpointError(
                f"--weights {config.weights} does not match the file used at export "
                f"({original.get('path')}, sha256 {str(original.get('sha256'))[:12]}...): refusing to verify"
            )
    relpath = str(record.get("path", ""))
    data = (blobs or {}).get(relpath)
    if data is None:
        try:
            data = read_member(folder, relpath)
        except (FileNotFoundError, IsADirectoryError):
            raise ReferenceUnavailable(f"{relpath} is missing from {folder}: the weights cannot be rebuilt") from None
    if sha256_bytes(data) != record.get("sha256"):
        raise ReferenceUnavailable(
            f"{relpath} in {folder} does not match its sha256 in the manifest: refusing to load it; re-export"
        )
    state = _torch_load(data, folder / relpath)
    apply(model, _unwrap(state, folder / relpath, []), str(folder / relpath))
