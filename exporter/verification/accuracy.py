"""Labelled data: accuracy per runtime, and the int8 gate as an accuracy drop.

An ``--inputs`` .npz may hold a ``labels`` array beside its samples (``inputs``, or one array
per input name): one class index per sample. Each runtime's accuracy is the share of samples
whose argmax over the first output's classes is the label, eager's included. With labels and
``VerifyConfig.max_accuracy_drop``, a quantised runtime is judged by how far its accuracy falls
below eager's, instead of by top-1 agreement with eager on the same inputs: what a user of an
int8 model cares about, measured on data the model was trained for rather than on random inputs.

The drop is counted in samples (eager's correct minus the runtime's correct, over all labelled
samples), so a threshold met exactly passes: no rounding of shares decides a verdict.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Tolerance
from ..errors import InputSpecError
from .compare import OutputComparison

if TYPE_CHECKING:
    from ..config import VerifyConfig
    from ..interface import OutputSpec
    from .results import VerificationReport


def check_range(labels: Mapping[Hashable, np.ndarray], classes: int, output: str, origin: str) -> None:
    """Every label a class of the first output (0 to classes - 1); InputSpecError otherwise."""
    values = np.concatenate(list(labels.values()))
    bad = values[(values < 0) | (values >= classes)]
    if len(bad):
        raise InputSpecError(
            f"{origin}: label {int(bad[0])} is not a class of output {output!r} (0 to {classes - 1}); "
            f"{len(bad)} label(s) out of range"
        )


def classes_of(shape: tuple[int | str, ...]) -> int | None:
    """The number of classes of an output shaped (batch, classes); None when the manifest does not fix it."""
    return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None


def accuracies(
    outputs: Mapping[str, Mapping[Hashable, Mapping[str, np.ndarray]]],
    labels: Mapping[Hashable, np.ndarray],
    output: str,
) -> dict[str, float | None]:
    """Per runtime, the share of labelled samples whose argmax of ``output`` is the label; None for a
    runtime that did not produce every case (it raised, or was not run)."""
    return {runtime: _share(correct(per_case, labels, output), labels) for runtime, per_case in outputs.items()}


def correct(per_case: Mapping[Hashable, Mapping[str, np.ndarray]], labels: Mapping[Hashable, np.ndarray], output: str):
    """Samples whose argmax is the label, over every case; None when a case's output is missing or misshapen."""
    total = 0
    for case, wanted in labels.items():
        got = per_case.get(case, {}).get(output)
        if got is None or got.ndim != 2 or len(got) != len(wanted):
            return None
        total += int((np.argmax(got, axis=1) == wanted).sum())
    return total


def _share(count: int | None, labels: Mapping[Hashable, np.ndarray]) -> float | None:
    samples = sum(len(v) for v in labels.values())
    return None if count is None or not samples else count / samples


def gate(tolerance: Tolerance, by_accuracy: bool) -> Tolerance:
    """A quantised runtime's tolerance when the accuracy drop judges it: no top-1 agreement bar, and element
    differences measured but not judged (int8 moves a trained model's logits by more than any fixed bound
    that still means something: measured max abs diff 0.08 on the trained digits mlp, whose accuracy it
    leaves unchanged). Shapes, dtypes and NaN/Inf are still judged."""
    return replace(tolerance, min_agreement=None, elementwise=False) if by_accuracy else tolerance


