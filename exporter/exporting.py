"""``export``: write a model's serving artifacts into ``OUT/NAME/``, all or nothing.

Everything is written into a hidden staging folder beside the target
(``OUT/.NAME.XXXX.partial``): the artifacts, manifest.json, then the verification
report. Only when all of that succeeded is the staging folder moved into place; an
earlier folder of the same name is kept until that moment. On any error the staging
folder is removed and the earlier folder is untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, formats
from .artifacts import replacing, trust
from .artifacts.atomic import discard, staging_folder
from .artifacts.manifest import ArtifactEntry, Manifest
from .config import ExportConfig, dynamic_axes
from .eager.sources import ModelSource, resolve
from .errors import (
    ArtifactDirError,
    DiskFullError,
    ExportFailedError,
    InputSpecError,
    UsageError,
    disk_error,
    first_line,
)
from .formats import ExportSpec
from .inspection import describe_folder
from .interface import Interface, cast_floats, parameter_name, with_dynamic, with_kinds
from .paths import check_shadowing, make_folder
from .progress import Progress
from .verification import inputs, judging, verify
from .verification.record import write_report

if TYPE_CHECKING:  # torch is imported once the model has been resolved: usage errors answer without it
    import torch
    from torch import nn

    from .eager import reference
    from .verification.results import VerificationReport

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no leading dot: hidden names are staging folders


@dataclass
class ExportResult:
    path: Path  # the artifact folder, OUT/NAME
    manifest: Manifest
    report: VerificationReport | None  # None with verify=False
    replaced: str | None = None  # what the folder held before this export replaced it; None: it was new

    @property
    def passed(self) -> bool | None:
        return None if self.report is None else self.report.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "passed": self.passed,
            "manifest": self.manifest.to_dict(),
            "verification": None if self.report is None else self.report.to_dict(),
            "replaced": self.replaced,
        }

    def render(self) -> str:
        """What `exporter export` prints: the files written, notes on the weights, the verification report."""
        from .tables import human_size

        manifest = self.manifest
        sizes = ", ".join(f"{a.path} ({human_size(a.bytes)})" for a in manifest.artifacts)
        lines = [f"exported {manifest.model['name']} on {manifest.device} to {self.path}: {sizes}"]
        for fmt, why in (manifest.model.get("formats_left_out") or {}).items():
            lines.append(f"left out {fmt}: {why}")
        if self.replaced:
            lines.append(f"replaced the earlier {self.path}: {self.replaced}")
        weights_record = manifest.model.get("weights") or {}
        lines += [f"weights: {note}" for note in (weights_record.get("original") or {}).get("notes", [])]
        if self.report is None:
            lines.append(f"verification skipped (--no-verify): run `exporter verify {self.path}`")
        else:
            lines.append(self.report.render())
        return "\n".join(lines)


def export(
    model: str | nn.Module,
    config: ExportConfig | None = None,
    *,
    example_inputs: Any = None,
    dynamic: dict[str, dict[int, str]] | None = None,
    example_input: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``model`` (a registered name, ``pkg.mod:Class``, ``file.py:Class`` or an nn.Module).

    ``example_inputs`` (an nn.Module's example): a tensor, a tuple of tensors (forward's
    positional arguments) or a dict of tensors by parameter name; ``example_input`` is its
    older single-tensor spelling. ``dynamic``: more dynamic axes, ``{"ids": {1: "seq"}}`` (the
    batch, axis 0, is dynamic for every input already), each with the sizes it is served at if given
    (``{"ids": {1: "seq:1..512"}}``: recorded, and tried by verification up to 512). ``progress``: told
    each format before it is exported, then verification's steps (``progress.on_terminal``). Returns the
    folder, its manifest and the verification report. Raises UsageError subclasses for anything the
    caller can fix (exit 2 in the CLI) and ExportFailedError when an exporter cannot make an artifact
    (exit 1). A failed verification is not an error: the artifacts are kept and ``result.passed`` is False.

    A model named by a string is resolved, and every usage error about it answered, before torch
    is imported.
    """
    config = config or ExportConfig()
    check_shadowing()
    values = example_inputs if example_inputs is not None else example_input
    if isinstance(model, str):
        source, given, instance = resolve(model, config.example_inputs(), task=config.task), None, None
    else:
        source, given, instance = _instance_source(model, config, values)
    added, added_ranges = dynamic_axes(dynamic or {})
    extra = [*config.dynamic, *added]
    ranges = {label: (low, high) for label, low, high in (*config.dynamic_ranges, *added_ranges)}
    specs = with_kinds(cast_floats(with_dynamic(source.inputs, extra), config.dtype), config.input_kinds)
    name = config.name or source.name
    if not _NAME.match(name):
        raise UsageError(f"artifact name {name!r} must be a plain folder name (letters, digits, _ . -)")
    if config.opset is not None and any(f.startswith("onnx") for f in config.formats):
        from .runners.onnxruntime import check_opset

        check_opset(config.opset)  # before anything is exported
    out = Path(config.out)
    replacing.check_replaceable(out / name)  # a folder that is not one of this tool's is refused before any work
    from .eager import reference

    device = reference.resolve_device(config.device)  # before any folder is made
    key = trust.load_key(create=True)  # the folder is signed with it; made on the first export
    staging = _staging(out, name)
    try:
        eager, weights_record = _eager(source, instance, config, device)
        from .eager import footprint  # exit 2 before anything is exported when memory or disk cannot hold the job

        need = footprint.Footprint.of(footprint.model_bytes(eager), config.formats, weights_record is not None)
        footprint.check(need, Path(config.out), f"exporting {name}")
        job, eager = _job(source, name, config, device, staging, key, eager, specs, given, ranges)
        # one holder, so that verification can let the eager weights go before a runtime loads its own
        held = reference.Held(eager, lambda: _again(job, source, instance, device))
        del eager
        result = _write(job, held, weights_record, progress)
    except BaseException as error:
        discard(staging)
        full = disk_error(error)
        if full is not None:
            raise DiskFullError.from_os(full, str(out)) from None
        raise
    return result


