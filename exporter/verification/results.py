"""The verification report: result objects, their JSON form and the table people read (``render``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..artifacts.integrity import HashCheck
from ..notes import WARNING, Note
from ..tables import joined, text_table
from . import probes, tolerance
from .compare import OutputComparison

if TYPE_CHECKING:
    from .parameters import ParameterReport


@dataclass
class Divergence:
    """The first module whose output differs from eager's, or why none was named."""

    module: str | None  # its path ("" is the model itself); None: no divergence found, or cannot be opened up
    note: str | None = None  # when ``module`` is None: why
    type: str | None = None  # the module's class
    max_abs: float | None = None
    max_rel: float | None = None
    line: str | None = None  # the user's line that leads to it ("net.py:12: self.fc(x)")
    agreeing: int = 0  # module outputs compared before it that agree
    reason: str | None = None  # the comparison's first reason
    batch: str | None = None  # the batch it was found at
    seconds: float | None = None  # what localising took

    @classmethod
    def none(cls, note: str, agreeing: int = 0) -> Divergence:
        return cls(module=None, note=note, agreeing=agreeing)

    def text(self) -> str:
        """``first divergence: linear_relu_stack.2 (Linear) max abs diff 0.49 ...``, or why there is none."""
        if self.module is None:
            return str(self.note)
        text = f"first divergence: {self.module or '(the model itself)'} ({self.type}) max abs diff {self.max_abs:.3g}"
        if self.max_rel is not None:
            text += f", max rel diff {self.max_rel:.3g}"
        text += f"; the {self.agreeing} module(s) before it agree"
        if self.line:
            text += f"; called at {self.line}"
        return text


@dataclass
class BatchResult:
    batch_size: int
    samples: int
    sizes: dict[str, int] = field(default_factory=dict)  # other dynamic axes' sizes (seq=16); empty: none
    shape_error: str | None = None  # an output's shape breaks the declared interface
    draw: str = ""  # "normal": the widened sweep's normally drawn inputs
    outputs: list[OutputComparison] = field(default_factory=list)
    error: str | None = None  # the runtime raised: its first line
    probe: str = ""  # a probe (probes.py): "size", or "KIND.INPUT" for edge values; "": a seeded case

    @property
    def probe_text(self) -> str:
        """What an edge-value probe fed: ``exact zeros (0 and -0) in `x```; "" for any other batch."""
        if not self.probe or self.probe == "size":
            return ""
        kind, _, name = self.probe.partition(".")
        return f"{probes.VALUE_PROBES.get(kind, kind)} in `{name}`"

    @property
    def passed(self) -> bool:
        return self.error is None and self.shape_error is None and bool(self.outputs) and all(self.outputs)

    @property
    def label(self) -> str:
        extra = ", ".join(
            [
                *(f"{label}={size}" for label, size in self.sizes.items()),
                *([self.draw] if self.draw else []),
                *([self.probe_text] if self.probe_text else []),
            ]
        )
        return f"{self.batch_size} ({extra})" if extra else str(self.batch_size)


@dataclass
class RuntimeResult:
    runtime: str
    format: str
    artifact: str
    error: str | None = None  # not run at all: hash mismatch, load failure
    notes: list[Note] = field(default_factory=list)  # providers, tracing warnings
    batches: list[BatchResult] = field(default_factory=list)
    seconds: float = 0.0  # time spent inside infer() over all batches
    reasons: list[str] = field(default_factory=list)  # failures over all batches (pooled top-1 agreement)
    first_divergence: Divergence | None = None  # localize.py: the first module that differs, or why none; None: not run

    @property
    def passed(self) -> bool:
        return self.error is None and not self.reasons and bool(self.batches) and all(b.passed for b in self.batches)


