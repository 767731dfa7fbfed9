"""The verification report: result objects, their JSON form and the table people read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..artifacts.integrity import HashCheck
from ..notes import WARNING, Note
from ..tables import text_table
from . import tolerance
from .compare import OutputComparison
from .parameters import ParameterReport


@dataclass
class BatchResult:
    batch_size: int
    samples: int
    sizes: dict[str, int] = field(default_factory=dict)  # other dynamic axes' sizes (seq=16); empty: none
    shape_error: str | None = None  # an output's shape breaks the declared interface
    draw: str = ""  # "normal": the widened sweep's normally drawn inputs
    outputs: list[OutputComparison] = field(default_factory=list)
    error: str | None = None  # the runtime raised: its first line

    @property
    def passed(self) -> bool:
        return self.error is None and self.shape_error is None and bool(self.outputs) and all(self.outputs)

    @property
    def label(self) -> str:
        extra = ", ".join(
            [*(f"{label}={size}" for label, size in self.sizes.items()), *([self.draw] if self.draw else [])]
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
    # localize.py: the first module whose output differs ({"module", "type", "max_abs", ...}), or
    # {"module": None, "note": why none was found or why the artifact cannot be opened up}; None: not run
    first_divergence: dict[str, Any] | None = None

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
        """The human report: header, runtime x batch table, parameters, then every failure."""
        out = [
            f"Verification of {self.artifact_dir} (model {self.model}, device {self.device})",
            f"inputs: {self.samples} samples, {self.inputs}, batch sizes {', '.join(map(str, self.batch_sizes))}",
            "tolerance: |actual - expected| <= atol + rtol * |expected|; " + _tolerance_text(self.tolerances),
        ]
        ok_hashes = sum(h.ok for h in self.hashes)
        out.append(f"files: {ok_hashes}/{len(self.hashes)} match their sha256 in the manifest")
        det = self.reference.get("deterministic")
        out.append(
            "reference: eager PyTorch, "
            + (
                "deterministic over two runs"
                if det
                else "NOT deterministic over two runs"
                if det is False
                else "not run"
            )
        )
        out.append("")
        head = (
            "runtime",
            "batch",
            "samples",
            "max_abs",
            "max_rel",
            "mean_abs",
            "p99_abs",
            "cosine",
            "top1",
            "ties",
            "result",
        )
        rows = [head]
        for r in self.runtimes:
            if r.error:
                rows.append((r.runtime, "-", "-", "-", "-", "-", "-", "-", "-", "-", "FAIL (not run)"))
            for b in r.batches:
                for o in b.outputs or [None]:
                    if o is None:
                        state = "FAIL (shape)" if b.shape_error else "FAIL (raised)"
                        rows.append((r.runtime, b.label, str(b.samples), *["-"] * 7, state))
                        continue
                    rows.append(
                        (
                            r.runtime if len(b.outputs) == 1 else f"{r.runtime}/{o.output}",
                            b.label,
                            str(b.samples),
                            _num(o.max_abs_diff),
                            _num(o.max_rel_diff),
                            _num(o.mean_abs_diff),
                            _num(o.p99_abs_diff),
                            "-" if o.cosine_similarity is None else f"{o.cosine_similarity:.6f}",
                            _agreement(o),
                            str(o.tied_samples),
                            "FAIL" if not b.passed else "FAIL (top-1)" if r.reasons else "pass",
                        )
                    )
        out += text_table(rows)
        if any(o.min_agreement is not None for r in self.runtimes for b in r.batches for o in b.outputs):
            out.append(
                "* quantised runtimes: in brackets, the share whose class is eager's or within the quantisation bound "
                "of eager's maximum (a near tie); pass/fail uses the exact share, pooled over batch sizes: "
                "FAIL (top-1) marks the rows of a runtime whose pooled share is below the required one"
            )
        out += _accuracy_lines(self)
        if self.parameters:
            p = self.parameters
            out += [
                "",
                f"parameters (eager: {p.eager_total:,} in {len(p.parameters)} tensors, tied counted once; "
                f"{len(p.buffers)} buffer(s) listed apart)",
            ]
            rows = [("runtime", "total", "result", "how")]
            for name, art in p.artifacts.items():
                rows.append((name, f"{art.total:,}", "pass" if art.passed else "FAIL", art.explanation))
            out += text_table(rows)
            out += ["", *_parameter_table(p)]
        for r in self.runtimes:
            for note in r.notes:
                if note.level != WARNING:
                    out.append(f"note: {r.runtime}: {note}")
        against = self.reference.get("against_float32")
        if against:
            diffs = ", ".join(f"{rt} {_num(d)}" for rt, d in against.items())
            out.append(f"note: against the model in float32 (same weights, upcast; not judged), max abs diff: {diffs}")
        failures = self.failures
        if not failures:  # on failure they are in the list below; on a pass they must still be seen
            out += [f"warning: {r.runtime}: {n}" for r in self.runtimes for n in r.notes if n.level == WARNING]
        if self.reference.get("changed_by_first_call"):
            names = ", ".join(self.reference["changed_by_first_call"])
            out.append(
                f"note: forward changed {names} on its first call only (an in-place clamp?); later calls did not"
            )
        if self.reference.get("widened"):
            out.append(
                "note: an export warned that a trace froze a value or a size: verified at more batch sizes and "
                "on normally drawn inputs too"
            )
        out.append("")
        if failures:
            out.append(f"FAILED: {len(failures)} problem(s)")
            out += [f"  - {line}" for line in failures]
        else:
            names = ", ".join(["eager", *(r.runtime for r in self.runtimes)])
            out.append(f"PASSED: {names} agree on {self.samples} samples, and the parameters match")
        diagnosis = _diagnosis(self.runtimes)
        if diagnosis:
            out += ["", "where and by how much:", *(f"  {line}" for line in diagnosis)]
        return "\n".join(out)


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
            lines.append(f"{r.runtime}: {divergence_text(r.first_divergence)}")
    return lines


def divergence_text(found: dict[str, Any]) -> str:
    """``first divergence: linear_relu_stack.2 (Linear) max abs diff 0.49 ...``, or why there is none."""
    if found.get("module") is None:
        return found["note"]
    module = found["module"] or "(the model itself)"
    text = f"first divergence: {module} ({found['type']}) max abs diff {found['max_abs']:.3g}"
    if found.get("max_rel") is not None:
        text += f", max rel diff {found['max_rel']:.3g}"
    text += f"; the {found['agreeing']} module(s) before it agree"
    if found.get("line"):
        text += f"; called at {found['line']}"
    return text


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