def _eager(
    source: ModelSource, instance: nn.Module | None, config: ExportConfig, device
) -> tuple[nn.Module, dict | None]:
    """The eager model in its export precision, with ``--weights`` loaded; and what the manifest records of
    its weights (None: they are the seed's, rebuilt by ``verify``)."""
    import torch

    from .eager import reference, weights

    if instance is not None:
        eager = copy.deepcopy(instance).eval().to(device)
    elif source.kind == "transformers":  # the folder's own weights: kept, hash-bound, in the artifact folder
        from .eager import saved_folder

        eager = saved_folder.load(source.file, source.target, source.task).to(device)
    else:
        eager = reference.build(source, config.seed, device)
    weights_record = None
    if config.weights is not None:
        state, info = weights.read_state_dict(config.weights)
        info["notes"] += weights.apply(eager, state, str(config.weights))
        weights_record = {"original": info}
    if (instance is not None or source.kind == "transformers") and weights_record is None:
        weights_record = {}  # a user's module, a saved folder: their weights are their own, not the seed's
    if config.dtype is not None:
        eager = eager.to(getattr(torch, config.dtype))
    return eager, weights_record


def _again(job: _Job, source, instance, device) -> nn.Module:
    """The eager model built again (after verification let it go), called as the runtimes call it."""
    from .eager.probing import by_name

    return by_name(_eager(source, instance, job.config, device)[0], tuple(s.name for s in job.interface.inputs))


def _job(source, name, config, device, staging, key, eager, specs, given, ranges) -> tuple[_Job, nn.Module]:
    """The interface (inputs in forward's order, outputs named and shaped) and the example it was probed on;
    and the eager model as every runtime calls it: its declared inputs in order, passed to forward by name."""
    import torch

    from .eager.probing import (
        by_name,
        describe_outputs,
        export_example,
        first_run,
        forward_parameters,
        in_forward_order,
        table_ranges,
    )
    from .eager.reference import state_sha256

    if source.kind == "transformers" and not config.example_inputs():
        specs = tuple(s for s in specs if parameter_name(s.name) in forward_parameters(eager))  # those it takes
    specs = in_forward_order(eager, specs, registered=source.kind == "registry")
    eager = by_name(eager, tuple(s.name for s in specs))
    specs = table_ranges(eager, specs, inputs.example(specs, config.seed, device))
    if given is None:
        example = inputs.example(specs, config.seed, device)
    else:
        example = {s.name: given[s.name].to(device=device, dtype=getattr(torch, s.dtype)) for s in specs}
    state = state_sha256(eager)  # before any forward: a forward may change the state
    value = first_run(eager, example, specs)  # a model that cannot run on the declared inputs: exit 2, here
    outputs = describe_outputs(eager, example, specs, config.output_names or source.output_names, "output", value)
    interface = Interface(specs, outputs)
    judging.check_missing(config.verify_config, interface)
    ranges = judging.size_ranges(interface, specs[0].batch, ranges)
    job = _Job(source, name, config, device, staging, interface, key, state, export_example(example, specs), ranges)
    return job, eager