@dataclass
class VerificationReport:
    artifact_dir: str
    model: str
    device: str
    inputs: str  # how the inputs were made
    samples: int
    batch_sizes: list[int]
    tolerances: dict[str, dict[str, dict[str, float]]]  # runtime -> output -> {"atol", "rtol"[, "min_agreement"]}
    nan_policy: str
    hashes: list[HashCheck] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)  # determinism of eager, model provenance
    runtimes: list[RuntimeResult] = field(default_factory=list)
    parameters: ParameterReport | None = None
    problems: list[str] = field(default_factory=list)  # failures not tied to one runtime
    record_notes: list[str] = field(default_factory=list)  # why the result could not be recorded (not in JSON)
    accuracy: dict[str, float | None] | None = None  # labelled inputs: per runtime (eager too), argmax == label
    gates: dict[str, str] = field(default_factory=dict)  # quantised runtime -> which int8 gate judged it, and how
    relaxed: list[str] = field(default_factory=list)  # rules the user relaxed by hand ("--atol 0.2 (20,000x ...)")
    judged_as: list[str] = field(default_factory=list)  # settings taken from the export's record, or overriding it
    sizes_tried: dict[str, list[int]] = field(default_factory=dict)  # dynamic axis label -> every size fed
    probes: dict[str, Any] | None = None  # {"samples", "values": probes fed, "skipped": over the budget}; None: off
    notes: list[str] = field(default_factory=list)  # facts about the reference a reader needs (constant outputs)

    @property
    def failures(self) -> list[str]:
        """Every mismatch, one line each, in the order a reader should fix them."""
        lines = list(self.problems)
        for h in self.hashes:
            if h.actual is None:
                lines.append(f"{h.path}: cannot be read ({h.error})")
            elif not h.ok:
                lines.append(
                    f"{h.path}: sha256 {h.actual} does not match the manifest's {h.expected}; the file was not loaded"
                )
        for r in self.runtimes:
            if r.error:
                lines.append(f"{r.runtime}: {r.error}")
            lines += [f"{r.runtime}: {reason}" for reason in r.reasons]
            for b in r.batches:
                if b.error:
                    lines.append(f"{r.runtime} at batch {b.label}: raised {b.error}")
                if b.shape_error:
                    lines.append(f"{r.runtime} at batch {b.label}: {b.shape_error}")
                for o in b.outputs:
                    lines += [f"{r.runtime} at batch {b.label}, {o.output}: {reason}" for reason in o.reasons]
            failed = r.error or any(not b.passed for b in r.batches)
            if failed:
                lines += [f"{r.runtime}: note: {w}" for w in r.notes if w.level == WARNING]
        if self.parameters:
            for name, art in self.parameters.artifacts.items():
                lines += [f"{name} parameters: {reason}" for reason in art.reasons]
        return lines

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["record_notes"]
        data["parameters"] = self.parameters.to_dict() if self.parameters else None
        for h, hd in zip(self.hashes, data["hashes"], strict=True):
            hd["ok"] = h.ok
        for r, rd in zip(self.runtimes, data["runtimes"], strict=True):
            rd["passed"] = r.passed
            for b, bd in zip(r.batches, rd["batches"], strict=True):
                bd["passed"] = b.passed
        data["passed"] = self.passed
        data["failures"] = self.failures
        return data

    def summary(self) -> dict[str, Any]:
        """The short form kept in manifest.json."""
        per_runtime = {}
        for r in self.runtimes:
            outs = [o for b in r.batches for o in b.outputs]
            diffs = [o.max_abs_diff for o in outs if o.max_abs_diff is not None]
            rels = [o.max_rel_diff for o in outs if o.max_rel_diff is not None]
            ranked = [o for o in outs if o.top1_agreement is not None]
            samples = sum(o.samples for o in ranked)
            per_runtime[r.runtime] = {
                "passed": r.passed,
                "max_abs_diff": max(diffs) if diffs else None,
                "max_rel_diff": max(rels) if rels else None,
                # pooled over batch sizes (and outputs), as the int8 gate judges it
                "top1_agreement": 1 - sum(o.top1_disagreements for o in ranked) / samples if samples else None,
            }
        return {
            "passed": self.passed,
            "samples": self.samples,
            "batch_sizes": self.batch_sizes,
            "tolerances": self.tolerances,
            "runtimes": per_runtime,
            "parameters_passed": self.parameters.passed if self.parameters else None,
            "failures": len(self.failures),
            **({"accuracy": self.accuracy} if self.accuracy is not None else {}),
        }

    def render(self) -> str:
        """The human report: header, runtime x batch table, parameters, notes, then the verdict and every failure."""
        return render(self)


# --- the table people read ----------------------------------------------------------------------

