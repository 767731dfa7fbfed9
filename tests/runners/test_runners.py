"""Runners: the feed check and timing in one place; prepare, tensors and settings per runtime; runner_for per format.

Nothing here exports a registered model: the artifacts are made from small modules in this
file (TorchScript by tracing, pt2 by torch.export, ONNX as a hand-written graph holding the
module's own weights), once per module, in about a second. A feed is a dict of arrays by
input name (``runners.Feed``), checked against the runner's ``InputSpec``s.
"""

from __future__ import annotations

import atexit
import copy
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from exporter.artifacts.integrity import CheckedFile
from exporter.errors import InputSpecError, UsageError
from exporter.formats import FORMATS, TABLE
from exporter.interface import InputSpec, Interface, OutputSpec
from exporter.notes import NOTE, Note
from exporter.runners import Feed, Runner, eager, runner_for
from exporter.runners.onnxruntime import OnnxRuntimeRunner, check_opset, runtime_max_opset, session, tuned_settings
from exporter.runners.torch import Pt2Runner, TorchScriptRunner

SPECS = (InputSpec("input", (2, 3, 4)),)  # float32, the batch (axis 0) dynamic
OUTPUTS = ("logits",)
CPU = torch.device("cpu")
RUNTIMES = ("eager", *FORMATS)  # eager, then every format of the table


class TwoLayer(nn.Module):
    """Two Linear layers and a buffer, so ``tensors()`` has parameters and a buffer to return."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.full((1,), 0.5))
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):  # (B, 3, 4) -> (B, 3)
        return self.fc2(torch.relu(self.fc1(x.flatten(1) * self.scale)))


class TwoOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> (B, 4), (B,)
        return x.sum(1), x.flatten(1).amax(1)


class DictOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> {"sums": (B, 4), "extra": ((B,), [(B, 4), (B, 3)])}
        return {"sums": x.sum(1), "extra": (x.flatten(1).amax(1), [x[:, 0], x.mean(2)])}


class NestedOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> ((B, 4), ((B,), [(B, 4), (B, 3)]))
        return x.sum(1), (x.flatten(1).amax(1), [x[:, 0], x.mean(2)])


def _four_outputs(x: np.ndarray) -> list[np.ndarray]:
    """What DictOutputs and NestedOutputs return, flattened in order, computed in numpy."""
    return [x.sum(1), x.reshape(len(x), -1).max(1), x[:, 0], x.mean(2)]


class Weighted(nn.Module):
    """Two named inputs: a sequence ``x`` (B, S, 4) weighted by ``y`` (B, 4), summed over the sequence."""

    def forward(self, x, y):  # -> (B, 4)
        return (x * y.unsqueeze(1)).sum(1)


class InPlace(nn.Module):
    """Changes its input in place, then uses it."""

    def forward(self, x):  # (B, 3, 4) -> (B, 3, 4)
        x.add_(1)
        return x * 2


class Seen(nn.Module):
    """Records the dtype of each input forward is given; returns it doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def forward(self, x):
        self.dtypes.append(x.dtype)
        return x * 2


def _torchscript(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 3, 4)), buffer)
    return buffer.getvalue()


