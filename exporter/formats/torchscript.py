"""TorchScript by tracing: ``torch.jit.trace`` then ``save``.

Tracing records the operations one example input takes. Python control flow on
input values is frozen to the branch the example took, and ``int(x.shape[0])``
freezes the batch size: both are caught by the verifier, which runs other inputs
and other batch sizes through the saved file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..artifacts.integrity import HashingWriter, sha256_file
from ..errors import ExportFailedError, disk_error, first_line
from . import ExportSpec, forked_write
from .capture import quiet_export


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec) -> dict[str, Any]:  # noqa: ARG001
    """Trace ``model`` on ``args`` and save it to ``path``. Returns details for the manifest."""
    warned: list[str] = []
    try:
        with quiet_export(warned), torch.no_grad():
            # strict=False: forward may return a list or a dict, which the runner flattens like eager's
            traced = torch.jit.trace(model, args, check_trace=False, strict=False)
    except Exception as error:
        raise ExportFailedError(
            f"TorchScript tracing failed: {first_line(error)}. Make forward traceable "
            "(tensor ops only, no Python side effects) or leave TorchScript out with --format onnx"
        ) from error
    try:
        digest = _save(traced, path)
    except Exception as error:
        if disk_error(error) is not None:
            raise  # the disk, not the exporter: export() says so in one line
        raise ExportFailedError(f"TorchScript could not be saved: {first_line(error)}") from error
    return {"method": "torch.jit.trace", "warnings": warned, "written": {path.name: digest}}


def _save(traced: torch.jit.ScriptModule, path: Path) -> str:
    """Save ``traced`` to ``path``; its sha256.

    torch's C++ file writer aborts the process when a write fails (a full disk), so it runs in a
    forked child (``forked_write``) and the file is hashed afterwards, streamed. Without fork,
    torch builds the file in memory (ten times slower, the weights twice) and Python writes it,
    hashing as it goes. Nor once this process has initialised CUDA: a forked child cannot use a
    CUDA context (CUDA does not survive fork), and saving CUDA weights copies them through it.
    """
    if forked_write.available() and not torch.cuda.is_initialized():
        forked_write.write(path, traced.save)
        return sha256_file(path)
    out = HashingWriter(path)
    try:
        torch.jit.save(traced, out)
    finally:
        digest = out.close()
    return digest