def _write(job: _Job, held: reference.Held, weights_record: dict | None, progress) -> ExportResult:
    """Artifacts, manifest and verdict into the staging folder, then the folder moved into place."""
    eager = held.model
    try:
        entries = _write_artifacts(job, eager, job.args, progress)
    except ExportFailedError as error:
        raise ExportFailedError(f"{error}{_output_log()}") from error
    flops = _flops(eager, job.args)  # verification's sample budget reads it
    manifest = _write_manifest(job, eager, entries, weights_record, flops)
    del eager  # verification lets it go (``held``) before any runtime loads
    target = Path(job.config.out) / job.name
    report = None
    if job.config.verify:
        # these files were written by this process a moment ago: trusted by construction
        checks = dataclasses.replace(job.config.verify_config, trust=True)
        report = verify(job.staging, checks, model=held, write=False, progress=progress, _written_here=True)
        report.artifact_dir = str(target)
        write_report(job.staging, manifest, report)
    replaced = replacing.move_into_place(job.staging, target, describe_folder)
    return ExportResult(target, manifest, report, replaced)


def _output_log() -> str:
    """Where the exporter's full output went, for a failure's one line: kept in a log, never on the terminal."""
    import tempfile

    from .formats.capture import LAST_OUTPUT

    text = "".join(LAST_OUTPUT).strip()
    if not text:
        return ""
    handle, path = tempfile.mkstemp(prefix="exporter-export-", suffix=".log")
    with open(handle, "w") as log:
        log.write(text + "\n")
    return f" (the exporter's full output: {path})"


