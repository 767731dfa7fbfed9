"""Time and peak memory of `exporter export` on ever wider models, against a hand-written script.

Targets (issue 26): with verification, the toolkit's peak RSS at most 1.5x the weights at 1 GB and
3 GB (the weights held once), its wall time at most 1.0x baseline_scale.py's (which traces
TorchScript, exports ONNX with torch's default exporter and compares eager, TorchScript and ONNX
Runtime at batch 1 and 64), and an 8 GB model (external data) exporting and verifying on a 24 GB
machine. A size the machine cannot hold (free memory, free disk) is skipped and says why; the
baseline (about 4.5x the weights) is left out where only it does not fit.

Each run is a fresh process (imports included): `exporter export benchmarks/wide.py:Wide
--input-shape 1,28,28 --device cpu` with WIDE_WIDTH set, alternating with the baseline,
--repeat times each at each width; peak RSS is the child's ru_maxrss (os.wait4). Medians.

    python benchmarks/bench_scale.py [--widths 1024,4096,8192 | --sizes 1,3,8] [--repeat 3] [--no-baseline]
    python benchmarks/bench_scale.py --resnet [--repeat 3]   # resnet18 at 224x224, against baseline_resnet.py

Widths 16384 (1.1 GB of weights, minutes per run) and 24000 (2.4 GB, external data) are for
a deliberate run: `--widths 16384 --repeat 1`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def weight_bytes(width: int) -> int:
    """float32 bytes of Wide(width): weights and biases."""
    return 4 * (784 * width + width + width * width + width + width * 10 + 10)


def width_for(gigabytes: float) -> int:
    """The width whose float32 weights are closest to ``gigabytes`` GB (w^2 + 796w + 10 elements)."""
    elements = gigabytes * 1e9 / 4
    return max(1, round((-796 + math.sqrt(796**2 + 4 * (elements - 10))) / 2))


TOOL_PEAK, BASELINE_PEAK = 1.5, 4.5  # peak RSS / weights (docs/measurements.md), and torch's import
IMPORTS = 0.6e9


def room() -> tuple[int | None, int]:
    """Free memory (MemAvailable) and free disk under the temporary folder, in bytes."""
    sys.path.insert(0, str(ROOT))
    from exporter.eager import footprint

    return footprint.free_memory(), shutil.disk_usage(tempfile.gettempdir()).free


def why_not(width: int, peak: float, files: float) -> str | None:
    """Why this machine cannot run a job peaking at ``peak`` x the weights with ``files`` x them on disk."""
    size = weight_bytes(width)
    memory, disk = room()
    if memory is not None and memory < size * peak + IMPORTS:
        return f"needs about {(size * peak + IMPORTS) / 1e9:.1f} GB of memory, {memory / 1e9:.1f} GB is available"
    if disk < size * files:
        return f"needs about {size * files / 1e9:.1f} GB of disk, {disk / 1e9:.1f} GB is free"
    return None


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}"


def run(cmd: list[str], width: int, logs: list[str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process (its output appended to ``logs``); exits on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WIDE_WIDTH": str(width)}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"{' '.join(cmd)} (width {width}) exited {child.returncode}:\n{tail}")
        if logs is not None:
            log.seek(0)
            logs.append(log.read().decode(errors="replace"))
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def child(out: Path) -> None:
    """``--child``: the same export as the CLI's, through the API, printing each step's start (seconds
    since start, RSS) so that the parent can say where the time goes; hashing the TorchScript file
    (read back after torch writes it) and each runtime's load are timed apart."""
    sys.path.insert(0, str(ROOT))
    start = time.perf_counter()

    def mark(message: str) -> None:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        print(f"STEP {time.perf_counter() - start:.2f} {rss} {message}", flush=True)

    mark("start: imports, the model built and probed")
    steps: set[str] = {"export: onnx"}  # marked when the TorchScript file's hash is done
    from exporter import ExportConfig, export, runners
    from exporter.formats import torchscript

    hashing, opening = torchscript.sha256_file, runners.open_artifact

    def sha256_file(path):
        mark("hashing: the TorchScript file read back")
        try:
            return hashing(path)
        finally:
            mark("export: onnx")  # what follows it

    def open_artifact(folder, manifest, entry, *args, **kwargs):
        mark(f"load {entry.path}")
        return opening(folder, manifest, entry, *args, **kwargs)

    torchscript.sha256_file, runners.open_artifact = sha256_file, open_artifact

    def progress(message: str) -> None:
        step = message.split(",")[0].split(" (")[0]
        step = "verify: " + step.split(": ", 1)[1] if step.startswith("verify") else "export: " + step.split(": ")[-1]
        if step not in steps:
            steps.add(step)
            mark(step)

    source = str(HERE / "wide.py") + ":Wide"
    result = export(source, ExportConfig(out=out, device="cpu", input_shape=(1, 28, 28)), progress=progress)
    mark("done")
    if not result.passed:
        raise SystemExit("verification failed")


