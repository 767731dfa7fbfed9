"""The runner interface every runtime shares (runners/base.py): the feed check and timing in one place,
infer_all, prepare, tensors by name, and naming forward's outputs.

Each behaviour is checked on eager and on ONNX Runtime (and on the torch runners where they differ):
the check lives in the base class, so every runtime must answer it in the same words. The artifacts
are the small modules of ``helpers``, made in the test process.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from exporter.errors import InputSpecError, UsageError
from exporter.formats import FORMATS, TABLE
from exporter.interface import InputSpec
from exporter.runners import eager, runner_for

from .helpers import (
    CPU,
    FIXED_SPECS,
    OUTPUTS,
    RUNTIMES,
    SPECS,
    DictOutputs,
    NestedOutputs,
    Seen,
    TwoOutputs,
    artifact_bytes,
    batch_feed,
    checked,
    four_outputs,
    interface_of,
    make_runner,
    pt2_bytes,
    random_array,
    runtime_of,
    traced_bytes,
    weighted_runner,
)

# --- the feed check -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_feed_that_fits_runs_and_each_call_is_timed(model, artifacts, name):
    with make_runner(name, model, artifacts) as runner:
        first = runner.infer(batch_feed(2))
        runner.infer(batch_feed(5))
    assert list(first) == ["logits"] and first["logits"].shape == (2, 3) and first["logits"].dtype == np.float32
    assert len(runner.inference_times) == 2 and all(t > 0 for t in runner.inference_times)


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 12), (2, 3, 4, 1), (3, 4)], ids=str)
def test_a_feed_of_the_wrong_shape_is_refused_naming_the_runtime_and_nothing_runs(model, artifacts, name, shape):
    runtime = "eager" if name == "eager" else FORMATS[name].runtime
    with make_runner(name, model, artifacts) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({"input": np.zeros(shape, dtype=np.float32)})
    message = str(caught.value)
    assert message.startswith(f"{runtime} expects input 'input' of shape (batch, 3, 4), got {shape}")
    assert runner.inference_times == []  # refused before the timed call


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("dtype", ["float64", "float16", "int64"])
def test_a_feed_of_the_wrong_dtype_is_a_usage_error_naming_the_runtime(model, artifacts, name, dtype):
    runtime = "eager" if name == "eager" else FORMATS[name].runtime
    expected = f"^{runtime} expects float32 input 'input', got {dtype}$"
    with make_runner(name, model, artifacts) as runner, pytest.raises(InputSpecError, match=expected) as caught:
        runner.infer(batch_feed(2, dtype=dtype))
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert runner.inference_times == []


@pytest.mark.parametrize("name", ["eager", "torchscript", "onnx"])
def test_a_runner_used_outside_its_with_block_raises(model, artifacts, name):
    runner = make_runner(name, model, artifacts)
    calls = (lambda: runner.infer(batch_feed(1)), lambda: runner.prepare(batch_feed(1)), runner.tensors)
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
    arrays = {
        "x": random_array((2, 5, 4)),
        "y": random_array((2, 4)),
        "z": random_array((2, 4)),
        "mask": random_array((2, 5)),
    }
    with weighted_runner(name, weighted_onnx) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({n: arrays[n] for n in names})
    assert str(caught.value) == f"{runtime_of(name)} expects inputs x, y, got {got}"
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert runner.inference_times == []  # refused before the timed call


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_single_input_fed_under_another_name_is_refused(model, artifacts, name):
    with make_runner(name, model, artifacts) as runner, pytest.raises(InputSpecError) as caught:
        runner.infer({"image": random_array((2, 3, 4))})
    assert str(caught.value) == f"{runtime_of(name)} expects inputs input, got image"
    assert runner.inference_times == []


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_inputs_are_fed_by_name_in_any_order_and_reach_forward_in_its_order(weighted_onnx, name):
    x, y = random_array((3, 5, 4), seed=1), random_array((3, 4), seed=2)
    with weighted_runner(name, weighted_onnx) as runner:
        forward_order = runner.infer({"x": x, "y": y})["weighted"]
        other_order = runner.infer({"y": y, "x": x})["weighted"]
    np.testing.assert_array_equal(forward_order, other_order)
    np.testing.assert_allclose(forward_order, (x * y[:, None]).sum(1), rtol=1e-6)


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_a_dynamic_axis_other_than_the_batch_takes_any_size_and_a_fixed_one_refuses_others(weighted_onnx, name):
    runtime = runtime_of(name)
    with weighted_runner(name, weighted_onnx) as runner:
        for batch, seq in [(2, 5), (1, 1), (3, 9)]:  # the example's sizes, and others on both dynamic axes
            x, y = random_array((batch, seq, 4), seed=seq), random_array((batch, 4), seed=batch)
            got = runner.infer({"x": x, "y": y})["weighted"]
            assert got.shape == (batch, 4)
            np.testing.assert_allclose(got, (x * y[:, None]).sum(1), rtol=1e-6)
        with pytest.raises(InputSpecError) as caught:  # the last axis of x is fixed at 4
            runner.infer({"x": random_array((2, 5, 3)), "y": random_array((2, 4))})
        assert str(caught.value) == f"{runtime} expects input 'x' of shape (batch, seq, 4), got (2, 5, 3)"
        with pytest.raises(InputSpecError) as caught:  # y has no seq axis: its second axis is fixed
            runner.infer({"x": random_array((2, 5, 4)), "y": random_array((2, 5))})
        assert str(caught.value) == f"{runtime} expects input 'y' of shape (batch, 4), got (2, 5)"
    assert len(runner.inference_times) == 3  # the refused feeds were not timed


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_an_axis_not_declared_dynamic_refuses_any_size_but_the_examples(weighted_onnx, name):
    with weighted_runner(name, weighted_onnx, FIXED_SPECS) as runner:
        runner.infer({"x": random_array((3, 5, 4)), "y": random_array((3, 4))})  # the batch still varies
        with pytest.raises(InputSpecError) as caught:
            runner.infer({"x": random_array((2, 7, 4)), "y": random_array((2, 4))})
    assert str(caught.value) == f"{runtime_of(name)} expects input 'x' of shape (batch, 5, 4), got (2, 7, 4)"
    assert len(runner.inference_times) == 1


def test_a_bfloat16_input_is_fed_as_its_float32_carrier_and_forward_gets_bfloat16():
    model = Seen()
    exact = np.array([[1.5, -0.25, 3.0], [1.0078125, 2.0**-7, 96.0]], dtype=np.float32)  # bfloat16 values
    with eager(model, CPU, interface_of((InputSpec("x", (2, 3), "bfloat16"),), ("doubled",))) as runner:
        got = runner.infer({"x": exact})["doubled"]
    assert model.dtypes == [torch.bfloat16]
    assert got.dtype == np.float32  # a bfloat16 output comes back in its carrier too
    np.testing.assert_array_equal(got, exact * 2)


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_a_bfloat16_input_refuses_any_array_but_float32(model, artifacts, name, dtype):
    specs = (InputSpec("input", (2, 3, 4), "bfloat16"),)
    if name == "eager":
        runner = eager(model, CPU, interface_of(specs, OUTPUTS))
    else:
        runner = runner_for(name, checked(artifacts[name]), {}, CPU, interface_of(specs, OUTPUTS))
    with runner, pytest.raises(InputSpecError) as caught:
        runner.infer(batch_feed(2, dtype=dtype))
    assert str(caught.value) == f"{runtime_of(name)} expects bfloat16 input 'input', got {dtype}"
    assert runner.inference_times == []


# --- infer_all and output names -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_infer_all_concatenates_each_output_over_the_batches_in_order(model, artifacts, name):
    batches = [batch_feed(1, seed=1), batch_feed(3, seed=2), batch_feed(2, seed=3)]
    with make_runner(name, model, artifacts) as runner:
        together = runner.infer_all(iter(batches))  # any iterable: bench passes a generator
        one_by_one = [runner.infer(b)["logits"] for b in batches]
    assert together["logits"].shape == (6, 3)
    np.testing.assert_array_equal(together["logits"], np.concatenate(one_by_one))
    assert not np.array_equal(together["logits"][:1], together["logits"][1:2])  # not one batch repeated
    assert len(runner.inference_times) == 6  # three through infer_all, three one by one


def test_infer_all_keeps_every_output_by_name():
    with eager(TwoOutputs(), CPU, interface_of(SPECS, ("sums", "maxima"))) as runner:
        outputs = runner.infer_all([batch_feed(2, seed=1), batch_feed(3, seed=2)])
    assert {name: a.shape for name, a in outputs.items()} == {"sums": (5, 4), "maxima": (5,)}


def test_infer_all_refuses_a_wrong_batch_among_good_ones(model, artifacts):
    with make_runner("onnx", model, artifacts) as runner, pytest.raises(InputSpecError, match=r"got \(2, 12\)"):
        runner.infer_all([batch_feed(2), {"input": np.zeros((2, 12), dtype=np.float32)}])


def test_a_model_returning_another_number_of_outputs_than_named_is_refused():
    runner = eager(TwoOutputs(), CPU, interface_of(SPECS, ("only",)))
    with runner, pytest.raises(ValueError, match="eager returned 2 outputs, expected 1"):
        runner.infer(batch_feed(1))


@pytest.mark.parametrize("name", ["eager", "onnx"])
@pytest.mark.parametrize("batches", [[], iter(())], ids=["list", "generator"])
def test_infer_all_without_batches_is_a_clear_error(model, artifacts, name, batches):
    with make_runner(name, model, artifacts) as runner, pytest.raises(ValueError) as caught:
        runner.infer_all(batches)
    assert str(caught.value) == f"{runtime_of(name)}: no batches to run"
    assert runner.inference_times == []


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
        runner = eager(module(), CPU, interface_of(SPECS, names))
    else:
        data = traced_bytes(module()) if name == "torchscript" else pt2_bytes(module())
        runner = runner_for(name, checked(data), {}, CPU, interface_of(SPECS, names))
    feed, later = batch_feed(2, seed=1), batch_feed(3, seed=2)
    with runner:
        outputs = runner.infer(feed)
        together = runner.infer_all([feed, later])
    assert list(outputs) == list(names) and list(together) == list(names)
    for got, expected in zip(outputs.values(), four_outputs(feed["input"]), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    both = np.concatenate([feed["input"], later["input"]])
    for got, expected in zip(together.values(), four_outputs(both), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_nested_return_with_more_leaves_than_names_is_refused():
    runner = eager(DictOutputs(), CPU, interface_of(SPECS, ("sums", "maxima", "rows")))
    with runner, pytest.raises(ValueError, match=r"^eager returned 4 outputs, expected 3$"):
        runner.infer(batch_feed(1))


# --- prepare ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, threads",
    [(name, None) for name in RUNTIMES] + [(f.name, 1) for f in TABLE if f.engine == "onnxruntime"],
    ids=lambda v: {None: "defaults", 1: "tuned"}.get(v, v),
)
def test_prepare_gives_the_outputs_of_infer(model, artifacts, name, threads):
    feed = batch_feed(4)
    with make_runner(name, model, artifacts, threads) as runner:
        expected = runner.infer(feed)
        call = runner.prepare(feed)
        first, second = call()["logits"].copy(), call()["logits"]
    np.testing.assert_array_equal(first, expected["logits"])
    np.testing.assert_array_equal(second, expected["logits"])


@pytest.mark.parametrize("name", ["eager", "onnx"])
def test_prepare_checks_the_feed_once_when_it_is_prepared(model, artifacts, name):
    with make_runner(name, model, artifacts) as runner, pytest.raises(InputSpecError, match="expects float32"):
        runner.prepare(batch_feed(4, dtype="float64"))


# --- tensors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "torchscript", "onnx", "pt2"])
def test_tensors_are_the_parameters_and_buffers_by_name(model, artifacts, name):
    with make_runner(name, model, artifacts) as runner:
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
    with runner_for(name, checked(artifact_bytes(changed)[name]), {}, CPU, interface_of(SPECS, OUTPUTS)) as runner:
        tensors = {name: np.asarray(values) for name, values in runner.tensors().items()}
    assert tensors["fc2.bias"][1] == pytest.approx(float(model.fc2.bias.detach()[1]) + 0.25)
    np.testing.assert_array_equal(tensors["fc2.bias"][[0, 2]], model.fc2.bias.detach().numpy()[[0, 2]])
    np.testing.assert_array_equal(tensors["fc1.weight"], model.fc1.weight.detach().numpy())
