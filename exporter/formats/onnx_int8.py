"""ONNX with int8 weights: ONNX Runtime's dynamic quantisation of the fp32 ONNX model.

Weights of MatMul/Gemm/Conv become int8 with a per-tensor scale; activations are
quantised on the fly. The result is about a quarter of the fp32 size. The dynamo
exporter's per-node metadata (its debugging provenance: stack traces, FX names) is
dropped from the int8 file, where it would be a third of a small model's bytes; the
fp32 file keeps it. Its outputs move
by the quantisation error, so it is verified under its own policy (config.QUANTIZED_TOLERANCE
and a minimum top-1 agreement), not the fp32 tolerance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ExportFailedError, disk_error, first_line
from . import FORMATS, ExportSpec
from . import onnx as fp32
from .capture import quiet_export


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec) -> dict[str, Any]:
    """Quantise the folder's fp32 ONNX file (exporting one first if --format onnx was not asked for)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = path.parent / FORMATS["onnx"].file
    temporary = not source.exists()
    if temporary:
        source = path.parent / ".fp32-for-int8.onnx"
        fp32.export(model, args, source, replace(spec, external_data=False))
    warned: list[str] = []
    try:
        with quiet_export(warned):
            quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8)
    except Exception as error:
        if disk_error(error) is not None:
            raise
        raise ExportFailedError(f"int8 quantisation (onnxruntime.quantization) failed: {first_line(error)}") from error
    finally:
        fp32_bytes = source.stat().st_size
        if temporary:
            source.unlink(missing_ok=True)
    _drop_node_metadata(path)
    details = {"quantization": "dynamic, int8 weights (onnxruntime quantize_dynamic, QInt8)", "fp32_bytes": fp32_bytes}
    return fp32.describe(path, details, warned, spec)


def _drop_node_metadata(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.save(proto, str(path))
