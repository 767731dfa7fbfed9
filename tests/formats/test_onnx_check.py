"""Malformed and hostile ONNX files (formats/onnx_check.py), each built here: refused in one line before any
runtime sees it, and a secret file that a hostile external-data location names never read.

The unit tests work on small models made with onnx.helper; tests/cli/test_hostile.py drives the same files
through every command on a real export.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.errors import ArtifactFileError, ExporterError, ManifestError
from exporter.formats import onnx as onnx_file
from exporter.formats import onnx_check
from exporter.formats.onnx_wire import LEN, VARINT, field_key, varint

SECRET = b"TOP-SECRET-bytes-that-must-never-be-read"


def _field(number: int, payload: bytes) -> bytes:
    return field_key(number, LEN) + varint(len(payload)) + payload


def _model(nodes=None, inputs=None, initializers=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = nodes if nodes is not None else [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", inputs or [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _external_tensor(location: str) -> TensorProto:
    tensor = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def nested_bytes(depth: int) -> bytes:
    """A model whose main graph gains an If nested ``depth`` deep (written on the wire: onnx's own writer
    would recurse as deep)."""
    graph = b""
    for _ in range(depth):
        attribute = _field(1, b"then_branch") + field_key(20, VARINT) + varint(5) + _field(6, graph)
        graph = _field(1, _field(1, b"c") + _field(4, b"If") + _field(5, attribute))
    return _model().SerializeToString() + _field(7, graph)  # a second graph field merges into the first


def with_function_default(location: str) -> onnx.ModelProto:
    """A model-local function whose attribute default is a tensor with external data at ``location``."""
    model = _model()
    default = helper.make_attribute("w", _external_tensor(location))
    function = helper.make_function("local", "f", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    function.attribute_proto.append(default)
    model.functions.append(function)
    return model


def with_training_info(location: str) -> onnx.ModelProto:
    model = _model()
    init = helper.make_graph([], "init", [], [], initializer=[_external_tensor(location)])
    model.training_info.add(initialization=init, algorithm=helper.make_graph([], "algo", [], []))
    return model


def cyclic() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Identity", ["a"], ["y"], name="out"),
    ]
    return _model(nodes)


def negative_dims() -> onnx.ModelProto:
    return _model(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -10])])


def four_tib() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(np.zeros(10, np.float32), "w")
    del tensor.dims[:]
    tensor.dims.extend([2**21, 2**19])  # 2**40 floats: 4 TiB declared over 40 bytes
    return _model(initializers=[tensor])


HOSTILE = {  # name -> (bytes of the model, what the one line says)
    "truncated": (lambda: _model().SerializeToString()[:-7], "not an ONNX model onnx can read"),
    "nested-3000": (lambda: nested_bytes(3000), "not an ONNX model onnx can read"),
    "nested-20": (lambda: nested_bytes(20), "nest 17 deep (at most 16)"),
    "cyclic": (lambda: cyclic().SerializeToString(), "has a cycle"),
    "dims-10": (lambda: negative_dims().SerializeToString(), "declares a dimension of -10"),
    "tensor-4TiB": (lambda: four_tib().SerializeToString(), "declares 4398046.51 MB"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_malformed_model_is_one_line_and_a_usage_error(tmp_path, name):
    build, says = HOSTILE[name]
    path = tmp_path / "model.onnx"
    path.write_bytes(build())
    with pytest.raises(ArtifactFileError) as caught:
        onnx_file.check_external(path, {})
    assert says in str(caught.value) and caught.value.exit_code == 2 and "\n" not in str(caught.value)
    with pytest.raises(ArtifactFileError):  # the path triton and inspect take: the same refusal
        onnx_file.inline_bytes(path.read_bytes(), {})


def test_the_well_formed_twin_passes_every_check(tmp_path):
    """The negative twin: a model nested 10 deep, with a 40-byte weight and a function, goes through."""
    path = tmp_path / "model.onnx"
    model = onnx.load_from_string(nested_bytes(10))
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(10, np.float32), "w"))
    model.functions.append(
        helper.make_function("local", "f", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    )
    path.write_bytes(model.SerializeToString())
    onnx_file.check_external(path, {})
    assert onnx_file.inline_bytes(path.read_bytes(), {}) == path.read_bytes()


@pytest.mark.parametrize("where", ["function-default", "training-info"])
@pytest.mark.parametrize("location", ["SECRET.bin", "../x/SECRET.bin", "/tmp/SECRET.bin"])
def test_external_data_in_a_function_default_or_training_info_is_refused_and_never_read(
    tmp_path, monkeypatch, where, location
):
    secret_dir = tmp_path / "x"
    secret_dir.mkdir()
    (secret_dir / "SECRET.bin").write_bytes(SECRET)
    (tmp_path / "SECRET.bin").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)  # ONNX Runtime would resolve a bare location here
    model = (with_function_default if where == "function-default" else with_training_info)(location)
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ManifestError, match="not a file of this artifact folder") as caught:
        onnx_file.check_external(folder / "model.onnx", {})
    assert SECRET.decode() not in str(caught.value)
    with pytest.raises(ExporterError):
        onnx_file.inline_bytes(model.SerializeToString(), {})
    assert where and len(onnx_check.tensors_in(model)) == 1  # the walk finds the tensor


def test_every_graph_and_tensor_is_walked_without_recursion():
    model = onnx.load_from_string(nested_bytes(25))
    depths = [depth for _, depth in onnx_check.graphs_of(model)]
    assert max(depths) == 26 and len(depths) == 26
    training = with_training_info("SECRET.bin")
    assert len(list(onnx_check.graphs_of(training))) == 3  # main, initialization, algorithm
