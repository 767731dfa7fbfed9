"""Probes beside the seeded draws: the sizes and values real inputs have and uniform draws never hit.

Uniform draws at a few batch sizes miss what users serve: length 1 from a streaming client, a
prime length no kernel tiles evenly, a length past the one the export saw; and values such as
exact 0 and -0 (atan2, sign, division), the range's own ends (saturated pixels), rows that are one
value throughout (LayerNorm of a constant row) and few distinct values, or NaN where an input may
hold missing readings. Each probe is a ``Case`` of its own, one batch, drawn after every other case
(so the seeded cases hold the same samples with or without them) and reported apart.

``plan`` chooses them within a budget: the probes together cost at most a quarter of the seeded
cases (counted in samples of the example's shape), and at least PROBE_MIN_BUDGET samples, so the seed
network's ``make run`` stays about as fast. They are added in order of how often each breaks an export
(1, 2, 3, then the edge values, then primes, sizes below half and past twice the example, the declared
maximum, then seeded sizes); what does not fit is listed as skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..interface import BATCH, INT_DTYPES, MASKS, InputSpec

PROBE_BATCH = 4  # samples per edge-value probe: a row of each pattern and mixed rows
PROBE_MIN_BUDGET = 64  # samples (of the example's shape) every probe together may cost, at least ...
PROBE_SHARE = 0.25  # ... or this share of the seeded cases' cost, whichever is more
SEEDED_SIZES = 2  # sizes drawn uniformly in each axis's range, beyond the fixed ones
SIZE_PROBE_BATCH = 2  # the batch a non-batch axis's size probes run at (its maximum runs at batch 1)

# What each value probe feeds, as a failure names it ("fails on exact zeros in `x`").
VALUE_PROBES = {
    "zeros": "exact zeros",  # 0 and -0
    "ends": "the range's ends",
    "constant": "constant rows",
    "repeated": "repeated values",
    "nan": "NaN",  # declared missing values (--missing x:nan)
    "inf": "+-Inf",  # (--missing x:nan,inf)
}
MISSING = ("nan", "inf")  # value probes whose outputs are judged under the user's NaN policy


@dataclass
class Plan:
    """The probes chosen: size probes as (label, size, batch), value probes as (kind, input), and what was skipped."""

    sizes: list[tuple[str, int, int]] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "seq 512", "zeros in x": over the budget


def value_kinds(spec: InputSpec, missing: tuple[str, ...] = ()) -> list[str]:
    """The value probes that mean something for ``spec``: integers their ends; bools constant rows; floats
    exact zeros (where the range holds 0), ends, constant rows and repeats; then the declared ``missing``.
    A padding mask none: its edges (one position attended, every position) are in every draw of its kind, and
    its range's ends at random positions leave query rows with nothing to attend (softmax over nothing, where
    runtimes legitimately differ: with a KV cache, a false alarm on a faithful GPT2)."""
    if spec.kind in MASKS:
        return []
    if spec.dtype == "bool":
        return ["constant"]
    if spec.dtype in INT_DTYPES:
        return ["ends"]
    low, high = spec.low_high
    return [*(["zeros"] if low <= 0 <= high else []), "ends", "constant", "repeated", *missing]


def size_candidates(example: int, low: int, high: int, generator: np.random.Generator) -> list[int]:
    """Sizes worth trying on an axis whose example is ``example`` and range [low, high], most telling first:
    the smallest, 1, 2, 3, a prime just past the example, one below half of it, a prime well past twice it,
    the maximum, and SEEDED_SIZES drawn in the range. Sizes outside the range are dropped."""
    fixed = [low, 1, 2, 3, _prime_from(example + 2)]
    if example >= 4:
        fixed.append(example // 2 - 1)
    fixed += [_prime_from(2 * example + max(3, example // 4)), high]
    seeded = [int(v) for v in generator.integers(low, high + 1, size=SEEDED_SIZES)]
    ordered = []
    for size in [*fixed, *seeded]:
        if low <= size <= high and size not in ordered:
            ordered.append(size)
    return ordered


def plan(
    specs: tuple[InputSpec, ...],
    examples: dict[str, int],
    ranges: dict[str, tuple[int, int]],
    covered: dict[str, set[int]],
    missing: dict[str, tuple[str, ...]],
    seeded_cost: float,
    seed: int,
) -> Plan:
    """The probes for a model with inputs ``specs``: each dynamic axis (``examples``: its example size,
    ``ranges``: its range, ``covered``: sizes the seeded cases already try) and each input's value probes
    (``missing``: what each input may hold), within the budget ``seeded_cost`` sets (see the module)."""
    generator = np.random.default_rng(seed)
    budget = max(PROBE_MIN_BUDGET, PROBE_SHARE * seeded_cost)
    sizes = {
        label: [s for s in size_candidates(examples[label], *ranges[label], generator) if s not in covered[label]]
        for label in examples
    }
    first = {label: [s for s in found if s <= 3] for label, found in sizes.items()}
    rest = {label: [s for s in found if s > 3] for label, found in sizes.items()}
    values = [(kind, s.name) for s in specs for kind in value_kinds(s, missing.get(s.name, ()))]
    chosen, spent = Plan(), 0.0

    def take(cost: float, what: str) -> bool:
        nonlocal spent
        if spent + cost > budget:
            chosen.skipped.append(what)
            return False
        spent += cost
        return True

    for label, found in first.items():
        for size in found:
            batch = size if label == BATCH else SIZE_PROBE_BATCH
            if take(_cost(label, size, batch, examples), f"{label} {size}"):
                chosen.sizes.append((label, size, batch))
    for kind, name in values:
        if take(PROBE_BATCH, f"{VALUE_PROBES[kind]} in {name}"):
            chosen.values.append((kind, name))
    for label, found in rest.items():
        for size in found:
            batch = size if label == BATCH else (1 if size == ranges[label][1] else SIZE_PROBE_BATCH)
            if take(_cost(label, size, batch, examples), f"{label} {size}"):
                chosen.sizes.append((label, size, batch))
    return chosen


def _cost(label: str, size: int, batch: int, examples: dict[str, int]) -> float:
    """Samples of the example's shape a case costs: its batch, times how much longer the axis is."""
    return float(batch) if label == BATCH else batch * size / examples[label]


