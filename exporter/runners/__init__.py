"""Every runtime is a Runner with one interface: ``with runner: runner.infer(batch)``.

``runner_for`` makes the runner of one artifact from its hash-checked bytes; ``eager`` wraps
the reference model. Only the modules of this package import a runtime (torch.jit,
torch.export, onnxruntime) to load or run an artifact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..artifacts.integrity import CheckedFile
from ..interface import InputSpec
from .base import Feed, Runner

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Feed", "Runner", "eager", "runner_for"]


def runner_for(
    fmt: str,
    data: bytes | CheckedFile,
    files: dict[str, bytes] | dict[str, CheckedFile],
    device: torch.device,
    specs: tuple[InputSpec, ...],
    output_names: tuple[str, ...],
    *,
    threads: int | None = None,
    lean: bool = False,
) -> Runner:
    """The runner of an artifact of format ``fmt`` over its hash-checked ``data`` (bytes, or a checked
    private file that the runtime loads by path).

    ``files``: the folder's hash-checked files, in the same form (ONNX external data is taken only
    from them). ``threads``: ONNX Runtime's tuned settings with that many threads (bench); None
    for its defaults. The runner loads nothing until it is activated.
    """
    from ..formats import FORMATS

    fmt_spec = FORMATS[fmt]
    if fmt_spec.engine == "onnxruntime":
        from . import onnxruntime

        return onnxruntime.runner(fmt_spec.runtime, data, files, device, specs, output_names, threads, lean)
    from . import torch as torch_runners

    load = torch_runners.torchscript if fmt_spec.engine == "torch.jit" else torch_runners.pt2
    return load(fmt_spec.runtime, data, device, specs, output_names)


def eager(
    model: nn.Module, device: torch.device, specs: tuple[InputSpec, ...], output_names: tuple[str, ...]
) -> Runner:
    """The reference: the eager model itself."""
    from . import torch as torch_runners

    return torch_runners.eager(model, device, specs, output_names)
