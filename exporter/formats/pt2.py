"""torch.export: an ExportedProgram saved with ``torch.export.save``, batch dimension dynamic.

torch.export (the upstream successor of TorchScript) refuses what tracing would silently
freeze: data-dependent control flow and a batch size made constant both fail the export,
with the line at fault. torch.export specialises sizes 0 and 1, so a batch-1 example is
doubled to batch 2 before export; the graph is the same.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._capture import quiet_export
from ..errors import ExportFailedError
from . import ExportSpec
from ._explain import explain_torch_export


def export(model: nn.Module, example: torch.Tensor, path: Path, spec: ExportSpec) -> dict[str, Any]:  # noqa: ARG001
    warned: list[str] = []
    if example.shape[0] == 1:
        example = torch.cat([example, example])  # a hint of 1 would be specialised to a constant
    buffer = io.BytesIO()
    try:
        with quiet_export(warned), torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            torch.export.save(program, buffer)
    except Exception as error:
        raise ExportFailedError(
            explain_torch_export(error, "torch.export", ", or leave pt2 out of --format")
        ) from error
    path.write_bytes(buffer.getbuffer())  # by Python: torch's C++ writer aborts the process on a full disk
    return {"method": "torch.export.export + torch.export.save", "warnings": warned}
