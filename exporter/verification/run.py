"""``verify``: prove that every artifact in a folder computes what the eager model computes.

Steps, each collected into one report rather than stopping at the first problem:
1. read manifest.json; hash every file, loading none whose sha256 differs;
2. rebuild the eager model from the manifest (source, seed, weights) and check its
   state digest against the one recorded at export;
3. make the inputs (seeded, several batch sizes) or load the user's;
4. run eager, then the first batch of each case again (a reference that disagrees with
   itself is reported, not blamed on the artifacts), then every artifact's runtime,
   catching each runtime's exceptions per batch size;
5. compare every output with eager, and account for every parameter.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import formats, notes, runners
from ..artifacts import trust
from ..artifacts.integrity import CheckedFile, HashCheck, check_all, private_copies
from ..artifacts.manifest import REPORT_NAME, ArtifactEntry, Manifest, write_text_atomic
from ..config import HEAVY_FLOPS_PER_SAMPLE, LARGE_MODEL_PARAMETERS, Tolerance, VerifyConfig
from ..eager import reference
from ..errors import ExporterError, FolderChangedError, ManifestError, ReferenceUnavailable, UsageError, first_line
from ..interface import InputSpec
from ..notes import Note
from ..progress import Progress, telling
from ..runners import Runner
from . import accuracy, gates
from .compare import OutputComparison, pooled_agreement, small_sample_note
from .inputs import Case, InputSet
from .parameters import Accounting
from .results import BatchResult, RuntimeResult, VerificationReport


def verify(
    artifact_dir: str | Path,
    config: VerifyConfig | None = None,
    *,
    model: nn.Module | None = None,
    write: bool = True,
    progress: Progress | None = None,
    _written_here: bool = False,
) -> VerificationReport:
    """Verify an artifact folder against eager PyTorch and return the report.

    ``model``: the eager reference to use instead of rebuilding it from the manifest
    (``export`` passes the model it just exported). ``write``: save verification.json
    and the summary in manifest.json. ``progress``: told the runtime, batch and samples done after
    every batch (``progress.on_terminal``). Raises UsageError (bad folder, inputs, device);
    a failed verification is a report whose ``passed`` is False.

    Each runtime loads a private copy of its files, made while they are hashed. ``_written_here``
    (export's own verification only): the folder is this process's private staging folder and the
    manifest's digests were taken as its files were written, so they are loaded in place.
    """
    with _strict_float32():
        return _verify(Path(artifact_dir), config or VerifyConfig(), model, write, progress, _written_here)


@contextlib.contextmanager
def _strict_float32() -> Iterator[None]:
    """TF32 off while verifying: on Ampere+ GPUs cuDNN convolutions default to TF32 (10-bit
    mantissa), which would make the float32 reference itself differ from a float32 runtime by
    ~1e-3. Verification compares float32 with float32; the flags are restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _verify(
    folder: Path, config: VerifyConfig, model: nn.Module | None, write: bool, progress, own: bool
) -> VerificationReport:
    identity = _identity(folder) if folder.is_dir() else None  # the folder judged: its verdict goes there only
    manifest = Manifest.load(folder)
    device = _device(config, manifest)
    interface = manifest.interface
    specs, output_names = interface.inputs, interface.output_names

    lean = int(manifest.model.get("parameters") or 0) >= LARGE_MODEL_PARAMETERS  # weights held once where possible
    large = lean or int(manifest.model.get("flops_per_sample") or 0) >= HEAVY_FLOPS_PER_SAMPLE  # one batch per case
    if config.inputs_path is not None:
        first = config.batch_sizes[0] if config.batch_sizes else None
        feeds = InputSet.load(config.inputs_path, specs, first)
    else:
        quantized = any(_is_quantized(entry) for entry in manifest.artifacts)
        sweep = gates.sweep(config, manifest, interface.labels)
        feeds = InputSet.generate(specs, config, manifest.export_batch, interface.labels, quantized, sweep, large)
    if config.save_inputs:
        feeds.save(config.save_inputs)
    scored = interface.outputs[0]  # accuracy: the argmax of the first output
    by_accuracy = accuracy.check_inputs(feeds, config, scored)  # the int8 gate: an accuracy drop on labelled data

    tolerances = {o.name: config.tolerance(o.dtype) for o in interface.outputs}  # eager and fp32 runtimes
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
    if own:  # hashed as this process wrote them into its private staging folder
        report.hashes = [HashCheck(a.path, a.sha256, a.sha256) for a in manifest.artifacts]
    else:
        report.hashes = check_all(folder, manifest.artifacts)
    report.reference["widened"] = any(case.draw for case in feeds.groups)
    checked = {h.path for h in report.hashes if h.ok}
    if model is None:
        try:
            model = reference.rebuild(folder, manifest, config, device, report.problems)
        except ReferenceUnavailable as error:
            # Without a reference nothing can be compared; still list every file that failed.
            report.problems.append(f"the eager reference cannot be rebuilt: {error}")
            report.runtimes = [
                RuntimeResult(formats.runtime_name(a.format), a.format, a.path, error="not run: no eager reference")
                for a in manifest.artifacts
                if a.format in formats.FORMATS
            ]
            if write:
                _record(folder, manifest, report, identity)
            return report
        report.reference["state_sha256"] = reference.state_sha256(model)

    before = reference.state_digests(model)
    with runners.eager(model, device, specs, output_names) as eager:
        expected = _run_all(eager, telling(feeds, progress, "verify: eager"), report_errors=report.problems)
        report.reference["seconds"] = sum(eager.inference_times)
        first = reference.state_digests(model)
        # Determinism and state changes show on any batch: the first batch of each case is run again
        # (every batch size and dynamic size), not every sample.
        repeat = feeds.first_batches(among=expected)  # a case eager failed on is reported once
        again = _run_all(
            eager, telling(repeat, progress, "verify: eager again"), report.problems, "eager (the reference, run again)"
        )  # fmt: skip
    mutated = reference.changed(first, reference.state_digests(model))
    gates.check_determinism(expected, again, tolerances, report, mutated)
    if not mutated and reference.changed(before, first):
        report.reference["changed_by_first_call"] = reference.changed(before, first)
    declared = {o.name: o.shape for o in interface.outputs}
    for case, outs in expected.items():
        mismatch = gates.shape_mismatch(outs, declared, {}, case, feeds.count(case))
        if mismatch:
            report.problems.append(f"eager (the reference) at batch {case.label}: {mismatch}")
            break
    if feeds.labels is not None and expected:  # the class count from what eager returned, where the manifest has none
        accuracy.check_labels(feeds.labels, next(iter(expected.values()))[scored.name].shape, scored.name, feeds.origin)

    outputs: dict[str, dict[Case, dict[str, np.ndarray]]] = {"eager": expected}
    # Each artifact's tensors are accounted for while its runtime is loaded, then let go: holding
    # every runtime's copy of the weights until the end would cost the model's size per runtime.
    accounting = Accounting.of(model, device, specs, config.allow_unused, by_accuracy)
    untrusted, skipped = manifest.refusal(config.trust), []
    for entry in manifest.artifacts:
        if entry.format in formats.SIDE_FILES:
            continue  # hash-checked above, used by the reference or by its model file, not a runtime
        if entry.format not in formats.FORMATS:
            report.problems.append(f"{entry.path}: unknown format {entry.format!r}; this exporter cannot check it")
            continue
        q = _is_quantized(entry)
        runtime_tolerances = {
            o.name: accuracy.gate(config.tolerance(o.dtype, q), by_accuracy and q) for o in interface.outputs
        }
        result = RuntimeResult(formats.runtime_name(entry.format), entry.format, entry.path)
        report.runtimes.append(result)
        report.tolerances[result.runtime] = {k: _tolerance_dict(v) for k, v in runtime_tolerances.items()}
        if untrusted and formats.FORMATS[entry.format].runs_code:
            result.error = "not loaded: the folder is not trusted (see above)"
            skipped.append(result.runtime)
            continue
        sidecars = [a for a in manifest.artifacts if a.path in manifest.side_files(entry)]
        declared = {o.name: o.shape for o in interface.outputs}
        run = _RuntimeRun(
            entry, sidecars, folder, checked, device, specs, output_names, config.nan_policy, declared, own, lean
        )  # fmt: skip
        told = telling(feeds, progress, f"verify: {result.runtime}")
        outputs[result.runtime] = run.execute(told, expected, runtime_tolerances, result, report, accounting)
        gc.collect()  # a loaded TorchScript module holds reference cycles: free its weights before the next

    if config.localize is not False:
        from .localize import localize_runtimes

        localize_runtimes(report, folder, manifest, checked, model, device, feeds, config)
    example_sizes = {**interface.labels, "batch": manifest.export_batch}
    for result in report.runtimes:
        result.reasons += gates.frozen_axes(result, example_sizes)
        result.reasons += gates.unacknowledged_trace(manifest, result, config.accept_tracer_warnings)
    if skipped:
        report.problems.append(trust.advice(skipped, untrusted or ""))
    if not report.runtimes:
        report.problems.append("the folder holds no artifact a runtime can run: there is nothing to compare with eager")
    quantized = {f.runtime for f in formats.TABLE if f.quantized}
    accuracy.record(report, outputs, feeds.labels, scored.name, config.max_accuracy_drop, quantized)
    accounting.settle()
    report.parameters = accounting.report
    if manifest.model.get("dtype") in ("float16", "bfloat16"):
        report.reference["against_float32"] = _against_float32(model, device, interface, feeds, outputs)
    if config.save_outputs:
        _save_outputs(config.save_outputs, outputs)
    if write:
        _record(folder, manifest, report, identity)
    return report


def _identity(folder: Path) -> tuple[int, int]:
    info = os.stat(folder)
    return info.st_dev, info.st_ino


def write_report(
    folder: Path, manifest: Manifest, report: VerificationReport, identity: tuple[int, int] | None = None
) -> None:
    """verification.json beside the manifest, and the summary in the manifest, naming the manifest judged.

    Written only while ``folder`` is still the folder verified (``identity``: its device and inode
    when verification began) and still holds that manifest; FolderChangedError otherwise.
    """
    try:
        current = Manifest.load(folder)
        same = current.digest == manifest.digest and (identity is None or _identity(folder) == identity)
    except (ManifestError, OSError):
        same = False
    if not same:
        raise FolderChangedError(f"{folder} was replaced or its manifest changed while it was verified")
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    write_text_atomic(folder / REPORT_NAME, text)  # inside the folder: never through a planted symlink
    current.verification = {**report.summary(), "manifest_sha256": manifest.digest}
    current.write(folder)
    manifest.verification = current.verification


def _record(folder: Path, manifest: Manifest, report: VerificationReport, identity: tuple[int, int] | None) -> None:
    """``write_report``, where a folder that cannot be written or was replaced is a note, not a failed check."""
    try:
        write_report(folder, manifest, report, identity)
    except FolderChangedError as error:
        report.record_notes.append(f"{error}: nothing recorded; run `exporter verify {folder}` again")
    except OSError as error:
        report.record_notes.append(f"could not record the result in {folder} ({error.strerror})")


def _is_quantized(entry: ArtifactEntry) -> bool:
    fmt = formats.FORMATS.get(entry.format)
    return fmt is not None and fmt.quantized


def _tolerance_dict(tolerance: Tolerance) -> dict[str, float]:
    data = {"atol": tolerance.atol, "rtol": tolerance.rtol}
    if tolerance.min_agreement is not None:
        data["min_agreement"] = tolerance.min_agreement
    if not tolerance.elementwise:
        data["elements_judged"] = False
    if tolerance.scale is not None:  # the whole-output gates (verdict, docs/verification.md)
        data["max_diff_per_rms"] = tolerance.scale
    if tolerance.min_cosine is not None:
        data["min_cosine"] = tolerance.min_cosine
    if tolerance.top1:
        data["top1_near_ties_only"] = True
    return data


@dataclass
class _RuntimeRun:
    """One artifact through its runtime: load from checked bytes, run every batch, read its tensors."""

    entry: ArtifactEntry
    sidecars: list[ArtifactEntry]  # files the artifact needs beside it (ONNX external data)
    folder: Path
    checked: set[str]  # paths that passed the hash check
    device: torch.device
    specs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]
    nan_policy: str
    declared: dict[str, tuple]  # each output's shape in the manifest, dynamic axes by label
    own: bool = False  # the folder is this process's staging folder, its files hashed as written
    lean: bool = False  # a model of LARGE_MODEL_PARAMETERS or more: ONNX Runtime without weight prepacking

    def execute(self, feeds, expected, tolerances, result: RuntimeResult, report: VerificationReport, accounting):
        """Outputs by batch size; the artifact's tensors are accounted for (``accounting``) while it is loaded."""
        result.notes += notes.recorded(self.entry.details)
        if any(e.path not in self.checked for e in (self.entry, *self.sidecars)):
            result.error = "not run: its file or a file it needs failed the hash check"
            return {}
        with contextlib.ExitStack() as cleanup:
            try:  # copied now, one artifact at a time, and checked again: these copies are what is loaded
                files = self._files(cleanup)
            except ManifestError:
                raise
            except ExporterError as error:
                result.error = f"not run: {first_line(error)}"
                return {}
            return self._run(files, feeds, expected, tolerances, result, report, accounting)

    def _files(self, cleanup: contextlib.ExitStack) -> dict[str, CheckedFile]:
        """The artifact's files as the runtime loads them: in place when this process wrote them into its
        private staging folder, else private copies made while hashing (removed when ``cleanup`` closes)."""
        entries = (self.entry, *self.sidecars)
        if self.own:
            return {e.path: CheckedFile(self.folder / e.path, own=True) for e in entries}
        into = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="exporter-verify-")))
        return private_copies(self.folder, entries, into)

    def _run(self, files, feeds, expected, tolerances, result: RuntimeResult, report: VerificationReport, accounting):
        try:
            data = files[self.entry.path]
            runner = runners.runner_for(
                self.entry.format, data, files, self.device, self.specs, self.output_names, lean=self.lean
            )  # fmt: skip
            runner.activate()
        except UsageError:
            raise  # a hostile file (external data pointing outside the folder): refuse outright
        except Exception as error:
            result.error = f"could not be loaded: {first_line(error)}"
            return {}
        try:
            got = _run_runtime(runner, feeds, expected, tolerances, self.nan_policy, result, self.declared)
            try:
                found = runner.tensors()
            except Exception as error:
                report.problems.append(f"{result.runtime}: cannot read its tensors: {first_line(error)}")
            else:
                accounting.add(result, found)
        finally:
            runner.deactivate()
        result.notes += runner.notes
        result.seconds = sum(runner.inference_times)
        return got


