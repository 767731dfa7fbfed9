"""``bench``: how fast each runtime of an artifact folder runs, beside eager PyTorch and the machine's limit.

For every runtime the folder has (eager, TorchScript, pt2, ONNX Runtime fp32 and int8) and every
batch size: warm-up runs, then timed runs one call at a time; p50 and p99 latency, throughput
(samples/s), GFLOP/s from a FLOP count of the eager model's Linear and Conv2d layers, the
artifact's size, and its max abs diff and top-1 agreement against eager over
``accuracy_samples`` seeded samples fed at that batch size (the timed batch is the first of
them: one batch would make batch 1's agreement 0 % or 100 %). A float32
matmul (``torch.mm``, 2048x2048) measured in the same run gives the machine's peak, so each
GFLOP/s figure can be read as a share of what this CPU can do.

Files are hash-checked before anything is loaded, and the checked bytes are what is loaded.
Runtimes are loaded one at a time and freed before the next: idle ONNX Runtime sessions keep
spinning worker threads that would steal the cores from whichever runtime is being timed.
Everything runs on the CPU (the artifact's own device is not used): the numbers are CPU numbers.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from . import formats
from .compare import OutputComparison, wilson_interval
from .config import MAX_SAMPLES, VerifyConfig
from .errors import UsageError, first_line
from .manifest import ArtifactEntry, Manifest, read_checked
from .runners.base import InputMeta

DEFAULT_BATCH_SIZES = (1, 64, 1024)  # one request; a typical serving batch; a throughput-bound batch
PEAK_SIZE = 2048  # the matmul peak multiplies two PEAK_SIZE x PEAK_SIZE float32 matrices
LABELS = {  # format -> the name a reader knows it by, as Ultralytics' benchmark table does
    "eager": "PyTorch",
    "torchscript": "TorchScript",
    "pt2": "torch.export",
    "onnx": "ONNX",
    "onnx-int8": "ONNX int8",
}
FLOP_LAYERS = (nn.Linear, nn.Conv2d)  # the layers count_flops counts; others count zero

Call = Callable[[], dict[str, np.ndarray]]  # one inference on a bound feed, outputs by name


@dataclass(frozen=True)
class BenchConfig:
    """What to time and how. Every field has a documented default."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: int | None = None  # None: the cores this process may run on; sets torch and ORT intra-op threads
    warmup: int = 5  # untimed calls per runtime and batch size (first-call allocation, JIT profiling runs) ...
    warmup_s: float = 0.1  # ... and at least this long: the previous runtime's threads take a moment to go idle
    repeats: int = 5  # at least this many timed calls per runtime and batch size ...
    min_time_s: float = 0.5  # ... and at least this long, so batch 1 gets thousands of calls for its p99
    seed: int = 0  # seeds the benchmark's input (uniform in [0, 1), like verify's)
    accuracy_samples: int = 1024  # samples compared with eager per runtime and batch size (whole batches)
    runtimes: tuple[str, ...] = ()  # runtime or format names to time (eager always runs); empty: all
    peak_runs: int = 5  # timed matmuls per peak measurement (before and after the runtimes); medians kept
    source: str | Path | None = None  # the code the artifact came from (file.py or pkg.mod:Class), as --source

    def validate(self) -> None:
        """Raise UsageError for values that cannot be benchmarked (a batch size < 1, say)."""
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise UsageError(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if not 1 <= self.accuracy_samples <= MAX_SAMPLES:
            raise UsageError(f"--accuracy-samples must be from 1 to {MAX_SAMPLES:,}, got {self.accuracy_samples}")
        if min(self.warmup, self.warmup_s, self.min_time_s) < 0 or min(self.repeats, self.peak_runs) < 1:
            raise UsageError("warm-up calls and times must be >= 0, repeats and peak runs >= 1")


@dataclass
class FlopCount:
    """FLOPs of one sample through the model's Linear and Conv2d layers: 2 x multiply-accumulates.

    Bias additions, activations, pooling and normalisation are not counted (the usual
    convention: they are a small share next to the matrix products, and no runtime does them
    on the matrix units). ``per_sample`` is None when the model has no such layer.
    """

    per_sample: int | None
    layers: dict[str, int] = field(default_factory=dict)  # qualified layer name -> FLOPs per sample


@dataclass
class MatmulPeak:
    """The float32 matmul rate this machine reaches through torch.mm, measured in the same run.

    ``bench`` measures it before and after the runtimes and keeps the higher median
    (``combine``): a moment when the host was slow cannot then lower the peak and inflate
    every runtime's share of it.
    """

    gflops_per_s: float
    seconds_median: float
    size: int
    runs: int
    threads: int
    measured_gflops_per_s: list[float] = field(default_factory=list)  # each measurement's median

    @property
    def method(self) -> str:
        times = len(self.measured_gflops_per_s)
        which = f"the higher of {times} medians of {self.runs} runs" if times > 1 else f"median of {self.runs} runs"
        return f"torch.mm of two {self.size}x{self.size} float32 matrices, {which}"

    def combine(self, other: MatmulPeak) -> MatmulPeak:
        best = self if self.gflops_per_s >= other.gflops_per_s else other
        measured = self.measured_gflops_per_s + other.measured_gflops_per_s
        return MatmulPeak(best.gflops_per_s, best.seconds_median, best.size, best.runs, best.threads, measured)


@dataclass
class BenchResult:
    """One runtime at one batch size."""

    runtime: str  # as in verify's report: eager, torchscript, onnxruntime, pt2, onnxruntime-int8
    format: str  # the artifact format ("eager" for the reference)
    batch_size: int
    latency_ms_p50: float | None = None  # per call, one call at a time
    latency_ms_p99: float | None = None
    latency_ms_mean: float | None = None
    runs: int = 0  # timed calls
    throughput_per_s: float | None = None  # samples per second: batch size / p50 latency
    gflops_per_s: float | None = None  # FLOPs per sample x throughput; None when FLOPs are unknown
    peak_fraction: float | None = None  # gflops_per_s / the matmul peak
    speedup_vs_eager: float | None = None  # throughput / eager's throughput at the same batch size
    size_bytes: int | None = None  # the artifact's files (with ONNX external data); None for eager
    max_abs_diff: float | None = None  # against eager on the same inputs; None for eager itself
    accuracy_samples: int = 0  # samples the diff and the agreement were measured on (eager: its reference); 0: none
    top1_agreement: float | None = None  # argmax agrees with eager's (ties in eager's maximum allowed)
    top1_agreement_interval: tuple[float, float] | None = None  # its 95 % (Wilson) interval
    top1_agreement_within_tolerance: float | None = None  # int8: near-ties (quantisation bound) count too
    threads: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # how the runtime was configured
    error: str | None = None  # why this row has no numbers (the runtime failed to load or to run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    artifact_dir: str
    model: str
    device: str
    threads: dict[str, int]
    flops: FlopCount
    peak: MatmulPeak
    onnxruntime_settings: dict[str, Any]
    config: dict[str, Any]
    verified: bool | None  # the manifest's last verification (None: never verified)
    results: list[BenchResult] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [f"{r.runtime} at batch {r.batch_size}: {r.error}" for r in self.results if r.error]

    def result(self, runtime: str, batch_size: int) -> BenchResult | None:
        return next((r for r in self.results if r.runtime == runtime and r.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact_dir": self.artifact_dir,
            "model": self.model,
            "device": self.device,
            "threads": self.threads,
            "flops_per_sample": self.flops.per_sample,
            "flop_layers": self.flops.layers,
            "matmul_peak": {**asdict(self.peak), "method": self.peak.method},
            "onnxruntime_settings": self.onnxruntime_settings,
            "config": self.config,
            "verified": self.verified,
            "versions": self.versions,
            "results": [r.to_dict() for r in self.results],
            "errors": self.errors,
        }

    def render(self) -> str:
        """The table `exporter bench` prints: one block per batch size, eager first, then notes."""
        from .bench_table import render

        return render(self)


# ---------------------------------------------------------------- FLOPs and the matmul peak


def count_flops(model: nn.Module, example: torch.Tensor) -> FlopCount:
    """FLOPs per sample of ``model`` on ``example`` (a batch), from hooks on nn.Linear and nn.Conv2d.

    A Linear layer does ``in_features`` multiply-accumulates per output element, a Conv2d
    ``in_channels / groups * kernel height * kernel width``; FLOPs are twice that. Shapes
    come from one real forward pass, so a layer called twice counts twice and one never
    called counts zero. Runs under torch.inference_mode; the model is left as it was.
    """
    macs: dict[str, int] = {}
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            per_output = module.in_features
        else:
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
        name = names[module] or type(module).__name__
        macs[name] = macs.get(name, 0) + output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, FLOP_LAYERS)]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    batch = int(example.shape[0])
    layers = {name: 2 * count // batch for name, count in macs.items()}
    return FlopCount(sum(layers.values()) if layers else None, layers)


def measure_matmul_peak(threads: int, size: int = PEAK_SIZE, runs: int = 5) -> MatmulPeak:
    """Median GFLOP/s of ``torch.mm`` on two ``size`` x ``size`` float32 matrices (2 * size^3 FLOPs each).

    One untimed call first (it allocates the result and wakes the thread pool). Uses torch's
    current thread count, which ``bench`` sets to ``threads`` beforehand.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator)
    b = torch.rand(size, size, generator=generator)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    gflops = 2 * size**3 / median / 1e9
    return MatmulPeak(gflops, median, size, runs, threads, [gflops])


# ---------------------------------------------------------------- ONNX Runtime, configured for speed


def onnxruntime_settings(threads: int) -> dict[str, Any]:
    """The session settings ``bench`` uses, as recorded in the report (and why, in comments).

    - graph optimisation ORT_ENABLE_ALL: fuses Gemm+Relu (FusedGemm) and lays out convolutions
      for the CPU's vector width (NCHWc); the file on disk stays portable, only the session changes;
    - intra-op threads = ``threads``: the same cores torch is given, so the comparison is fair;
    - inter-op threads 1 and sequential execution: these models are one chain of operators, so
      there is nothing to run side by side, and a second pool would only compete for the cores;
    - spinning workers (ORT's default, set explicitly): a worker waits for the next operator by
      spinning instead of sleeping, which saves the wake-up at small batches; it costs CPU time
      while a run is in progress, which a server sharing its cores may not want;
    - IO binding: the input is bound in place and outputs go into arrays allocated once per batch
      size, so a call does not allocate or copy its outputs (the feed is rebound on every call).
    """
    return {
        "providers": ["CPUExecutionProvider"],
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
        "session.intra_op.allow_spinning": "1",
        "io_binding": True,
    }


def onnxruntime_session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    """An ORT CPU session over (hash-checked, inlined) model bytes with ``onnxruntime_settings``."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.log_severity_level = 4  # errors come back as exceptions, reported once in the row
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- runtimes: load, bind a feed, call


class _Target:
    """A loaded runtime. ``bind(feed)`` returns a call that runs that feed once."""

    def bind(self, feed: np.ndarray) -> Call:
        raise NotImplementedError

    def run(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        """One untimed call on ``feed`` (the accuracy batches): outputs by name, owned by the caller."""
        return {name: np.array(value, copy=True) for name, value in self.bind(feed)().items()}


@dataclass
class _TorchTarget(_Target):
    """Eager, TorchScript and pt2: the module under torch.inference_mode (no autograd bookkeeping)."""

    module: Any
    output_names: tuple[str, ...]

    def bind(self, feed: np.ndarray) -> Call:
        def call() -> dict[str, np.ndarray]:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(feed))  # shares the array's memory: no copy
            items = list(out) if isinstance(out, (tuple, list)) else [out]
            return {name: t.numpy() for name, t in zip(self.output_names, items, strict=True)}

        return call


@dataclass
class _OrtTarget(_Target):
    session: ort.InferenceSession
    input_name: str
    output_names: tuple[str, ...]

    def bind(self, feed: np.ndarray) -> Call:
        # One plain run learns the output shapes at this batch size; later calls write into
        # arrays allocated here, once, through IO binding. ``call`` returns (and so keeps alive)
        # those arrays: ORT holds only their addresses, and writing into a freed one would crash.
        first = self.session.run(list(self.output_names), {self.input_name: feed})
        outputs = {name: np.empty_like(value) for name, value in zip(self.output_names, first, strict=True)}
        binding = self.session.io_binding()
        for name, array in outputs.items():
            binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

        def call() -> dict[str, np.ndarray]:
            binding.bind_cpu_input(self.input_name, feed)
            self.session.run_with_iobinding(binding)
            return outputs

        return call

    def run(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        return dict(
            zip(self.output_names, self.session.run(list(self.output_names), {self.input_name: feed}), strict=True)
        )


@dataclass
class _RunnerTarget(_Target):
    """A format this module has no fast path for: its verification runner (``runner.infer``)."""

    runner: Any

    def bind(self, feed: np.ndarray) -> Call:
        return lambda: self.runner.infer(feed)


def _load(entry: ArtifactEntry, blobs: dict[str, bytes], meta: InputMeta, outputs: tuple[str, ...], threads: int):
    data = blobs[entry.path]
    if entry.format in ("onnx", "onnx-int8"):
        session = onnxruntime_session(formats.module("onnx").inline_bytes(data, blobs), threads)
        return _OrtTarget(session, meta.name, outputs)
    if entry.format == "torchscript":
        return _TorchTarget(formats.module("torchscript").load(data, torch.device("cpu")), outputs)
    if entry.format == "pt2":
        return _TorchTarget(formats.module("pt2").load(data).module(), outputs)
    runner = formats.module(entry.format).runner(data, blobs, torch.device("cpu"), meta, outputs)
    runner.activate()
    return _RunnerTarget(runner)


def _settings(fmt: str, threads: int) -> dict[str, Any]:
    if fmt in ("onnx", "onnx-int8"):
        return onnxruntime_settings(threads)
    if fmt in ("eager", "torchscript", "pt2"):
        return {"torch.set_num_threads": threads, "mode": "torch.inference_mode"}
    return {"runner": "the verification runner (no tuned path for this format)"}


# ---------------------------------------------------------------- timing


def _time_calls(call: Call, config: BenchConfig) -> list[float]:
    """Seconds per call: untimed calls for ``warmup`` calls and ``warmup_s``, then timed calls for at
    least ``repeats`` calls and ``min_time_s``.

    The garbage collector is off while timing (as in ``timeit``), so a collection triggered by
    this loop's own allocations does not land in one call's latency.
    """
    calls, deadline = 0, time.perf_counter() + config.warmup_s
    while calls < config.warmup or time.perf_counter() < deadline:
        call()
        calls += 1
    seconds: list[float] = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter() + config.min_time_s
        while len(seconds) < config.repeats or time.perf_counter() < deadline:
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()
    return seconds


def _fill_timing(result: BenchResult, seconds: list[float], flops: FlopCount) -> None:
    ms = np.asarray(seconds) * 1e3
    result.runs = len(seconds)
    result.latency_ms_p50 = float(np.median(ms))
    result.latency_ms_p99 = float(np.percentile(ms, 99))
    result.latency_ms_mean = float(ms.mean())
    result.throughput_per_s = result.batch_size / (result.latency_ms_p50 / 1e3)
    if flops.per_sample is not None:
        result.gflops_per_s = flops.per_sample * result.throughput_per_s / 1e9


def _compare(result: BenchResult, expected: dict[str, np.ndarray], got: dict[str, np.ndarray], dtype: str) -> None:
    """Max abs diff over every output, and top-1 agreement on the first, by verify's rules (ties allowed)."""
    tolerance = VerifyConfig().tolerance(dtype, result.format in formats.QUANTIZED)
    diffs = []
    for index, (name, values) in enumerate(expected.items()):
        cmp = OutputComparison.from_arrays(name, values, got[name], tolerance)
        diffs.append(cmp.max_abs_diff)  # None: a shape mismatch, or no finite element to compare
        if index == 0:
            result.accuracy_samples = int(values.shape[0]) if values.ndim else 1
            result.top1_agreement = cmp.top1_agreement
            result.top1_agreement_within_tolerance = cmp.top1_agreement_within_tolerance
            if cmp.top1_agreement is not None:
                result.top1_agreement_interval = wilson_interval(cmp.samples - cmp.top1_disagreements, cmp.samples)
    result.max_abs_diff = None if None in diffs else max(diffs, default=0.0)


# ---------------------------------------------------------------- the benchmark


def bench(
    artifact_dir: str | Path, config: BenchConfig | None = None, *, progress: Callable[[str], None] | None = None
) -> BenchReport:
    """Benchmark eager and every runtime in ``artifact_dir`` at every batch size, on the CPU.

    ``config`` defaults to ``BenchConfig()`` (batch 1, 64 and 1024, every core). ``progress``
    receives a one-line status before each measurement (``bench_table.ProgressLine`` writes it to stderr).
    Raises UsageError for a bad config, folder or manifest (exit 2), and ExporterError (exit 1)
    when a file is missing or does not match its sha256: nothing is loaded then. A runtime that
    fails to load or run gets rows with ``error`` set; the others still run. torch's thread
    count is set for the run and restored on return.
    """
    config = config or BenchConfig()
    config.validate()
    folder = Path(artifact_dir)
    manifest = Manifest.load(folder)
    blobs = {entry.path: read_checked(folder, entry, "benchmark") for entry in manifest.artifacts}
    entries = formats.select(manifest.artifacts, config.runtimes)
    threads = config.threads or _available_cores()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = _Run.start(folder, manifest, config, threads, progress, steps=1 + len(entries))
        run.eager()
        for entry in entries:
            run.artifact(entry, blobs)
        run.report.peak = run.report.peak.combine(measure_matmul_peak(threads, runs=config.peak_runs))
    finally:
        torch.set_num_threads(previous_threads)
    return run.finish()


@dataclass
class _Run:
    """One benchmark in progress: the inputs, the eager reference's outputs, and the report so far."""

    manifest: Manifest
    config: BenchConfig
    model: nn.Module
    meta: InputMeta
    output_names: tuple[str, ...]
    feeds: dict[int, np.ndarray]  # batch size -> the timed input, the first of its accuracy batches
    report: BenchReport
    progress: Callable[[str], None] | None
    steps: int
    reference: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # eager's, over the accuracy batches
    done: int = 0

    @classmethod
    def start(cls, folder: Path, manifest: Manifest, config: BenchConfig, threads: int, progress, steps: int) -> _Run:
        """Rebuild eager (UsageError if it is not the exported model), count FLOPs, measure the peak."""
        from .verification import rebuild  # verification imports this module's neighbours, not the reverse

        cpu = torch.device("cpu")
        model = rebuild(folder, manifest, VerifyConfig(device="cpu", source=config.source), cpu, None)
        shape = tuple(int(d) for d in manifest.input.get("shape", ()))
        meta = InputMeta(
            str(manifest.input.get("name", "input")), shape[1:], str(manifest.input.get("dtype", "float32"))
        )
        batch_sizes = tuple(sorted({int(b) for b in config.batch_sizes}))
        feeds = {b: _feed(b, meta, config.seed) for b in batch_sizes}
        report = BenchReport(
            artifact_dir=str(folder),
            model=str(manifest.model.get("name")),
            device="cpu",
            threads={
                "cores_available": _available_cores(),
                "torch_intra_op": torch.get_num_threads(),
                "onnxruntime_intra_op": threads,
                "onnxruntime_inter_op": 1,
            },
            flops=count_flops(model, torch.from_numpy(feeds[batch_sizes[0]])),
            peak=measure_matmul_peak(threads, runs=config.peak_runs),
            onnxruntime_settings=onnxruntime_settings(threads),
            config=_config_dict(config, batch_sizes, threads),
            verified=(manifest.verification or {}).get("passed"),
            versions=_versions(),
        )
        outputs = tuple(str(o["name"]) for o in manifest.outputs)
        return cls(manifest, config, model, meta, outputs, feeds, report, progress, steps * len(batch_sizes))

    @property
    def threads(self) -> int:
        return self.report.threads["onnxruntime_intra_op"]

    def eager(self) -> None:
        target = _TorchTarget(self.model, self.output_names)
        for b in self.feeds:
            self._measure(target, BenchResult("eager", "eager", b, threads=self.threads))

    def artifact(self, entry: ArtifactEntry, blobs: dict[str, bytes]) -> None:
        """Load one artifact, time it at every batch size, and free it before the next one loads."""
        runtime = formats.runtime_name(entry.format)
        sidecars = sum(a.bytes for a in self.manifest.artifacts if a.details.get("of") == entry.path)
        rows = [BenchResult(runtime, entry.format, b, size_bytes=entry.bytes + sidecars) for b in self.feeds]
        try:
            target = _load(entry, blobs, self.meta, self.output_names, self.threads)
        except UsageError:
            raise  # a hostile file (external data pointing outside the folder): refuse outright
        except Exception as error:
            for row in rows:
                row.error = f"could not be loaded: {first_line(error)}"
                self._add(row)
            return
        try:
            for row in rows:
                self._measure(target, row)
        finally:
            if isinstance(target, _RunnerTarget):
                target.runner.deactivate()
            del target
            gc.collect()  # frees the session now, and with it the worker threads that would spin

    def finish(self) -> BenchReport:
        """Ratios that need every row and the final peak: speed-up over eager, share of the peak."""
        results = self.report.results
        for row in results:
            eager = self.report.result("eager", row.batch_size)
            if row.throughput_per_s and eager is not None and eager.throughput_per_s:
                row.speedup_vs_eager = row.throughput_per_s / eager.throughput_per_s
            if row.gflops_per_s is not None:
                row.peak_fraction = row.gflops_per_s / self.report.peak.gflops_per_s
        results.sort(key=lambda r: r.batch_size)  # stable: the runtime order stays within a batch size
        return self.report

    def _add(self, row: BenchResult) -> None:
        row.threads = self.threads
        row.settings = _settings(row.format, self.threads)
        self.report.results.append(row)

    def _measure(self, target: _Target, row: BenchResult) -> None:
        """Bind the feed, keep one call's outputs for the comparison, then time; an exception fills ``error``."""
        self._add(row)
        self.done += 1
        if self.progress is not None:
            self.progress(
                f"bench {self.report.model}: {row.runtime} at batch {row.batch_size} ({self.done}/{self.steps})"
            )
        try:
            got = self._outputs(target, row.batch_size)
            if row.runtime == "eager":
                self.reference[row.batch_size] = got
                row.accuracy_samples = len(next(iter(got.values()), ()))
            elif row.batch_size in self.reference:
                _compare(row, self.reference[row.batch_size], got, self.meta.dtype)
            call = target.bind(self.feeds[row.batch_size])
            _fill_timing(row, _time_calls(call, self.config), self.report.flops)
        except Exception as error:
            row.error = first_line(error)

    def _outputs(self, target: _Target, batch_size: int) -> dict[str, np.ndarray]:
        """The target's outputs over every accuracy batch of ``batch_size``, concatenated by name."""
        feeds = _accuracy_feeds(batch_size, self.meta, self.config.seed, self.config.accuracy_samples)
        runs = [target.run(feed) for feed in feeds]
        return {name: np.concatenate([r[name] for r in runs]) for name in runs[0]}


def _feed(batch_size: int, meta: InputMeta, seed: int) -> np.ndarray:
    """The timed input: the first of ``_accuracy_feeds``."""
    return next(_accuracy_feeds(batch_size, meta, seed, samples=1))


def _accuracy_feeds(batch_size: int, meta: InputMeta, seed: int, samples: int) -> Iterator[np.ndarray]:
    """Whole batches covering ``samples``: uniform [0, 1) like verify's default, drawn in turn
    from one generator seeded with ``seed`` (the same for every runtime), one at a time."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(math.ceil(samples / batch_size)):
        x = torch.rand((batch_size, *meta.sample_shape), generator=generator)
        yield np.ascontiguousarray(x.numpy().astype(meta.dtype, copy=False))


def _available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _config_dict(config: BenchConfig, batch_sizes: tuple[int, ...], threads: int) -> dict[str, Any]:
    return {
        "batch_sizes": list(batch_sizes),
        "threads": threads,
        "warmup": config.warmup,
        "warmup_s": config.warmup_s,
        "repeats": config.repeats,
        "min_time_s": config.min_time_s,
        "seed": config.seed,
        "accuracy_samples": config.accuracy_samples,
        "throughput": "batch size / p50 latency, one call at a time",
    }


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
