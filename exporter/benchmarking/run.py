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
Everything runs on ``config.device`` (the CPU by default; the artifact's own device is not used):
eager, TorchScript and pt2 on it, ONNX Runtime with its provider for it (the CPU provider where
onnxruntime has no CUDA provider, which the rows' notes say). A timed call returns its outputs on
the host, so on a GPU each latency includes the synchronisation and the copy back.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import formats, runners
from ..artifacts import trust
from ..artifacts.integrity import check_member
from ..artifacts.manifest import ArtifactEntry, Manifest
from ..config import BenchConfig, VerifyConfig
from ..eager import reference
from ..eager.flops import count_flops
from ..errors import ArtifactLoadError, first_line
from ..interface import InputSpec
from ..notes import INFO
from ..runners import Feed, Runner
from ..runners.onnxruntime import tuned_settings
from ..verification import inputs
from ..verification.compare import OutputComparison, wilson_interval
from .measure import (
    available_cores,
    config_dict,
    fill_timing,
    machine_versions,
    measure_matmul_peak,
    time_calls,
    warm_up,
)
from .results import BenchReport, BenchResult


def bench_folder(
    folder: Path, manifest: Manifest, entries: list[ArtifactEntry], config: BenchConfig, progress
) -> BenchReport:
    """``bench`` once the folder, its manifest and the runtimes asked for have been checked."""
    device = reference.resolve_device(config.device)  # UsageError for a CUDA this machine lacks
    for entry in manifest.artifacts:  # every file first, streamed: nothing is loaded unless all match
        check_member(folder, entry, "benchmark")
    untrusted = manifest.refusal(config.trust)
    threads = config.threads or available_cores()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = _Run.start(folder, manifest, config, threads, device, progress, steps=1 + len(entries))
        run.eager()
        for entry in entries:
            if untrusted and formats.FORMATS[entry.format].runs_code:
                run.skip(entry, untrusted)
            else:
                run.artifact(entry, folder)
        run.report.peak = run.report.peak.combine(measure_matmul_peak(threads, runs=config.peak_runs, device=device))
    finally:
        torch.set_num_threads(previous_threads)
    return run.finish()


@dataclass
class _Run:
    """One benchmark in progress: the inputs, the eager reference's outputs, and the report so far."""

    manifest: Manifest
    config: BenchConfig
    device: torch.device
    model: nn.Module
    specs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]
    feeds: dict[int, np.ndarray]  # batch size -> the timed input, the first of its accuracy batches
    report: BenchReport
    progress: Callable[[str], None] | None
    steps: int
    reference: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # eager's, over the accuracy batches
    done: int = 0

    @classmethod
    def start(cls, folder: Path, manifest: Manifest, config: BenchConfig, threads: int, device: torch.device,
              progress, steps: int) -> _Run:  # fmt: skip
        """Rebuild eager (UsageError if it is not the exported model), count FLOPs, measure the peak."""
        model = reference.rebuild(folder, manifest, VerifyConfig(device=str(device), source=config.source), device)
        interface = manifest.interface
        specs = interface.inputs
        batch_sizes = tuple(sorted({int(b) for b in config.batch_sizes}))
        feeds = {b: next(_accuracy_feeds(b, specs, config.seed, samples=1)) for b in batch_sizes}  # the timed inputs
        report = BenchReport(
            artifact_dir=str(folder),
            model=str(manifest.model.get("name")),
            device=str(device),
            threads={
                "cores_available": available_cores(),
                "torch_intra_op": torch.get_num_threads(),
                "onnxruntime_intra_op": threads,
                "onnxruntime_inter_op": 1,
            },
            flops=count_flops(model, tuple(t.to(device) for t in _tensors(feeds[batch_sizes[0]], specs))),
            peak=measure_matmul_peak(threads, runs=config.peak_runs, device=device),
            onnxruntime_settings=tuned_settings(threads),
            config=config_dict(config, batch_sizes, threads),
            verified=(manifest.signed_verdict or {}).get("passed"),  # only a verdict this user signed, on it
            versions=machine_versions(device),
        )
        steps *= len(batch_sizes)
        return cls(manifest, config, device, model, specs, interface.output_names, feeds, report, progress, steps)

    @property
    def threads(self) -> int:
        return self.report.threads["onnxruntime_intra_op"]

    def eager(self) -> None:
        target = runners.eager(self.model, self.device, self.manifest.interface)
        target.activate()
        for b in self.feeds:
            self._measure(target, BenchResult("eager", "eager", b, threads=self.threads))

    def skip(self, entry: ArtifactEntry, reason: str) -> None:
        """Rows for a runtime not loaded because the folder is not trusted: they say so (exit 1)."""
        for b in self.feeds:
            row = BenchResult(formats.runtime_name(entry.format), entry.format, b, size_bytes=entry.bytes)
            row.error = trust.advice([row.runtime], reason)
            self._add(row)

    def artifact(self, entry: ArtifactEntry, folder: Path) -> None:
        """Load one artifact, time it at every batch size, and free it before the next one loads."""
        runtime = formats.runtime_name(entry.format)
        size = entry.bytes + sum(a.bytes for a in self.manifest.side_entries(entry))
        rows = [BenchResult(runtime, entry.format, b, size_bytes=size) for b in self.feeds]
        try:
            with runners.open_artifact(
                folder, self.manifest, entry, self.device, trust=True, threads=self.threads, action="benchmark"
            ) as target:  # trust was checked by bench()
                for row in rows:
                    self._measure(target, row)
        except ArtifactLoadError as error:
            for row in rows:
                row.error = str(error)
                self._add(row)
        finally:
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
            row.flags = implausible(row)
        results.sort(key=lambda r: r.batch_size)  # stable: the runtime order stays within a batch size
        return self.report

    def _add(self, row: BenchResult) -> None:
        row.threads = self.threads
        self.report.results.append(row)

    def _measure(self, target: Runner, row: BenchResult) -> None:
        """Bind the feed, keep one call's outputs for the comparison, then time; an exception fills ``error``."""
        self._add(row)
        row.settings = target.settings()
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
                _compare(row, self.reference[row.batch_size], got, self.manifest.interface.outputs)
            call = target.prepare(self.feeds[row.batch_size])
            row.warmup_calls = warm_up(call, self.config)
            fill_timing(row, time_calls(call, self.config), self.report.flops)
        except Exception as error:
            row.error = first_line(error)
        finally:
            row.notes = [n for n in target.notes if n.level != INFO]  # what is routine is in the settings

    def _outputs(self, target: Runner, batch_size: int) -> dict[str, np.ndarray]:
        """The target's outputs over every accuracy batch of ``batch_size``, concatenated by name."""
        return target.infer_all(_accuracy_feeds(batch_size, self.specs, self.config.seed, self.config.accuracy_samples))


SLOWER_THAN_EAGER = 10  # a runtime this many times slower than eager at the same batch: measure again
P99_OVER_P50 = 10  # calls this much slower than the median: the machine interrupted some of them


def implausible(row: BenchResult) -> dict[str, str]:
    """What does not add up in a row, by kind (``CAUSES``): a benchmark checks its own numbers."""
    quantized = row.format in formats.FORMATS and formats.FORMATS[row.format].quantized
    flags = {}
    if not quantized and row.peak_fraction is not None and row.peak_fraction > 1:
        flags["peak"] = f"{100 * row.peak_fraction:.0f}% of the peak"
    if row.latency_ms_p50 and row.latency_ms_p99 and row.latency_ms_p99 > P99_OVER_P50 * row.latency_ms_p50:
        flags["tail"] = f"p99 {row.latency_ms_p99 / row.latency_ms_p50:.0f}x p50"
    if row.speedup_vs_eager is not None and row.speedup_vs_eager * SLOWER_THAN_EAGER < 1:
        flags["slow"] = f"{1 / row.speedup_vs_eager:.0f}x slower than eager"
    return flags


def _accuracy_feeds(batch_size: int, specs: tuple[InputSpec, ...], seed: int, samples: int):
    """Whole batches covering ``samples`` (drawn as verify draws them by default), the timed batch first."""
    return inputs.seeded_batches(specs, seed, batch_size, samples)


def _tensors(feed: Feed, specs: tuple[InputSpec, ...]):
    """Forward's arguments for one feed (bfloat16 inputs are carried as float32)."""
    for spec in specs:
        value = torch.from_numpy(feed[spec.name])
        yield value.to(torch.bfloat16) if spec.dtype == "bfloat16" else value


def _compare(result: BenchResult, expected: dict[str, np.ndarray], got: dict[str, np.ndarray], outputs) -> None:
    """Max abs diff over every output, and top-1 agreement on the first, by verify's rules (ties allowed)."""
    quantized = formats.FORMATS[result.format].quantized
    diffs = []
    for index, output in enumerate(outputs):
        values = expected[output.name]
        cmp = OutputComparison.from_arrays(
            output.name, values, got[output.name], VerifyConfig().tolerance(output.dtype, quantized)
        )
        diffs.append(cmp.max_abs_diff)  # None: a shape mismatch, or no finite element to compare
        if index == 0:
            result.accuracy_samples = int(values.shape[0]) if values.ndim else 1
            result.top1_agreement = cmp.top1_agreement
            if quantized:  # near ties within the quantisation bound, as verify's int8 policy counts them
                result.top1_agreement_within_tolerance = cmp.top1_agreement_within_tolerance
            if cmp.top1_agreement is not None:
                result.top1_agreement_interval = wilson_interval(cmp.samples - cmp.top1_disagreements, cmp.samples)
    result.max_abs_diff = None if None in diffs else max(diffs, default=0.0)