def _device(config: VerifyConfig, manifest: Manifest) -> torch.device:
    wanted = config.device or manifest.device
    if config.device is None and wanted.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"this artifact was exported on {wanted} and this machine has no CUDA: "
            "pass --device cpu to verify on the CPU"
        )
    return reference.resolve_device(wanted)


def _run_all(
    runner: Runner, feeds: InputSet, report_errors: list[str], who: str = "eager (the reference)"
) -> dict[Case, dict[str, np.ndarray]]:
    results: dict[Case, dict[str, np.ndarray]] = {}
    for case in feeds.groups:
        try:
            results[case] = runner.infer_all(feeds.batches(case))
        except Exception as error:
            report_errors.append(f"{who} raised at batch {case.label}: {first_line(error)}")
    return results


def _run_runtime(runner: Runner, feeds: InputSet, expected, tolerances, nan_policy, result: RuntimeResult, declared):
    got: dict[Case, dict[str, np.ndarray]] = {}
    for case in feeds.groups:
        batch = BatchResult(batch_size=case.batch, samples=feeds.count(case), sizes=dict(case.sizes), draw=case.draw)
        result.batches.append(batch)
        try:
            outs = runner.infer_all(feeds.batches(case))
        except Exception as error:
            batch.error = first_line(error)
            continue
        got[case] = outs
        batch.shape_error = gates.shape_mismatch(outs, declared, runner.declared_shapes(), case, feeds.count(case))
        if batch.shape_error:
            continue
        if case not in expected:
            batch.error = "no reference output at this batch size (eager failed)"
            continue
        for name, tol in tolerances.items():
            batch.outputs.append(OutputComparison.from_arrays(name, expected[case][name], outs[name], tol, nan_policy))
    for name in tolerances:
        pooled = [o for b in result.batches for o in b.outputs if o.output == name]
        reason, note = pooled_agreement(pooled), small_sample_note(pooled)
        if reason:
            result.reasons.append(reason if len(tolerances) == 1 else f"{name}: {reason}")
        if note:
            result.notes.append(Note.note(note if len(tolerances) == 1 else f"{name}: {note}"))
    return got