def _pt2(model: nn.Module) -> bytes:
    program = torch.export.export(model, (torch.rand(2, 3, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _onnx(model: nn.Module, opset: int = 17) -> bytes:
    """The module as a hand-written ONNX graph whose initializers carry its state_dict names."""
    weights = [numpy_helper.from_array(t.detach().numpy(), name) for name, t in model.state_dict().items()]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Mul", ["flat", "scale"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "fc1.weight", "fc1.bias"], ["hidden"], transB=1),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("Gemm", ["active", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "two_layer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=weights,
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8  # an IR version every supported onnxruntime reads
    if opset <= onnx.defs.onnx_opset_version():  # the checker knows no newer opset
        onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _onnx_weighted() -> bytes:
    """Weighted as an ONNX graph whose ``x`` has a dynamic ``seq`` axis."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Unsqueeze", ["y", "axes"], ["y1"]),
        helper.make_node("Mul", ["x", "y1"], ["product"]),
        helper.make_node("ReduceSum", ["product", "axes"], ["weighted"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "weighted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("weighted", TensorProto.FLOAT, ["batch", 4])],
        initializer=[axes],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


_SCRATCH = Path(tempfile.mkdtemp(prefix="exporter-test-runners-"))
atexit.register(shutil.rmtree, _SCRATCH, True)


def _checked(data: bytes) -> CheckedFile:
    """``data`` as a checked file of its own (runners load artifacts by path, never from bytes)."""
    path = Path(tempfile.mkdtemp(dir=_SCRATCH)) / "artifact"
    path.write_bytes(data)
    return CheckedFile(path)


def _interface(specs: tuple[InputSpec, ...], outputs: tuple[str, ...]) -> Interface:
    return Interface(tuple(specs), tuple(OutputSpec(name) for name in outputs))


def _artifacts(model: nn.Module) -> dict[str, bytes]:
    """The bytes of each format. onnx-int8 runs through the same runner as onnx: fp32 bytes do for it."""
    onnx_bytes = _onnx(model)
    return {"torchscript": _torchscript(model), "onnx": onnx_bytes, "pt2": _pt2(model), "onnx-int8": onnx_bytes}


@pytest.fixture(scope="module")
def model() -> TwoLayer:
    torch.manual_seed(0)
    return TwoLayer().eval()


@pytest.fixture(scope="module")
def artifacts(model) -> dict[str, bytes]:
    return _artifacts(model)


def _make(name: str, model: nn.Module, artifacts: dict[str, bytes], threads: int | None = None) -> Runner:
    if name == "eager":
        return eager(model, CPU, _interface(SPECS, OUTPUTS))
    return runner_for(name, _checked(artifacts[name]), {}, CPU, _interface(SPECS, OUTPUTS), threads=threads)


SEQ_SPECS = (InputSpec("x", (2, 5, 4), dynamic=((0, "batch"), (1, "seq"))), InputSpec("y", (2, 4)))
FIXED_SPECS = (InputSpec("x", (2, 5, 4)), InputSpec("y", (2, 4)))  # only the batch dynamic


@pytest.fixture(scope="module")
def weighted_onnx() -> bytes:
    return _onnx_weighted()


def _weighted(name: str, onnx_bytes: bytes, specs: tuple[InputSpec, ...] = SEQ_SPECS) -> Runner:
    if name == "eager":
        return eager(Weighted(), CPU, _interface(specs, ("weighted",)))
    return runner_for(name, _checked(onnx_bytes), {}, CPU, _interface(specs, ("weighted",)))


def _runtime(name: str) -> str:
    return "eager" if name == "eager" else FORMATS[name].runtime


def _array(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _feed(batch: int, seed: int = 0, dtype: str = "float32") -> Feed:
    return {"input": _array((batch, 3, 4), seed, dtype)}


# --- the feed check -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_feed_that_fits_runs_and_each_call_is_timed(model, artifacts, name):
    with _make(name, model, artifacts) as runner:
        first = runner.infer(_feed(2))
        runner.infer(_feed(5))
    assert list(first) == ["logits"] and first["logits"].shape == (2, 3) and first["logits"].dtype == np.float32
    assert len(runner.inference_times) == 2 and all(t > 0 for t in runner.inference_times)


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 12), (2, 3, 4, 1), (3, 4)], ids=str)
def test_a_feed_of_the_wrong_shape_is_refused_naming_the_runtime_and_nothing_runs(model, artifacts, name, shape):
    runtime = "eager" if name == "eager" else FORMATS[name].runtime
    with _make(name, model, artifacts) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({"input": np.zeros(shape, dtype=np.float32)})
    message = str(caught.value)
    assert message.startswith(f"{runtime} expects input 'input' of shape (batch, 3, 4), got {shape}")
    assert runner.inference_times == []  # refused before the timed call


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("dtype", ["float64", "float16", "int64"])
def test_a_feed_of_the_wrong_dtype_is_a_usage_error_naming_the_runtime(model, artifacts, name, dtype):
    runtime = "eager" if name == "eager" else FORMATS[name].runtime
    expected = f"^{runtime} expects float32 input 'input', got {dtype}$"
    with _make(name, model, artifacts) as runner, pytest.raises(InputSpecError, match=expected) as caught:
        runner.infer(_feed(2, dtype=dtype))
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert runner.inference_times == []


@pytest.mark.parametrize("name", ["eager", "torchscript", "onnx"])
def test_a_runner_used_outside_its_with_block_raises(model, artifacts, name):
    runner = _make(name, model, artifacts)
    calls = (lambda: runner.infer(_feed(1)), lambda: runner.prepare(_feed(1)), runner.tensors)
    for call in calls:  # before the block
        with pytest.raises(RuntimeError, match="runner used outside its `with` block"):
            call()
    with runner:
        for call in calls:  # inside it, the same calls work
            call()
    for call in calls:  # and after it, they are refused again
        with pytest.raises(RuntimeError, match="outside its `with` block"):
            call()


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize(
    "names, got",
    [(("x",), "x"), (("x", "y", "z"), "x, y, z"), (("x", "mask"), "x, mask"), ((), "none")],
    ids=["missing", "extra", "another", "empty"],
)
def test_a_feed_missing_an_input_or_with_an_extra_one_is_refused_naming_the_expected_inputs(
    weighted_onnx, name, names, got
):
    arrays = {"x": _array((2, 5, 4)), "y": _array((2, 4)), "z": _array((2, 4)), "mask": _array((2, 5))}
    with _weighted(name, weighted_onnx) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({n: arrays[n] for n in names})
    assert str(caught.value) == f"{_runtime(name)} expects inputs x, y, got {got}"
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert runner.inference_times == []  # refused before the timed call


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_single_input_fed_under_another_name_is_refused(model, artifacts, name):
    with _make(name, model, artifacts) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({"image": _array((2, 3, 4))})
    assert str(caught.value) == f"{_runtime(name)} expects inputs input, got image"
    assert runner.inference_times == []


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_inputs_are_fed_by_name_in_any_order_and_reach_forward_in_its_order(weighted_onnx, name):
    x, y = _array((3, 5, 4), seed=1), _array((3, 4), seed=2)
    with _weighted(name, weighted_onnx) as runner:
        forward_order = runner.infer({"x": x, "y": y})["weighted"]
        other_order = runner.infer({"y": y, "x": x})["weighted"]
    np.testing.assert_array_equal(forward_order, other_order)
    np.testing.assert_allclose(forward_order, (x * y[:, None]).sum(1), rtol=1e-6)


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_dynamic_axis_other_than_the_batch_takes_any_size_and_a_fixed_one_refuses_others(weighted_onnx, name):
    runtime = _runtime(name)
    with _weighted(name, weighted_onnx) as runner:
        for batch, seq in [(2, 5), (1, 1), (3, 9)]:  # the example's sizes, and others on both dynamic axes
            x, y = _array((batch, seq, 4), seed=seq), _array((batch, 4), seed=batch)
            got = runner.infer({"x": x, "y": y})["weighted"]
            assert got.shape == (batch, 4)
            np.testing.assert_allclose(got, (x * y[:, None]).sum(1), rtol=1e-6)
        with pytest.raises(InputSpecError) as caught:  # the last axis of x is fixed at 4
            runner.infer({"x": _array((2, 5, 3)), "y": _array((2, 4))})
        assert str(caught.value) == f"{runtime} expects input 'x' of shape (batch, seq, 4), got (2, 5, 3)"
        with pytest.raises(InputSpecError) as caught:  # y has no seq axis: its second axis is fixed
            runner.infer({"x": _array((2, 5, 4)), "y": _array((2, 5))})
        assert str(caught.value) == f"{runtime} expects input 'y' of shape (batch, 4), got (2, 5)"
    assert len(runner.inference_times) == 3  # the refused feeds were not timed


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_an_axis_not_declared_dynamic_refuses_any_size_but_the_examples(weighted_onnx, name):
    with _weighted(name, weighted_onnx, FIXED_SPECS) as runner:
        runner.infer({"x": _array((3, 5, 4)), "y": _array((3, 4))})  # the batch still varies
        with pytest.raises(InputSpecError) as caught:
            runner.infer({"x": _array((2, 7, 4)), "y": _array((2, 4))})
    assert str(caught.value) == f"{_runtime(name)} expects input 'x' of shape (batch, 5, 4), got (2, 7, 4)"
    assert len(runner.inference_times) == 1


def test_a_bfloat16_input_is_fed_as_its_float32_carrier_and_forward_gets_bfloat16():
    model = Seen()
    exact = np.array([[1.5, -0.25, 3.0], [1.0078125, 2.0**-7, 96.0]], dtype=np.float32)  # bfloat16 values
    with eager(model, CPU, _interface((InputSpec("x", (2, 3), "bfloat16"),), ("doubled",))) as runner:
        got = runner.infer({"x": exact})["doubled"]
    assert model.dtypes == [torch.bfloat16]
    assert got.dtype == np.float32  # a bfloat16 output comes back in its carrier too
    np.testing.assert_array_equal(got, exact * 2)


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_a_bfloat16_input_refuses_any_array_but_float32(model, artifacts, name, dtype):
    specs = (InputSpec("input", (2, 3, 4), "bfloat16"),)
    if name == "eager":
        runner = eager(model, CPU, _interface(specs, OUTPUTS))
    else:
        runner = runner_for(name, _checked(artifacts[name]), {}, CPU, _interface(specs, OUTPUTS))
    with runner, pytest.raises(InputSpecError) as caught:
        runner.infer(_feed(2, dtype=dtype))
    assert str(caught.value) == f"{_runtime(name)} expects bfloat16 input 'input', got {dtype}"
    assert runner.inference_times == []


# --- infer_all and output names -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_infer_all_concatenates_each_output_over_the_batches_in_order(model, artifacts, name):
    batches = [_feed(1, seed=1), _feed(3, seed=2), _feed(2, seed=3)]
    with _make(name, model, artifacts) as runner:
        together = runner.infer_all(iter(batches))  # any iterable: bench passes a generator
        one_by_one = [runner.infer(b)["logits"] for b in batches]
    assert together["logits"].shape == (6, 3)
    np.testing.assert_array_equal(together["logits"], np.concatenate(one_by_one))
    assert not np.array_equal(together["logits"][:1], together["logits"][1:2])  # not one batch repeated
    assert len(runner.inference_times) == 6  # three through infer_all, three one by one


def test_infer_all_keeps_every_output_by_name():
    with eager(TwoOutputs(), CPU, _interface(SPECS, ("sums", "maxima"))) as runner:
        outputs = runner.infer_all([_feed(2, seed=1), _feed(3, seed=2)])
    assert {name: a.shape for name, a in outputs.items()} == {"sums": (5, 4), "maxima": (5,)}


def test_infer_all_refuses_a_wrong_batch_among_good_ones(model, artifacts):
    with _make("onnx", model, artifacts) as runner, pytest.raises(InputSpecError, match=r"got \(2, 12\)"):
        runner.infer_all([_feed(2), {"input": np.zeros((2, 12), dtype=np.float32)}])


def test_a_model_returning_another_number_of_outputs_than_named_is_refused():
    runner = eager(TwoOutputs(), CPU, _interface(SPECS, ("only",)))
    with runner, pytest.raises(ValueError, match="eager returned 2 outputs, expected 1"):
        runner.infer(_feed(1))


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("batches", [[], iter(())], ids=["list", "generator"])
def test_infer_all_without_batches_is_a_clear_error(model, artifacts, name, batches):
    with _make(name, model, artifacts) as runner, pytest.raises(ValueError) as caught:
        runner.infer_all(batches)
    assert str(caught.value) == f"{_runtime(name)}: no batches to run"
    assert runner.inference_times == []


def _traced(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module, torch.rand(2, 3, 4), strict=False), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, module",
    # TorchScript holds no dict of mixed values (a Dict[str, T] has one value type): its trace is refused
    [("eager", DictOutputs), ("pt2", DictOutputs), ("eager", NestedOutputs), ("torchscript", NestedOutputs),
     ("pt2", NestedOutputs)],
    ids=lambda v: v if isinstance(v, str) else {DictOutputs: "dict", NestedOutputs: "nested-tuple"}[v],
)  # fmt: skip
def test_a_dict_or_nested_return_is_flattened_to_the_output_names_in_order(name, module):
    names = ("first", "second", "third", "fourth")
    if name == "eager":
        runner = eager(module(), CPU, _interface(SPECS, names))
    else:
        data = _traced(module()) if name == "torchscript" else _pt2(module())
        runner = runner_for(name, _checked(data), {}, CPU, _interface(SPECS, names))
    feed, later = _feed(2, seed=1), _feed(3, seed=2)
    with runner:
        outputs = runner.infer(feed)
        together = runner.infer_all([feed, later])
    assert list(outputs) == list(names) and list(together) == list(names)
    for got, expected in zip(outputs.values(), _four_outputs(feed["input"]), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    both = np.concatenate([feed["input"], later["input"]])
    for got, expected in zip(together.values(), _four_outputs(both), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_nested_return_with_more_leaves_than_names_is_refused():
    runner = eager(DictOutputs(), CPU, _interface(SPECS, ("sums", "maxima", "rows")))
    with runner, pytest.raises(ValueError, match=r"^eager returned 4 outputs, expected 3$"):
        runner.infer(_feed(1))


# --- forward gets its own copy of the feed ------------------------------------------------------


def _in_place(name: str) -> Runner:
    if name == "eager":
        return eager(InPlace(), CPU, _interface(SPECS, ("output",)))
    data = _traced(InPlace()) if name == "torchscript" else _pt2(InPlace())
    return runner_for(name, _checked(data), {}, CPU, _interface(SPECS, ("output",)))


@pytest.mark.parametrize("name", ["eager", "torchscript", "pt2"])
def test_a_forward_changing_its_input_in_place_leaves_the_callers_feed_as_it_was(name):
    feed = _feed(2, seed=4)
    before = feed["input"].copy()
    with _in_place(name) as runner:
        for _ in range(2):  # each call starts again from the caller's values
            got = runner.infer(feed)["output"]
            np.testing.assert_array_equal(feed["input"], before)
            np.testing.assert_allclose(got, (before + 1) * 2, rtol=1e-6)
            assert not np.shares_memory(got, feed["input"])
        runner.infer_all([feed, feed])
        np.testing.assert_array_equal(feed["input"], before)
        np.testing.assert_allclose(runner.prepare(feed)()["output"], (before + 1) * 2, rtol=1e-6)
        np.testing.assert_array_equal(feed["input"], before)


# --- prepare ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, threads",
    [(name, None) for name in RUNTIMES] + [(f.name, 1) for f in TABLE if f.engine == "onnxruntime"],
    ids=lambda v: {None: "defaults", 1: "tuned"}.get(v, v),
)
def test_prepare_gives_the_outputs_of_infer(model, artifacts, name, threads):
    feed = _feed(4)
    with _make(name, model, artifacts, threads) as runner:
        expected = runner.infer(feed)
        call = runner.prepare(feed)
        first, second = call()["logits"].copy(), call()["logits"]
    np.testing.assert_array_equal(first, expected["logits"])
    np.testing.assert_array_equal(second, expected["logits"])


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_prepare_checks_the_feed_once_when_it_is_prepared(model, artifacts, name):
    with _make(name, model, artifacts) as runner, pytest.raises(InputSpecError, match="expects float32"):
        runner.prepare(_feed(4, dtype="float64"))


def test_the_onnx_prepare_writes_into_the_same_output_arrays_on_every_call(model, artifacts):
    feed = _feed(4)
    with _make("onnx", model, artifacts, threads=1) as runner:
        call = runner.prepare(feed)
        buffer = call()["logits"]
        before = buffer.copy()
        assert call()["logits"] is buffer  # no new array per call
        feed["input"] *= 2  # the feed is rebound on every call, so the next call reads the new values ...
        after = call()["logits"]
        assert after is buffer and not np.array_equal(buffer, before)  # ... into the same array
        np.testing.assert_array_equal(buffer, runner.infer(feed)["logits"])
        other = runner.prepare(_feed(2))()["logits"]  # another prepared feed has arrays of its own
    assert other is not buffer and other.shape == (2, 3) and buffer.shape == (4, 3)


def test_the_torch_prepare_returns_fresh_arrays_on_every_call(model, artifacts):
    with _make("torchscript", model, artifacts) as runner:
        call = runner.prepare(_feed(4))
        first, second = call()["logits"], call()["logits"]
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)


# --- tensors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "torchscript", "onnx", "pt2"])
def test_tensors_are_the_parameters_and_buffers_by_name(model, artifacts, name):
    with _make(name, model, artifacts) as runner:
        tensors = runner.tensors()
    state = model.state_dict()
    assert sorted(tensors) == sorted(state) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "scale"]
    for key, value in state.items():  # arrays, or (ONNX) FileTensors read from disk as they are compared
        np.testing.assert_array_equal(np.asarray(tensors[key]), value.numpy(), err_msg=key)


@pytest.mark.parametrize("name", ["torchscript", "onnx", "pt2"])
def test_tensors_come_from_the_artifacts_bytes_not_the_eager_model(model, name):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.fc2.bias[1] += 0.25
    with runner_for(name, _checked(_artifacts(changed)[name]), {}, CPU, _interface(SPECS, OUTPUTS)) as runner:
        tensors = {name: np.asarray(values) for name, values in runner.tensors().items()}
    assert tensors["fc2.bias"][1] == pytest.approx(float(model.fc2.bias.detach()[1]) + 0.25)
    np.testing.assert_array_equal(tensors["fc2.bias"][[0, 2]], model.fc2.bias.detach().numpy()[[0, 2]])
    np.testing.assert_array_equal(tensors["fc1.weight"], model.fc1.weight.detach().numpy())


# --- runner_for ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TABLE, ids=lambda f: f.name)
def test_runner_for_picks_the_runner_of_each_format_and_it_matches_eager(model, artifacts, spec):
    runner = runner_for(spec.name, _checked(artifacts[spec.name]), {}, CPU, _interface(SPECS, OUTPUTS))
    expected_class = {"onnxruntime": OnnxRuntimeRunner, "torch.jit": TorchScriptRunner, "torch.export": Pt2Runner}
    assert type(runner) is expected_class[spec.engine] and runner.runtime == spec.runtime
    assert not runner.is_active  # nothing is loaded before the block
    with runner:
        got = runner.infer(_feed(5))["logits"]
    with torch.no_grad():
        expected = model(torch.from_numpy(_feed(5)["input"])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, other", [("torchscript", "pt2"), ("pt2", "torchscript")])
def test_a_torch_runner_loads_only_its_own_format_and_only_when_activated(artifacts, name, other):
    wrong = _checked(artifacts[other])  # the wrong file: accepted until loaded
    runner = runner_for(name, wrong, {}, CPU, _interface(SPECS, OUTPUTS))
    with pytest.raises(RuntimeError):
        runner.activate()
    assert not runner.is_active


@pytest.mark.parametrize("name", ["tflite", "onnxruntime", "eager"])
def test_runner_for_takes_format_names_only(artifacts, name):
    with pytest.raises(KeyError):
        runner_for(name, _checked(artifacts["onnx"]), {}, CPU, _interface(SPECS, OUTPUTS))


def test_the_onnx_runner_notes_its_providers_and_a_missing_cuda_provider(model, artifacts):
    with _make("onnx", model, artifacts) as runner:
        assert runner.notes == [Note.info("execution providers: CPUExecutionProvider")]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    asked = runner_for("onnx", _checked(artifacts["onnx"]), {}, torch.device("cuda"), _interface(SPECS, OUTPUTS))
    with asked:
        pass
    assert any(
        "no CUDA provider here" in n.text and "it ran on the CPU" in n.text and n.level == NOTE for n in asked.notes
    )


# --- settings and opsets ------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_the_tuned_onnx_runner_reports_tuned_settings_and_its_session_uses_them(model, artifacts, threads):
    with _make("onnx", model, artifacts, threads) as runner:
        settings = runner.settings()
        options = runner.session.get_session_options()
    assert settings == tuned_settings(threads)
    assert options.intra_op_num_threads == threads and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_the_default_onnx_runner_reports_defaults_not_tuned_settings(model, artifacts):
    runner = _make("onnx", model, artifacts)
    assert runner.settings() == {"providers": [], "defaults": True}  # no session yet
    with runner:
        settings = runner.settings()
        options = runner.session.get_session_options()
    assert settings == {"providers": ["CPUExecutionProvider"], "defaults": True}
    assert settings != tuned_settings(options.intra_op_num_threads)
    assert options.intra_op_num_threads == 0  # ONNX Runtime picks its own thread count


def test_the_newest_loadable_opset_is_accepted_and_the_next_refused_before_export():
    newest = runtime_max_opset()
    check_opset(newest)
    with pytest.raises(UsageError, match=rf"--opset {newest + 1} is newer than onnxruntime .*\(up to opset {newest}\)"):
        check_opset(newest + 1)


def test_a_file_whose_opset_is_too_new_gives_one_clear_error_and_the_newest_loads(model):
    newest = runtime_max_opset()
    session(str(_checked(_onnx(model, opset=newest)).path), CPU)
    with pytest.raises(RuntimeError, match=f"cannot load opset {newest + 1} .* export with --opset {newest}"):
        session(str(_checked(_onnx(model, opset=newest + 1)).path), CPU)
