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
from ._explain import explain_torch_export

FILE_NAME = "model.pt2"


def export(model: nn.Module, example: torch.Tensor, path: Path, **_: Any) -> dict[str, Any]:
    warned: list[str] = []
    if example.shape[0] == 1:
        example = torch.cat([example, example])  # a hint of 1 would be specialised to a constant
    try:
        with quiet_export(warned), torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            torch.export.save(program, str(path))
    except Exception as error:
        raise ExportFailedError(
            explain_torch_export(error, "torch.export", ", or leave pt2 out of --format")
        ) from error
    return {"method": "torch.export.export + torch.export.save", "warnings": warned}


def load(data: bytes):
    """The ExportedProgram in hash-checked bytes."""
    with quiet_export([]):
        return torch.export.load(io.BytesIO(data))


def runner(data: bytes, _files: dict[str, bytes], device: torch.device, meta, output_names):
    from ..runners.torch_runners import TorchModuleRunner

    return TorchModuleRunner(
        runtime="pt2", input_meta=meta, output_names=output_names, device=device,
        loader=lambda: load(data).module().to(device),
    )  # fmt: skip


def tensors(data: bytes, _files: dict[str, bytes]) -> dict:
    """The program's parameters and buffers (its state_dict) and lifted constants, by name."""
    program = load(data)
    found = {name: t.detach().cpu().numpy() for name, t in program.state_dict.items()}
    found.update({name: t.detach().cpu().numpy() for name, t in program.constants.items() if torch.is_tensor(t)})
    return found
