"""config.pbtxt's pieces: tensors with and without Triton's batching, one value per sample, string literals,
the data type maps; each text parsed with Triton's own ModelConfig schema (tritonclient's model_config_pb2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import text_format
from onnx import TensorProto

from exporter.interface import DTYPES
from exporter.triton.pbtxt import (
    ONNX_TYPES,
    TORCH_TYPES,
    TensorConfig,
    comment,
    describe,
    quote,
    tensor,
    tensor_block,
)


def load_model_config_schema() -> ModuleType:
    """tritonclient's model_config_pb2: Triton's own ModelConfig message.

    Loaded from its file: ``tritonclient.grpc``'s __init__ needs grpcio, which the schema does not.
    """
    spec = importlib.util.find_spec("tritonclient")
    assert spec is not None and spec.submodule_search_locations, "tritonclient is not installed (requirements.txt)"
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("tritonclient_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def schema():
    return load_model_config_schema()


def _parse(schema, inputs: list[TensorConfig], outputs: list[TensorConfig], max_batch_size: int = 8):
    text = "\n".join(
        [
            f"name: {quote('net_onnx')}",
            f"max_batch_size: {max_batch_size}",
            *tensor_block("input", inputs),
            *tensor_block("output", outputs),
        ]
    )
    return text_format.Parse(text, schema.ModelConfig())


# --- tensors ---------------------------------------------------------------------------------------


def test_with_batching_the_first_dimension_is_tritons_and_left_out_of_dims():
    assert tensor("x", "TYPE_FP32", [-1, 28, 28], batched=True) == TensorConfig("x", "TYPE_FP32", (28, 28))


def test_without_batching_dims_keep_every_dimension():
    assert tensor("x", "TYPE_FP32", [-1, 28, 28], batched=False) == TensorConfig("x", "TYPE_FP32", (-1, 28, 28))


def test_one_value_per_sample_becomes_dims_1_reshaped_to_nothing():
    score = tensor("score", "TYPE_FP32", [-1], batched=True)
    assert score == TensorConfig("score", "TYPE_FP32", (1,), scalar=True)
    assert tensor("total", "TYPE_INT64", [], batched=False).scalar  # a scalar output of an unbatched model
    assert not tensor("score", "TYPE_FP32", [-1], batched=False).scalar  # dims [-1]: not a scalar


def test_tensor_blocks_parse_with_tritons_schema(schema):
    inputs = [tensor("ids", "TYPE_INT64", [-1, 16], True), tensor("mask", "TYPE_BOOL", [-1, 16], True)]
    outputs = [tensor("logits", "TYPE_FP32", [-1, 10], True), tensor("score", "TYPE_FP32", [-1], True)]
    config = _parse(schema, inputs, outputs)
    assert [(t.name, schema.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("ids", "TYPE_INT64", [16]),
        ("mask", "TYPE_BOOL", [16]),
    ]
    logits, score = config.output
    assert list(logits.dims) == [10] and not logits.HasField("reshape")
    assert list(score.dims) == [1] and score.HasField("reshape") and list(score.reshape.shape) == []
    assert config.max_batch_size == 8 and config.name == "net_onnx"


def test_a_block_of_one_tensor_has_no_trailing_comma():
    lines = tensor_block("input", [tensor("x", "TYPE_FP32", [-1, 4], True)])
    assert lines == ["input [", "  {", '    name: "x"', "    data_type: TYPE_FP32", "    dims: [ 4 ]", "  }", "]"]
    two = tensor_block("input", [tensor("a", "TYPE_FP32", [-1, 4], True), tensor("b", "TYPE_FP32", [-1, 4], True)])
    assert two.count("  },") == 1 and two[-2] == "  }"


def test_describe_is_name_dims_and_type():
    assert describe(tensor("input__0", "TYPE_FP32", [-1, 28, 28], True)) == "input__0 [28, 28] TYPE_FP32"
    assert describe(tensor("score", "TYPE_FP32", [-1], True)) == "score [] TYPE_FP32"


# --- strings and comments ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ['a "quoted" name', "back\\slash", "two\nlines", "naïve ✓", "tab\there"])
def test_a_quoted_string_reads_back_as_itself_with_tritons_parser(schema, name):
    config = text_format.Parse(f"name: {quote(name)}", schema.ModelConfig())
    assert config.name == name
    assert "\n" not in quote(name)  # one line of config, whatever the name holds


def test_an_unescaped_quote_would_not_parse_the_negative_twin(schema):
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "a "quoted" name"', schema.ModelConfig())


def test_a_comment_is_one_line_whatever_it_is_given():
    assert comment("a note\nover two lines\tand a tab") == "a note over two lines and a tab"
    assert comment(42) == "42"


# --- data types --------------------------------------------------------------------------------------

# torch dtype (as the manifest records it) -> ONNX TensorProto name, written here apart from exporter.triton
TORCH_TO_ONNX = {
    "float32": "FLOAT",
    "float16": "FLOAT16",
    "bfloat16": "BFLOAT16",
    "float64": "DOUBLE",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "bool": "BOOL",
}


def test_every_triton_type_named_is_one_of_tritons_data_types(schema):
    for name in {*ONNX_TYPES.values(), *TORCH_TYPES.values()}:
        assert schema.DataType.Value(name) != schema.DataType.Value("TYPE_INVALID"), name
    with pytest.raises(ValueError):
        schema.DataType.Value("TYPE_FLOAT32")  # the kind of name the maps must not hold


def test_every_onnx_type_named_is_one_of_onnxs():
    for name in ONNX_TYPES:
        assert TensorProto.DataType.Value(name) != TensorProto.UNDEFINED
    assert "COMPLEX64" not in ONNX_TYPES  # a type Triton cannot serve is refused, not mapped


def test_every_input_dtype_maps_and_the_two_maps_agree():
    assert set(TORCH_TYPES) == set(DTYPES)  # every dtype an input may have
    for dtype, onnx_name in TORCH_TO_ONNX.items():
        assert TORCH_TYPES[dtype] == ONNX_TYPES[onnx_name], dtype
