"""OutputComparison: metrics, the tolerance rule, NaN/Inf, shapes and top-1 ties."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import Tolerance, VerifyConfig
from exporter.verification.compare import OutputComparison, pooled_agreement, small_sample_note, wilson_interval

TOL = Tolerance(atol=1e-5, rtol=1e-4)


def _logits(seed=0, shape=(8, 10)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_identical_outputs_pass_with_zero_differences():
    e = _logits()
    result = OutputComparison.from_arrays("logits", e, e.copy(), TOL)
    assert result and result.max_abs_diff == 0 and result.cosine_similarity == pytest.approx(1.0)
    assert result.top1_agreement == 1.0 and result.mismatched_elements == 0


def test_differences_inside_the_tolerance_pass():
    e = _logits()
    result = OutputComparison.from_arrays("logits", e, e + 5e-6, TOL)
    assert result.passed and 0 < result.max_abs_diff < 1e-5


def test_one_element_beyond_the_tolerance_fails_and_is_located():
    e = _logits()
    a = e.copy()
    a[3, 7] += 0.01
    result = OutputComparison.from_arrays("logits", e, a, TOL)
    assert not result
    assert result.mismatched_elements == 1
    assert result.worst["index"] == [3, 7]
    assert result.worst["actual"] == pytest.approx(float(a[3, 7]))
    assert "1/80 elements differ" in result.reasons[0]


def test_rtol_scales_with_the_expected_value():
    e = np.array([[1000.0, 1.0]], dtype=np.float32)
    assert OutputComparison.from_arrays("y", e, e + np.array([[0.05, 0]], np.float32), TOL).passed
    assert not OutputComparison.from_arrays("y", e, e + np.array([[0, 0.05]], np.float32), TOL).passed


def test_nan_in_the_candidate_fails_with_its_position():
    e = _logits()
    a = e.copy()
    a[2, 4] = np.nan
    result = OutputComparison.from_arrays("logits", e, a, TOL)
    assert not result and "candidate" in result.reasons[0] and "[2, 4]" in result.reasons[0]


def test_matching_nan_passes_only_with_nan_policy_match():
    e = _logits()
    e[1, 1] = np.nan
    a = e.copy()
    assert not OutputComparison.from_arrays("logits", e, a, TOL)
    assert OutputComparison.from_arrays("logits", e, a, TOL, nan_policy="match")


def test_nan_at_different_positions_fails_even_with_nan_policy_match():
    e, a = _logits(), _logits()
    e[1, 1] = np.nan
    a[1, 2] = np.nan
    result = OutputComparison.from_arrays("logits", e, a, TOL, nan_policy="match")
    assert not result and any("positions differ" in r for r in result.reasons)


def test_an_all_nan_reference_never_passes():
    e = np.full((4, 10), np.nan, dtype=np.float32)
    result = OutputComparison.from_arrays("logits", e, e.copy(), TOL, nan_policy="match")
    assert not result and "entirely NaN" in result.reasons[0]


def test_shape_mismatch_is_a_failure_naming_both_shapes():
    result = OutputComparison.from_arrays("logits", _logits(shape=(64, 10)), _logits(shape=(1, 10)), TOL)
    assert not result and "(1, 10)" in result.reasons[0] and "(64, 10)" in result.reasons[0]


def test_dtype_mismatch_is_a_failure():
    e = _logits()
    result = OutputComparison.from_arrays("logits", e, e.astype(np.float64), TOL)
    assert not result and "dtype" in result.reasons[0]


def test_top1_ties_in_the_reference_accept_any_tied_class():
    e = np.zeros((2, 10), dtype=np.float32)  # ReLU outputs: all zero, every class tied
    e[1, 3] = 1.0
    a = e.copy()
    a[0, 7] = 1e-7  # candidate's argmax is 7, which is tied at the reference's maximum
    result = OutputComparison.from_arrays("logits", e, a, TOL)
    assert result.top1_agreement == 1.0 and result.tied_samples == 1


def test_top1_disagreement_is_counted():
    e = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    a = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    result = OutputComparison.from_arrays("logits", e, a, TOL)
    assert result.top1_agreement == 0.5 and result.top1_disagreements == 1 and not result


def _int8_groups(disagree: int, samples: int, required: float = 0.99) -> list[OutputComparison]:
    """One quantised comparison of ``samples`` samples whose first ``disagree`` change class."""
    e = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (samples, 1))
    a = e.copy()
    a[:disagree] = [0.0, 1.0]
    return [OutputComparison.from_arrays("logits", e, a, Tolerance(0.01, 0.05, min_agreement=required))]


def test_pooled_agreement_passes_at_the_required_share_and_fails_below_it():
    assert pooled_agreement(_int8_groups(10, 1000)) is None  # exactly 99 %
    reason = pooled_agreement(_int8_groups(11, 1000))
    assert reason.startswith("top-1 agreement 98.90% (95% interval 98.04-99.38%) is below the required 99.00%")


def test_below_the_int8_default_sample_count_a_failure_asks_to_measure_again_first():
    small = pooled_agreement(_int8_groups(2, 100))  # 98 %, but 99 % is well inside the interval
    assert "100 samples are too few to judge" in small and "measure on 8,192 or more" in small
    clear = pooled_agreement(_int8_groups(50, 1000))  # 95 %: the interval is below, but flips cluster by batch
    assert "1000 samples are too few to judge" in clear


def test_a_large_sample_whose_interval_reaches_the_bar_asks_for_more_within_the_limit():
    wide = pooled_agreement(_int8_groups(95, 9000))  # 98.94 % on 9,000: 99 % still inside the interval
    assert "the interval still reaches the required share" in wide and "--samples 36000" in wide
    huge = pooled_agreement(_int8_groups(2_610, 260_000))  # 98.996 %: 4x would pass MAX_SAMPLES
    assert "--samples 1000000" in huge


def test_a_large_sample_clearly_below_the_bar_leaves_the_call_to_the_user():
    large = pooled_agreement(_int8_groups(300, 10_000))  # 97 % +- 0.3: clearly below
    assert "too few" not in large and "still reaches" not in large and "lower --min-agreement if" in large


def test_a_pass_on_a_small_sample_is_noted_and_a_pass_on_a_large_one_is_not():
    note = small_sample_note(_int8_groups(0, 65))
    assert note.startswith("top-1 agreement 100.00% passed on only 65 samples (95% interval 94.42-100.00%)")
    assert small_sample_note(_int8_groups(50, 8192)) is None  # 99.39 % on the default count
    assert small_sample_note(_int8_groups(5, 100)) is None  # a failure: pooled_agreement speaks instead
    fp32 = [OutputComparison.from_arrays("logits", np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), TOL)]
    assert small_sample_note(fp32) is None and pooled_agreement(fp32) is None  # no gate without min_agreement


def test_wilson_interval_matches_known_values_and_stays_inside_0_and_1():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


# --- the whole-output gates, on arrays ---------------------------------------------------------------

FLOAT32 = VerifyConfig().tolerance("float32")


def test_small_outputs_are_judged_against_their_own_scale():
    rng = np.random.default_rng(0)
    e = (rng.random((64, 10)) * 1e-6).astype(np.float32)  # logits well below float32's atol of 1e-5
    sound = OutputComparison.from_arrays("logits", e, e + np.float32(1e-12), FLOAT32)
    assert sound.passed, sound.reasons
    for name, broken in (("negated", -e), ("zeros", np.zeros_like(e)), ("scaled", e * np.float32(1.2))):
        cmp = OutputComparison.from_arrays("logits", e, broken, FLOAT32)
        assert not cmp.passed and any("x the reference's RMS" in r for r in cmp.reasons), name
        assert cmp.mismatched_elements == 0  # the element rule alone would have passed it


def test_cosine_and_top1_are_gates_for_float_outputs():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(200, 10)).astype(np.float32)
    swapped = e.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # same values, other classes
    loose = Tolerance(atol=10.0, rtol=0.0, min_cosine=0.9999)  # elements pass: only cosine can judge
    assert OutputComparison.from_arrays("logits", e, swapped, loose).reasons == [
        f"cosine similarity {OutputComparison.from_arrays('logits', e, swapped, loose).cosine_similarity:.6f} "
        "is below 0.9999"
    ]
    top1 = Tolerance(atol=1e-5, rtol=0.0, top1=True)  # near ties within 1e-5 of the maximum are forgiven
    cmp = OutputComparison.from_arrays("logits", e, swapped, top1)
    assert any("top-1 class differs on" in r and "not near ties" in r for r in cmp.reasons)
    near = e.copy()
    near[:, 1] = near[:, 0] - 1e-7  # a near tie in the reference: a flip there is noise, not a fault
    flipped = near.copy()
    flipped[:, 1] += 2e-7
    assert OutputComparison.from_arrays("logits", near, flipped, FLOAT32).passed


def test_a_constant_reference_fails_closed_and_integers_compare_exactly():
    constant = np.zeros((8, 10), np.float32)
    cmp = OutputComparison.from_arrays("logits", constant, constant.copy(), FLOAT32)
    assert not cmp.passed and "constant (0 everywhere, 80 values): there is nothing to judge" in cmp.reasons[0]
    ids = np.arange(100, dtype=np.int64) * 100_000
    exact = VerifyConfig(atol=1.0, rtol=1.0).tolerance("int64")  # a tolerance given by hand is ignored for ids
    assert OutputComparison.from_arrays("ids", ids, ids.copy(), exact).passed
    off = ids.copy()
    off[7] += 5
    assert not OutputComparison.from_arrays("ids", ids, off, exact).passed


def test_tolerances_given_by_hand_replace_the_whole_output_gates():
    given = VerifyConfig(atol=1e-3).tolerance("float32")
    assert given.scale is None and given.min_cosine is None and given.top1
    assert VerifyConfig().tolerance("float32").scale == 1e-3