_HEAD = ("runtime", "batch", "samples", "max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "top1", "ties", "result")


def render(report: VerificationReport) -> str:
    """The human report: header, runtime x batch table, parameters, notes, then the verdict and every failure."""
    failures = report.failures
    out = _header(report)
    if failures:  # the cause first; the metrics that show it follow
        out += ["", *_verdict(failures)]
    out += ["", *_table(report.runtimes, probed=False)]
    if any(b.probe for r in report.runtimes for b in r.batches):
        out += ["", "probes (one batch each, beside the seeded draws):", *_table(report.runtimes, probed=True)]
    out += _accuracy_lines(report)
    if report.parameters:
        out += ["", *_parameters(report.parameters)]
    out += _notes(report, passed=not failures)
    out += ["", _last_line(report, failures)]
    diagnosis = _diagnosis(report.runtimes)
    if diagnosis:
        out += ["", "where and by how much:", *(f"  {line}" for line in diagnosis)]
    return joined(out)  # a name from the folder adds no line (a fake PASSED)


def _header(report: VerificationReport) -> list[str]:
    determinism = report.reference.get("deterministic")
    reference = {True: "deterministic over two runs", False: "NOT deterministic over two runs"}.get(
        determinism, "not run"
    )
    return [
        f"Verification of {report.artifact_dir} (model {report.model}, device {report.device})",
        f"inputs: {report.samples} samples, {report.inputs}, batch sizes {', '.join(map(str, report.batch_sizes))}",
        *_probe_lines(report),
        "tolerance: |actual - expected| <= atol + rtol * |expected|; " + _tolerance_text(report.tolerances),
        *(f"judging: {line}" for line in report.judged_as),
        f"files: {sum(h.ok for h in report.hashes)}/{len(report.hashes)} match their sha256 in the manifest",
        f"reference: eager PyTorch, {reference}",
    ]


def _probe_lines(report: VerificationReport) -> list[str]:
    """The sizes tried on each dynamic axis, and the edge values fed: new lines under ``inputs``."""
    if report.probes is None:
        return []
    sizes = "; ".join(f"{label} {', '.join(map(str, found))}" for label, found in report.sizes_tried.items())
    lines = [f"sizes tried: {sizes}"]
    if report.probes["values"]:
        lines.append(f"edge values tried: {', '.join(report.probes['values'])}")
    lines.append(f"probes: {report.probes['samples']} samples beside those, one batch per size or edge value")
    if report.probes["skipped"]:
        lines.append(f"probes left out for the time budget: {', '.join(report.probes['skipped'])}")
    lines += [f"probe not run: {line}" for line in report.probes.get("not_run", [])]
    return lines


def _table(runtimes: list[RuntimeResult], probed: bool) -> list[str]:
    """One row per runtime, batch and output: the metrics, and whether it passed; ``probed``: the probes' rows,
    else the seeded cases'."""
    rows: list[tuple[str, ...]] = [_HEAD]
    for r in runtimes:
        if r.error and not probed:
            rows.append((r.runtime, *["-"] * 9, "FAIL (not run)"))
        for b in r.batches:
            if bool(b.probe) != probed:
                continue
            if not b.outputs:
                rows.append(
                    (
                        r.runtime,
                        b.label,
                        str(b.samples),
                        *["-"] * 7,
                        "FAIL (shape)" if b.shape_error else "FAIL (raised)",
                    )
                )
            for o in b.outputs:
                result = "FAIL" if not b.passed else "FAIL (top-1)" if r.reasons else "pass"
                rows.append(
                    (
                        r.runtime if len(b.outputs) == 1 else f"{r.runtime}/{o.output}",
                        b.label,
                        str(b.samples),
                        *_metrics(o),
                        result,
                    )
                )
    lines = text_table(rows)
    if any(o.min_agreement is not None for r in runtimes for b in r.batches for o in b.outputs):
        lines.append(
            "* quantised runtimes: in brackets, the share whose class is eager's or within the quantisation bound "
            "of eager's maximum (a near tie); pass/fail uses the exact share, pooled over batch sizes: "
            "FAIL (top-1) marks the rows of a runtime whose pooled share is below the required one"
        )
    return lines


def _metrics(o: OutputComparison) -> tuple[str, ...]:
    cosine = "-" if o.cosine_similarity is None else f"{o.cosine_similarity:.6f}"
    diffs = (o.max_abs_diff, o.max_rel_diff, o.mean_abs_diff, o.p99_abs_diff)
    return (*(_num(d) for d in diffs), cosine, _agreement(o), str(o.tied_samples))


def _parameters(p: ParameterReport) -> list[str]:
    lines = [
        f"parameters (eager: {p.eager_total:,} in {len(p.parameters)} tensors, tied counted once; "
        f"{len(p.buffers)} buffer(s) listed apart)"
    ]
    rows = [("runtime", "total", "result", "how")]
    rows += [
        (name, f"{art.total:,}", "pass" if art.passed else "FAIL", art.explanation) for name, art in p.artifacts.items()
    ]
    return [*lines, *text_table(rows), "", *_parameter_table(p)]


def _notes(report: VerificationReport, passed: bool) -> list[str]:
    """Each runtime's notes; its warnings too on a pass (on a failure they are among the failures)."""
    lines = [f"note: {r.runtime}: {n}" for r in report.runtimes for n in r.notes if n.level != WARNING]
    lines += [f"note: {n}" for n in report.notes]
    against = report.reference.get("against_float32")
    if against:
        diffs = ", ".join(f"{rt} {_num(d)}" for rt, d in against.items())
        lines.append(f"note: against the model in float32 (same weights, upcast; not judged), max abs diff: {diffs}")
    if passed:
        lines += [f"warning: {r.runtime}: {n}" for r in report.runtimes for n in r.notes if n.level == WARNING]
    if report.reference.get("changed_by_first_call"):
        names = ", ".join(report.reference["changed_by_first_call"])
        lines.append(f"note: forward changed {names} on its first call only (an in-place clamp?); later calls did not")
    if report.reference.get("widened"):
        lines.append(
            "note: an export warned that a trace froze a value or a size: verified at more batch sizes and "
            "on normally drawn inputs too"
        )
    return lines


def _verdict(failures: list[str]) -> list[str]:
    """Every failure, one line each, under the count: what a reader must fix."""
    return [f"FAILED: {len(failures)} problem(s)", *(f"  - {line}" for line in failures)]


def _last_line(report: VerificationReport, failures: list[str]) -> str:
    """The verdict, with every rule the user relaxed by hand: a pass under a loosened tolerance must say so."""
    if failures:
        line = f"FAILED: {len(failures)} problem(s), listed under the header"
    else:
        names = ", ".join(["eager", *(r.runtime for r in report.runtimes)])
        line = f"PASSED: {names} agree on {report.samples} samples, and the parameters match"
    return line + (f"; judged under {', '.join(report.relaxed)}" if report.relaxed else "")


def _diagnosis(runtimes: list[RuntimeResult]) -> list[str]:
    """Per failing runtime: the tolerance each failing output needed, and the first divergence."""
    lines = []
    for r in runtimes:
        needed: dict[str, list[dict[str, Any]]] = {}
        for b in r.batches:
            for o in b.outputs:
                if o.required_tolerance is not None:
                    needed.setdefault(o.output, []).append(o.required_tolerance)
        outputs = {o.output for b in r.batches for o in b.outputs}
        for name, found in needed.items():
            lines.append(
                tolerance.line(r.runtime if len(outputs) == 1 else f"{r.runtime}/{name}", tolerance.pooled(found))
            )
        if r.first_divergence is not None:
            lines.append(f"{r.runtime}: {r.first_divergence.text()}")
    return lines


MAX_PARAMETER_ROWS = 40  # beyond this the per-parameter table is cut; verification.json has every row


def _parameter_table(p: ParameterReport) -> list[str]:
    """Every eager parameter (name, shape, count) and where it is in each artifact."""
    runtimes = list(p.artifacts)
    rows = [("parameter", "shape", "count", *runtimes)]
    for param in p.parameters[:MAX_PARAMETER_ROWS]:
        name = param.name + (f" (= {', '.join(param.aliases)})" if param.aliases else "")
        rows.append(
            (name, str(list(param.shape)), f"{param.count:,}", *(_where(p.artifacts[r], param.name) for r in runtimes))
        )
    lines = text_table(rows)
    if len(p.parameters) > MAX_PARAMETER_ROWS:
        lines.append(f"... {len(p.parameters) - MAX_PARAMETER_ROWS} more parameters in verification.json")
    return lines


def _where(art, name: str) -> str:
    altered = {a["name"] for a in art.altered}
    if name in altered:
        return "rewritten (fold)" if art.rewritten else "CHANGED"
    if name in art.matched:
        return "matched"
    if name in art.unused:
        return "unused: absent"
    if name in art.folded:
        return "folded or quantised" if art.runtime.endswith("int8") else "folded"
    return "-"


def _accuracy_lines(report: VerificationReport) -> list[str]:
    """Accuracy per runtime on labelled inputs, and which gate judged each quantised runtime."""
    lines = []
    if report.accuracy is not None:
        shares = ", ".join(f"{rt} {'-' if a is None else f'{100 * a:.2f}%'}" for rt, a in report.accuracy.items())
        lines.append(f"accuracy on {report.samples} labelled samples: {shares}")
    for runtime, line in report.gates.items():
        lines.append(f"int8 gate: {line}" if len(report.gates) == 1 else f"int8 gate, {runtime}: {line}")
    return lines


def _agreement(o: OutputComparison) -> str:
    if o.top1_agreement is None:
        return "-"
    text = f"{100 * o.top1_agreement:.1f}%"
    if o.min_agreement is not None and o.top1_agreement_within_tolerance is not None:  # quantised: near ties too
        text += f" ({100 * o.top1_agreement_within_tolerance:.1f}%*)"
    return text


def _tolerance_text(tolerances: dict[str, dict[str, dict[str, float]]]) -> str:
    """One phrase per distinct policy: 'torchscript, onnxruntime: atol 1e-05, rtol 0.0001; ...'."""
    groups: dict[str, list[str]] = {}
    for runtime, per_output in tolerances.items():
        for output, t in per_output.items():
            text = f"atol {t['atol']:g}, rtol {t['rtol']:g}"
            if "min_agreement" in t:
                text += f", top-1 agreement >= {100 * t['min_agreement']:g}%"
            if "max_accuracy_drop" in t:
                text = f"accuracy at most {100 * t['max_accuracy_drop']:g} points below eager's (elements not judged)"
            name = runtime if len(per_output) == 1 else f"{runtime}/{output}"
            groups.setdefault(text, []).append(name)
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items())


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"
