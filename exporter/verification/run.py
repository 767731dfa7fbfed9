"""The stages of ``verify``, as Polygraphy separates running from comparing.

1. ``inputs``: the seeded input set (or the user's file), and each file's hash check;
2. ``expected``: the eager model rebuilt (or given) and run, twice for the first batch of each case;
   then the eager model is let go (its outputs and parameter digests kept): no runtime loads beside it;
3. per artifact, ``run``: loaded through ``runners.open_artifact`` (checked private copies), every
   case run, its tensors accounted for while it is loaded, then released; ``compare``: every
   output of every case against eager's;
4. ``judge``: what no single comparison shows (frozen axes, unacknowledged traces, trust, the int8
   gate, parameters), then the report is recorded in the folder.

Every problem is collected into one report rather than stopping at the first.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from torch import nn

from .. import formats, notes, runners
from ..artifacts import trust
from ..artifacts.integrity import HashCheck, check_all
from ..artifacts.manifest import ArtifactEntry, Manifest
from ..config import HEAVY_FLOPS_PER_SAMPLE, LARGE_MODEL_PARAMETERS, Tolerance, VerifyConfig
from ..eager import reference
from ..errors import (
    ArtifactFileError,
    ArtifactLoadError,
    ExporterError,
    InputSpecError,
    ManifestError,
    ReferenceUnavailable,
    first_line,
)
from ..notes import Note
from ..progress import Progress, telling
from . import accuracy, expected, gates, inputs, judging, oracle, probes, record
from .compare import OutputComparison, pooled_agreement, small_sample_note
from .inputs import Case, InputSet
from .parameters import Accounting
from .results import BatchResult, RuntimeResult, VerificationReport

Outputs = dict[Case, dict[str, np.ndarray]]  # per case, each output concatenated over its batches


@dataclass
class Verification:
    """One verification in progress: what is verified, how, and the report so far."""

    folder: Path
    manifest: Manifest
    config: VerifyConfig
    device: object  # torch.device
    feeds: InputSet
    report: VerificationReport
    progress: Progress | None = None
    staged: bool = False  # the folder is export's own staging folder: its files were hashed as written
    lean: bool = False  # a model of LARGE_MODEL_PARAMETERS or more: ONNX Runtime without weight prepacking
    by_accuracy: bool = False  # quantised runtimes judged by their accuracy drop on labelled data
    outputs: dict[str, Outputs] = field(default_factory=dict)  # runtime -> its outputs ("eager" first)
    skipped: list[str] = field(default_factory=list)  # runtimes not loaded: the folder is not trusted
    constant: dict[Case, set[str]] = field(default_factory=dict)  # outputs constant in this case only (gates.constant)

    @property
    def interface(self):
        return self.manifest.interface

    @property
    def checked(self) -> set[str]:
        return {h.path for h in self.report.hashes if h.ok}


def verify_folder(
    folder: Path,
    config: VerifyConfig,
    model: nn.Module | reference.Held | None,
    write: bool,
    progress: Progress | None,
    staged: bool,
) -> VerificationReport:
    """``model``: the eager reference (None: rebuilt from the manifest); a ``reference.Held`` is let go
    before any runtime loads, so that the weights are held once (eager's outputs and digests are kept)."""
    identity = record.identity(folder) if folder.is_dir() else None  # the folder judged: its verdict goes there only
    manifest = Manifest.load(folder)
    config, judged_as = judging.resolve(config, manifest.judging)  # what judged the export, unless given again
    judging.check_missing(config, manifest.interface)
    run = _inputs(folder, manifest, config, progress, staged)
    run.report.judged_as = judged_as
    if model is None:
        try:
            held = _rebuilt(run)
        except ReferenceUnavailable as error:
            _without_reference(run, error)
            if write:
                record.record(folder, manifest, run.report, identity)
            return run.report
        run.report.reference["state_sha256"] = reference.state_sha256(held.model)
    else:
        held = model if isinstance(model, reference.Held) else reference.Held.given(model)
    del model  # from here on only ``held`` holds it
    accounting = _expected(run, held)
    held.release()  # eager's outputs and digests are kept: no runtime loads beside the eager weights
    gc.collect()
    for entry in manifest.artifacts:
        _artifact(run, entry, accounting)
        gc.collect()  # a loaded TorchScript module holds reference cycles: free its weights before the next
    _after(run, held)
    _judge(run, accounting)
    if config.save_outputs:
        record.save_outputs(config.save_outputs, run.outputs)
    if write:
        record.record(folder, manifest, run.report, identity)
    return run.report


# --- 1. inputs and hashes -----------------------------------------------------------------------


def _inputs(folder: Path, manifest: Manifest, config: VerifyConfig, progress, staged: bool) -> Verification:
    """The input set, the report's skeleton and every file's hash check."""
    device = reference.device_for(config.device, manifest.device)
    interface = manifest.interface
    lean = int(manifest.model.get("parameters") or 0) >= LARGE_MODEL_PARAMETERS  # weights held once where possible
    large = lean or int(manifest.model.get("flops_per_sample") or 0) >= HEAVY_FLOPS_PER_SAMPLE  # one batch per case
    if config.inputs_path is not None:
        first = config.batch_sizes[0] if config.batch_sizes else None
        feeds = InputSet.load(config.inputs_path, interface.inputs, first)
    else:
        quantized = any(_quantized(entry) for entry in manifest.artifacts)
        sweep = gates.sweep(config, manifest, interface.labels)
        ranges = _ranges(manifest)
        feeds = InputSet.generate(
            interface.inputs, config, manifest.export_batch, interface.labels, quantized, sweep, large, ranges
        )
    if config.save_inputs:
        feeds.save(config.save_inputs)
    by_accuracy = accuracy.check_inputs(feeds, config, interface.outputs[0])  # the int8 gate on labelled data
    report = VerificationReport(
        artifact_dir=str(folder),
        model=str(manifest.model.get("name")),
        device=str(device),
        inputs=feeds.origin,
        samples=feeds.samples,
        batch_sizes=feeds.batch_sizes,
        tolerances={},
        nan_policy=config.nan_policy,
    )
    if staged:  # hashed as this process wrote them into its private staging folder
        report.hashes = [HashCheck(a.path, a.sha256, a.sha256) for a in manifest.artifacts]
    else:
        report.hashes = check_all(folder, manifest.artifacts)
    report.reference["widened"] = any(case.draw for case in feeds.groups)
    report.sizes_tried = feeds.sizes_tried()
    if feeds.plan is not None:
        report.probes = {
            "samples": feeds.probe_samples,
            "values": [f"{probes.VALUE_PROBES[kind]} in `{name}`" for kind, name in feeds.plan.values],
            "skipped": feeds.plan.skipped,
        }
    floats = [o.dtype for o in interface.outputs if o.dtype.startswith(("float", "bfloat"))]
    report.relaxed = config.relaxed(floats[0] if floats else "float32")
    return Verification(folder, manifest, config, device, feeds, report, progress, staged, lean, by_accuracy)


def _ranges(manifest: Manifest) -> dict[str, tuple[int, int]]:
    """Each dynamic axis's size range: as recorded at export, else the default (judging.default_range)."""
    try:
        return judging.size_ranges(manifest.interface, manifest.export_batch, judging.declared_ranges(manifest.judging))
    except InputSpecError as error:
        raise ManifestError(f"manifest.json: {error}") from None


def _without_reference(run: Verification, error: ReferenceUnavailable) -> None:
    """Without a reference nothing can be compared; the report still lists every file that failed."""
    run.report.problems.append(f"the eager reference cannot be rebuilt: {error}")
    run.report.runtimes = [
        RuntimeResult(formats.runtime_name(a.format), a.format, a.path, error="not run: no eager reference")
        for a in run.manifest.artifacts
        if a.format in formats.FORMATS
    ]


# --- 2. eager: the reference outputs, then let go -------------------------------------------------


def _rebuilt(run: Verification) -> reference.Held:
    """The eager model rebuilt from the manifest, and how to rebuild it again after the runtimes
    (its digest problems are reported once, from the first build)."""
    args = (run.folder, run.manifest, run.config, run.device)
    return reference.Held(reference.rebuild(*args, run.report.problems), lambda: reference.rebuild(*args, []))


def _expected(run: Verification, held: reference.Held) -> Accounting:
    """Eager's outputs on every case, and the parameters every artifact is accounted against."""
    model = held.model
    run.outputs["eager"] = expected.run_eager(
        model, run.device, run.interface, run.feeds, run.report, run.config, run.progress
    )
    run.constant = gates.constant_outputs(run.outputs["eager"], run.report)
    return Accounting.of(model, _usage_example(run), run.config.allow_unused, run.by_accuracy)


def _after(run: Verification, held: reference.Held) -> None:
    """What needs the eager model once every runtime has gone (had again, then let go): where a failing
    runtime departs from eager, and what half precision itself costs."""
    from .localize import localize_runtimes, wanted

    oracle.rescue(run, held)  # before localising: a runtime closer to float64 than eager is has not failed
    config, manifest = run.config, run.manifest
    half = manifest.model.get("dtype") in ("float16", "bfloat16")
    if not half and not wanted(run.report, config):
        return
    if held.released and run.progress is not None:
        run.progress("verify: the eager model again (it was let go while the runtimes ran)")
    model = held.model
    if wanted(run.report, config):
        localize_runtimes(
            run.report, run.folder, manifest, run.checked, model, run.device, run.feeds, config, run.staged
        )
    if half:
        run.report.reference["against_float32"] = expected.against_float32(
            model, run.device, run.interface, run.feeds, run.outputs
        )
    held.release()


# --- 3. each artifact: run, account, compare ------------------------------------------------------


def _artifact(run: Verification, entry: ArtifactEntry, accounting: Accounting) -> None:
    """One artifact's result: loaded (unless trust or a hash check forbids), run, accounted, compared."""
    if entry.format in formats.SIDE_FILES:
        return  # hash-checked above, used by the reference or by its model file, not a runtime
    if entry.format not in formats.FORMATS:
        run.report.problems.append(f"{entry.path}: unknown format {entry.format!r}; this exporter cannot check it")
        return
    tolerances = _tolerances(run, entry)
    result = RuntimeResult(formats.runtime_name(entry.format), entry.format, entry.path)
    run.report.runtimes.append(result)
    run.report.tolerances[result.runtime] = {name: tolerance_dict(t) for name, t in tolerances.items()}
    if formats.FORMATS[entry.format].runs_code and run.manifest.refusal(run.config.trust):
        result.error = "not loaded: the folder is not trusted (see above)"
        run.skipped.append(result.runtime)
        return
    result.notes += notes.recorded(entry.details)
    if any(e.path not in run.checked for e in (entry, *run.manifest.side_entries(entry))):
        result.error = "not run: its file or a file it needs failed the hash check"
        return
    try:
        with runners.open_artifact(
            run.folder, run.manifest, entry, run.device, trust=True, staged=run.staged, lean=run.lean
        ) as runner:  # trust was checked above; the copies are checked again as they are made
            ran = _run(run, runner, result)
            result.batches = _compare(run, ran, tolerances)
            _account(run, runner, result, accounting)  # while loaded: its outputs' agreement proves its folds
    except (ManifestError, ArtifactFileError):
        raise  # a hostile or malformed file (external data outside the folder, a cycle): refuse outright
    except ArtifactLoadError as error:
        result.error = str(error)
        return
    except ExporterError as error:  # a file missing, or changed since its check, as it was copied
        result.error = f"not run: {first_line(error)}"
        return
    run.outputs[result.runtime] = ran.outputs
    _pool(result, tolerances)


def _tolerances(run: Verification, entry: ArtifactEntry) -> dict[str, Tolerance]:
    """Each output's tolerance for this artifact: its dtype's, under the int8 policy when it is quantised."""
    q = _quantized(entry)
    return {
        o.name: accuracy.gate(run.config.tolerance(o.dtype, q), run.by_accuracy and q) for o in run.interface.outputs
    }


@dataclass
class _Ran:
    """What one runtime gave: outputs per case, the first line of what it raised per case, its declared shapes."""

    outputs: Outputs
    raised: dict[Case, str]
    declared: dict[str, list[int | None]]


def _run(run: Verification, runner: runners.Runner, result: RuntimeResult) -> _Ran:
    """Every case through the loaded runtime, one batch at a time; what it raised is kept per case."""
    ran = _Ran({}, {}, runner.declared_shapes())
    feeds = telling(run.feeds, run.progress, f"verify: {result.runtime}")
    for case in run.feeds.groups:
        try:
            ran.outputs[case] = runner.infer_all(feeds.batches(case))
        except Exception as error:
            ran.raised[case] = first_line(error)
    result.notes += runner.notes
    result.seconds = sum(runner.inference_times)
    return ran


def _account(run: Verification, runner, result: RuntimeResult, accounting: Accounting) -> None:
    try:
        found = runner.tensors()
    except Exception as error:
        run.report.problems.append(f"{result.runtime}: cannot read its tensors: {first_line(error)}")
    else:
        accounting.add(result, found)


def _compare(run: Verification, ran: _Ran, tolerances: dict[str, Tolerance]) -> list[BatchResult]:
    """Each case against eager's outputs: what it raised, its shapes, then every output by its tolerance."""
    expected_outputs = run.outputs["eager"]
    declared = {o.name: o.shape for o in run.interface.outputs}
    batches = []
    for case in run.feeds.groups:
        samples = run.feeds.count(case)
        if case.probe and case not in expected_outputs:
            continue  # eager itself cannot run this probe: the report says so (expected.run_eager), nothing to judge
        batch = BatchResult(
            batch_size=case.batch, samples=samples, sizes=dict(case.sizes), draw=case.draw, probe=case.probe
        )
        batches.append(batch)
        if case in ran.raised:
            batch.error = ran.raised[case]
            continue
        outs = ran.outputs[case]
        batch.shape_error = gates.shape_mismatch(outs, declared, ran.declared, case, samples)
        if batch.shape_error:
            continue
        if case not in expected_outputs:
            batch.error = "no reference output at this batch size (eager failed)"
            continue
        for name, tol in tolerances.items():
            reference = expected_outputs[case][name]
            tol, nan_policy, edge = _judged_by(run, case, name, tol)
            batch.outputs.append(OutputComparison.from_arrays(name, reference, outs[name], tol, nan_policy, edge))
    return batches


def _judged_by(run: Verification, case: Case, name: str, tol: Tolerance) -> tuple[Tolerance, str, bool]:
    """The tolerance, NaN policy and edge flag one output of one case is judged by.

    An edge-value probe is judged by the element rule alone: its inputs can make an output constant
    or tiny (LayerNorm of a constant row gives its bias), where the whole-output gates would judge
    nothing but rounding; the seeded cases have applied them. Non-finite values where eager has them
    pass when the runtime has the same (``edge``: even everywhere): an edge value inside the declared
    range is the model's own, not the export's. Missing-value probes keep the user's NaN policy. A
    quantised runtime's probe outputs are measured, not judged element-wise (its error grows with the
    activations' range). A seeded case whose reference output is constant while other cases' are not
    (a norm over the batch at batch 1) is judged by the element rule too, and the report says so.
    """
    probe = case.value_probe
    if probe is not None:
        loose = replace(
            tol, scale=None, min_cosine=None, top1=False, elementwise=tol.elementwise and tol.min_agreement is None
        )
        if probe[0] in probes.MISSING:
            return loose, run.config.nan_policy, False
        return loose, "match", True
    if tol.scale is not None and name in run.constant.get(case, ()):
        return replace(tol, scale=None, min_cosine=None), run.config.nan_policy, False
    return tol, run.config.nan_policy, False


def _pool(result: RuntimeResult, tolerances: dict[str, Tolerance]) -> None:
    """The quantised agreement gate, pooled over every case of each output (a batch of 1 is one sample)."""
    for name in tolerances:
        pooled = [o for b in result.batches if not b.probe for o in b.outputs if o.output == name]
        reason, note = pooled_agreement(pooled), small_sample_note(pooled)
        if reason:
            result.reasons.append(reason if len(tolerances) == 1 else f"{name}: {reason}")
        if note:
            result.notes.append(Note.note(note if len(tolerances) == 1 else f"{name}: {note}"))


# --- 4. what no single comparison shows ------------------------------------------------------------


def _judge(run: Verification, accounting: Accounting) -> None:
    report, manifest, config = run.report, run.manifest, run.config
    example_sizes = {**run.interface.labels, "batch": manifest.export_batch}
    for result in report.runtimes:
        result.reasons += gates.frozen_axes(result, example_sizes)
        result.reasons += gates.failed_probes(result)
        result.reasons += gates.unacknowledged_trace(manifest, result, config.accept_tracer_warnings)
    if run.skipped:
        report.problems.append(trust.advice(run.skipped, manifest.refusal(config.trust) or ""))
    if not report.runtimes:
        report.problems.append("the folder holds no artifact a runtime can run: there is nothing to compare with eager")
    quantized = {f.runtime for f in formats.TABLE if f.quantized}
    scored = run.interface.outputs[0].name  # accuracy: the argmax of the first output
    accuracy.record(report, run.outputs, run.feeds.labels, scored, config.max_accuracy_drop, quantized)
    accounting.settle()
    report.parameters = accounting.report


def _usage_example(run: Verification) -> tuple:
    """Forward's arguments at batch 2 (every input drawn from its own range): one forward pass with
    gradients recorded tells which parameters forward uses."""
    specs = tuple(replace(s, shape=(2, *s.shape[1:])) for s in run.interface.inputs)
    return tuple(inputs.example(specs, 0, run.device).values())


def _quantized(entry: ArtifactEntry) -> bool:
    fmt = formats.FORMATS.get(entry.format)
    return fmt is not None and fmt.quantized


def tolerance_dict(tolerance: Tolerance) -> dict[str, float]:
    """A tolerance as the report states it: the element rule, and the whole-output gates that judged."""
    data = {"atol": tolerance.atol, "rtol": tolerance.rtol}
    if tolerance.min_agreement is not None:
        data["min_agreement"] = tolerance.min_agreement
    if not tolerance.elementwise:
        data["elements_judged"] = False
    if tolerance.scale is not None:  # the whole-output gates (gates, docs/verification.md)
        data["max_diff_per_rms"] = tolerance.scale
    if tolerance.min_cosine is not None:
        data["min_cosine"] = tolerance.min_cosine
    if tolerance.top1:
        data["top1_near_ties_only"] = True
    return data
