"""The PyTorch runners (runners/torch.py): eager, TorchScript and pt2.

Each gets its own copy of the feed, ``prepare`` returns fresh arrays, a torch runner loads only its
own format, and ``module_outputs`` gives each eager module's output (eager by forward hooks, pt2 from
its graph's ``nn_module_stack``; TorchScript keeps no such map and says so).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from exporter.errors import CannotOpenUp, InputSpecError
from exporter.runners import Runner, eager, runner_for
from exporter.runners.torch import Pt2Runner

from .helpers import (
    CPU,
    OUTPUTS,
    SPECS,
    InPlace,
    TwoLayer,
    batch_feed,
    checked,
    interface_of,
    make_runner,
    pt2_bytes,
    traced_bytes,
)

# --- forward gets its own copy of the feed ------------------------------------------------------


def _in_place(name: str) -> Runner:
    if name == "eager":
        return eager(InPlace(), CPU, interface_of(SPECS, ("output",)))
    data = traced_bytes(InPlace()) if name == "torchscript" else pt2_bytes(InPlace())
    return runner_for(name, checked(data), {}, CPU, interface_of(SPECS, ("output",)))


@pytest.mark.parametrize("name", ["eager", "torchscript", "pt2"])
def test_a_forward_changing_its_input_in_place_leaves_the_callers_feed_as_it_was(name):
    feed = batch_feed(2, seed=4)
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


def test_the_torch_prepare_returns_fresh_arrays_on_every_call(model, artifacts):
    with make_runner("torchscript", model, artifacts) as runner:
        call = runner.prepare(batch_feed(4))
        first, second = call()["logits"], call()["logits"]
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, other", [("torchscript", "pt2"), ("pt2", "torchscript")])
def test_a_torch_runner_loads_only_its_own_format_and_only_when_activated(artifacts, name, other):
    wrong = checked(artifacts[other])  # the wrong file: accepted until loaded
    runner = runner_for(name, wrong, {}, CPU, interface_of(SPECS, OUTPUTS))
    with pytest.raises(RuntimeError):
        runner.activate()
    assert not runner.is_active


# --- module_outputs -----------------------------------------------------------------------------


class CalledTwice(nn.Module):
    """One Linear layer applied twice, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):  # (B, 3, 4) -> (B, 2)
        return self.head(self.shared(self.shared(x.sum(1))))


def _by_hand(model: TwoLayer, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each module's output of TwoLayer, computed without hooks."""
    with torch.no_grad():
        hidden = model.fc1(torch.from_numpy(x).flatten(1) * model.scale)
        logits = model.fc2(torch.relu(hidden))
    return {"fc1": hidden.numpy(), "fc2": logits.numpy(), "": logits.numpy()}


def test_eager_module_outputs_are_each_modules_output_a_child_before_its_parent(model):
    feed = batch_feed(3, seed=5)
    with make_runner("eager", model, {}) as runner:
        outputs, lines = runner.module_outputs(feed)
    expected = _by_hand(model, feed["input"])
    assert list(outputs) == ["fc1", "fc2", ""]  # finishing order: the root module finishes last
    for path, values in expected.items():
        np.testing.assert_allclose(outputs[path], values, rtol=1e-6, err_msg=path)
    assert not np.allclose(outputs["fc1"][:, :3], outputs["fc2"])  # not one tensor under every name
    assert lines == {}  # eager records no line: the modules are the user's own code
    assert all(not m._forward_hooks for m in model.modules())  # the hooks are gone afterwards


def test_a_module_called_twice_keeps_its_first_place_and_its_last_output():
    torch.manual_seed(0)
    model = CalledTwice().eval()
    feed = batch_feed(2, seed=6)
    with eager(model, CPU, interface_of(SPECS, ("logits",))) as runner:
        outputs, _ = runner.module_outputs(feed)
    with torch.no_grad():
        once = model.shared(torch.from_numpy(feed["input"]).sum(1))
        twice = model.shared(once)
    assert list(outputs) == ["shared", "head", ""]
    np.testing.assert_allclose(outputs["shared"], twice.numpy(), rtol=1e-6)
    assert not np.allclose(outputs["shared"], once.numpy())  # the first call's output was replaced


def test_module_outputs_checks_the_feed_first(model):
    with make_runner("eager", model, {}) as runner, pytest.raises(InputSpecError, match="expects float32"):
        runner.module_outputs(batch_feed(2, dtype="float64"))
    assert all(not m._forward_hooks for m in model.modules())


def test_pt2_module_outputs_match_eagers_and_name_the_users_line(model, artifacts):
    feed = batch_feed(4, seed=7)
    runner = runner_for("pt2", checked(artifacts["pt2"]), {}, CPU, interface_of(SPECS, OUTPUTS))
    assert isinstance(runner, Pt2Runner)
    with runner:
        outputs, lines = runner.module_outputs(feed)
    expected = _by_hand(model, feed["input"])
    assert sorted(outputs) == sorted(expected)
    for path, values in expected.items():
        np.testing.assert_allclose(outputs[path], values, rtol=1e-5, atol=1e-6, err_msg=path)
    source, first = inspect.getsourcelines(TwoLayer.forward)
    code = source[1].strip()  # the line after `def forward`: the one every module's call is on
    assert lines == {path: f"helpers.py:{first + 1}: {code}" for path in ("", "fc1", "fc2")}


def test_pt2_module_outputs_without_an_nn_module_stack_cannot_open_up(artifacts):
    runner = runner_for("pt2", checked(artifacts["pt2"]), {}, CPU, interface_of(SPECS, OUTPUTS))
    with runner:
        for node in runner.module.graph.nodes:  # as a program saved without its module metadata would be
            node.meta.pop("nn_module_stack", None)
        with pytest.raises(CannotOpenUp, match="its graph nodes carry no nn_module_stack"):
            runner.module_outputs(batch_feed(2))
        assert runner.infer(batch_feed(2))["logits"].shape == (2, 3)  # it still runs: only localisation stops


def test_torchscript_keeps_no_map_to_the_eager_modules_and_says_so(artifacts):
    with make_runner("torchscript", None, artifacts) as runner, pytest.raises(CannotOpenUp) as caught:
        runner.module_outputs(batch_feed(2))
    assert str(caught.value) == "torchscript keeps no map from its operations to the eager modules"
    assert isinstance(caught.value, RuntimeError)  # localisation's signal, not a user's error


# --- what the torch runners report --------------------------------------------------------------


@pytest.mark.parametrize("name", ["eager", "torchscript", "pt2"])
def test_torch_runners_report_their_threads_and_declare_no_output_shapes(model, artifacts, name):
    with make_runner(name, model, artifacts) as runner:
        assert runner.settings() == {"torch.set_num_threads": torch.get_num_threads(), "mode": "torch.inference_mode"}
        assert runner.declared_shapes() == {}  # a torch artifact states no output shapes; ONNX files do


@pytest.mark.parametrize("name", ["torchscript", "pt2"])
def test_a_loaded_torch_runner_lets_go_of_its_module_when_deactivated(artifacts, name):
    runner = make_runner(name, None, artifacts)
    with runner:
        assert runner.module is not None and runner.held
    assert runner.module is None and runner.held is None
    with runner:  # and it loads again
        assert runner.infer(batch_feed(1))["logits"].shape == (1, 3)
