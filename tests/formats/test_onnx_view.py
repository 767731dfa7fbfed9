"""onnx_view: ONNX Runtime reads a checked file's weights in place through a small view, which points
only at that file and never replaces one beside it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.formats.onnx_view import external_view
from exporter.formats.onnx_wire import write

from .test_onnx_wire import EXPECTED, WEIGHT, _model, _run


@pytest.fixture
def source(tmp_path):
    """The test_onnx_wire model, its weights as external data beside it (as torch writes)."""
    onnx.save_model(_model(), str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.onnx.data",
                    size_threshold=0)  # fmt: skip
    return tmp_path / "m.onnx"


def test_a_view_reads_the_weights_in_place_from_the_same_file_and_runs_the_same(source, tmp_path):
    target = tmp_path / "model.onnx"
    write(source, target)
    view = external_view(target)
    assert view is not None and view.parent == tmp_path and view.stat().st_size < 1024  # the graph, not the weights
    proto = onnx.load(str(view), load_external_data=False)
    places = {t.name: {e.key: e.value for e in t.external_data} for t in proto.graph.initializer}
    assert {places[n]["location"] for n in ("weight", "bias")} == {"model.onnx"}  # the checked file itself
    assert places["shape"] == {}
    raw = target.read_bytes()
    offset, length = int(places["weight"]["offset"]), int(places["weight"]["length"])
    assert raw[offset : offset + length] == WEIGHT.tobytes()
    np.testing.assert_allclose(_run(view), _run(target), rtol=0, atol=0)


def test_no_view_for_a_file_whose_weights_are_all_small_or_already_external(source, tmp_path):
    small = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "b"], ["y"])], "small",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
            [numpy_helper.from_array(np.ones(4, np.float32), "b")],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )  # fmt: skip
    onnx.save_model(small, str(tmp_path / "small.onnx"))
    assert external_view(tmp_path / "small.onnx") is None
    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    write(source, external, "model.onnx.data")
    assert external_view(external) is None  # its large tensors already are external data
    assert not list(tmp_path.glob("**/.view-*"))


def test_a_view_of_a_file_with_a_non_ascii_name_points_at_that_file_and_never_over_a_sidecar(source, tmp_path):
    target = tmp_path / "mödel 模型\x12\x01d.onnx"  # a name whose bytes outnumber its characters
    write(source, target)
    sidecar = tmp_path / ".model.onnx.view"
    sidecar.write_bytes(b"checked")
    view = external_view(target)
    places = {
        t.name: {e.key: e.value for e in t.external_data}
        for t in onnx.load(str(view), load_external_data=False).graph.initializer
    }
    assert places["weight"]["location"] == target.name and sidecar.read_bytes() == b"checked"
    np.testing.assert_allclose(_run(view), EXPECTED, rtol=1e-5, atol=1e-5)
