"""measure: how bench times calls (warm-up, repeats, a minimum time: checked on a fake clock, never on the real
one), the arithmetic of a row's timing, the matmul peak and what is recorded of the machine."""

from __future__ import annotations

import gc
import os

import pytest
import torch

from exporter.benchmarking import measure
from exporter.benchmarking.measure import MatmulPeak, fill_timing, measure_matmul_peak, time_calls, warm_up
from exporter.benchmarking.results import BenchResult
from exporter.config import BenchConfig
from exporter.eager.flops import FlopCount


class _Clock:
    """perf_counter for time_calls: time passes only when the fake call runs (a quarter second each: exact)."""

    def __init__(self, monkeypatch) -> None:
        self.now, self.calls, self.gc_during = 0.0, 0, []
        monkeypatch.setattr(measure.time, "perf_counter", lambda: self.now)

    def call(self) -> None:
        self.calls += 1
        self.gc_during.append(gc.isenabled())
        self.now += 0.25


def _config(**fields) -> BenchConfig:
    return BenchConfig(**{"warmup": 0, "warmup_s": 0.0, "repeats": 1, "min_time_s": 0.0, **fields})


# --- time_calls ----------------------------------------------------------------------------------------


SETTLED = 2 * measure.SETTLE_BLOCK  # a steady latency settles after two blocks: the second within the first


def test_warm_up_makes_its_calls_then_waits_for_a_steady_latency_and_times_none(monkeypatch):
    clock = _Clock(monkeypatch)
    assert warm_up(clock.call, _config(warmup=3)) == 3 + SETTLED == clock.calls
    seconds = time_calls(clock.call, _config(repeats=4))
    assert seconds == [0.25] * 4 and clock.calls == 3 + SETTLED + 4  # time_calls itself warms nothing up


def test_warm_up_lasts_at_least_its_time(monkeypatch):
    clock = _Clock(monkeypatch)
    assert warm_up(clock.call, _config(warmup=1, warmup_s=1.0)) == 4 + SETTLED  # 1 s is 4 calls, more than 1


def test_warm_up_goes_on_while_the_first_calls_are_slow(monkeypatch):
    clock = _Clock(monkeypatch)

    def compiling() -> None:  # the first 5 calls cost 0.1 s each (a compile per call), then 0.01 s
        clock.calls += 1
        clock.now += 0.1 if clock.calls <= 5 else 0.01

    calls = warm_up(compiling, _config())
    assert calls == 3 * measure.SETTLE_BLOCK  # slow, faster (not settled: 10x faster), then settled
    capped = warm_up(lambda: clock.call() or setattr(clock, "now", clock.now * 1.5 + 1), _config())
    assert capped * 0.25 < 100  # a latency that never settles stops at SETTLE_MAX_S, not never


def test_timed_calls_last_at_least_the_minimum_time(monkeypatch):
    clock = _Clock(monkeypatch)
    seconds = time_calls(clock.call, _config(repeats=1, min_time_s=1.0))
    assert seconds == [0.25] * 4 and clock.calls == 4


def test_repeats_are_made_even_past_the_minimum_time(monkeypatch):
    clock = _Clock(monkeypatch)
    assert len(time_calls(clock.call, _config(repeats=6, min_time_s=1.0))) == 6
    assert clock.calls == 6


def test_the_collector_is_off_while_timing_and_back_on_after(monkeypatch):
    clock = _Clock(monkeypatch)
    assert gc.isenabled()
    warm_up(clock.call, _config(warmup=2))
    time_calls(clock.call, _config(repeats=3))
    assert clock.gc_during == [True] * (2 + SETTLED) + [False] * 3 and gc.isenabled()


def test_a_collector_that_was_off_stays_off(monkeypatch):
    clock = _Clock(monkeypatch)
    gc.disable()
    try:
        time_calls(clock.call, _config(repeats=2))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_call_that_raises_still_turns_the_collector_back_on(monkeypatch):
    clock = _Clock(monkeypatch)

    def fails_when_timed():
        clock.call()
        if not gc.isenabled():
            raise RuntimeError("the runtime failed")

    with pytest.raises(RuntimeError, match="the runtime failed"):
        time_calls(fails_when_timed, _config(warmup=1))
    assert gc.isenabled()


