"""config.pbtxt for Triton: the data types it knows, and the protobuf text of a model's tensors.

Written here directly (protobuf text format for ``inference.ModelConfig``) so serving needs
no ``tritonclient``; the tests parse the result with tritonclient's ``model_config_pb2``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ONNX TensorProto.DataType name -> Triton DataType
ONNX_TYPES = {
    "FLOAT": "TYPE_FP32",
    "FLOAT16": "TYPE_FP16",
    "BFLOAT16": "TYPE_BF16",
    "DOUBLE": "TYPE_FP64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "BOOL": "TYPE_BOOL",
    "STRING": "TYPE_STRING",
}

# torch dtype name (as the manifest records it) -> Triton DataType
TORCH_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}


@dataclass(frozen=True)
class TensorConfig:
    """One input or output as Triton sees it."""

    name: str
    data_type: str  # a Triton DataType: TYPE_FP32, TYPE_INT64, ...
    dims: tuple[int, ...]  # per sample when the model batches; -1 is a size that varies
    scalar: bool = False  # one value per sample: dims [1] reshaped to [], since Triton refuses empty dims


def tensor(name: str, data_type: str, shape: list[int], batched: bool) -> TensorConfig:
    """Batched: the first dimension is Triton's batch and leaves dims; a sample with no dims becomes [1]."""
    dims = tuple(shape[1:] if batched else shape)
    if not dims:
        return TensorConfig(name, data_type, (1,), scalar=True)
    return TensorConfig(name, data_type, dims)


def tensor_block(kind: str, tensors: list[TensorConfig]) -> list[str]:
    lines = [f"{kind} ["]
    for index, tensor in enumerate(tensors):
        lines += [
            "  {",
            f"    name: {quote(tensor.name)}",
            f"    data_type: {tensor.data_type}",
            f"    dims: [ {', '.join(str(d) for d in tensor.dims)} ]",
        ]
        if tensor.scalar:
            lines.append("    reshape { shape: [ ] }")
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    lines.append("]")
    return lines


def quote(text: str) -> str:
    """A protobuf text-format string literal."""
    from google.protobuf import text_encoding  # protobuf comes with onnx

    return '"' + text_encoding.CEscape(text, as_utf8=False) + '"'


def comment(text: str) -> str:
    return " ".join(str(text).split())  # one line: a newline would end the comment


def describe(tensor: TensorConfig) -> str:
    dims = "[]" if tensor.scalar else f"[{', '.join(str(d) for d in tensor.dims)}]"
    return f"{tensor.name} {dims} {tensor.data_type}"