def steps_table(log: str, size: int) -> str:
    """The child's STEP lines as a table: each step's seconds (to the next) and the RSS at its start."""
    marks = [line.split(" ", 3)[1:] for line in log.splitlines() if line.startswith("STEP ")]
    rows = ["| step | seconds | RSS at its start | /weights |", "| --- | --- | --- | --- |"]
    for (at, rss, name), (then, _, _) in itertools.pairwise(marks):
        rows.append(f"| {name} | {float(then) - float(at):.1f} | {int(rss) / 1e9:.2f} GB | {int(rss) / size:.2f}x |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1024,4096,8192", help="comma-separated hidden widths")
    parser.add_argument("--sizes", help="comma-separated float32 weight sizes in GB (1,3,8): the widths that make them")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per width")
    parser.add_argument("--no-baseline", action="store_true", help="time only the exporter (a 2.4 GB run)")
    parser.add_argument("--keep", type=Path, help="export into this folder and keep it (default: a temporary one)")
    parser.add_argument("--resnet", action="store_true", help="resnet18 at 224x224 against baseline_resnet.py instead")
    parser.add_argument("--steps", action="store_true", help="say where the exporter's time goes (export, hashing, "
                        "each runtime): it runs through the API in a child that marks each step")  # fmt: skip
    parser.add_argument("--child", nargs=2, metavar=("WIDTH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[1]))
        return
    if args.resnet:
        resnet(args.repeat)
        return
    if args.sizes:
        widths = [width_for(float(gb)) for gb in args.sizes.split(",")]
    else:
        widths = [int(w) for w in args.widths.split(",")]
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-")) if args.keep is None else args.keep
    print(f"machine: {machine()}; python {platform.python_version()}")
    header = (
        "| width | weights | exporter s | baseline s | time ratio "
        "| exporter peak RSS | /weights | baseline peak RSS | /weights |"
    )
    rows = []
    for width in widths:
        tool, base, logs = [], [], []
        skip = why_not(width, TOOL_PEAK, 3.0)
        if skip:
            print(f"width {width} ({weight_bytes(width) / 1e9:.2f} GB): skipped, the exporter {skip}", flush=True)
            continue
        baseline = not args.no_baseline
        skip = why_not(width, BASELINE_PEAK, 2.0) if baseline else None
        if skip:
            print(f"width {width}: no baseline, the hand-written script {skip}", flush=True)
            baseline = False
        for i in range(args.repeat):
            out = tmp / f"t{width}-{i}"
            cmd = [py, "-m", "exporter", "export", str(HERE / "wide.py") + ":Wide", "--input-shape", "1,28,28",
                   "--device", "cpu", "--out", str(out)]  # fmt: skip
            if args.steps:
                cmd = [py, str(Path(__file__).resolve()), "--child", str(width), str(out)]
            tool.append(run(cmd, width, logs))
            if args.keep is None:
                shutil.rmtree(out, ignore_errors=True)
            if baseline:
                out = tmp / f"b{width}-{i}"
                base.append(run([py, str(HERE / "baseline_scale.py"), str(out)], width))
                shutil.rmtree(out, ignore_errors=True)
        size = weight_bytes(width)
        t_time = statistics.median(t for t, _ in tool)
        t_rss = statistics.median(r for _, r in tool)
        cells = [f"{width:,}", f"{size / 1e9:.3f} GB", f"{t_time:.1f}"]
        if base:
            b_time = statistics.median(t for t, _ in base)
            b_rss = statistics.median(r for _, r in base)
            ratio = statistics.median(t / b for (t, _), (b, _) in zip(tool, base, strict=True))
            cells += [f"{b_time:.1f}", f"{ratio:.2f}x", f"{t_rss / 1e9:.2f} GB", f"{t_rss / size:.1f}x",
                      f"{b_rss / 1e9:.2f} GB", f"{b_rss / size:.1f}x"]  # fmt: skip
        else:
            cells += ["-", "-", f"{t_rss / 1e9:.2f} GB", f"{t_rss / size:.1f}x", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
        if args.steps:
            print(f"\nwhere the time goes at width {width} ({size / 1e9:.2f} GB), the last run:")
            print(steps_table(logs[-1], size), flush=True)
        print(f"width {width}: exporter {[f'{t:.1f}s/{r / 1e9:.2f}GB' for t, r in tool]}, "
              f"baseline {[f'{t:.1f}s/{r / 1e9:.2f}GB' for t, r in base]}", flush=True)  # fmt: skip
    print(f"\nmedians of {args.repeat} alternating run(s); time ratio: median of per-pair ratios")
    print(header)
    print("|" + " --- |" * 9)
    print("\n".join(rows))
    if args.keep is None:
        shutil.rmtree(tmp, ignore_errors=True)


def resnet(repeat: int) -> None:
    """resnet18 at 224x224: `exporter export` (default verification) against export + a 65-sample check by hand."""
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench-resnet-"))
    print(f"machine: {machine()}; python {platform.python_version()}")
    tool, base = [], []
    for i in range(repeat):
        out = tmp / f"t{i}"
        cmd = [py, "-m", "exporter", "export", str(HERE / "resnet.py") + ":ResNet18", "--input-shape", "1,3,224,224",
               "--device", "cpu", "--out", str(out)]  # fmt: skip
        tool.append(run(cmd, 0))
        shutil.rmtree(out, ignore_errors=True)
        out = tmp / f"b{i}"
        base.append(run([py, str(HERE / "baseline_resnet.py"), str(out)], 0))
        shutil.rmtree(out, ignore_errors=True)
        print(f"run {i + 1}: exporter {tool[-1][0]:.1f}s/{tool[-1][1] / 1e9:.2f}GB, "
              f"baseline {base[-1][0]:.1f}s/{base[-1][1] / 1e9:.2f}GB", flush=True)  # fmt: skip
    ratio = statistics.median(t / b for (t, _), (b, _) in zip(tool, base, strict=True))
    print(
        f"\nresnet18 224x224, medians of {repeat}: exporter {statistics.median(t for t, _ in tool):.1f} s, "
        f"baseline {statistics.median(t for t, _ in base):.1f} s, time ratio {ratio:.2f}x (median of pairs)"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
