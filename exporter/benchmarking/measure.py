"""What ``bench`` measures besides the runtimes' own calls: FLOPs, the machine's matmul peak, call timing.

A float32 matmul (``torch.mm``, 2048x2048) measured in the same run gives the machine's
peak, so each GFLOP/s figure can be read as a share of what this CPU can do.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import BenchConfig
from ..eager.flops import FlopCount

PEAK_SIZE = 2048  # the matmul peak multiplies two PEAK_SIZE x PEAK_SIZE float32 matrices
CUDA_PEAK_SIZE = 8192  # ... and on a GPU two of these (2048 would leave most of it idle)


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


def measure_matmul_peak(
    threads: int, size: int = PEAK_SIZE, runs: int = 5, device: torch.device | None = None
) -> MatmulPeak:
    """Median GFLOP/s of ``torch.mm`` on two ``size`` x ``size`` float32 matrices (2 * size^3 FLOPs each).

    One untimed call first (it allocates the result and wakes the thread pool). Uses torch's
    current thread count, which ``bench`` sets to ``threads`` beforehand. On a CUDA ``device`` the
    matrices are CUDA_PEAK_SIZE wide (2048 would not fill a GPU) and each call is synchronised.
    """
    device = device or torch.device("cpu")
    if device.type == "cuda":
        size = max(size, CUDA_PEAK_SIZE)
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device)
    b = torch.rand(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.mm(a, b, out=out)
    sync()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    gflops = 2 * size**3 / median / 1e9
    return MatmulPeak(gflops, median, size, runs, threads, [gflops])


SETTLE_BLOCK = 5  # warm-up calls per block while waiting for the latency to settle
SETTLE_WITHIN = 1.2  # settled: a block's median within a factor 1.2 of the block before, either way
SETTLE_MAX_S = 2.0  # ... or this long spent settling (a latency that never settles is what it is)


def warm_up(call: Callable[[], Any], config: BenchConfig) -> int:
    """Untimed calls: at least ``warmup`` of them and ``warmup_s`` seconds, then blocks of SETTLE_BLOCK until a
    block's median latency is within SETTLE_WITHIN of the previous block's (a runtime whose first calls
    compile or specialise, pt2's at batch 1 say, is then timed as it serves). The number of calls made."""
    calls, deadline = 0, time.perf_counter() + config.warmup_s
    while calls < config.warmup or time.perf_counter() < deadline:
        call()
        calls += 1
    previous, give_up = None, time.perf_counter() + SETTLE_MAX_S
    while time.perf_counter() < give_up:
        block = []
        for _ in range(SETTLE_BLOCK):
            start = time.perf_counter()
            call()
            block.append(time.perf_counter() - start)
        calls += SETTLE_BLOCK
        median = statistics.median(block)
        if previous is not None and previous / SETTLE_WITHIN <= median <= previous * SETTLE_WITHIN:
            break  # settled: neither slower nor faster than the block before
        previous = median
    return calls


def time_calls(call: Callable[[], Any], config: BenchConfig) -> list[float]:
    """Seconds per call: after ``warm_up``, timed calls for at least ``repeats`` calls and ``min_time_s``.

    The garbage collector is off while timing (as in ``timeit``), so a collection triggered by
    this loop's own allocations does not land in one call's latency.
    """
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


def fill_timing(result: Any, seconds: list[float], flops: FlopCount) -> None:
    ms = np.asarray(seconds) * 1e3
    result.runs = len(seconds)
    result.latency_ms_p50 = float(np.median(ms))
    result.latency_ms_p99 = float(np.percentile(ms, 99))
    result.latency_ms_mean = float(ms.mean())
    result.throughput_per_s = result.batch_size / (result.latency_ms_p50 / 1e3)
    if flops.per_sample is not None:
        result.gflops_per_s = flops.per_sample * result.throughput_per_s / 1e9


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def config_dict(config: BenchConfig, batch_sizes: tuple[int, ...], threads: int) -> dict[str, Any]:
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


def machine_versions(device: torch.device | None = None) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _onnxruntime_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": cpu_name(),
    }
    if device is not None and device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
        found["cuda"] = str(torch.version.cuda)
    return found


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