def _against_float32(model: nn.Module, device, interface, feeds: InputSet, outputs) -> dict[str, float | None]:
    """Max abs diff of eager and each runtime against the model in float32 (the same weights, upcast):
    what the half precision itself costs. Reported, not judged: it depends on the model, not the export."""
    import copy

    specs = tuple(replace(s, dtype="float32") if s.dtype in ("float16", "bfloat16") else s for s in interface.inputs)
    cast = InputSet(
        {
            c: {n: a.astype("float32") if a.dtype == np.float16 else a for n, a in g.items()}
            for c, g in feeds.groups.items()
        },
        "",
    )
    with runners.eager(copy.deepcopy(model).float(), device, specs, interface.output_names) as full:
        reference = _run_all(full, cast, report_errors=[])
    diffs: dict[str, float | None] = {}
    for runtime, per_case in outputs.items():
        worst = [
            float(np.max(np.abs(got[name].astype(np.float64) - reference[case][name].astype(np.float64))))
            for case, got in per_case.items()
            if case in reference
            for name in got
            if got[name].size and got[name].shape == reference[case][name].shape
        ]
        diffs[runtime] = max(worst) if worst else None
    return diffs


def _save_outputs(path: Path, outputs: dict[str, dict[Case, dict[str, Any]]]) -> None:
    arrays = {
        f"{rt}__batch_{case.label.replace(' ', '')}__{name}": v
        for rt, per in outputs.items()
        for case, outs in per.items()
        for name, v in outs.items()
    }
    try:
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError as error:
        raise UsageError(f"cannot write outputs to {path}: {error.strerror}") from None
