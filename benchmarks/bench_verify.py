"""How verification scales with samples: samples/s per runtime, and 1,000 -> 10,000 samples.

Target (issue 3): 10,000 samples through eager, TorchScript and ONNX Runtime take at most
1.5 s beyond the fixed start-up on a 2-core machine. The fixed start-up is measured in the
same run as a verification of 2 samples (hash checks, model rebuild, session creation).
Medians of --repeat runs. Not a test: timings on a shared machine are noisy.

    python benchmarks/bench_verify.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from exporter import ExportConfig, VerifyConfig, export, verify


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    path = export("mlp", ExportConfig(out=folder, device="cpu", verify=False)).path
    sizes = (2, 1_000, 10_000)
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    rates: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for n in sizes:  # alternate sizes within each round, so drift hits all alike
            start = time.perf_counter()
            report = verify(path, VerifyConfig(samples=n), write=False)
            walls[n].append(time.perf_counter() - start)
            assert report.passed, report.failures
            if n == 10_000:
                rates.setdefault("eager", []).append(report.samples / report.reference["seconds"])
                for r in report.runtimes:
                    rates.setdefault(r.runtime, []).append(report.samples / r.seconds)
    med = {n: statistics.median(v) for n, v in walls.items()}
    print(f"verify mlp, median of {args.repeat} runs (batch sizes 1 and 64, the same number of batches each)")
    for n in sizes:
        print(f"  {n:>6} samples: {med[n]:.3f} s wall")
    beyond = med[10_000] - med[2]
    print(f"  fixed start-up (2 samples): {med[2]:.3f} s")
    print(f"  10,000 samples beyond start-up: {beyond:.3f} s (target <= 1.5 s: {'met' if beyond <= 1.5 else 'MISSED'})")
    print(f"  scaling 1,000 -> 10,000 samples: {(med[10_000] - med[2]) / max(med[1_000] - med[2], 1e-9):.1f}x the cost")
    for runtime, values in rates.items():
        print(f"  {runtime:<12} {statistics.median(values):>10,.0f} samples/s inside infer()")


if __name__ == "__main__":
    main()
