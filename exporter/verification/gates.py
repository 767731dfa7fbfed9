"""What verification judges beyond comparing outputs element by element.

Which cases to run besides the default ones (a batch past 100; more when a trace warned that it
froze a value or a size), whether every output keeps its declared shape, whether the eager
reference is deterministic and whether forward changes the model's own state, which dynamic axis
an artifact froze, and whether a legacy trace's warning still needs the user's word.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import formats
from ..artifacts.manifest import Manifest
from ..config import Tolerance, VerifyConfig
from .compare import OutputComparison
from .inputs import Case
from .results import BatchResult, RuntimeResult, VerificationReport

LARGE_BATCH = 128  # one batch past 100 by default: a branch on the batch size (>= 100, say) is caught
TRACE_WARNINGS = ("Converting a tensor to a Python", "TracerWarning", "might cause the trace to be incorrect")


def sweep(config: VerifyConfig, manifest: Manifest, labels: dict[str, int]) -> tuple[Case, ...]:
    """Cases beyond the default ones, one batch each: a batch past 100 (unless --batch-size was
    given); and, when an export warned that it froze a value or a size, odd batch sizes and
    normally drawn inputs too, so a frozen path meets inputs that leave it."""
    example = tuple(sorted(labels.items()))
    cases = [] if config.batch_sizes else [Case(LARGE_BATCH, example)]
    if traced_warnings(manifest):
        cases += [Case(3, example), Case(100, example), Case(1, example, "normal"), Case(64, example, "normal")]
    return tuple(cases)


def traced_warnings(manifest: Manifest) -> list[str]:
    """Each artifact's recorded warnings that say a trace froze a value or a size, as 'runtime: warning'."""
    found = []
    for entry in manifest.artifacts:
        for warning in entry.details.get("warnings", []):
            if any(marker in warning for marker in TRACE_WARNINGS):
                found.append(f"{formats.runtime_name(entry.format)}: {warning}")
    return found


def check_determinism(first, second, tolerances: dict[str, Tolerance], report: VerificationReport, mutated) -> None:
    """Eager's second run of each case's first batch against its first: the element rule alone (an output
    constant at some size is constant on both runs, which the whole-output gates would fail as 'nothing to
    judge'), NaN/Inf at the same places passing."""
    tolerances = {name: replace(t, scale=None, min_cosine=None, top1=False) for name, t in tolerances.items()}
    worst = 0.0
    for b, outs in second.items():  # the second run may repeat only the first batch of each case
        if b not in first:
            continue
        for name, again in outs.items():
            values = first[b][name]
            values = values[: again.shape[0]] if again.ndim and values.ndim else values
            cmp = OutputComparison.from_arrays(name, values, again, tolerances[name], "match", edge=True)
            if cmp.max_abs_diff is not None:
                worst = max(worst, cmp.max_abs_diff)
            if not cmp.passed:
                report.reference["deterministic"] = False
    report.reference.setdefault("deterministic", True if second else None)  # None: no second run to compare
    report.reference["max_abs_diff_between_runs"] = worst
    if mutated:  # the cause, named: forward changes the model's own tensors on every call
        report.reference["mutated_by_forward"] = mutated
        names = ", ".join(mutated[:5]) + (f" and {len(mutated) - 5} more" if len(mutated) > 5 else "")
        report.problems.append(
            f"forward changes the model's state on every call ({names} differ after each run): no exported "
            "artifact, which holds one state, can agree with it; keep running statistics out of forward "
            "in eval mode"
        )
    elif report.reference["deterministic"] is False:
        report.problems.append(
            f"the eager reference is nondeterministic: two runs on the same inputs differ (max abs diff {worst:.3g}); "
            "a Dropout forced on, or random ops in forward, make every comparison meaningless"
        )


def constant_outputs(outputs, report: VerificationReport) -> dict[Case, set[str]]:
    """Float outputs whose reference is constant in some seeded cases but not in all: by case. Such a case is
    judged by the element rule alone (run._judged_by), and the report says where the output is constant. An
    output constant in every seeded case still fails closed (there is nothing to judge, compare.py)."""
    seeded = {case: outs for case, outs in outputs.items() if not case.probe}
    flat = {(case, name): _constant(value) for case, outs in seeded.items() for name, value in outs.items()}
    found: dict[Case, set[str]] = {}
    names = {name for _, name in flat}
    for name in sorted(names):
        where = [case for (case, n), constant in flat.items() if n == name and constant]
        if where and len(where) < sum(1 for (_, n) in flat if n == name):
            for case in where:
                found.setdefault(case, set()).add(name)
            at = ", ".join(case.label for case in sorted(where))
            report.reference.setdefault("constant_outputs", {})[name] = [case.label for case in sorted(where)]
            report.notes.append(
                f"eager's output {name!r} is constant at batch {at} (but not elsewhere): judged there by "
                "|actual - expected| alone"
            )
    return found


