"""onnx_wire: ONNX files streamed from external data, and initializers read in place, never held whole.

Models are built with onnx.helper (no export): a MatMul + Add over weights saved with external
data as torch.onnx writes them. What the writer makes must be the same model to onnx and to ONNX
Runtime, byte-bound by the digest it returns; what it cannot stream it refuses, for the caller to
fall back; the reader refuses external data it was not given.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.formats import onnx_wire
from exporter.formats.onnx_wire import ALIGN, FileTensor, WireError, fields, initializers, varint, write

RNG = np.random.default_rng(0)
WEIGHT = RNG.standard_normal((64, 512)).astype(np.float32)
BIAS = RNG.standard_normal(512).astype(np.float32)  # 2 KB: past the 1 KB that stays inline
SHAPE = np.array([-1, 512], dtype=np.int64)
EXPECTED = np.ones((3, 64), np.float32) @ WEIGHT + BIAS  # 16 bytes: stays inline (shape inference reads it)


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "weight"], ["mm"]),
            helper.make_node("Add", ["mm", "bias"], ["sum"]),
            helper.make_node("Reshape", ["sum", "shape"], ["y"]),
        ],
        "wire",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 512])],
        [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(BIAS, "bias"),
         numpy_helper.from_array(SHAPE, "shape")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def source(tmp_path) -> Path:
    """The model with its weights in external data beside it (threshold 0: every tensor out, as torch writes)."""
    folder = tmp_path / "torch"
    folder.mkdir()
    onnx.save_model(_model(), str(folder / "m.onnx"), save_as_external_data=True, location="m.onnx.data",
                    size_threshold=0)  # fmt: skip
    return folder / "m.onnx"


def _run(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((3, 64), np.float32)})[0]


def _values(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_self_contained_file_is_the_same_model_and_its_digest_is_of_the_bytes_written(source, tmp_path):
    target = tmp_path / "model.onnx"
    digests = write(source, target)
    assert digests == {"model.onnx": _sha(target)}
    assert not any(t.data_location == TensorProto.EXTERNAL for t in onnx.load(str(target)).graph.initializer)
    got, expected = _values(target), _values(source)
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)
    onnx.checker.check_model(str(target), full_check=True)
    np.testing.assert_allclose(_run(target), EXPECTED, rtol=1e-5, atol=1e-5)


def test_external_data_goes_to_one_named_file_page_aligned_with_small_tensors_inline(source, tmp_path):
    target = tmp_path / "model.onnx"
    digests = write(source, target, "model.onnx.data")
    assert digests == {"model.onnx": _sha(target), "model.onnx.data": _sha(tmp_path / "model.onnx.data")}
    proto = onnx.load(str(target), load_external_data=False)
    places = {}
    for tensor in proto.graph.initializer:
        info = {e.key: e.value for e in tensor.external_data}
        places[tensor.name] = info
    assert places["shape"] == {}  # under 1 KB: in the graph, where shape inference reads it
    assert {places[n]["location"] for n in ("weight", "bias")} == {"model.onnx.data"}
    assert all(int(places[n]["offset"]) % ALIGN == 0 for n in ("weight", "bias"))
    np.testing.assert_allclose(_run(target), EXPECTED, rtol=1e-5, atol=1e-5)  # the source itself cannot run:
    # its 16-byte shape is external, where ONNX Runtime's shape inference cannot read it


def test_a_model_past_protobufs_limit_is_refused_as_one_file(source, tmp_path, monkeypatch):
    monkeypatch.setattr("exporter.formats.onnx_wire.PROTOBUF_LIMIT", 1024)
    with pytest.raises(ValueError, match="past protobuf's 2 GB limit"):
        write(source, tmp_path / "model.onnx")


def test_external_data_outside_the_graphs_initializers_is_left_to_onnxs_own_writer(tmp_path):
    """A weight in an If branch's subgraph: not streamed (WireError), so the exporter falls back."""
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner"], ["out"])], "then", [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [64, 512])],
        [numpy_helper.from_array(WEIGHT, "inner")],
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 512])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = tmp_path / "torch"
    folder.mkdir()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, location="d", size_threshold=0)
    with pytest.raises(WireError, match="outside the graph's initializers"):
        write(folder / "m.onnx", tmp_path / "model.onnx")


