"""How far off a failing comparison is: the smallest tolerance that would have passed it.

The rule is ``|actual - expected| <= atol + rtol * |expected|`` (compare.py). For a failing
output, ``required`` gives the smallest ``atol`` that passes with the ``rtol`` as given, and
the smallest ``rtol`` that passes with the ``atol`` as given (like Polygraphy's "Minimum
Required Tolerance"), with the reference's statistics so a reader can judge whether such a
tolerance is a rounding difference or a wrong model. Either number, applied alone through
``--atol`` or ``--rtol``, makes that comparison pass: each is nudged up to the next float
where the float64 arithmetic of the rule would otherwise round it one ulp short.

No rtol alone can pass where the reference is 0 at an element beyond ``atol`` (``rtol`` is
then None, with why), and NaN/Inf or a shape mismatch have no required tolerance at all.
Importing this module needs only numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ZERO_REFERENCE = "the reference is 0 where the difference exceeds atol: no rtol alone can pass"


def required(expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    """``{"atol", "rtol", "reference_stats", ["why"]}`` for two float64 arrays of one shape.

    ``atol``/``rtol``: the tolerance as given. Call only on finite arrays (the caller reports
    NaN/Inf instead, see ``unavailable``).
    """
    diff = np.abs(actual - expected)
    scale = np.abs(expected)
    need_atol = _nudge(float(np.max(diff - rtol * scale, initial=0.0)), diff, scale, rtol, fixed="rtol")
    result: dict[str, Any] = {"atol": need_atol, "rtol": None, "reference_stats": stats(expected)}
    beyond = diff > atol
    if (beyond & (scale == 0)).any():
        result["why"] = ZERO_REFERENCE
    else:
        ratio = np.where(beyond, (diff - atol) / np.where(scale == 0, 1.0, scale), 0.0)
        result["rtol"] = _nudge(float(np.max(ratio, initial=0.0)), diff, scale, atol, fixed="atol")
    return result


def unavailable(why: str) -> dict[str, Any]:
    """No tolerance passes this comparison (NaN/Inf, shapes): say why instead of a number."""
    return {"atol": None, "rtol": None, "reference_stats": None, "why": why}


def stats(values: np.ndarray) -> dict[str, float] | None:
    if not values.size:
        return None
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "elements": int(values.size),
    }


def _nudge(value: float, diff: np.ndarray, scale: np.ndarray, other: float, fixed: str) -> float:
    """``value``, raised by an ulp at a time until the rule, computed as compare.py does, passes."""
    for _ in range(8):
        bound = value + other * scale if fixed == "rtol" else other + value * scale
        if not (diff > bound).any():
            return value
        value = math.nextafter(value, math.inf)
    return value


def pooled(found: list[dict[str, Any]]) -> dict[str, Any]:
    """One required tolerance over several comparisons of one output (batch sizes): the largest
    of each, since every comparison must pass; the reference statistics over all their elements."""
    usable = [f for f in found if f.get("atol") is not None]
    if len(usable) < len(found):
        return next(f for f in found if f.get("atol") is None)
    rtols = [f["rtol"] for f in usable]
    result: dict[str, Any] = {
        "atol": max(f["atol"] for f in usable),
        "rtol": None if None in rtols else max(rtols),
        "reference_stats": _pooled_stats([f["reference_stats"] for f in usable if f["reference_stats"]]),
    }
    why = next((f["why"] for f in usable if f.get("why")), None)
    if why:
        result["why"] = why
    return result


def _pooled_stats(parts: list[dict[str, float]]) -> dict[str, float] | None:
    if not parts:
        return None
    n = sum(p["elements"] for p in parts)
    mean = sum(p["mean"] * p["elements"] for p in parts) / n
    square = sum((p["std"] ** 2 + p["mean"] ** 2) * p["elements"] for p in parts) / n
    return {
        "mean": mean,
        "std": math.sqrt(max(square - mean * mean, 0.0)),
        "min": min(p["min"] for p in parts),
        "max": max(p["max"] for p in parts),
        "elements": n,
    }


def line(runtime: str, found: dict[str, Any]) -> str:
    """``onnxruntime: minimum required tolerance: atol 0.0123 (with rtol as given) OR rtol ...``."""
    if found.get("atol") is None:
        return f"{runtime}: no tolerance passes: {found['why']}"
    rel = (
        f"rtol {_up(found['rtol'])} (with atol as given)" if found["rtol"] is not None else f"no rtol ({found['why']})"
    )
    text = f"{runtime}: minimum required tolerance: atol {_up(found['atol'])} (with rtol as given) OR {rel}"
    s = found.get("reference_stats")
    if s:
        text += f"; reference mean {s['mean']:.3g}, std {s['std']:.3g}, min {s['min']:.3g}, max {s['max']:.3g}"
    return text


def _up(value: float) -> str:
    """Three significant digits, rounded up, so the number printed still passes when copied."""
    if value <= 0:
        return "0"
    exponent = math.floor(math.log10(value)) - 2
    rounded = math.ceil(value / 10**exponent - 1e-9) * 10**exponent
    if rounded < value:
        rounded = math.ceil(value / 10**exponent) * 10**exponent
    return f"{rounded:.3g}"