def _constant(value: np.ndarray) -> bool:
    """A float array of more than one element, every element the same."""
    return bool(value.size > 1 and np.issubdtype(value.dtype, np.floating) and np.all(value == value.flat[0]))


def failed_probes(result: RuntimeResult) -> list[str]:
    """One line per failing probe, naming it: 'fails on exact zeros (0 and -0) in `x` (the seeded draws pass)'."""
    seeded_pass = all(b.passed for b in result.batches if not b.probe)
    also = " (the seeded draws pass)" if seeded_pass else ""
    lines = []
    values = [b for b in result.batches if b.probe and b.probe != "size" and not b.passed]
    lines += [f"fails on {b.probe_text}{also}" for b in values]
    sizes = [b for b in result.batches if b.probe == "size" and not b.passed]
    if sizes:
        lines.append(f"fails at the probed size(s) {', '.join(b.label for b in sizes)}{also}")
    return lines


def shape_mismatch(outs, declared: dict, artifact: dict, case: Case, samples: int) -> str | None:
    """Where an output's shape breaks the interface: the manifest's shape (labels resolved for this
    case) or the artifact's own declaration. The batch is axis 0, concatenated over the case's batches."""
    sizes = {"batch": samples, **dict(case.sizes)}
    for name, value in outs.items():
        shape = tuple(value.shape)
        want = [sizes.get(d) if isinstance(d, str) else d for d in declared.get(name, shape)]
        own = artifact.get(name)
        own = None if own is None else [samples if i == 0 and d is None else d for i, d in enumerate(own)]
        for what, expected in (("the manifest declares", want), ("the artifact itself declares", own)):
            if expected is None:
                continue
            if len(expected) != len(shape) or any(
                e is not None and e != d for e, d in zip(expected, shape, strict=False)
            ):
                shown = ", ".join("?" if e is None else str(e) for e in expected)
                return f"output {name!r} has shape {shape} over {samples} samples where {what} ({shown})"
    return None


def unacknowledged_trace(manifest: Manifest, result: RuntimeResult, accepted: bool) -> list[str]:
    """A legacy ONNX export whose trace warned that it froze a value or a size needs the user's word.

    Tracing records the one path the example took; uniform random inputs may never take another,
    so a pass on them proves little. The user names --accept-tracer-warnings once they have checked.
    """
    entry = manifest.artifact(result.format)
    if accepted or entry is None or entry.details.get("exporter") != "legacy":
        return []
    warned = [w for w in entry.details.get("warnings", []) if any(m in w for m in TRACE_WARNINGS)]
    if not warned:
        return []
    return [
        f"exported by the legacy (tracing) ONNX exporter, which warned that it froze a value or a size "
        f"({warned[0][:120]}): inputs that take another path may never have been tried; check the model's "
        "branches, then pass --accept-tracer-warnings"
    ]


def frozen_axes(result: RuntimeResult, example_sizes: dict[str, int]) -> list[str]:
    """Name a dynamic axis the artifact froze: it passes exactly where that axis has the example's size."""
    sized = [b for b in result.batches if b.probe in ("", "size")]  # an edge-value probe fails for its values
    passing = [b for b in sized if b.passed]
    failing = [b for b in sized if not b.passed]
    found = []
    for label, size in example_sizes.items():

        def at(b: BatchResult, label: str = label) -> int | None:
            return b.batch_size if label == "batch" else b.sizes.get(label)

        if passing and failing and all(at(b) == size for b in passing) and all(at(b) != size for b in failing):
            others = ", ".join(sorted({str(at(b)) for b in failing}))
            found.append(
                f"{label} is frozen to {size}: it passes only where {label} is {size} (the export example's) and "
                f"fails at {label} {others}; make forward keep {label} symbolic (no int(x.shape[...]), no Python "
                "arithmetic on sizes)"
            )
    return found
