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
from . import ExportSpec


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec) -> dict[str, Any]:  # noqa: ARG001
    """Trace ``model`` on ``args`` and save it to ``path``. Returns details for the manifest."""
    warned: list[str] = []
    buffer = io.BytesIO()
    try:
        with quiet_export(warned), torch.no_grad():
            # strict=False: forward may return a list or a dict, which the runner flattens like eager's
            traced = torch.jit.trace(model, args, check_trace=False, strict=False)
            torch.jit.save(traced, buffer)
    except Exception as error:
        raise ExportFailedError(
            f"TorchScript tracing failed: {first_line(error)}. Make forward traceable "
            "(tensor ops only, no Python side effects) or leave TorchScript out with --format onnx"
        ) from error
    # Written by Python, not torch's C++ writer, which aborts the process when the disk is full.
    path.write_bytes(buffer.getbuffer())
    return {"method": "torch.jit.trace", "warnings": warned}
