"""The eager reference: seeded builds, the state digest, rebuilding from a manifest, and device strings."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from exporter.artifacts.manifest import Manifest
from exporter.config import VerifyConfig
from exporter.eager.reference import build, count_parameters, rebuild, resolve_device, state_sha256
from exporter.eager.sources import ModelSource, resolve
from exporter.errors import DeviceError, ModelNotFoundError, UsageError

from ..conftest import BROKEN

CPU = torch.device("cpu")
MLP = resolve("mlp")


def _source(class_name: str) -> ModelSource:
    """A class of tests/catalogue.py, as `file.py:Class` names it."""
    return resolve(f"{BROKEN}:{class_name}", (1, 28, 28))


def _manifest(seed: int, state_sha256: str | None) -> Manifest:
    """What `export mlp` records about the model (as a schema 1 manifest.json), without exporting anything."""
    return Manifest.from_dict(
        {
            "schema": 1,
            "model": {"name": "mlp", "source": MLP.to_manifest(), "seed": seed, "state_sha256": state_sha256},
            "input": {"name": "input", "shape": [1, 28, 28], "dtype": "float32"},
            "outputs": [{"name": "logits", "shape": [1, 10]}],
            "device": "cpu",
            "artifacts": [{"format": "onnx", "path": "model.onnx", "sha256": "0" * 64, "bytes": 1}],  # never read
            "versions": {},
        }
    )


# --- build ----------------------------------------------------------------------------------------


def test_the_same_seed_builds_the_same_weights_and_another_seed_does_not():
    first, again, other = build(MLP, 0, CPU), build(MLP, 0, CPU), build(MLP, 1, CPU)
    assert state_sha256(first) == state_sha256(again)
    first_state, again_state = first.state_dict(), again.state_dict()
    assert list(first_state) == list(again_state)
    assert all(torch.equal(first_state[name], again_state[name]) for name in first_state)
    assert state_sha256(other) != state_sha256(first)
    assert not torch.equal(other.linear_relu_stack[0].weight, first.linear_relu_stack[0].weight)


def test_build_ignores_the_callers_random_state_and_leaves_it_as_it_was():
    torch.manual_seed(123)
    after_123 = build(MLP, 0, CPU)
    torch.manual_seed(456)
    state = torch.get_rng_state()
    after_456 = build(MLP, 0, CPU)
    assert state_sha256(after_123) == state_sha256(after_456)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's next torch.rand is what it would have been


def test_constructing_the_model_directly_does_draw_from_the_callers_random_state():
    """The counterpart of the test above: without build's fork_rng the caller's state moves."""
    from exporter.models.mlp import NeuralNetwork

    torch.manual_seed(456)
    state = torch.get_rng_state()
    NeuralNetwork()
    assert not torch.equal(torch.get_rng_state(), state)


def test_build_gives_an_eval_model_on_the_device():
    model = build(_source("NormalizedDropout"), 0, CPU)
    assert not model.training and not model.dropout.training
    assert {p.device for p in model.parameters()} == {CPU}


@pytest.mark.parametrize(
    "target, message",
    [("json:JSONDecoder", "is not an nn.Module subclass"), ("torch.nn:Linear", "cannot be built without arguments")],
)
def test_a_class_that_cannot_be_built_is_a_model_error(target, message):
    with pytest.raises(ModelNotFoundError, match=message):
        build(resolve(target, (1, 4)), 0, CPU)


def test_count_parameters_counts_a_tied_weight_once():
    model = build(_source("TiedWeights"), 0, CPU)
    assert count_parameters(model) == 32 * 784 + 784 * 10 + 10  # encoder (= decoder) and head
    assert sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)) > count_parameters(model)


# --- state_sha256 ---------------------------------------------------------------------------------


def test_the_state_digest_is_stable_when_nothing_changes():
    model = build(MLP, 0, CPU)
    before = state_sha256(model)
    with torch.no_grad():
        model(torch.rand(2, 28, 28))  # running the model changes nothing it holds
    assert state_sha256(model) == before == state_sha256(copy.deepcopy(model))


def test_the_state_digest_changes_when_one_weight_changes_by_one_step():
    model = build(MLP, 0, CPU)
    before = state_sha256(model)
    weight = model.linear_relu_stack[2].weight
    with torch.no_grad():
        weight[7, 11] = torch.nextafter(weight[7, 11], torch.tensor(float("inf")))  # the smallest change there is
    assert state_sha256(model) != before


def test_the_state_digest_covers_buffers_names_and_dtypes():
    model = build(_source("ConvBatchNorm"), 0, CPU)
    before = state_sha256(model)
    with torch.no_grad():
        model.bn.running_mean[0] += 1  # a buffer, not a parameter
    assert state_sha256(model) != before

    one, two = nn.Module(), nn.Module()
    one.a = nn.Parameter(torch.ones(3))
    two.b = nn.Parameter(torch.ones(3))  # the same values under another name
    assert state_sha256(one) != state_sha256(two)
    assert state_sha256(one) != state_sha256(copy.deepcopy(one).double())  # the same values in another dtype
    halved = copy.deepcopy(one).bfloat16()  # numpy has no bfloat16: hashed through its bits
    assert state_sha256(halved) not in (state_sha256(one), state_sha256(copy.deepcopy(one).half()))


# --- rebuild --------------------------------------------------------------------------------------


def test_rebuild_returns_the_exported_model_when_the_digest_matches(tmp_path):
    recorded = state_sha256(build(MLP, 3, CPU))
    problems: list[str] = []
    model = rebuild(tmp_path, _manifest(3, recorded), VerifyConfig(), CPU, problems)
    assert problems == [] and state_sha256(model) == recorded
    assert state_sha256(rebuild(tmp_path, _manifest(3, recorded), VerifyConfig(), CPU)) == recorded  # no raise


def test_rebuild_raises_a_usage_error_when_the_digest_does_not_match_and_no_list_is_given(tmp_path):
    recorded = state_sha256(build(MLP, 0, CPU))
    with pytest.raises(UsageError, match=r"is not the one exported \(" + recorded[:12]) as caught:
        rebuild(tmp_path, _manifest(1, recorded), VerifyConfig(), CPU)  # seed 1 rebuilds other weights
    assert "the model code or torch's initialisation changed since export" in str(caught.value)


@pytest.mark.parametrize("recorded", ["0" * 64, None], ids=["other-digest", "none-recorded"])
def test_rebuild_appends_the_problem_and_returns_the_model_when_a_list_is_given(tmp_path, recorded):
    problems = ["an earlier problem"]
    model = rebuild(tmp_path, _manifest(0, recorded), VerifyConfig(), CPU, problems)
    assert len(problems) == 2 and "is not the one exported" in problems[1]
    assert state_sha256(model) == state_sha256(build(MLP, 0, CPU))  # still the model the manifest describes


# --- resolve_device -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:99999", "mps", ""])
def test_device_strings_other_than_auto_cpu_cuda_are_refused(text):
    with pytest.raises(DeviceError, match="is not auto, cpu, cuda or cuda:N") as caught:
        resolve_device(text)
    assert caught.value.exit_code == 2


def test_a_cuda_device_this_machine_lacks_is_refused():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    message = "no CUDA device" if count == 0 else f"only {count} CUDA device"
    with pytest.raises(DeviceError, match=message):
        resolve_device(f"cuda:{count}")  # one past the last, or cuda:0 without CUDA


def test_cpu_and_auto_resolve_to_a_device_this_machine_has():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_a_held_model_is_let_go_and_made_again_only_when_asked_for():
    import gc
    import weakref

    from exporter.eager.reference import Held

    made: list[nn.Module] = []

    def again() -> nn.Module:
        made.append(nn.Linear(2, 2))
        return made[-1]

    held = Held(nn.Linear(2, 2), again)
    first = weakref.ref(held.model)
    held.release()
    gc.collect()
    assert first() is None and held.released and not made  # freed, and nothing rebuilt yet
    assert held.model is made[0] and held.model is made[0] and not held.released  # made once, then kept


def test_a_model_the_caller_gives_is_never_made_again_nor_freed_by_releasing_it():
    from exporter.eager.reference import Held

    model = nn.Linear(2, 2)
    held = Held.given(model)
    held.release()
    assert held.model is model
