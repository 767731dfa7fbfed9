"""ONNX through ``torch.onnx.export``, with a dynamic batch axis, checked before it is kept.

Two exporters: ``dynamo`` (torch's default since 2.9, built on torch.export) and
``legacy`` (TorchScript-based). The file is self-contained (weights inside) and must
pass ``onnx.checker.check_model(full_check=True)`` and shape inference.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._capture import quiet_export
from ..errors import ExportFailedError, first_line

FILE_NAME = "model.onnx"
BATCH_AXIS = "batch"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CALL_SITE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in \w+\n(?P<code>[^\n]+)')


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
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0] if proto.graph.input else None
    if batch_dim is not None and batch_dim.HasField("dim_value"):
        warned.append(
            f"ExportWarning: the ONNX input's batch dimension is fixed to {batch_dim.dim_value}: forward "
            "specialised it (int(x.shape[0]) or a constant reshape?), so other batch sizes will fail"
        )
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
    """One paragraph: which step failed, why (the root cause's first line and where), what to do."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    text = _ANSI.sub("", str(error))
    kind = type(root).__name__
    where = ""
    match = _CALL_SITE.search(text)
    if match:
        code = match["code"].split("  #")[0].strip()
        where = f" (at {Path(match['file']).name}:{match['line']}: `{code}`)"
    if onnx_exporter == "dynamo":
        if "DataDependent" in kind or "data-dependent" in text:
            hint = (
                f"forward branches on tensor values{where}, which torch.export cannot capture. "
                "Use torch.where or torch.cond, or --onnx-exporter legacy (it traces the branch the example "
                "takes; the verifier then checks that on other inputs)"
            )
        elif "ConstraintViolation" in kind or "specialized" in text or "Constraints violated" in text:
            hint = (
                f"forward fixes the batch size{where} (int(x.shape[0]) or a reshape to a constant). "
                "Keep it symbolic: x.flatten(1), x.reshape(x.shape[0], -1)"
            )
        else:
            hint = (
                f"{_ANSI.sub('', first_line(root))}{where}. Try --onnx-exporter legacy (the TorchScript-based exporter)"
            )
        return f"ONNX export (dynamo exporter, torch.export step) failed: {hint}"
    return (
        f"ONNX export (legacy exporter) failed: {_ANSI.sub('', first_line(root))}{where}. "
        "Try --onnx-exporter dynamo or another --opset"
    )


def session(data: bytes, device: torch.device):
    """An ONNX Runtime session over hash-checked bytes, and the providers it uses."""
    import onnxruntime as ort

    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: run errors come back as exceptions, reported once
    ort.set_default_logger_severity(4)
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
