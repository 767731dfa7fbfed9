"""ONNX with int8 weights: ONNX Runtime's dynamic quantisation of the fp32 ONNX model.

Weights of MatMul/Gemm/Conv become int8 with a per-tensor scale; activations are
quantised on the fly. The result is about a quarter of the fp32 size. The weights are signed
(QInt8, ONNX Runtime's default) except on an x86 CPU without VNNI, where ONNX Runtime multiplies
uint8 activations by int8 weights with VPMADDUBSW, whose int16 sums saturate (measured on an AVX2
EPYC: the seed network's top-1 agreement on 8,192 uniform inputs fell to 92.3%): there they are
unsigned (QUInt8: the U8U8 kernel does not saturate, as ONNX Runtime's quantisation guide advises)
and scaled per output channel (99.2% there, against 98.8% per tensor); the manifest says which.
Quantise on the CPU that will serve the file. The dynamo
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

    saturates = saturates_u8s8()
    weights = QuantType.QUInt8 if saturates else QuantType.QInt8

    source = path.parent / FORMATS["onnx"].file
    temporary = not source.exists()
    if temporary:
        source = path.parent / ".fp32-for-int8.onnx"
        fp32.export(model, args, source, replace(spec, external_data=False))
    warned: list[str] = []
    try:
        with quiet_export(warned):
            quantize_dynamic(str(source), str(path), weight_type=weights, per_channel=saturates)
    except Exception as error:
        if disk_error(error) is not None:
            raise
        raise ExportFailedError(f"int8 quantisation (onnxruntime.quantization) failed: {first_line(error)}") from error
    finally:
        fp32_bytes = source.stat().st_size
        if temporary:
            source.unlink(missing_ok=True)
    _drop_node_metadata(path)
    why = ", per channel: this CPU has no VNNI, where int8 x uint8 sums saturate" if saturates else ""
    details = {
        "quantization": f"dynamic, 8-bit weights (onnxruntime quantize_dynamic, {weights.name}{why})",
        "fp32_bytes": fp32_bytes,
    }
    return fp32.describe(path, details, warned, spec)


def saturates_u8s8(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether ONNX Runtime's uint8 x int8 kernels saturate here: an x86 CPU without VNNI.

    Read from /proc/cpuinfo's flags (x86 Linux); elsewhere (ARM, macOS, no such file) False,
    as those kernels accumulate in 32 bits.
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
    return False


def _drop_node_metadata(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.save(proto, str(path))
