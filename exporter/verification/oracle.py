"""A float64 oracle for float32 outputs that fail the element rule: is the runtime as close to the true answer as eager?

A float32 tolerance assumes eager's float32 answer is near the true one. On ill-conditioned inputs it is not
(LayerNorm over raw latitudes in 37.70..37.80 loses four digits to cancellation), and a runtime that sums in
another order can be closer to the float64 answer than eager is, yet fail the fixed float32 bound. Where a
float32 output of a case (a probe's too) fails on its elements alone (the whole-output gates hold, no NaN/Inf, no
shape or dtype change), eager runs again in float64 (a copy of the model, the same inputs) on every case, and
the runtime passes that case when its max abs error against the float64 answer is at most ORACLE_FACTOR x
eager's own, taken over every case (a batch of 3 holds too few elements for its own maximum to be a
scale). Both errors are recorded on the comparison and the report shows them.

ORACLE_FACTOR is 1: a runtime is let through only when it is at least as accurate as the reference it would
otherwise be judged by, so a fault must be hidden inside eager's own float32 error to pass, where it is
indistinguishable from rounding. Measured on the latitudes model (tests/served.py, 10 input seeds, default
samples): over the 73 cases ONNX Runtime failed the float32 rule, its error was 0.06 to 0.58 x eager's;
an artifact 5e-4 off (inside the whole-output gates) was 0.91 to 4.0 x over 86 cases, and failed at
every seed. A larger factor would let such faults through; a smaller one would fail sound runtimes.

The oracle does not run for models of LARGE_MODEL_PARAMETERS or more (a float64 copy doubles the weights
twice over), for half-precision exports (their reference is judged against float32 elsewhere) or for a kernel
without float64 support: the report says why and the float32 rules stand.

Integer outputs stay exact, but an integer made by rounding floats (``(x * 255).round().to(torch.uint8)``)
can land on either side of a .5 boundary, and which side is rounding too. Where an integer output of a case
fails exact comparison, the elements where eager's float32 and float64 runs disagree are such boundaries: a
runtime's element there is allowed when it equals one of the two, and the count is reported in a note. Any
other differing element (where eager's two runs agree, or matching neither) still fails the case.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from ..config import LARGE_MODEL_PARAMETERS
from ..errors import first_line
from .inputs import Case, InputSet

ORACLE_FACTOR = 1.0
_INTEGERS = {"uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64"}


def rescue(run, held) -> None:
    """Judge again, against float64, every float32 or integer output of a case that failed on its elements only
    (``held``: the eager model's holder, had again only when a case needs the oracle)."""
    wanted = _candidates(run)
    if not wanted:
        return
    if int(run.manifest.model.get("parameters") or 0) >= LARGE_MODEL_PARAMETERS or run.manifest.model.get("dtype"):
        run.report.notes.append("the float64 oracle did not run (a model this large, or not exported in float32)")
        return
    eager = run.outputs["eager"]
    cases = [case for case in run.feeds.groups if case in eager]  # every case: eager's error, pooled, is the scale
    try:
        truth = _float64(held.model, run, cases)
    except Exception as error:  # a kernel without double support, say
        run.report.notes.append(f"the float64 oracle could not run ({first_line(error)}): the float32 rules apply")
        return
    names = {comparison.output for *_, comparison in wanted if comparison.output in _float32(run)}
    scale = {name: max(_max_error(eager[c][name], truth[c][name]) for c in cases) for name in names}
    for result, case, batch, comparison in wanted:
        name = comparison.output
        if name not in names:
            _boundaries(run, result, case, batch, comparison, truth[case][name])
            continue
        theirs = _max_error(run.outputs[result.runtime][case][name], truth[case][name])
        comparison.float64_errors = {"eager": scale[name], result.runtime: theirs}
        if theirs <= ORACLE_FACTOR * scale[name]:
            comparison.passed, comparison.reasons, comparison.required_tolerance = True, [], None
            run.report.notes.append(
                f"{result.runtime} at batch {batch.label}, {name}: outside the float32 tolerance but as close to "
                f"the float64 answer as eager is (max abs error {theirs:.2g}; eager's, over every case, "
                f"{scale[name]:.2g}): passed"
            )
        else:
            comparison.reasons.append(
                f"against eager in float64 its max abs error is {theirs:.2g}, eager's own {scale[name]:.2g}: "
                "further from the true answer than the reference"
            )


def _boundaries(run, result, case, batch, comparison, exact: np.ndarray) -> None:
    """An integer output's case judged again: elements differing from eager pass only on a rounding boundary
    (eager's float32 and float64 answers differ there) where the runtime gives one of the two."""
    rounded, got = run.outputs["eager"][case][comparison.output], run.outputs[result.runtime][case][comparison.output]
    if exact.shape != rounded.shape:
        return
    differ = got != rounded
    allowed = differ & (rounded != exact) & (got == exact)
    count, others = int(allowed.sum()), int((differ & ~allowed).sum())
    where = f"{result.runtime} at batch {batch.label}, {comparison.output}"
    if others:
        comparison.reasons.append(
            f"{others} of the differing elements are not on a rounding boundary (eager's float32 and float64 "
            f"runs agree there, or the runtime gives neither); {count} are, and would be allowed"
        )
    elif count:
        comparison.passed, comparison.reasons, comparison.required_tolerance = True, [], None
        run.report.notes.append(
            f"{where}: {count} of {rounded.size} elements differ from eager on a rounding boundary (eager's "
            "float32 and float64 runs disagree there and the runtime gives the float64 one): passed"
        )


def _max_error(values: np.ndarray, exact: np.ndarray) -> float:
    """Max abs difference over the elements finite on both sides (NaN/Inf are the NaN rule's to judge)."""
    finite = np.isfinite(values) & np.isfinite(exact)
    return float(np.max(np.abs(values[finite].astype(np.float64) - exact[finite]))) if finite.any() else 0.0


def _candidates(run) -> list:
    """(result, case, batch, comparison) for each float32 or integer output of a case (probes too) failing on
    its elements alone."""
    found = []
    judged = _float32(run) | {o.name for o in run.interface.outputs if o.dtype in _INTEGERS}
    for result in run.report.runtimes:
        if result.runtime not in run.outputs:
            continue
        for batch in result.batches:
            case = Case(batch.batch_size, tuple(batch.sizes.items()), batch.draw, batch.probe)
            if batch.error or batch.shape_error or case not in run.feeds.groups:
                continue
            for comparison in batch.outputs:
                reasons = comparison.reasons
                elements_only = len(reasons) == 1 and reasons[0].startswith(f"{comparison.mismatched_elements}/")
                if comparison.output in judged and not comparison.passed and elements_only:
                    found.append((result, case, batch, comparison))
    return found


def _float32(run) -> set[str]:
    return {o.name for o in run.interface.outputs if o.dtype == "float32"}


def _float64(model, run, cases: list[Case]) -> dict:
    """Eager in float64 on ``cases`` (float inputs upcast): per case, each output as float64."""
    from .. import runners
    from .expected import run_all

    specs = tuple(replace(s, dtype="float64") if s.dtype == "float32" else s for s in run.interface.inputs)
    feeds = InputSet(
        {
            c: {n: a.astype(np.float64) if a.dtype == np.float32 else a for n, a in run.feeds.groups[c].items()}
            for c in cases
        },
        "",
    )
    problems: list[str] = []
    with runners.eager(copy.deepcopy(model).double(), run.device, replace(run.interface, inputs=specs)) as full:
        found = run_all(full, feeds, problems)
    if problems:
        raise RuntimeError(problems[0])
    # integers as they are: an int64 past 2**53 is not exact in float64
    return {
        c: {n: v if v.dtype.kind in "iu" else v.astype(np.float64) for n, v in outs.items()}
        for c, outs in found.items()
    }
