"""TorchScript by tracing: ``torch.jit.trace`` then ``save``.

Tracing records the operations one example input takes. Python control flow on
input values is frozen to the branch the example took, and ``int(x.shape[0])``
freezes the batch size: both are caught by the verifier, which runs other inputs
and other batch sizes through the saved file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._capture import quiet_export
from ..errors import ExportFailedError, first_line

FILE_NAME = "model.pt"


def export(model: nn.Module, example: torch.Tensor, path: Path, **_: Any) -> dict[str, Any]:
    """Trace ``model`` on ``example`` and save it to ``path``. Returns details for the manifest."""
    warned: list[str] = []
    try:
        with quiet_export(warned), torch.no_grad():
            traced = torch.jit.trace(model, (example,), check_trace=False)
            traced.save(str(path))
    except Exception as error:
        raise ExportFailedError(
            f"TorchScript tracing failed: {first_line(error)}. Make forward traceable "
            "(tensor ops only, no Python side effects) or leave TorchScript out with --format onnx"
        ) from error
    return {"method": "torch.jit.trace", "warnings": warned}


def load(data: bytes, device: torch.device) -> torch.jit.ScriptModule:
    """Load TorchScript from bytes already hash-checked."""
    module = torch.jit.load(io.BytesIO(data), map_location=device)
    return module.eval()


def runner(data: bytes, _files: dict[str, bytes], device: torch.device, meta, output_names):
    from ..runners.torch_runners import torchscript

    return torchscript(data, device, meta, output_names)


def tensors(data: bytes, _files: dict[str, bytes]) -> dict:
    """Every parameter and buffer the TorchScript module holds, by qualified name."""
    module = load(data, torch.device("cpu"))
    found = {n: p.detach().numpy() for n, p in module.named_parameters()}
    found.update({n: b.detach().numpy() for n, b in module.named_buffers()})
    return found
