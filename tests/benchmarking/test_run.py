"""`bench`: every runtime at every batch size, exact FLOP counts, hash-checked loading, usage errors.

Timings are never asserted (they are noise on a shared machine); structure, FLOP counts,
agreement with eager and refusals are. Repeats are tiny so the whole module takes seconds.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from exporter import ExportConfig, export
from exporter.artifacts.integrity import sha256_file
from exporter.artifacts.manifest import Manifest, sign_folder
from exporter.benchmarking import BenchConfig, bench
from exporter.config import FORMATS
from exporter.errors import ExporterError, UsageError

FAST = BenchConfig(batch_sizes=(1, 3), warmup=1, warmup_s=0, repeats=2, min_time_s=0, peak_runs=1, accuracy_samples=12)
RUNTIMES = ("eager", "torchscript", "onnxruntime", "pt2", "onnxruntime-int8")
MLP_FLOPS = 2 * (784 * 512 + 512 * 512 + 512 * 10)  # 2 x multiply-accumulates of the three Linear layers
JSON_KEYS = {"runtime", "batch_size", "latency_ms_p50", "latency_ms_p99", "throughput_per_s", "gflops_per_s"}


@pytest.fixture(scope="module")
def every_format(tmp_path_factory):
    """The seed network exported in every format (unverified: verify's own tests cover that)."""
    out = tmp_path_factory.mktemp("bench")
    return export("mlp", ExportConfig(out=out, device="cpu", formats=FORMATS, verify=False)).path


@pytest.fixture(scope="module")
def report(every_format):
    return bench(every_format, FAST)


@pytest.fixture
def private_copy(every_format, tmp_path):
    target = tmp_path / "mlp"
    shutil.copytree(every_format, target)
    return target


# ---------------------------------------------------------------- structure and JSON


@pytest.mark.slow
def test_every_runtime_is_measured_at_every_batch_size(report):
    assert {(r.runtime, r.batch_size) for r in report.results} == {(rt, b) for rt in RUNTIMES for b in (1, 3)}
    assert report.errors == []
    for row in report.results:
        assert row.runs >= FAST.repeats and row.latency_ms_p50 > 0 and row.latency_ms_p99 >= row.latency_ms_p50
        assert row.throughput_per_s > 0 and row.gflops_per_s > 0 and row.threads >= 1


@pytest.mark.slow
def test_rows_are_grouped_by_batch_size_with_eager_first(report):
    assert [r.batch_size for r in report.results] == sorted(r.batch_size for r in report.results)
    assert next(r.runtime for r in report.results if r.batch_size == 1) == "eager"


@pytest.mark.slow
def test_json_holds_every_result_with_the_documented_keys(report):
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # strict JSON: no NaN
    assert len(data["results"]) == len(RUNTIMES) * 2
    for row in data["results"]:
        assert set(row) >= JSON_KEYS
    assert data["flops_per_sample"] == MLP_FLOPS
    assert data["matmul_peak"]["gflops_per_s"] > 0 and "2048x2048" in data["matmul_peak"]["method"]


@pytest.mark.slow
def test_onnxruntime_settings_are_recorded_in_each_onnxruntime_row(report):
    for row in report.results:
        if row.runtime.startswith("onnxruntime"):
            assert row.settings["graph_optimization_level"] == "ORT_ENABLE_ALL"
            assert row.settings["inter_op_num_threads"] == 1 and row.settings["execution_mode"] == "ORT_SEQUENTIAL"
            assert row.settings["intra_op_num_threads"] == report.threads["onnxruntime_intra_op"]
        else:
            assert row.settings["mode"] == "torch.inference_mode"


@pytest.mark.slow
def test_sizes_are_the_artifact_files_and_eager_has_none(report, every_format):
    manifest = Manifest.load(every_format)
    for row in report.results:
        entry = manifest.artifact(row.format)
        assert row.size_bytes == (None if row.runtime == "eager" else entry.bytes)


@pytest.mark.slow
def test_on_the_cpu_every_runtime_runs_where_it_was_asked_and_notes_nothing(report):
    assert report.to_dict()["notes"] == report.notes == []  # once per runtime: test_results.py


@pytest.mark.slow
def test_the_table_names_every_runtime_and_the_peak(report):
    text = report.render()
    assert "matmul peak" in text and "GFLOP/s" in text and "of peak" in text
    for runtime in RUNTIMES:
        assert runtime in text
    assert "failed" not in text


# ---------------------------------------------------------------- agreement with eager


@pytest.mark.slow
def test_fp32_runtimes_match_eager_closely(report):
    for row in report.results:
        if row.runtime in ("torchscript", "onnxruntime", "pt2"):
            assert row.max_abs_diff is not None and row.max_abs_diff < 1e-5, row
            assert row.top1_agreement == 1.0


@pytest.mark.slow
def test_int8_differs_from_eager_by_more_than_fp32_but_within_its_policy(report):
    for b in (1, 3):
        int8, fp32 = report.result("onnxruntime-int8", b), report.result("onnxruntime", b)
        assert fp32.max_abs_diff < int8.max_abs_diff < 1e-2  # config.QUANTIZED_TOLERANCE's atol
        assert int8.top1_agreement_within_tolerance is not None
        assert fp32.top1_agreement_within_tolerance is None  # only the quantised runtime gets the near-tie figure


def _wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval, from the textbook formula (written here apart from exporter.compare's)."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.slow
def test_accuracy_is_measured_on_whole_batches_covering_the_accuracy_samples(report):
    for row in report.results:
        assert row.accuracy_samples == {1: 12, 3: 12}[row.batch_size], row  # eager: its reference's count
        if row.runtime == "eager":
            assert row.top1_agreement_interval is None  # eager is not compared with itself
            continue
        agreed = round(row.top1_agreement * row.accuracy_samples)
        # the 95 % interval of the share agreeing among every accuracy sample (not among the batches)
        assert row.top1_agreement_interval == pytest.approx(_wilson(agreed, row.accuracy_samples), abs=1e-12), row
    fp32 = report.result("onnxruntime", 3)
    assert fp32.top1_agreement == 1.0  # 12 of 12: the interval is (12 / (12 + 1.96^2), 1)
    assert fp32.top1_agreement_interval == pytest.approx((0.7575, 1.0), abs=1e-4)


@pytest.mark.slow
def test_batch_1_agreement_is_a_share_of_many_samples_not_one(every_format):
    config = replace(FAST, batch_sizes=(1, 64), runtimes=("onnx-int8",), accuracy_samples=100)
    rows = {r.batch_size: r for r in bench(every_format, config).results if r.runtime == "onnxruntime-int8"}
    assert rows[1].accuracy_samples == 100 and rows[64].accuracy_samples == 128  # two whole batches of 64
    one = replace(config, accuracy_samples=1)
    assert bench(every_format, one).result("onnxruntime-int8", 1).accuracy_samples == 1


@pytest.mark.slow
def test_the_timed_batch_is_the_first_accuracy_batch(every_format, monkeypatch):
    from exporter.runners.base import Runner

    inferred: dict[tuple[str, int], list[np.ndarray]] = {}  # what each runtime was compared on, in order
    prepared: dict[tuple[str, int], np.ndarray] = {}  # what each runtime was timed on
    infer, prepare = Runner.infer, Runner.prepare

    def spy_infer(self, feed):
        inferred.setdefault((self.runtime, len(feed["input"])), []).append(feed["input"].copy())
        return infer(self, feed)

    def spy_prepare(self, feed):
        prepared[(self.runtime, len(feed["input"]))] = feed["input"].copy()
        return prepare(self, feed)

    monkeypatch.setattr(Runner, "infer", spy_infer)
    monkeypatch.setattr(Runner, "prepare", spy_prepare)
    bench(every_format, replace(FAST, batch_sizes=(1, 4), runtimes=("onnx", "pt2"), accuracy_samples=10))
    runtimes = ("eager", "onnxruntime", "pt2")
    assert set(prepared) == set(inferred) == {(rt, b) for rt in runtimes for b in (1, 4)}
    for key, timed in prepared.items():
        batches = inferred[key]
        assert len(batches) == {1: 10, 4: 3}[key[1]], key  # whole batches covering the 10 samples
        assert np.array_equal(timed, batches[0]) and not np.array_equal(timed, batches[1]), key
        eager = inferred[("eager", key[1])]  # every runtime is fed the same batches
        assert all(np.array_equal(a, b) for a, b in zip(batches, eager, strict=True)), key


@pytest.mark.slow
def test_eager_is_the_reference_and_is_not_compared_with_itself(report):
    for row in report.results:
        eager = report.result("eager", row.batch_size)
        if row.runtime == "eager":
            assert row.max_abs_diff is None and row.speedup_vs_eager == pytest.approx(1.0)
        else:  # each runtime against eager at its own batch size
            assert row.max_abs_diff is not None
            assert row.speedup_vs_eager == pytest.approx(row.throughput_per_s / eager.throughput_per_s)


# ---------------------------------------------------------------- threads and the peak


@pytest.mark.slow
def test_threads_are_set_for_the_run_reported_and_restored(every_format):
    before = torch.get_num_threads()
    threads = 2 if before == 1 else 1  # another count than torch's, so that restoring it shows
    result = bench(every_format, replace(FAST, batch_sizes=(2,), threads=threads))
    assert torch.get_num_threads() == before
    assert result.threads["torch_intra_op"] == threads and result.threads["onnxruntime_intra_op"] == threads
    assert result.onnxruntime_settings["intra_op_num_threads"] == threads
    assert {r.threads for r in result.results} == {threads}


@pytest.mark.slow
def test_the_reported_peak_is_the_higher_of_two_and_each_row_a_share_of_it(report):
    assert len(report.peak.measured_gflops_per_s) == 2  # bench measures before and after the runtimes
    assert report.peak.gflops_per_s == max(report.peak.measured_gflops_per_s)
    for row in report.results:
        assert row.peak_fraction == pytest.approx(row.gflops_per_s / report.peak.gflops_per_s)


# ---------------------------------------------------------------- refusals and failures


@pytest.mark.slow
def test_a_tampered_artifact_is_refused_before_anything_loads(private_copy, monkeypatch):
    import exporter.runners.onnxruntime as ort_runner

    loaded = []
    monkeypatch.setattr(ort_runner, "session", lambda *a: loaded.append(a))
    onnx_file = private_copy / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-16] + b"\0" * 16)
    with pytest.raises(ExporterError) as caught:
        bench(private_copy, FAST)
    assert not isinstance(caught.value, UsageError)  # exit 1, like verify's failed hash check
    message = str(caught.value)
    assert "model.onnx does not match its sha256" in message and "\n" not in message
    assert loaded == []