def _instance_source(model: nn.Module, config: ExportConfig, values: Any) -> tuple[ModelSource, dict | None, nn.Module]:
    """Where a user's module comes from, and its example values by input name (None: draw them)."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UsageError(f"export takes a model name or an nn.Module instance, not a {type(model).__name__}")
    from .eager.probing import specs_from_values

    given = None
    if values is not None:
        specs, given = specs_from_values(values, model, config.inputs)
    else:
        specs = config.example_inputs()
    if specs is None:
        raise InputSpecError(
            "exporting an nn.Module needs example_inputs (a tensor, a tuple or a dict of tensors) "
            "or ExportConfig(inputs=...) / ExportConfig(input_shape=...)"
        )
    cls = type(model)
    source = ModelSource(
        kind="import",
        target=f"{cls.__module__}:{cls.__qualname__}",
        name=cls.__name__,
        inputs=specs,
        output_names=config.output_names,
    )
    return source, given, model


def _staging(out: Path, name: str) -> Path:
    """A fresh hidden folder beside the target; raises ArtifactDirError when OUT is unusable."""
    make_folder(out, "--out")
    try:
        return staging_folder(out, name)
    except OSError as error:
        raise ArtifactDirError(f"cannot write into {out} ({error.strerror}): choose a writable --out") from None


@dataclass(frozen=True)
class _Job:
    """One export: what is exported, under which name, how, on which device, into which staging folder."""

    source: ModelSource
    name: str
    config: ExportConfig
    device: torch.device
    staging: Path
    interface: Interface  # the inputs in forward's order, the flattened outputs
    key: bytes  # signs the manifest (trust.sign)
    state_sha256: str  # the eager model's state before any forward ran (reference.state_sha256)
    args: tuple  # forward's arguments for the exporters: no dynamic axis of size 0 or 1 (probing.export_example)
    ranges: dict[str, tuple[int, int]]  # every dynamic axis's size range, declared or the default (judging.py)
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)  # default formats that could not be built


def _write_artifacts(job: _Job, eager: nn.Module, args: tuple[torch.Tensor, ...], progress) -> list[ArtifactEntry]:
    """Each asked-for format's file (and any side file) into the staging folder, with its manifest entry."""
    from .eager import footprint

    config, staging, interface = job.config, job.staging, job.interface
    spec = ExportSpec(
        input_names=interface.input_names,
        output_names=interface.output_names,
        dynamic=tuple(s.axes for s in interface.inputs),
        output_dynamic=tuple({i: d for i, d in enumerate(o.shape) if isinstance(d, str)} for o in interface.outputs),
        opset=config.opset,
        onnx_exporter=config.onnx_exporter,
        external_data=config.external_data,
    )
    entries: list[ArtifactEntry] = []
    pace = footprint.Pace(footprint.model_bytes(eager))  # a big model's steps say how long they take
    for i, name in enumerate(config.formats, 1):
        if progress is not None:
            hint = pace.estimate(name)
            progress(f"export {job.name}: {name} ({i}/{len(config.formats)})" + (f", {hint}" if hint else ""))
        fmt = formats.FORMATS[name]
        start = time.perf_counter()
        try:
            details = formats.exporter_module(name).export(eager, args, staging / fmt.file, spec)
        except ExportFailedError as error:
            if config.strict_formats:
                raise  # a --format list: every listed format builds, or nothing is written
            job.left_out[name] = first_line(error)
            (staging / fmt.file).unlink(missing_ok=True)  # whatever the failed exporter left behind
            if progress is not None:
                progress(f"export {job.name}: {name} left out: {job.left_out[name]}")
            continue
        pace.done(name, time.perf_counter() - start)
        written = details.pop("written", {})  # digests taken while writing: no file is read back to be hashed
        entries.append(ArtifactEntry.for_file(staging, fmt.file, name, written.get(fmt.file), **details))
        if details.get("external_data"):
            side = details["external_data"]
            entries.append(ArtifactEntry.for_file(staging, side, formats.ONNX_DATA, written.get(side), of=fmt.file))
    if not entries:
        reasons = "; ".join(f"{name}: {why}" for name, why in job.left_out.items())
        raise ExportFailedError(f"no format could be built ({reasons})")
    return entries


def _flops(eager: nn.Module, args: tuple[torch.Tensor, ...]) -> int | None:
    """FLOPs per sample, or None where one more forward pass fails: the count only sizes a budget."""
    from .eager.flops import count_flops

    try:
        return count_flops(eager, args).per_sample
    except Exception:  # the user's forward may raise anything; the artifacts are already written
        return None


def _write_manifest(
    job: _Job, eager: nn.Module, entries: list[ArtifactEntry], weights_record: dict | None, flops: int | None
) -> Manifest:
    """manifest.json for the written artifacts; ``weights_record``: set when the weights are not the seed's."""
    from .eager import reference, weights

    source = job.source
    if weights_record is not None:
        # The eager weights are not reproducible from the seed: keep them, hash-bound, in the folder.
        relpath = weights.save_copy(eager, job.staging)
        entry = ArtifactEntry.for_file(job.staging, relpath, formats.WEIGHTS)
        entries = [*entries, entry]
        weights_record = {**weights_record, "path": relpath, "sha256": entry.sha256}
    manifest = Manifest(
        model={
            "name": job.name,
            "source": source.to_manifest(),
            "seed": job.config.seed,
            "dtype": job.config.dtype,
            "parameters": reference.count_parameters(eager),
            "flops_per_sample": flops,  # Linear and Conv2d layers (exporter.flops); None: it has neither
            "state_sha256": job.state_sha256,
            "weights": weights_record,
            **({"formats_left_out": dict(job.left_out)} if job.left_out else {}),  # format -> why it was not built
        },
        inputs=[spec.to_manifest() for spec in job.interface.inputs],
        outputs=[output.to_manifest() for output in job.interface.outputs],
        device=str(job.device),
        artifacts=entries,
        versions=versions(),
        judging=judging.recorded(job.config.verify_config, job.ranges),
    )
    manifest.sign(job.key)
    manifest.write(job.staging)
    replacing.normal_rights(job.staging)
    return manifest


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "exporter": __version__}
    for package in ("onnx", "onnxruntime", "onnxscript"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