# --- fill_timing ---------------------------------------------------------------------------------------


def test_fill_timing_gives_latency_percentiles_throughput_and_gflops():
    row = BenchResult("onnxruntime", "onnx", batch_size=4)
    fill_timing(row, [0.001, 0.002, 0.003, 0.004], FlopCount(1_000_000, {"fc": 1_000_000}))
    assert row.runs == 4
    assert row.latency_ms_p50 == pytest.approx(2.5) and row.latency_ms_mean == pytest.approx(2.5)
    assert row.latency_ms_p99 == pytest.approx(3.97)  # linear interpolation between 3 and 4 ms
    assert row.throughput_per_s == pytest.approx(4 / 0.0025)  # batch / p50
    assert row.gflops_per_s == pytest.approx(1e6 * 1600 / 1e9)


def test_without_a_flop_count_there_are_no_gflops():
    row = BenchResult("eager", "eager", batch_size=1)
    fill_timing(row, [0.01], FlopCount(None, {}))
    assert row.throughput_per_s == pytest.approx(100.0) and row.gflops_per_s is None


# --- the matmul peak -------------------------------------------------------------------------------------


def test_matmul_peak_is_positive_and_says_how_it_was_measured():
    peak = measure_matmul_peak(torch.get_num_threads(), size=256, runs=2)
    assert peak.gflops_per_s > 0 and peak.seconds_median > 0
    assert peak.method == "torch.mm of two 256x256 float32 matrices, median of 2 runs"
    assert peak.gflops_per_s == pytest.approx(2 * 256**3 / peak.seconds_median / 1e9)
    assert peak.measured_gflops_per_s == [peak.gflops_per_s] and (peak.size, peak.runs) == (256, 2)


def test_the_peak_keeps_the_higher_of_two_measurements():
    low = MatmulPeak(10.0, 1.0, 256, 2, 1, [10.0])
    high = MatmulPeak(30.0, 0.3, 256, 2, 1, [30.0])
    assert low.combine(high).gflops_per_s == high.combine(low).gflops_per_s == 30.0
    assert low.combine(high).seconds_median == 0.3  # the higher one's own median, not a mix
    assert low.combine(high).measured_gflops_per_s == [10.0, 30.0]
    assert low.combine(high).method == "torch.mm of two 256x256 float32 matrices, the higher of 2 medians of 2 runs"


# --- the machine ---------------------------------------------------------------------------------------


def test_available_cores_are_this_processs_affinity_else_the_cpu_count(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert measure.available_cores() == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert measure.available_cores() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert measure.available_cores() == 1


def test_the_cpu_is_named_from_proc_cpuinfo_else_by_platform_else_unknown(monkeypatch):
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        assert not names or measure.cpu_name() == names[0]

    def unreadable(*_args, **_kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(measure, "open", unreadable, raising=False)
    monkeypatch.setattr(measure.platform, "processor", lambda: "x86_64")
    assert measure.cpu_name() == "x86_64"
    monkeypatch.setattr(measure.platform, "processor", lambda: "")
    assert measure.cpu_name() == "unknown"


def test_the_versions_and_config_recorded():
    versions = measure.machine_versions(torch.device("cpu"))
    assert set(versions) == {"python", "torch", "onnxruntime", "numpy", "machine", "processor"}  # no gpu on a CPU
    assert versions["torch"] == torch.__version__
    config = measure.config_dict(BenchConfig(warmup=2, repeats=3), (1, 8), threads=2)
    assert config["batch_sizes"] == [1, 8] and config["threads"] == 2
    assert (config["warmup"], config["repeats"], config["min_time_s"]) == (2, 3, 0.5)
    assert config["throughput"] == "batch size / p50 latency, one call at a time"