@pytest.mark.slow
def test_the_untampered_copy_runs(private_copy):
    assert bench(private_copy, replace(FAST, batch_sizes=(1,))).errors == []


@pytest.mark.slow
def test_a_missing_artifact_is_refused(private_copy):
    (private_copy / "model.pt2").unlink()
    with pytest.raises(ExporterError, match=r"model\.pt2 is missing"):
        bench(private_copy, FAST)


@pytest.mark.slow
def test_a_runtime_that_cannot_load_fails_its_rows_and_the_others_still_run(private_copy):
    # A well-formed model of an operator no runtime has, its hash re-stamped: it passes the hash check and the
    # file checks (garbage would be refused outright, exit 2), then ONNX Runtime rejects it.
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    graph = helper.make_graph([helper.make_node("NoSuchOperator", ["input"], ["logits"])], "g", [x], [y])
    bad = private_copy / "model.int8.onnx"
    bad.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString())
    assert onnx
    manifest = Manifest.load(private_copy)
    entry = manifest.artifact("onnx-int8")
    entry.sha256, entry.bytes = sha256_file(bad), bad.stat().st_size
    manifest.write(private_copy)
    sign_folder(private_copy)  # the test's own edit: still a folder this machine trusts
    result = bench(private_copy, FAST)
    failed = {(r.runtime, r.batch_size) for r in result.results if r.error}
    assert failed == {("onnxruntime-int8", 1), ("onnxruntime-int8", 3)}
    assert all("could not be loaded" in r.error for r in result.results if r.error)
    assert len(result.errors) == 2 and "failed" in result.render()
    assert result.result("onnxruntime", 1).error is None


@pytest.mark.slow
def test_a_runtime_filter_keeps_eager_and_the_named_runtimes(every_format):
    config = replace(FAST, batch_sizes=(2,), runtimes=("onnx", "pt2"))
    assert [r.runtime for r in bench(every_format, config).results] == ["eager", "onnxruntime", "pt2"]


def test_a_folder_without_a_manifest_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not an artifact folder"):
        bench(tmp_path / "nope", FAST)


# ---------------------------------------------------------------- progress


@pytest.mark.slow
def test_progress_is_told_once_per_measurement(every_format):
    seen: list[str] = []
    bench(every_format, replace(FAST, runtimes=("onnx",)), progress=seen.append)
    assert len(seen) == 4 and seen[-1].endswith("(4/4)") and "onnxruntime at batch 3" in seen[-1]
