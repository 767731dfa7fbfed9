"""`exporter sweep` with 2 jobs against a sequential shell loop of `exporter export` over the same entries.

The same fleet both ways: mlp and cnn, twice each (seeds 0 and 1), ONNX only, 64 samples. The loop is
what a user writes today (`for m in ...; do exporter export ...; done` in bash); the sweep runs the same
exports, each in its own process, 2 at a time, then writes its summary. Alternating, --repeat times each
in the same run; the medians and their ratio are printed. On a 2-core machine the gain is bounded by the
cores (each export's torch and ONNX Runtime use every core they are given; the sweep gives each job one).

    python benchmarks/bench_sweep.py [--repeat 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = [("mlp", "mlp", 0), ("cnn", "cnn", 0), ("mlp-1", "mlp", 1), ("cnn-1", "cnn", 1)]  # name, model, seed
SETTINGS = ["--format", "onnx", "--samples", "64", "--device", "cpu"]


def fleet_text() -> str:
    lines = ['formats = ["onnx"]', "samples = 64", 'device = "cpu"']
    for name, model, seed in ENTRIES:
        lines += ["", "[[entry]]", f'name = "{name}"', f'model = "{model}"', f"seed = {seed}"]
    return "\n".join(lines) + "\n"


def loop_script(out: Path) -> str:
    exporter = shlex.quote(str(Path(sys.executable).parent / "exporter"))
    commands = [
        f"{exporter} export {model} --name {name} --seed {seed} --out {shlex.quote(str(out))} {' '.join(SETTINGS)}"
        for name, model, seed in ENTRIES
    ]
    return "set -e\n" + "\n".join(f"{c} > /dev/null" for c in commands) + "\n"


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=os.environ)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr[-800:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    fleet = tmp / "fleet.toml"
    fleet.write_text(fleet_text())
    exporter = str(Path(sys.executable).parent / "exporter")
    swept, looped = [], []
    try:
        for i in range(args.repeat):
            out = tmp / f"sweep{i}"  # a fresh folder each time: nothing is kept from an earlier run
            swept.append(_time([exporter, "sweep", str(fleet), "--out", str(out), "--jobs", str(args.jobs)]))
            looped.append(_time(["bash", "-c", loop_script(tmp / f"loop{i}")]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.median(s / loop for s, loop in zip(swept, looped, strict=True))
    print(f"{len(ENTRIES)} entries (mlp, cnn x 2 seeds, onnx, 64 samples), {os.cpu_count()} cores, ", end="")
    print(f"median of {args.repeat} alternating runs")
    print(f"  exporter sweep --jobs {args.jobs}:    {statistics.median(swept):.1f} s  {[round(t, 1) for t in swept]}")
    print(f"  sequential loop of export: {statistics.median(looped):.1f} s  {[round(t, 1) for t in looped]}")
    print(f"  median ratio sweep/loop: {ratio:.2f}x")


if __name__ == "__main__":
    main()
