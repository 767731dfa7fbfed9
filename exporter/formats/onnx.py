"""ONNX through ``torch.onnx.export``, with a dynamic batch axis, checked before it is kept.

Two exporters: ``dynamo`` (torch's default since 2.9, built on torch.export) and
``legacy`` (TorchScript-based). The file is self-contained (weights inside) and must
pass ``onnx.checker.check_model(full_check=True)`` and shape inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._capture import quiet_export
from ..errors import ExportFailedError, first_line

FILE_NAME = "model.onnx"
BATCH_AXIS = "batch"


def export(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str,
    output_names: tuple[str, ...],
    opset: int | None = None,
    onnx_exporter: str = "dynamo",
    **_: Any,
) -> dict[str, Any]:
    """Export ``model`` to ``path``; returns details for the manifest. Raises ExportFailedError."""
    warned: list[str] = []
    kwargs: dict[str, Any] = dict(
        input_names=[input_name], output_names=list(output_names), opset_version=opset, external_data=False
    )
    if onnx_exporter == "dynamo":
        # The forward argument's own name keys dynamic_shapes; a positional tuple avoids needing it.
        kwargs.update(dynamo=True, dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},), verbose=False)
    else:
        axes = {input_name: {0: BATCH_AXIS}, **{name: {0: BATCH_AXIS} for name in output_names}}
        kwargs.update(dynamo=False, dynamic_axes=axes, do_constant_folding=True)
    try:
        with quiet_export(warned), torch.no_grad():
            torch.onnx.export(model, (example,), str(path), **kwargs)
    except Exception as error:
        raise ExportFailedError(_explain(error, onnx_exporter)) from error
    check(path)
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"exporter": onnx_exporter, "opset": opset_used, "warnings": warned}


def check(path: Path) -> None:
    """``onnx.checker`` with full_check (it runs strict shape inference too)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:
        raise ExportFailedError(
            f"the exported ONNX file fails onnx.checker: {first_line(error)}. Try another --opset or --onnx-exporter"
        ) from error


def _explain(error: BaseException, onnx_exporter: str) -> str:
    text = str(error)
    line = first_line(error)
    if onnx_exporter == "dynamo":
        if "specialized" in text or "Constraints violated" in text or "guard" in text.lower():
            hint = (
                "forward turns the batch size into a constant (int(x.shape[0]), say), or branches on it; "
                "keep shapes symbolic (x.flatten(1), x.shape[0] without int())"
            )
        elif "data-dependent" in text.lower() or "GuardOnDataDependent" in text:
            hint = (
                "forward branches on tensor values, which torch.export refuses; use torch.where / torch.cond, "
                "or --onnx-exporter legacy (it traces one branch, and the verifier will check the result)"
            )
        else:
            hint = "try --onnx-exporter legacy (the TorchScript-based exporter); the verifier checks its result"
        return f"ONNX export (dynamo exporter) failed: {line}. {hint}"
    return f"ONNX export (legacy exporter) failed: {line}. Try --onnx-exporter dynamo or another --opset"


def session(data: bytes, device: torch.device):
    """An ONNX Runtime session over hash-checked bytes, and the providers it uses."""
    import onnxruntime as ort

    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings go to stderr and mean nothing to users
    return ort.InferenceSession(data, sess_options=options, providers=providers)


def runner(data: bytes, device: torch.device, meta, output_names):
    from ..runners.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(
        runtime="onnxruntime", input_meta=meta, output_names=output_names, data=data, device=device
    )


def tensors(data: bytes) -> dict:
    """The graph's initializers (weights and exporter constants), by name."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    return {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
