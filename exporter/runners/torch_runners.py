"""Runners for the PyTorch runtimes: eager (the reference) and TorchScript."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .base import Runner


@dataclass
class TorchModuleRunner(Runner):
    """Runs an ``nn.Module`` (or a loader of one) on a device under ``torch.no_grad``."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    module: nn.Module | None = None
    loader: object = None  # callable returning the module; called in activate()

    def _activate(self) -> None:
        if self.module is None and self.loader is not None:
            self.module = self.loader()

    def _deactivate(self) -> None:
        if self.loader is not None:
            self.module = None

    def _infer(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            x = torch.from_numpy(feed).to(self.device)
            return self._named(self.module(x))


def eager(model: nn.Module, device: torch.device, meta, output_names) -> TorchModuleRunner:
    return TorchModuleRunner(runtime="eager", input_meta=meta, output_names=output_names, device=device, module=model)


def torchscript(data: bytes, device: torch.device, meta, output_names) -> TorchModuleRunner:
    from ..formats import torchscript as fmt

    return TorchModuleRunner(
        runtime="torchscript",
        input_meta=meta,
        output_names=output_names,
        device=device,
        loader=lambda: fmt.load(data, device),
    )
