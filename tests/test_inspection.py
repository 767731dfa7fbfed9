"""inspection: an ONNX file read as data (inputs, outputs, opset, initializers; external data listed by size,
never opened), and a model's parameter table in named_parameters order with its total."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from exporter.errors import InputSpecError, ModelNotFoundError
from exporter.inspection import ModelInspection, OnnxInspection, inspect, inspect_onnx
from exporter.models.mlp import NeuralNetwork

SENTINEL = "sentinel.bin"


@contextlib.contextmanager
def _watched(path: Path):
    """Yields a list that, once the block ends, holds one entry per time any code (C++ included) opened ``path``:
    Linux inotify, which sees every open whatever language makes it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux's")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0 and libc.inotify_add_watch(fd, bytes(path), 0x20) >= 0  # IN_OPEN
    opened: list[int] = []
    try:
        yield opened
        while True:
            try:
                events = os.read(fd, 4096)
            except BlockingIOError:
                break
            while events:  # struct inotify_event: wd, mask, cookie, len, then len bytes of name
                _wd, mask, _cookie, length = struct.unpack_from("iIII", events)
                opened.append(mask)
                events = events[16 + length :]
    finally:
        os.close(fd)


def _handmade(folder: Path, opsets: tuple[tuple[str, int], ...] = (("com.microsoft", 1), ("", 17))) -> Path:
    """y = x @ w + b: w inline, b in a side file named SENTINEL; w listed among the graph inputs too, as
    older exporters did."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    b = TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[3], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", SENTINEL), ("offset", "0"), ("length", "12")):
        b.external_data.add(key=key, value=value)
    (folder / SENTINEL).write_bytes(np.array([1, 2, 3], np.float32).tobytes())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "handmade",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.producer_name, model.producer_version = "handmade", "0.1"
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


# --- ONNX files --------------------------------------------------------------------------------------


def test_an_onnx_file_gives_its_interface_opset_and_initializers(tmp_path):
    found = inspect_onnx(_handmade(tmp_path))
    assert isinstance(found, OnnxInspection) and found.path == str(tmp_path / "model.onnx")
    assert found.inputs == [{"name": "x", "dtype": "float", "shape": ["batch", 4]}]  # w is an initializer
    assert found.outputs == [{"name": "y", "dtype": "float", "shape": ["batch", 3]}]
    assert found.opset == 17 and found.producer == "handmade 0.1" and found.nodes == 2
    assert [(r.name, r.shape, r.count) for r in found.initializers] == [("w", (4, 3), 12), ("b", (3,), 3)]
    assert found.initializers[0].first_values == [0.0, 1.0, 2.0, 3.0]
    assert found.total == 15 and found.to_dict()["total"] == 15


def test_external_data_is_listed_by_size_and_never_opened(tmp_path):
    path = _handmade(tmp_path)
    with _watched(tmp_path / SENTINEL) as opened:
        found = inspect_onnx(path)
    assert found.initializers[1].first_values == [] and found.initializers[1].count == 3
    assert opened == []
    # The watch sees an open when there is one: onnx's own loader, following the side file, opens it.
    with _watched(tmp_path / SENTINEL) as opened:
        onnx.load(str(path), load_external_data=True)
    assert opened


def test_the_render_shows_the_interface_and_the_initializer_table(tmp_path):
    text = inspect_onnx(_handmade(tmp_path)).render()
    assert text.splitlines()[0] == f"ONNX file {tmp_path / 'model.onnx'}: opset 17, 2 nodes, produced by handmade 0.1"
    assert "input   x     float  ['batch', 4]" in text and "output  y     float  ['batch', 3]" in text
    assert "0.0000, 1.0000, 2.0000, 3.0000" in text and text.endswith("Total initializer elements: 15")


def test_a_file_without_a_default_domain_opset_has_none_and_no_producer_says_unknown(tmp_path):
    path = _handmade(tmp_path, opsets=(("com.microsoft", 1),))
    model = onnx.load(str(path), load_external_data=False)
    model.producer_name = model.producer_version = ""
    path.write_bytes(model.SerializeToString())
    found = inspect_onnx(path)
    assert found.opset is None and found.producer == "unknown"


def test_a_file_that_is_not_onnx_is_a_usage_error_naming_it(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff\xff not protobuf")
    with pytest.raises(InputSpecError, match=r"junk\.onnx is not an ONNX file onnx can read") as caught:
        inspect_onnx(tmp_path / "junk.onnx")
    assert "\n" not in str(caught.value)


def test_inspect_reads_an_onnx_file_by_its_suffix_and_a_missing_one_is_a_model_name(tmp_path):
    assert isinstance(inspect(_handmade(tmp_path)), OnnxInspection)
    with pytest.raises(ModelNotFoundError):
        inspect(tmp_path / "missing.onnx")  # not a file: read as a model spec, which it is not


# --- models ------------------------------------------------------------------------------------------


def test_a_registered_model_lists_its_parameters_in_order_with_the_total():
    found = inspect("mlp")
    assert isinstance(found, ModelInspection) and found.name == "mlp"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # what inspect builds: the registry's class, seeded
        model = NeuralNetwork()
    expected = list(model.named_parameters())
    assert [(r.name, r.shape, r.count) for r in found.parameters] == [
        (n, tuple(p.shape), p.numel()) for n, p in expected
    ]
    assert [r.name for r in found.parameters][:2] == ["linear_relu_stack.0.weight", "linear_relu_stack.0.bias"]
    assert found.parameters[0].first_values == pytest.approx(expected[0][1].flatten()[:4].tolist())
    assert found.total == 669_706 == sum(p.numel() for _, p in expected) and found.buffers == []
    assert json.loads(json.dumps(found.to_dict()))["total"] == 669_706
    assert found.render().endswith("Total parameters: 669,706") and "Buffers" not in found.render()


def test_the_seed_decides_the_values_shown():
    assert inspect("mlp", seed=0).parameters[0].first_values == inspect("mlp", seed=0).parameters[0].first_values
    assert inspect("mlp", seed=1).parameters[0].first_values != inspect("mlp", seed=0).parameters[0].first_values


def test_buffers_are_listed_apart_from_the_parameters(tmp_path):
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n"
        "        self.norm = nn.BatchNorm1d(2)\n\n"
        "    def forward(self, x):\n"
        "        return self.norm(self.fc(x))\n"
    )
    found = inspect(f"{tmp_path / 'net.py'}:Net", input_shape=(1, 4))
    assert [r.name for r in found.parameters] == ["fc.weight", "fc.bias", "norm.weight", "norm.bias"]
    assert [r.name for r in found.buffers] == ["norm.running_mean", "norm.running_var", "norm.num_batches_tracked"]
    assert found.total == 4 * 2 + 2 + 2 + 2  # buffers are not parameters
    assert "Buffers (not parameters): norm.running_mean, norm.running_var, norm.num_batches_tracked" in found.render()


def test_an_unknown_model_is_a_usage_error():
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'"):
        inspect("no-such-model")


def test_a_folder_without_a_readable_manifest_is_described_so(tmp_path):
    from exporter.inspection import describe_folder

    (tmp_path / "manifest.json").write_text("{not json")
    assert describe_folder(tmp_path) == "a folder without a readable manifest"
