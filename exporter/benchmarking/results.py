"""The results of ``bench``: one row per runtime and batch size, and the report that holds them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..eager.flops import FlopCount
from ..notes import Note
from .measure import MatmulPeak

# The figures a benchmark can check itself for, and what usually causes each.
CAUSES = {
    "peak": "no float32 runtime can pass the float32 matmul peak: the peak was measured while the machine was "
    "busier (other load?); rerun on an idle machine",
    "tail": "some calls were held up (other load on the machine, a page fault): rerun on an idle machine, or with "
    "a longer --min-time",
    "slow": "a cost the warm-up did not absorb (a first-call compile, a recompilation on every call) or other load: "
    "rerun with --warmup 100",
}


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
    notes: list[Note] = field(default_factory=list)  # what the runtime said of itself (a missing CUDA provider)
    flags: dict[str, str] = field(default_factory=dict)  # figures that do not add up: kind (CAUSES) -> the figure
    warmup_calls: int = 0  # untimed calls before the timed ones (until the latency settled)

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
    def notes(self) -> list[str]:
        """Each runtime's notes, once per runtime (every batch size's row carries them)."""
        seen: dict[str, None] = {}
        for row in self.results:
            for note in row.notes:
                seen.setdefault(f"{row.runtime}: {note}")
        return list(seen)

    @property
    def flags(self) -> list[str]:
        """One line per kind of figure that does not add up: where it was seen, and its likely cause."""
        lines = []
        for kind, cause in CAUSES.items():
            seen = [f"{r.runtime} at batch {r.batch_size} ({r.flags[kind]})" for r in self.results if kind in r.flags]
            if seen:
                lines.append(f"{', '.join(seen)}: {cause}")
        return lines

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
            "notes": self.notes,
            "flags": self.flags,
            "errors": self.errors,
        }

    def render(self) -> str:
        """The table `exporter bench` prints: one block per batch size, eager first, then notes."""
        from .table import render

        return render(self)
