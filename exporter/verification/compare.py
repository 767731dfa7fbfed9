"""Compare one runtime's output with the reference, element by element.

``OutputComparison.from_arrays(name, expected, actual, tolerance)`` returns a result
object whose truth value says whether it passed, with every metric a reader needs to
see *how* two outputs differ, and ``reasons`` saying why it failed.

The rule: an element passes when ``|actual - expected| <= atol + rtol * |expected|``.
NaN and Inf fail wherever they appear, unless ``nan_policy="match"`` and both sides have
the same non-finite values at the same positions; an all-NaN/Inf reference never passes.

A quantised runtime's tolerance carries ``min_agreement``: over all its samples (pooled
across batch sizes, see ``pooled_agreement``) it must agree on the exact top-1 class for at
least that share. How many disagreements are near ties (the reference's logit for the
candidate's class within the tolerance bound of the maximum) is reported to explain them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import MAX_SAMPLES, QUANTIZED_SAMPLES, Tolerance
from . import tolerance as tolerance_needed


@dataclass
class OutputComparison:
    output: str
    passed: bool
    atol: float
    rtol: float
    expected_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None  # over elements whose expected value is non-zero
    mean_abs_diff: float | None = None
    p99_abs_diff: float | None = None
    mismatched_elements: int = 0  # elements outside atol + rtol * |expected|
    elements: int = 0
    worst: dict[str, Any] | None = None  # {"index": [...], "expected": x, "actual": y}
    cosine_similarity: float | None = None
    top1_agreement: float | None = None  # fraction of samples whose argmax agrees (ties allowed)
    top1_disagreements: int = 0
    tied_samples: int = 0  # samples whose reference maximum is shared by several classes
    top1_agreement_within_tolerance: float | None = None  # near ties (within atol + rtol) count as ties
    min_agreement: float | None = None
    reference_rms: float | None = None  # float outputs: the scale the whole-output gate measures against
    samples: int = 0
    reasons: list[str] = field(default_factory=list)
    # failing only: the smallest atol (rtol as given) and rtol (atol as given) that pass, and the
    # reference's statistics; atol None when no tolerance can pass (NaN/Inf, shapes), with "why"
    required_tolerance: dict[str, Any] | None = None
    float64_errors: dict[str, float] | None = None  # oracle.py: max abs error of eager and the runtime against
    # eager in float64, where a float32 output failed on its elements alone

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_arrays(
        cls,
        name: str,
        expected: np.ndarray,
        actual: np.ndarray,
        tolerance: Tolerance,
        nan_policy: str = "fail",
        edge: bool = False,
    ) -> OutputComparison:
        """``edge``: an edge-value probe, where a reference that is NaN/Inf everywhere passes when the
        candidate has the same values (under ``nan_policy="match"``) instead of failing as nothing to judge."""
        result = cls(
            output=name,
            passed=False,
            atol=tolerance.atol,
            rtol=tolerance.rtol,
            expected_shape=tuple(expected.shape),
            actual_shape=tuple(actual.shape),
        )
        if expected.shape != actual.shape:
            result.reasons.append(f"shape {tuple(actual.shape)} differs from the reference's {tuple(expected.shape)}")
            result.required_tolerance = tolerance_needed.unavailable("the shapes differ: no tolerance compares them")
            return result
        if expected.dtype != actual.dtype:
            result.reasons.append(f"dtype {actual.dtype} differs from the reference's {expected.dtype}")
            # go on: the values can still be compared and the report says both
        e = expected.astype(np.float64, copy=False)
        a = actual.astype(np.float64, copy=False)
        result.elements = int(e.size)
        finite = np.isfinite(e) & np.isfinite(a)
        result.reasons.extend(_nonfinite_reasons(e, a, nan_policy, edge))

        if finite.any():
            diff = np.abs(a - e)
            diff = np.where(finite, diff, 0.0)
            flat = diff[finite]
            result.max_abs_diff = float(flat.max())
            result.mean_abs_diff = float(flat.mean())
            result.p99_abs_diff = float(np.percentile(flat, 99))
            nonzero = finite & (e != 0)
            result.max_rel_diff = float((diff[nonzero] / np.abs(e[nonzero])).max()) if nonzero.any() else 0.0
            bound = tolerance.atol + tolerance.rtol * np.abs(e)
            outside = finite & (diff > bound)
            result.mismatched_elements = int(outside.sum())
            worst = np.unravel_index(int(np.argmax(np.where(finite, diff - bound, -np.inf))), e.shape)
            result.worst = {
                "index": [int(i) for i in worst],
                "expected": float(e[worst]),
                "actual": float(a[worst]),
            }
            result.cosine_similarity = _cosine(e[finite], a[finite])
            if result.mismatched_elements and tolerance.elementwise:
                result.reasons.append(
                    f"{result.mismatched_elements}/{result.elements} elements differ beyond "
                    f"atol {tolerance.atol:g} + rtol {tolerance.rtol:g} * |expected|; max abs diff "
                    f"{result.max_abs_diff:.3g}, worst at {result.worst['index']}: "
                    f"expected {result.worst['expected']:.6g}, got {result.worst['actual']:.6g}"
                )
        _top1(result, e, a, tolerance)
        if np.issubdtype(expected.dtype, np.floating) and finite.any():
            result.reasons += _whole_output_reasons(result, e[finite], tolerance)
        result.passed = not result.reasons
        result.required_tolerance = _required(result, e, a, finite, tolerance, nan_policy)
        return result


def _whole_output_reasons(result: OutputComparison, e: np.ndarray, tolerance: Tolerance) -> list[str]:
    """Gates on the output as a whole, so that its scale cannot fool the element rule: a constant
    reference (nothing to judge: fail closed), the max diff against the reference's RMS, cosine,
    and top-1 class changes that are not near ties."""
    reasons = []
    result.reference_rms = float(np.sqrt(np.mean(np.square(e))))
    if tolerance.scale is not None and e.size > 1 and float(e.max()) == float(e.min()):
        return [
            f"the reference output is constant ({float(e.flat[0]):.6g} everywhere, {e.size} values): there is "
            "nothing to judge; feed inputs that exercise the model (--input-range, --inputs)"
        ]
    if tolerance.scale is not None and result.max_abs_diff is not None:
        bound = tolerance.scale * result.reference_rms
        if result.max_abs_diff > bound:
            ratio = result.max_abs_diff / result.reference_rms if result.reference_rms else math.inf
            reasons.append(
                f"max abs diff {result.max_abs_diff:.3g} is {ratio:.3g} x the reference's RMS "
                f"{result.reference_rms:.3g}; at most {tolerance.scale:g} x is allowed"
            )
    cosine = result.cosine_similarity
    if tolerance.min_cosine is not None and cosine is not None and cosine < tolerance.min_cosine:
        reasons.append(f"cosine similarity {result.cosine_similarity:.6f} is below {tolerance.min_cosine:g}")
    if tolerance.top1 and result.top1_agreement_within_tolerance is not None:
        changed = round((1 - result.top1_agreement_within_tolerance) * result.samples)
        if changed:
            reasons.append(f"top-1 class differs on {changed} of {result.samples} samples, not near ties")
    return reasons


def _required(result: OutputComparison, e, a, finite, tolerance: Tolerance, nan_policy: str) -> dict[str, Any] | None:
    """The tolerance that would have passed a comparison failing element-wise; None otherwise."""
    if result.passed:
        return None
    if _nonfinite_reasons(e, a, nan_policy):
        return tolerance_needed.unavailable("NaN/Inf values do not pass at any tolerance")
    if not result.mismatched_elements:
        return None  # within tolerance: it failed on something else (top-1 agreement, dtype)
    return tolerance_needed.required(e[finite], a[finite], tolerance.atol, tolerance.rtol)


def _nonfinite_reasons(e: np.ndarray, a: np.ndarray, nan_policy: str, edge: bool = False) -> list[str]:
    bad_e, bad_a = ~np.isfinite(e), ~np.isfinite(a)
    if not (bad_e.any() or bad_a.any()):
        return []
    if bad_e.all() and not edge:
        return ["the reference output is entirely NaN/Inf: there is nothing to compare against"]
    if nan_policy == "match" and np.array_equal(bad_e, bad_a):
        same = np.array_equal(np.isnan(e), np.isnan(a)) and np.array_equal(
            e[bad_e & ~np.isnan(e)], a[bad_a & ~np.isnan(a)]
        )
        if same:
            return []
    reasons = []
    for side, mask, values in (("reference", bad_e, e), ("candidate", bad_a, a)):
        if mask.any():
            first = np.unravel_index(int(np.argmax(mask)), mask.shape)
            kind = "NaN" if np.isnan(values[first]) else "Inf"
            reasons.append(
                f"{int(mask.sum())} NaN/Inf value(s) in the {side} output, first ({kind}) at {[int(i) for i in first]}"
            )
    if nan_policy == "match" and len(reasons) == 2:
        reasons.append("NaN/Inf positions differ between the reference and the candidate")
    return reasons


def _cosine(e: np.ndarray, a: np.ndarray) -> float:
    ne, na = float(np.linalg.norm(e)), float(np.linalg.norm(a))
    if ne == 0.0 and na == 0.0:
        return 1.0
    if ne == 0.0 or na == 0.0:
        return 0.0
    return float(np.dot(e.ravel(), a.ravel()) / (ne * na))


def _top1(result: OutputComparison, e: np.ndarray, a: np.ndarray, tolerance: Tolerance) -> None:
    """Argmax agreement per sample over the last axis; a tie in the reference accepts any tied class."""
    if e.ndim < 2 or e.shape[-1] < 2:
        return
    e2 = e.reshape(-1, e.shape[-1])
    a2 = a.reshape(-1, a.shape[-1])
    ranked = np.isfinite(e2).any(axis=1)  # a reference row without a finite value has no class to agree on
    if ranked.any() and not ranked.all():  # (the NaN rule judges those rows)
        e2, a2 = e2[ranked], a2[ranked]
    with np.errstate(invalid="ignore"):
        top = np.nanmax(e2, axis=1, keepdims=True) if np.isfinite(e2).any() else e2[:, :1]
        winners = e2 == top  # every class holding the reference maximum
    candidate = np.argmax(np.nan_to_num(a2, nan=-np.inf), axis=1)
    agree = winners[np.arange(len(candidate)), candidate]
    result.samples = len(candidate)
    result.tied_samples = int((winners.sum(axis=1) > 1).sum())
    result.top1_disagreements = int((~agree).sum())
    result.top1_agreement = float(agree.mean()) if len(agree) else None
    if (tolerance.min_agreement is None and not tolerance.top1) or not len(agree):
        return
    result.min_agreement = tolerance.min_agreement
    with np.errstate(invalid="ignore"):
        near = e2 >= top - (tolerance.atol + tolerance.rtol * np.abs(top))
    within = near[np.arange(len(candidate)), candidate]
    result.top1_agreement_within_tolerance = float(within.mean())


def pooled_agreement(comparisons: list[OutputComparison]) -> str | None:
    """The failure reason when quantised comparisons, pooled, agree on top-1 less than required.

    Pooled over batch sizes because a batch-1 group holds a handful of samples, where one
    flip would swing the share by tens of percent. The reason gives the share's 95 % interval
    and what to do next: on fewer than QUANTIZED_SAMPLES samples, measure again on more before
    lowering the bar; on more, but with the interval still reaching the required share, ask
    for more; otherwise the share is below, and lowering --min-agreement is the user's call.
    The interval takes samples as independent; with dynamic quantisation a batch shares one
    activation scale, so flips cluster by batch and the true uncertainty is somewhat wider
    (README, "int8 agreement"): why a small sample is never judged final.
    """
    pool = _pool(comparisons)
    if pool is None or pool.agreement >= pool.required:
        return None
    low, high = pool.interval
    if pool.samples < QUANTIZED_SAMPLES:
        advice = (
            f"{pool.samples} samples are too few to judge (int8 flips cluster by batch): measure on "
            f"{QUANTIZED_SAMPLES:,} or more (--samples, or a larger --inputs file) before lowering --min-agreement"
        )
    elif high >= pool.required:
        advice = (
            f"the interval still reaches the required share: measure on more samples (--samples "
            f"{min(4 * pool.samples, MAX_SAMPLES)}, or a larger --inputs file), or lower --min-agreement"
        )
    else:
        advice = "lower --min-agreement if that is acceptable for this model"
    return (
        f"top-1 agreement {100 * pool.agreement:.2f}% (95% interval {100 * low:.2f}-{100 * high:.2f}%) is below the "
        f"required {100 * pool.required:.2f}%: {pool.disagree} of {pool.samples} samples change class, "
        f"{pool.disagree - pool.near} of them near ties (the reference's top logits within the quantisation bound); "
        f"{advice}"
    )


def small_sample_note(comparisons: list[OutputComparison]) -> str | None:
    """A note when quantised comparisons passed the agreement gate on fewer than QUANTIZED_SAMPLES
    samples (an explicit --samples, or --inputs): such a pass can be luck, and the reader is told."""
    pool = _pool(comparisons)
    if pool is None or pool.agreement < pool.required or pool.samples >= QUANTIZED_SAMPLES:
        return None
    low, high = pool.interval
    return (
        f"top-1 agreement {100 * pool.agreement:.2f}% passed on only {pool.samples} samples (95% interval "
        f"{100 * low:.2f}-{100 * high:.2f}%): a pass this small can be luck; the int8 default is {QUANTIZED_SAMPLES:,}"
    )


@dataclass(frozen=True)
class _Pooled:
    samples: int
    disagree: int
    near: int  # disagreements whose class is within the quantisation bound of the maximum
    required: float

    @property
    def agreement(self) -> float:
        return 1 - self.disagree / self.samples

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.samples - self.disagree, self.samples)


def _pool(comparisons: list[OutputComparison]) -> _Pooled | None:
    judged = [c for c in comparisons if c.min_agreement is not None and c.samples]
    if not judged:
        return None
    return _Pooled(
        samples=sum(c.samples for c in judged),
        disagree=sum(c.top1_disagreements for c in judged),
        near=sum(round((1 - c.top1_agreement_within_tolerance) * c.samples) for c in judged),
        required=judged[0].min_agreement,
    )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share (95 % for z = 1.96): honest near 0 % and 100 %, where
    the normal approximation would claim certainty from a small sample. (0, 1) for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
