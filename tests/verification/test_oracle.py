"""The float64 oracle: a float32 output failing on its elements alone is judged against eager's own float32 error."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from exporter.config import Tolerance
from exporter.eager.reference import Held
from exporter.interface import InputSpec, Interface, OutputSpec
from exporter.verification import oracle
from exporter.verification.compare import OutputComparison
from exporter.verification.inputs import Case, InputSet
from exporter.verification.results import BatchResult, RuntimeResult, VerificationReport


class _Latitudes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.norm(x))


class _Levels(_Latitudes):
    """The latitudes normalised, then rounded to 256 levels, as an image model writes pixels."""

    def forward(self, x):
        return (torch.sigmoid(self.norm(x)) * 255).round().to(torch.uint8)  # (B, 16): 1,024 levels a case


def _run(seed: int, runtime_output, model: nn.Module | None = None):
    """A verification of one case of 64 latitudes whose runtime returned ``runtime_output(eager32, eager64)``."""
    model = (model or _Latitudes()).eval()
    x = (torch.rand((64, 16), generator=torch.Generator().manual_seed(seed)) * 0.1 + 37.70).numpy()
    case = Case(64)
    with torch.no_grad():
        e32 = model(torch.from_numpy(x)).numpy()
        e64 = model.double()(torch.from_numpy(x).double()).numpy()
    model.float()
    got = runtime_output(e32, e64).astype(e32.dtype)
    dtype = e32.dtype.name
    interface = Interface(
        (InputSpec("x", (1, 16), value_range=(37.7, 37.8)),), (OutputSpec("y", ("batch", e32.shape[1]), dtype),)
    )
    comparison = OutputComparison.from_arrays("y", e32, got, Tolerance.for_dtype(dtype))
    result = RuntimeResult("onnxruntime", "onnx", "model.onnx", batches=[BatchResult(64, 64, outputs=[comparison])])
    report = VerificationReport("f", "m", "cpu", "", 64, [64], {}, "fail", runtimes=[result])
    run = SimpleNamespace(
        manifest=SimpleNamespace(model={"parameters": 100}), feeds=InputSet({case: {"x": x}}, ""), report=report,
        outputs={"eager": {case: {"y": e32}}, "onnxruntime": {case: {"y": got}}}, interface=interface,
        device=torch.device("cpu"),
    )  # fmt: skip
    return run, model, comparison


@pytest.mark.parametrize("seed", range(10))
def test_a_runtime_closer_to_float64_than_eager_is_passed_with_both_errors(seed):
    run, model, comparison = _run(seed, lambda _e32, e64: e64)  # the float64 answer, rounded to float32
    if comparison.passed:
        pytest.skip("this seed's float32 eager is within tolerance: nothing for the oracle to judge")
    oracle.rescue(run, Held.given(model))
    assert comparison.passed and comparison.reasons == []
    assert comparison.float64_errors["onnxruntime"] <= comparison.float64_errors["eager"]
    assert "as close to the float64 answer as eager is" in run.report.notes[0]


@pytest.mark.parametrize("seed", range(10))
def test_a_runtime_further_from_float64_than_eager_still_fails(seed):
    run, model, comparison = _run(seed, lambda e32, e64: e64 + 2 * np.abs(e32 - e64).max())
    assert not comparison.passed
    oracle.rescue(run, Held.given(model))
    assert not comparison.passed and comparison.float64_errors["onnxruntime"] > comparison.float64_errors["eager"]
    assert "further from the true answer than the reference" in comparison.reasons[-1]


def test_a_failure_that_is_not_elements_alone_is_not_judged_again():
    def first_nan(e32, e64):
        return np.where(np.arange(e32.size).reshape(e32.shape) == 0, np.nan, e64)

    run, model, comparison = _run(0, first_nan)
    oracle.rescue(run, Held.given(model))
    assert not comparison.passed and comparison.float64_errors is None


def test_a_model_without_double_support_is_said_and_the_float32_rules_stand():
    run, _, comparison = _run(0, lambda _e32, e64: e64 + 1e-4)  # fails on its elements alone

    class NoDouble(nn.Module):
        def double(self):
            raise RuntimeError("no double kernel")

    oracle.rescue(run, Held.given(NoDouble()))
    assert not comparison.passed and "the float64 oracle could not run (no double kernel)" in run.report.notes[0]


def test_the_max_error_ignores_what_is_not_finite():
    assert oracle._max_error(np.array([1.0, np.nan, 3.0]), np.array([1.5, 2.0, np.inf])) == 0.5


def _one_across(e32, e64):
    """Eager's float32 levels, but the first element on a rounding boundary on float64's side."""
    assert (e32 != e64).any(), "no element of this seed lies on a rounding boundary"
    got = e32.copy()
    first = np.unravel_index(int(np.argmax(e32 != e64)), e32.shape)
    got[first] = e64[first]
    return got


@pytest.mark.parametrize("seed", range(10))
def test_an_integer_output_on_the_other_side_of_a_rounding_boundary_passes_with_the_count(seed):
    run, model, comparison = _run(seed, _one_across, _Levels())
    assert not comparison.passed  # the exact rule alone fails it
    oracle.rescue(run, Held.given(model))
    assert comparison.passed and comparison.reasons == []
    assert "y: 1 of 1024 elements differ from eager on a rounding boundary" in run.report.notes[0]


@pytest.mark.parametrize("seed", range(10))
def test_an_integer_output_off_by_one_where_float32_and_float64_agree_still_fails(seed):
    def off_by_one(e32, e64):
        got = _one_across(e32, e64)  # one allowed boundary element, and one fault
        agree = np.unravel_index(int(np.argmax(e32 == e64)), e32.shape)
        got[agree] = e32[agree] + 1 if e32[agree] < 255 else e32[agree] - 1
        return got

    run, model, comparison = _run(seed, off_by_one, _Levels())
    oracle.rescue(run, Held.given(model))
    assert not comparison.passed
    assert comparison.reasons[-1].startswith("1 of the differing elements are not on a rounding boundary")
    assert not run.report.notes


def test_an_integer_on_a_boundary_that_matches_neither_run_fails():
    def neither(e32, e64):
        got = e32.copy()
        first = np.unravel_index(int(np.argmax(e32 != e64)), e32.shape)
        got[first] = max(e32[first], e64[first]) + 1
        return got

    run, model, comparison = _run(0, neither, _Levels())
    oracle.rescue(run, Held.given(model))
    assert not comparison.passed and "not on a rounding boundary" in comparison.reasons[-1]
