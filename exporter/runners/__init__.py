"""Every runtime is a Runner with one interface: ``with runner: runner.infer(batch)``.

``open_artifact`` is the one way any command loads an artifact of a folder for a runtime: hash
checked, copied privately, trusted or refused, then handed to ``runner_for``; ``eager`` wraps the
reference model. Only this package calls ``torch.jit.load``, ``torch.export.load`` or
``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..interface import Interface
from .base import Feed, Runner
from .open import open_artifact, runner_for

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Feed", "Runner", "eager", "open_artifact", "runner_for"]


def eager(model: nn.Module, device: torch.device, interface: Interface) -> Runner:
    """The reference: the eager model itself."""
    from . import torch as torch_runners

    return torch_runners.eager(model, device, interface)
