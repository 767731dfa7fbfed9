"""Runtime speed of the seed network: the three targets of `exporter bench` (issue: bench), checked here.

Exports mlp in every format to a temporary folder, then runs ``bench`` --rounds times (each
round measures its own matmul peak) and prints the median of each number over the rounds,
then the targets with their ratios, each ratio the median of the per-round ratios:

1. ONNX Runtime fp32 at batch 1 at least 2.5x faster than eager PyTorch (p50 latency);
2. ONNX Runtime fp32 at batch 1024 at least 85 % of the matmul peak measured in the same run;
3. int8 at batch 1024 at least 2x the throughput of fp32, with top-1 agreement at least 99 %.

Not a test: timings on a shared machine are noise-prone. The load average is printed before and
after so a reader can tell a quiet run from a busy one.

    python benchmarks/bench_runtimes.py [--rounds 3] [--min-time 1.0] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from exporter import ExportConfig, export
from exporter.benchmarking import BenchConfig, BenchReport, bench
from exporter.config import FORMATS

BATCH_SIZES = (1, 64, 1024)
RUNTIMES = ("eager", "torchscript", "onnxruntime", "pt2", "onnxruntime-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per row")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(f"load average before: {_load()}")
    folder = Path(tempfile.mkdtemp())
    path = export("mlp", ExportConfig(out=folder, device="cpu", formats=FORMATS, verify=False)).path
    config = BenchConfig(batch_sizes=BATCH_SIZES, threads=args.threads, min_time_s=args.min_time, warmup_s=0.2)
    reports = []
    for index in range(args.rounds):
        reports.append(bench(path, config))
        print(f"round {index + 1}/{args.rounds}: peak {reports[-1].peak.gflops_per_s:.1f} GFLOP/s")
    print(f"load average after:  {_load()}")
    first = reports[0]
    print(f"\n{first.model}, {first.threads['torch_intra_op']} threads, median of {args.rounds} rounds")
    print(f"matmul peak: {_median(reports, lambda r: r.peak.gflops_per_s):.1f} GFLOP/s ({first.peak.method})\n")
    print(f"{'runtime':<17} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'samples/s':>11} {'GFLOP/s':>8} {'of peak':>8}")
    for b in BATCH_SIZES:
        for runtime in RUNTIMES:
            p50 = _median(reports, lambda r, rt=runtime, b=b: r.result(rt, b).latency_ms_p50)
            p99 = _median(reports, lambda r, rt=runtime, b=b: r.result(rt, b).latency_ms_p99)
            rate = _median(reports, lambda r, rt=runtime, b=b: r.result(rt, b).throughput_per_s)
            gflops = _median(reports, lambda r, rt=runtime, b=b: r.result(rt, b).gflops_per_s)
            share = _median(reports, lambda r, rt=runtime, b=b: r.result(rt, b).peak_fraction)
            print(f"{runtime:<17} {b:>5} {p50:>9.3f} {p99:>9.3f} {rate:>11,.0f} {gflops:>8.1f} {100 * share:>7.1f}%")
    print()
    _targets(reports)


def _targets(reports: list[BenchReport]) -> None:
    speedup = _median(
        reports, lambda r: r.result("eager", 1).latency_ms_p50 / r.result("onnxruntime", 1).latency_ms_p50
    )
    share = _median(reports, lambda r: r.result("onnxruntime", 1024).peak_fraction)
    int8 = _median(
        reports,
        lambda r: r.result("onnxruntime-int8", 1024).throughput_per_s / r.result("onnxruntime", 1024).throughput_per_s,
    )
    last = reports[-1].result("onnxruntime-int8", 1024)  # the same seeded input every round: the same agreement
    exact, near = last.top1_agreement, last.top1_agreement_within_tolerance
    print("targets (ratios are medians of the per-round ratios):")
    _check("1. ONNX Runtime fp32 vs eager at batch 1 (p50 latency)", speedup, 2.5, "x")
    _check("2. ONNX Runtime fp32 at batch 1024, share of the matmul peak", share, 0.85, "%")
    _check("3. int8 vs fp32 throughput at batch 1024", int8, 2.0, "x")
    _check("   int8 top-1 agreement with eager at batch 1024 (exact argmax)", exact, 0.99, "%")
    _check("   int8 top-1 agreement, near-ties counted (verify's int8 policy)", near, 0.99, "%")


def _check(label: str, value: float, target: float, unit: str) -> None:
    shown = (f"{100 * value:.1f}%", f"{100 * target:.0f}%") if unit == "%" else (f"{value:.2f}x", f"{target:g}x")
    print(f"  {label}: {shown[0]} (target >= {shown[1]}): {'met' if value >= target else 'MISSED'}")


def _median(reports: list[BenchReport], pick) -> float:
    return statistics.median(pick(r) for r in reports)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
