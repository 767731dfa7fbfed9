"""``verify``: prove that every artifact in a folder computes what the eager model computes.

Steps, each collected into one report rather than stopping at the first problem:
1. read manifest.json; hash every file, loading none whose sha256 differs;
2. rebuild the eager model from the manifest (source, seed, weights) and check its
   state digest against the one recorded at export;
3. make the inputs (seeded, several batch sizes) or load the user's;
4. run eager twice (a reference that disagrees with itself is reported, not blamed on
   the artifacts), then every artifact's runtime, catching each runtime's exceptions
   per batch size;
5. compare every output with eager, and account for every parameter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import building, formats
from .compare import OutputComparison, pooled_agreement, small_sample_note
from .config import Tolerance, VerifyConfig
from .errors import ReferenceUnavailable, UsageError, first_line
from .inputs import InputSet
from .manifest import REPORT_NAME, ArtifactEntry, Manifest, read_member, sha256_bytes, write_text_atomic
from .parameters import ParameterReport, account, eager_parameters
from .report import BatchResult, HashCheck, RuntimeResult, VerificationReport
from .runners.base import InputMeta, Runner
from .runners.torch_runners import eager as eager_runner
from .sources import ModelSource


def verify(
    artifact_dir: str | Path,
    config: VerifyConfig | None = None,
    *,
    model: nn.Module | None = None,
    write: bool = True,
) -> VerificationReport:
    """Verify an artifact folder against eager PyTorch and return the report.

    ``model``: the eager reference to use instead of rebuilding it from the manifest
    (``export`` passes the model it just exported). ``write``: save verification.json
    and the summary in manifest.json. Raises UsageError (bad folder, inputs, device);
    a failed verification is a report whose ``passed`` is False.
    """
    with _strict_float32():
        return _verify(Path(artifact_dir), config or VerifyConfig(), model, write)


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


def _verify(folder: Path, config: VerifyConfig, model: nn.Module | None, write: bool) -> VerificationReport:
    manifest = Manifest.load(folder)
    device = _device(config, manifest)
    shape = tuple(int(d) for d in manifest.input.get("shape", ()))
    dtype = str(manifest.input.get("dtype", "float32"))
    output_names = tuple(str(o["name"]) for o in manifest.outputs)
    meta = InputMeta(str(manifest.input.get("name", "input")), shape[1:], dtype)

    if config.inputs_path is not None:
        first = config.batch_sizes[0] if config.batch_sizes else None
        inputs = InputSet.load(config.inputs_path, meta.sample_shape, dtype, first)
    else:
        quantized = any(entry.format in formats.QUANTIZED for entry in manifest.artifacts)
        inputs = InputSet.generate(meta.sample_shape, dtype, config, export_batch=shape[0], quantized=quantized)
    if config.save_inputs:
        inputs.save(config.save_inputs)

    tolerances = {name: config.tolerance(dtype) for name in output_names}  # eager and fp32 runtimes
    report = VerificationReport(
        artifact_dir=str(folder),
        model=str(manifest.model.get("name")),
        device=str(device),
        inputs=inputs.origin,
        samples=inputs.samples,
        batch_sizes=list(inputs.groups),
        tolerances={},
        nan_policy=config.nan_policy,
    )
    blobs = _check_hashes(folder, manifest, report)
    if model is None:
        try:
            model = rebuild(folder, manifest, config, device, report.problems, blobs)
        except ReferenceUnavailable as error:
            # Without a reference nothing can be compared; still list every file that failed.
            report.problems.append(f"the eager reference cannot be rebuilt: {error}")
            report.runtimes = [
                RuntimeResult(formats.runtime_name(a.format), a.format, a.path, error="not run: no eager reference")
                for a in manifest.artifacts
                if a.format in formats.FORMATS
            ]
            if write:
                write_report(folder, manifest, report)
            return report
        report.reference["state_sha256"] = building.state_sha256(model)

    with eager_runner(model, device, meta, output_names) as reference:
        expected = _run_all(reference, inputs, report_errors=report.problems)
        again = _run_all(reference, inputs, report_errors=report.problems)
        report.reference["seconds"] = sum(reference.inference_times) / 2  # per run
    _check_determinism(expected, again, tolerances, report)

    outputs: dict[str, dict[int, dict[str, np.ndarray]]] = {"eager": expected}
    tensors: dict[str, dict[str, np.ndarray]] = {}
    for entry in manifest.artifacts:
        if entry.format in formats.DATA_FORMATS:
            continue  # hash-checked above, used by the reference or by its model file, not a runtime
        if entry.format not in formats.FORMATS:
            report.problems.append(f"{entry.path}: unknown format {entry.format!r}; this exporter cannot check it")
            continue
        quantized = entry.format in formats.QUANTIZED
        runtime_tolerances = {name: config.tolerance(dtype, quantized) for name in output_names}
        result = RuntimeResult(formats.runtime_name(entry.format), entry.format, entry.path)
        report.runtimes.append(result)
        report.tolerances[result.runtime] = {k: _tolerance_dict(v) for k, v in runtime_tolerances.items()}
        sidecars = [a.path for a in manifest.artifacts if a.details.get("of") == entry.path]
        run = _RuntimeRun(entry, sidecars, blobs, device, meta, output_names, config.nan_policy)
        outputs[result.runtime], found = run.execute(inputs, expected, runtime_tolerances, result, report)
        if found is not None:
            tensors[result.runtime] = found

    if not report.runtimes:
        report.problems.append("the folder holds no artifact a runtime can run: there is nothing to compare with eager")
    # Whether each runtime's outputs agree element-wise: what proves a fold that rewrote a weight.
    agree = {
        r.runtime: r.error is None and bool(r.batches) and all(b.passed for b in r.batches) for r in report.runtimes
    }
    quantized = {formats.runtime_name(f) for f in formats.QUANTIZED}
    report.parameters = _account_parameters(model, device, meta, tensors, agree, quantized, config.allow_unused)
    if config.save_outputs:
        _save_outputs(config.save_outputs, outputs)
    if write:
        write_report(folder, manifest, report)
    return report


def write_report(
    folder: Path, manifest: Manifest, report: VerificationReport, json_path: Path | None = None, record: bool = True
) -> None:
    """verification.json beside the manifest (or at ``json_path``), and the summary in the manifest.

    ``record=False`` (verify --no-record): only ``json_path`` is written, if given; the folder's
    recorded verification stays as it was.
    """
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    if json_path is not None:
        Path(json_path).write_text(text)  # a path the user named
    if not record:
        return
    if json_path is None:
        write_text_atomic(folder / REPORT_NAME, text)  # inside the folder: never through a planted symlink
    manifest.verification = report.summary()
    manifest.write(folder)


def _tolerance_dict(tolerance: Tolerance) -> dict[str, float]:
    data = {"atol": tolerance.atol, "rtol": tolerance.rtol}
    if tolerance.min_agreement is not None:
        data["min_agreement"] = tolerance.min_agreement
    return data


@dataclass
class _RuntimeRun:
    """One artifact through its runtime: load from checked bytes, run every batch, read its tensors."""

    entry: ArtifactEntry
    sidecars: list[str]  # files the artifact needs beside it (ONNX external data)
    blobs: dict[str, bytes]
    device: torch.device
    meta: InputMeta
    output_names: tuple[str, ...]
    nan_policy: str

    def execute(self, inputs, expected, tolerances, result: RuntimeResult, report: VerificationReport):
        result.notes += list(self.entry.details.get("warnings", []))
        data = self.blobs.get(self.entry.path)
        if data is None or any(path not in self.blobs for path in self.sidecars):
            result.error = "not run: its file or a file it needs failed the hash check"
            return {}, None
        fmt = formats.module(self.entry.format)
        try:
            runner = fmt.runner(data, self.blobs, self.device, self.meta, self.output_names)
            runner.activate()
        except UsageError:
            raise  # a hostile file (external data pointing outside the folder): refuse outright
        except Exception as error:
            result.error = f"could not be loaded: {first_line(error)}"
            return {}, None
        try:
            got = _run_runtime(runner, inputs, expected, tolerances, self.nan_policy, result)
        finally:
            runner.deactivate()
        result.notes += runner.notes
        result.seconds = sum(runner.inference_times)
        try:
            return got, fmt.tensors(data, self.blobs)
        except Exception as error:
            report.problems.append(f"{result.runtime}: cannot read its tensors: {first_line(error)}")
            return got, None


def _device(config: VerifyConfig, manifest: Manifest) -> torch.device:
    wanted = config.device or manifest.device
    if config.device is None and wanted.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"this artifact was exported on {wanted} and this machine has no CUDA: "
            "pass --device cpu to verify on the CPU"
        )
    return building.resolve_device(wanted)


def _check_hashes(folder: Path, manifest: Manifest, report: VerificationReport) -> dict[str, bytes]:
    """Read each listed file once; keep the bytes of those whose sha256 matches."""
    blobs: dict[str, bytes] = {}
    for entry in manifest.artifacts:
        try:
            data = read_member(folder, entry.path)
        except FileNotFoundError:
            report.hashes.append(HashCheck(entry.path, entry.sha256, None, "missing"))
            continue
        except OSError as error:
            report.hashes.append(HashCheck(entry.path, entry.sha256, None, error.strerror))
            continue
        check = HashCheck(entry.path, entry.sha256, sha256_bytes(data))
        report.hashes.append(check)
        if check.ok:
            blobs[entry.path] = data
    return blobs


def rebuild(
    folder: Path,
    manifest: Manifest,
    config: VerifyConfig,
    device: torch.device,
    problems: list[str] | None,
    blobs: dict[str, bytes] | None = None,
) -> nn.Module:
    """The eager model the manifest describes, checked against its recorded state digest.

    A digest mismatch is appended to ``problems`` (or raised as UsageError when None).
    ``blobs``: files already hash-checked (a weights file not among them is checked here).
    Raises ReferenceUnavailable when the recorded weights fail their hash check.
    """
    source = ModelSource.from_manifest(manifest.model, manifest.input, manifest.outputs).trusted(config.source)
    model = building.build(source, int(manifest.model.get("seed", 0)), device)
    from .weights import load_recorded_weights

    load_recorded_weights(model, manifest, config, folder, blobs)
    recorded = manifest.model.get("state_sha256")
    actual = building.state_sha256(model)
    if recorded != actual:
        problem = (
            f"the rebuilt eager model (state sha256 {actual[:12]}...) is not the one exported "
            f"({str(recorded)[:12]}...): the model code or torch's initialisation changed since export"
        )
        if problems is None:
            raise UsageError(problem)
        problems.append(problem)
    return model


def _run_all(runner: Runner, inputs: InputSet, report_errors: list[str]) -> dict[int, dict[str, np.ndarray]]:
    results: dict[int, dict[str, np.ndarray]] = {}
    for b in inputs.groups:
        try:
            parts = [runner.infer(batch) for batch in inputs.batches(b)]
        except Exception as error:
            report_errors.append(f"eager (the reference) raised at batch {b}: {first_line(error)}")
            continue
        results[b] = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return results


def _check_determinism(first, second, tolerances: dict[str, Tolerance], report: VerificationReport) -> None:
    worst = 0.0
    for b, outs in first.items():
        for name, values in outs.items():
            cmp = OutputComparison.from_arrays(name, values, second[b][name], tolerances[name], "match")
            if cmp.max_abs_diff is not None:
                worst = max(worst, cmp.max_abs_diff)
            if not cmp.passed:
                report.reference["deterministic"] = False
    report.reference.setdefault("deterministic", bool(first))
    report.reference["max_abs_diff_between_runs"] = worst
    if report.reference["deterministic"] is False:
        report.problems.append(
            f"the eager reference is nondeterministic: two runs on the same inputs differ (max abs diff {worst:.3g}); "
            "a Dropout forced on, or random ops in forward, make every comparison meaningless"
        )


def _run_runtime(runner, inputs, expected, tolerances, nan_policy, result: RuntimeResult):
    got: dict[int, dict[str, np.ndarray]] = {}
    for b in inputs.groups:
        batch = BatchResult(batch_size=b, samples=len(inputs.groups[b]))
        result.batches.append(batch)
        try:
            parts = [runner.infer(x) for x in inputs.batches(b)]
            outs = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        except Exception as error:
            batch.error = first_line(error)
            continue
        got[b] = outs
        if b not in expected:
            batch.error = "no reference output at this batch size (eager failed)"
            continue
        for name, tol in tolerances.items():
            batch.outputs.append(OutputComparison.from_arrays(name, expected[b][name], outs[name], tol, nan_policy))
    for name in tolerances:
        pooled = [o for b in result.batches for o in b.outputs if o.output == name]
        reason, note = pooled_agreement(pooled), small_sample_note(pooled)
        if reason:
            result.reasons.append(reason if len(tolerances) == 1 else f"{name}: {reason}")
        if note:
            result.notes.append(note if len(tolerances) == 1 else f"{name}: {note}")
    return got


def _account_parameters(model, device, meta: InputMeta, tensors, agree, quantized, allow_unused) -> ParameterReport:
    example = torch.rand((2, *meta.sample_shape), generator=torch.Generator().manual_seed(0))
    params = eager_parameters(model, example.to(device=device, dtype=getattr(torch, meta.dtype)))
    values = dict(model.named_parameters())
    buffer_names = {n for n, _ in model.named_buffers()}
    report = ParameterReport(
        eager_total=sum(p.count for p in params),
        parameters=params,
        buffers=[{"name": n, "shape": list(b.shape), "count": b.numel()} for n, b in model.named_buffers()],
        artifacts={},
        allow_unused=allow_unused,
    )
    for runtime, found in tensors.items():
        report.artifacts[runtime] = account(
            runtime, params, values, buffer_names, found, allow_unused, agree[runtime], runtime in quantized
        )
    return report


def _save_outputs(path: Path, outputs: dict[str, dict[int, dict[str, Any]]]) -> None:
    arrays = {
        f"{rt}__batch_{b}__{name}": v
        for rt, per in outputs.items()
        for b, outs in per.items()
        for name, v in outs.items()
    }
    try:
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError as error:
        raise UsageError(f"cannot write outputs to {path}: {error.strerror}") from None