@dataclass(frozen=True)
class AccuracyGate:
    """The int8 gate on labelled data: a quantised runtime passes when its accuracy is at most
    ``max_drop`` (a share: 0.005 is half a point) below eager's."""

    max_drop: float
    samples: int

    def judge(self, eager: int | None, runtime: int | None) -> tuple[str, str | None]:
        """(the report's gate line, the failure reason or None) from the correct counts of eager and the runtime."""
        if eager is None or runtime is None:
            reason = "no accuracy to judge: eager or this runtime did not run on every labelled sample"
            return f"accuracy drop not measured (labelled data, {self.samples} samples)", reason
        drop = (eager - runtime) / self.samples
        points, bound = 100 * drop, 100 * self.max_drop
        # counts, not shares: a drop of exactly max_drop passes whatever the float rounding of the shares
        passed = eager - runtime <= self.max_drop * self.samples + 1e-9
        line = (
            f"accuracy drop {points:.2f} points {'<=' if passed else '>'} {bound:g} "
            f"(labelled data, {self.samples} samples)"
        )
        if passed:
            return line, None
        reason = (
            f"accuracy {100 * runtime / self.samples:.2f}% is {points:.2f} points below eager's "
            f"{100 * eager / self.samples:.2f}% on {self.samples} labelled samples; --max-accuracy-drop allows "
            f"{bound:g}"
        )
        return line, reason


def agreement_line(comparisons: list[OutputComparison]) -> str | None:
    """The report's gate line for a quantised runtime judged by top-1 agreement with eager (None: not judged)."""
    judged = [c for c in comparisons if c.min_agreement is not None and c.samples]
    if not judged:
        return None
    samples = sum(c.samples for c in judged)
    share = 1 - sum(c.top1_disagreements for c in judged) / samples
    required = judged[0].min_agreement
    return (
        f"top-1 agreement with eager {100 * share:.2f}% {'>=' if share >= required else '<'} "
        f"{100 * required:g}% ({samples:,} samples)"
    )


def check_inputs(feeds: Any, config: VerifyConfig, output: OutputSpec) -> bool:
    """Refuse labels that do not fit the first output, and --max-accuracy-drop without labels (InputSpecError);
    True when the accuracy drop judges the quantised runtimes."""
    if config.max_accuracy_drop is not None and feeds.labels is None:
        raise InputSpecError(f"--max-accuracy-drop needs labels: {config.inputs_path} holds no labels array")
    check_labels(feeds.labels, output.shape, output.name, feeds.origin)
    return config.max_accuracy_drop is not None


def check_labels(labels: Mapping[Hashable, np.ndarray] | None, shape: tuple, output: str, origin: str) -> None:
    """Labels need a first output shaped (batch, classes), and a class of it each; InputSpecError otherwise.
    ``shape``: the output's shape as the manifest records it, or as eager produced it."""
    if labels is None:
        return
    if len(shape) != 2:
        raise InputSpecError(
            f"{origin}: labels need a first output of shape (batch, classes); {output!r} has shape {list(shape)}"
        )
    classes = classes_of(tuple(shape))
    if classes is not None:
        check_range(labels, classes, output, origin)


def record(
    report: VerificationReport,
    outputs: Mapping[str, Mapping[Hashable, Mapping[str, np.ndarray]]],
    labels: Mapping[Hashable, np.ndarray] | None,
    output: str,
    max_drop: float | None,
    quantized: set[str],
) -> None:
    """Accuracy per runtime (with labels), and for each quantised runtime the gate that judged it: the accuracy
    drop (``max_drop`` given, with labels; its failure goes to the runtime's reasons) or top-1 agreement."""
    if labels is not None:
        report.accuracy = accuracies(outputs, labels, output)
    samples = sum(len(v) for v in labels.values()) if labels is not None else 0
    eager = correct(outputs.get("eager", {}), labels, output) if labels is not None else None
    for result in report.runtimes:
        if result.runtime not in quantized or result.error:
            continue
        if max_drop is not None and labels is not None:
            got = correct(outputs.get(result.runtime, {}), labels, output)
            line, reason = AccuracyGate(max_drop, samples).judge(eager, got)
            if reason:
                result.reasons.append(reason)
            for per_output in report.tolerances.get(result.runtime, {}).values():
                per_output["max_accuracy_drop"] = max_drop
        else:
            line = agreement_line([o for b in result.batches for o in b.outputs])
        if line:
            report.gates[result.runtime] = line
