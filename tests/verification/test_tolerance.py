"""The required tolerance: the smallest atol or rtol that would have passed a failing comparison."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import Tolerance
from exporter.verification import tolerance
from exporter.verification.compare import OutputComparison

TOL = Tolerance(atol=1e-5, rtol=1e-4)


def _pair(delta: float = 0.3):
    expected = np.random.default_rng(0).random((8, 10)).astype(np.float32) + 0.5  # no zeros
    actual = expected.copy()
    actual[2, 3] += delta
    actual[5, 1] -= delta / 7
    return expected, actual


def _passes(expected, actual, atol: float, rtol: float) -> bool:
    return OutputComparison.from_arrays("y", expected, actual, Tolerance(atol, rtol)).passed


def test_the_required_atol_passes_and_nine_tenths_of_it_fails():
    expected, actual = _pair()
    need = OutputComparison.from_arrays("y", expected, actual, TOL).required_tolerance
    assert _passes(expected, actual, need["atol"], TOL.rtol)
    assert not _passes(expected, actual, 0.9 * need["atol"], TOL.rtol)


def test_the_required_rtol_passes_and_nine_tenths_of_it_fails():
    expected, actual = _pair()
    need = OutputComparison.from_arrays("y", expected, actual, TOL).required_tolerance
    assert _passes(expected, actual, TOL.atol, need["rtol"])
    assert not _passes(expected, actual, TOL.atol, 0.9 * need["rtol"])


def test_reference_statistics_are_the_expected_arrays():
    expected, actual = _pair()
    stats = OutputComparison.from_arrays("y", expected, actual, TOL).required_tolerance["reference_stats"]
    assert stats["min"] == pytest.approx(float(expected.min())) and stats["max"] == pytest.approx(float(expected.max()))
    assert stats["mean"] == pytest.approx(float(expected.mean()), rel=1e-6)
    assert stats["std"] == pytest.approx(float(expected.std()), rel=1e-5)


def test_a_zero_reference_beyond_atol_has_no_rtol_and_says_why():
    expected, actual = _pair()
    expected[2, 3] = 0.0
    need = OutputComparison.from_arrays("y", expected, actual, TOL).required_tolerance
    assert need["rtol"] is None and "no rtol alone can pass" in need["why"]
    assert _passes(expected, actual, need["atol"], TOL.rtol)


def test_a_passing_comparison_has_no_required_tolerance():
    expected, actual = _pair(delta=1e-7)
    cmp = OutputComparison.from_arrays("y", expected, actual, TOL)
    assert cmp.passed and cmp.required_tolerance is None


@pytest.mark.parametrize(
    ("actual", "why"),
    [(np.full((8, 10), np.nan, np.float32), "NaN/Inf"), (np.zeros((8, 9), np.float32), "shapes differ")],
    ids=["nan", "shape"],
)
def test_nan_and_shape_mismatches_have_no_required_tolerance_and_say_why(actual, why):
    expected, _ = _pair()
    need = OutputComparison.from_arrays("y", expected, actual, TOL).required_tolerance
    assert need["atol"] is None and need["rtol"] is None and why in need["why"]
    assert why in tolerance.line("onnxruntime", need)


def test_pooled_over_batch_sizes_takes_the_largest_of_each():
    a = {"atol": 0.1, "rtol": 2.0, "reference_stats": tolerance.stats(np.array([0.0, 2.0]))}
    b = {"atol": 0.3, "rtol": 1.0, "reference_stats": tolerance.stats(np.array([4.0, 6.0]))}
    both = tolerance.pooled([a, b])
    assert (both["atol"], both["rtol"]) == (0.3, 2.0)
    assert both["reference_stats"]["mean"] == pytest.approx(3.0)
    assert both["reference_stats"]["std"] == pytest.approx(float(np.std([0.0, 2.0, 4.0, 6.0])))
    assert tolerance.pooled([a, {**b, "rtol": None, "why": "zero"}])["rtol"] is None


@pytest.mark.parametrize(("value", "text"), [(0.01231, "0.0124"), (0.0123, "0.0123"), (2.5, "2.5"), (0.0, "0")])
def test_printed_tolerances_are_rounded_up_so_a_copied_number_still_passes(value, text):
    assert tolerance._up(value) == text
    assert float(text) >= value
