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


def _run(seed: int, runtime_output):
    """A verification of one case of 64 latitudes whose runtime returned ``runtime_output(eager32, eager64)``."""
    model = _Latitudes().eval()
    x = (torch.rand((64, 16), generator=torch.Generator().manual_seed(seed)) * 0.1 + 37.70).numpy()
    case = Case(64)
    with torch.no_grad():
        e32 = model(torch.from_numpy(x)).numpy()
        e64 = model.double()(torch.from_numpy(x).double()).numpy()
    model.float()
    got = runtime_output(e32, e64).astype(np.float32)
    interface = Interface((InputSpec("x", (1, 16), value_range=(37.7, 37.8)),), (OutputSpec("y", ("batch", 4)),))
    comparison = OutputComparison.from_arrays("y", e32, got, Tolerance.for_dtype("float32"))
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
