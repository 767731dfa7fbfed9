"""torch.export: an ExportedProgram saved with ``torch.export.save``, batch dimension dynamic.

torch.export (the upstream successor of TorchScript) refuses what tracing would silently
freeze: data-dependent control flow and a dynamic size made constant both fail the export,
with the line at fault. Every input's dynamic axes (the batch, and any given with --dynamic)
stay dynamic; the example arrives with no dynamic axis of size 0 or 1, which torch.export
would specialise.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ExportFailedError
from . import ExportSpec
from .capture import quiet_export
from .explain import bound_note, explain_torch_export, suggested_bounds


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec) -> dict[str, Any]:
    warned: list[str] = []
    buffer = io.BytesIO()
    try:
        with quiet_export(warned), torch.no_grad():
            try:
                program = torch.export.export(model, args, dynamic_shapes=spec.dynamic_shapes())
            except Exception as error:
                bounds = suggested_bounds(error)  # a guard such as cuDNN's batch <= 65535: dynamic within it
                if bounds is None:
                    raise
                program = torch.export.export(model, args, dynamic_shapes=spec.dynamic_shapes(bounds))
                warned.append(bound_note(bounds))
            torch.export.save(program, buffer)
    except Exception as error:
        raise ExportFailedError(
            explain_torch_export(error, "torch.export", ", or leave pt2 out of --format")
        ) from error
    path.write_bytes(buffer.getbuffer())  # by Python: torch's C++ writer aborts the process on a full disk
    return {"method": "torch.export.export + torch.export.save", "warnings": warned}