def test_an_external_location_that_leaves_the_folder_is_refused(source, tmp_path):
    proto = onnx.load(str(source), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../secret"
    onnx.save(proto, str(source))
    with pytest.raises(WireError, match="not a file beside the model"):
        write(source, tmp_path / "model.onnx")


# ---------------------------------------------------------------------------- reading in place


def test_initializers_are_file_tensors_that_compare_in_place(source, tmp_path):
    target = tmp_path / "model.onnx"
    write(source, target)
    found = initializers(target)
    assert set(found) == {"weight", "bias", "shape"}
    weight = found["weight"]
    assert isinstance(weight, FileTensor) and weight.shape == (64, 512) and weight.dtype == np.float32
    assert weight.difference(WEIGHT) is None and found["bias"].difference(BIAS) is None
    changed = WEIGHT.copy()
    changed[5, 7] += 0.25
    assert weight.difference(changed) == pytest.approx(0.25)
    np.testing.assert_array_equal(np.asarray(weight), WEIGHT)


def test_a_weight_spanning_many_chunks_is_compared_whole(source, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_wire, "CHUNK", 64)  # 16 floats per read: the difference lies in a late chunk
    target = tmp_path / "model.onnx"
    write(source, target)
    changed = WEIGHT.copy()
    changed[-1, -1] = -changed[-1, -1]
    weight = initializers(target)["weight"]
    assert weight.difference(WEIGHT) is None
    assert weight.difference(changed) == pytest.approx(2 * abs(WEIGHT[-1, -1]))


def test_external_initializers_are_read_only_from_the_files_given(source, tmp_path):
    target = tmp_path / "model.onnx"
    write(source, target, "model.onnx.data")
    data = tmp_path / "model.onnx.data"
    found = initializers(target, {"model.onnx.data": data})
    assert found["weight"].path == data and found["weight"].difference(WEIGHT) is None
    with pytest.raises(WireError, match="outside the files given"):
        initializers(target)  # the data file was not given: never opened by its location


def test_external_data_past_the_end_of_its_file_is_refused(source, tmp_path):
    target = tmp_path / "model.onnx"
    write(source, target, "model.onnx.data")
    data = tmp_path / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(WireError, match=r"outside model\.onnx\.data"):
        initializers(target, {"model.onnx.data": data})


def test_a_tensor_in_typed_fields_is_parsed_by_onnx(tmp_path):
    model = _model()
    typed = helper.make_tensor("bias", TensorProto.FLOAT, [512], BIAS.tolist())  # float_data, not raw_data
    model.graph.initializer[1].CopyFrom(typed)
    path = tmp_path / "typed.onnx"
    onnx.save(model, str(path))
    found = initializers(path)
    assert isinstance(found["bias"], np.ndarray) and np.array_equal(found["bias"], BIAS)
    assert isinstance(found["weight"], FileTensor)


def test_a_truncated_file_is_a_wire_error_not_a_crash(source, tmp_path):
    target = tmp_path / "model.onnx"
    write(source, target)
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(WireError):
        initializers(target)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varints_read_back_as_written(value):
    message = varint(1 << 3) + varint(value)  # field 1, wire type 0 (varint), then the value
    assert list(fields(message, 0, len(message))) == [(1, 0, value, len(message))]


def test_a_length_that_runs_past_its_message_is_a_wire_error():
    message = varint(2 << 3 | 2) + varint(1000) + b"short"  # field 2, length-delimited, claims 1000 bytes
    with pytest.raises(WireError, match="runs past"):
        list(fields(message, 0, len(message)))
