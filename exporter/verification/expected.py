"""What eager expects: the reference model run on every case, and checked before anything is blamed on it.

The first batch of each case is run again: a reference that disagrees with itself is reported
(nondeterministic, or changing its own state on every call), not blamed on the artifacts. Its
outputs must keep the shapes the manifest declares, and labelled inputs must fit its first output.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
from torch import nn

from .. import runners
from ..eager import reference
from ..errors import first_line
from ..interface import Interface
from ..progress import telling
from . import accuracy, gates
from .inputs import Case, InputSet
from .results import VerificationReport

Outputs = dict[Case, dict[str, np.ndarray]]


def run_eager(
    model: nn.Module, device, interface: Interface, feeds: InputSet, report: VerificationReport, config, progress=None
) -> Outputs:
    """Eager's outputs on every case (a case it raised on is a problem of the report, and left out)."""
    tolerances = {o.name: config.tolerance(o.dtype) for o in interface.outputs}
    before = reference.state_digests(model)
    with runners.eager(model, device, interface) as eager:
        not_run: list[str] = []
        expected = run_all(eager, telling(feeds, progress, "verify: eager"), report.problems, probes=not_run)
        report.reference["seconds"] = sum(eager.inference_times)
        first = reference.state_digests(model)
        # Determinism and state changes show on any batch: the first batch of each case is run again
        # (every batch size and dynamic size), not every sample.
        repeat = feeds.first_batches(among=expected)  # a case eager failed on is reported once
        again = run_all(eager, telling(repeat, progress, "verify: eager again"), report.problems, AGAIN, not_run)
    if report.probes is not None and not_run:
        report.probes["not_run"] = not_run
    mutated = reference.changed(first, reference.state_digests(model))
    gates.check_determinism(expected, again, tolerances, report, mutated)
    if not mutated and reference.changed(before, first):
        report.reference["changed_by_first_call"] = reference.changed(before, first)
    _check_shapes(expected, interface, feeds, report)
    scored = interface.outputs[0].name
    if feeds.labels is not None and expected:  # the class count from what eager returned, where the manifest has none
        accuracy.check_labels(feeds.labels, next(iter(expected.values()))[scored].shape, scored, feeds.origin)
    return expected


REFERENCE, AGAIN = "eager (the reference)", "eager (the reference, run again)"


def run_all(
    runner: runners.Runner, feeds: InputSet, problems: list[str], who: str = REFERENCE, probes: list[str] | None = None
) -> Outputs:
    """Every case of ``feeds`` through ``runner``; a case that raises is one line of ``problems``, or of
    ``probes`` when it is a probe: eager failing on an edge size or value is the model's own limit (a
    kernel that needs length 2), not the export's, so that probe is left out and the report says why."""
    results: Outputs = {}
    for case in feeds.groups:
        try:
            results[case] = runner.infer_all(feeds.batches(case))
        except Exception as error:
            line = f"{who} raised at batch {case.label}: {first_line(error)}"
            (probes if case.probe and probes is not None else problems).append(line)
    return results


def _check_shapes(expected: Outputs, interface: Interface, feeds: InputSet, report: VerificationReport) -> None:
    declared = {o.name: o.shape for o in interface.outputs}
    for case, outs in expected.items():
        mismatch = gates.shape_mismatch(outs, declared, {}, case, feeds.count(case))
        if mismatch:
            report.problems.append(f"{REFERENCE} at batch {case.label}: {mismatch}")
            return


def against_float32(
    model: nn.Module, device, interface: Interface, feeds: InputSet, outputs: dict[str, Outputs]
) -> dict[str, float | None]:
    """Max abs diff of eager and each runtime against the model in float32 (the same weights, upcast):
    what the half precision itself costs. Reported, not judged: it depends on the model, not the export."""
    specs = tuple(replace(s, dtype="float32") if s.dtype in ("float16", "bfloat16") else s for s in interface.inputs)
    cast = InputSet(
        {
            c: {n: a.astype("float32") if a.dtype == np.float16 else a for n, a in g.items()}
            for c, g in feeds.groups.items()
        },
        "",
    )
    with runners.eager(copy.deepcopy(model).float(), device, replace(interface, inputs=specs)) as full:
        upcast = run_all(full, cast, problems=[])
    diffs: dict[str, float | None] = {}
    for runtime, per_case in outputs.items():
        worst = [
            float(np.max(np.abs(got[name].astype(np.float64) - upcast[case][name].astype(np.float64))))
            for case, got in per_case.items()
            if case in upcast
            for name in got
            if got[name].size and got[name].shape == upcast[case][name].shape
        ]
        diffs[runtime] = max(worst) if worst else None
    return diffs