def _prime_from(n: int) -> int:
    """The smallest prime >= n (n >= 2)."""
    n = max(2, n)
    while any(n % d == 0 for d in range(2, math.isqrt(n) + 1)):
        n += 1
    return n


def edge_values(
    kind: str, spec: InputSpec, base: np.ndarray, value_range: tuple[float, float], generator: np.random.Generator
) -> np.ndarray:
    """``base`` (seeded samples of ``spec``, batch first) rewritten as probe ``kind`` asks: the first rows
    all one pattern, the others mixed into the seeded values at random positions."""
    low, high = value_range
    x = base.copy()
    rest = x[2:]
    mask = generator.random(rest.shape) < 0.5
    if kind == "zeros":
        x[0], x[1] = 0.0, -0.0
        rest[mask] = np.where(generator.random(int(mask.sum())) < 0.5, 0.0, -0.0)
    elif kind == "ends":
        x[0], x[1] = low, high
        rest[...] = np.where(mask, low, high)
    elif kind == "constant":
        if spec.dtype == "bool":
            x[0], x[1] = False, True
            rest[...] = (np.arange(len(rest)) % 2).astype(bool).reshape(-1, *[1] * (rest.ndim - 1))
        else:
            for row, value in zip(x, generator.uniform(low, high, len(x)), strict=True):
                row[...] = value
    elif kind == "repeated":
        x[...] = generator.choice(generator.uniform(low, high, 3), size=x.shape)
    elif kind in MISSING:
        holes = generator.random(x.shape) < 0.125
        holes.reshape(len(x), -1)[:, 0] = True  # every row holds at least one
        fill = np.nan if kind == "nan" else np.where(generator.random(int(holes.sum())) < 0.5, np.inf, -np.inf)
        x[holes] = fill
    else:
        raise ValueError(f"no value probe {kind!r}")
    x = x.astype(base.dtype)
    if spec.dtype == "bfloat16":  # carried in float32: keep every value one bfloat16 holds (sign and NaN kept)
        x = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    return x
