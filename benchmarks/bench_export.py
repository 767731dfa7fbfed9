"""`exporter export mlp` (with its verification) against the shortest hand-written script.

Target (issue 2): the toolkit takes at most 1.2x the wall time of baseline_export.py,
which does the same steps with the same exporter. Both run as fresh processes (imports
included), alternating, --repeat times each; the median ratio is printed. Also times the
start-up commands (`--help`, `models`, a usage error) against `python -c "import torch"`.

    python benchmarks/bench_export.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str], expect: int = 0) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - start
    if result.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp())
    tool, base = [], []
    for i in range(args.repeat):
        tool.append(_time([py, "-m", "exporter", "export", "mlp", "--device", "cpu", "--out", str(tmp / f"t{i}")]))
        base.append(_time([py, str(ROOT / "benchmarks" / "baseline_export.py"), str(tmp / f"b{i}")]))
    ratios = [t / b for t, b in zip(tool, base, strict=True)]
    print(f"export mlp, median of {args.repeat} alternating runs")
    print(f"  exporter export mlp (with verification): {statistics.median(tool):.2f} s")
    print(f"  hand-written baseline:                   {statistics.median(base):.2f} s")
    ratio = statistics.median(ratios)
    print(f"  median ratio: {ratio:.2f}x (target <= 1.2x: {'met' if ratio <= 1.2 else 'MISSED'})")

    startup = {
        "exporter --help": ([py, "-m", "exporter", "--help"], 0),
        "exporter models": ([py, "-m", "exporter", "models"], 0),
        "exporter export nope (usage error)": ([py, "-m", "exporter", "export", "nope"], 2),
        'python -c "import torch" (for scale)': ([py, "-c", "import torch"], 0),
    }
    print("start-up, median of 5 runs")
    for label, (cmd, code) in startup.items():
        print(f"  {label:<40} {statistics.median(_time(cmd, code) for _ in range(5)):.3f} s")


if __name__ == "__main__":
    main()
