"""The PyTorch runtimes: eager (the reference), TorchScript (``torch.jit.load``) and pt2 (``torch.export.load``).

Each loads from bytes that were hash-checked by the caller, or from a checked private file
(``integrity.CheckedFile``). Loading TorchScript or pt2 runs
code the file carries (PyTorch has no safe mode for either): a file from a folder you do not
trust is code from someone else.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..artifacts.integrity import CheckedFile
from ..formats.capture import quiet_export
from ..interface import InputSpec
from .base import Feed, Runner, to_numpy


@dataclass
class TorchModuleRunner(Runner):
    """Runs an ``nn.Module`` (or a loader of one) on a device.

    ``infer`` runs under ``torch.no_grad``; ``prepare`` (bench's timed path) under
    ``torch.inference_mode``, which also skips the version-counter bookkeeping, and without
    copying the feed (``torch.from_numpy`` shares its memory on the CPU).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    module: nn.Module | None = None
    loader: Callable[[], tuple[nn.Module, dict[str, torch.Tensor]]] | None = None  # -> (module, its tensors)
    held: dict[str, torch.Tensor] | None = None  # the loaded artifact's tensors, by name

    def _activate(self) -> None:
        if self.loader is not None:
            self.module, self.held = self.loader()

    def _deactivate(self) -> None:
        if self.loader is not None:
            self.module, self.held = None, None

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return self._named(self.module(*self._args(feed)))

    def _prepare(self, feed: Feed) -> Callable[[], dict[str, np.ndarray]]:
        args = self._args(feed)

        def call() -> dict[str, np.ndarray]:
            with torch.inference_mode():
                return self._named(self.module(*args))

        return call

    def _args(self, feed: Feed) -> list[torch.Tensor]:
        """Forward's positional arguments, each a fresh tensor (forward may change its input in place)."""
        args = []
        for spec in self.inputs:
            x = torch.from_numpy(np.array(feed[spec.name], copy=True))  # on the CPU this shares the copy
            if spec.dtype == "bfloat16":
                x = x.to(torch.bfloat16)  # carried as float32 (see base.carrier): exact
            args.append(x.to(self.device))
        return args

    def _tensors(self) -> dict[str, np.ndarray]:
        if self.held is not None:
            found = self.held
        else:
            found = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        return {name: to_numpy(t) for name, t in found.items()}

    def settings(self) -> dict[str, Any]:
        return {"torch.set_num_threads": torch.get_num_threads(), "mode": "torch.inference_mode"}


def eager(model: nn.Module, device: torch.device, specs: tuple[InputSpec, ...], output_names) -> TorchModuleRunner:
    return TorchModuleRunner("eager", tuple(specs), tuple(output_names), device=device, module=model)


def torchscript(
    runtime: str, data: bytes | CheckedFile, device: torch.device, specs, output_names
) -> TorchModuleRunner:
    def load() -> tuple[nn.Module, dict[str, torch.Tensor]]:
        module = load_torchscript(data, device)
        return module, {**dict(module.named_parameters()), **dict(module.named_buffers())}

    return TorchModuleRunner(runtime, tuple(specs), tuple(output_names), device=device, loader=load)


def pt2(runtime: str, data: bytes | CheckedFile, device: torch.device, specs, output_names) -> TorchModuleRunner:
    def load() -> tuple[nn.Module, dict[str, torch.Tensor]]:
        program = load_pt2(data)
        held = dict(program.state_dict)  # parameters and buffers, and the lifted constants:
        held.update({name: t for name, t in program.constants.items() if torch.is_tensor(t)})
        return program.module().to(device), held

    return TorchModuleRunner(runtime, tuple(specs), tuple(output_names), device=device, loader=load)


def load_torchscript(data: bytes | CheckedFile, device: torch.device) -> torch.jit.ScriptModule:
    """TorchScript from hash-checked bytes or a checked private file, in eval mode.

    From a file torch reads the weights straight into the module: no copy of the file's bytes is
    held beside them (from bytes, the bytes and the module coexist while it loads)."""
    source = str(data.path) if isinstance(data, CheckedFile) else io.BytesIO(data)
    return torch.jit.load(source, map_location=device).eval()


def load_pt2(data: bytes | CheckedFile):
    """The ExportedProgram in hash-checked bytes or a checked private file."""
    with quiet_export([]):
        return torch.export.load(data.path if isinstance(data, CheckedFile) else io.BytesIO(data))
