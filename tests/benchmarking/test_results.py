"""bench's results, built by hand: rows looked up by runtime and batch size, notes once per runtime, the
failed measurements, and the JSON form."""

from __future__ import annotations

import json

from exporter.benchmarking.measure import MatmulPeak
from exporter.benchmarking.results import BenchReport, BenchResult
from exporter.eager.flops import FlopCount
from exporter.notes import Note


def _report(results: list[BenchResult]) -> BenchReport:
    return BenchReport(
        artifact_dir="artifacts/mlp",
        model="mlp",
        device="cpu",
        threads={"torch_intra_op": 2, "onnxruntime_intra_op": 2, "onnxruntime_inter_op": 1, "cores_available": 2},
        flops=FlopCount(1000, {"fc": 1000}),
        peak=MatmulPeak(50.0, 0.3, 2048, 5, 2, [40.0, 50.0]),
        onnxruntime_settings={"graph_optimization_level": "ORT_ENABLE_ALL"},
        config={"batch_sizes": [1, 64]},
        verified=True,
        results=results,
        versions={"torch": "2.13.0"},
    )


def _rows(notes: list[Note] | None = None, error: str | None = None) -> list[BenchResult]:
    return [
        BenchResult(runtime, fmt, batch, notes=list(notes or []) if runtime == "onnxruntime" else [], error=error)
        for batch in (1, 64)
        for runtime, fmt in (("eager", "eager"), ("onnxruntime", "onnx"))
    ]


def test_a_runtimes_notes_are_said_once_though_every_batch_size_carries_them():
    notes = [Note.note("no CUDA provider: ran on the CPU"), Note.info("execution providers: CPUExecutionProvider")]
    report = _report(_rows(notes))
    assert report.notes == [
        "onnxruntime: no CUDA provider: ran on the CPU",
        "onnxruntime: execution providers: CPUExecutionProvider",
    ]
    assert report.to_dict()["notes"] == report.notes
    assert _report(_rows()).notes == []


def test_the_same_words_from_two_runtimes_are_two_notes():
    rows = [BenchResult(rt, rt, 1, notes=[Note.note("ran on the CPU")]) for rt in ("pt2", "torchscript")]
    assert _report(rows).notes == ["pt2: ran on the CPU", "torchscript: ran on the CPU"]


def test_errors_name_each_failed_row_and_only_those():
    rows = _rows()
    rows[1].error = "could not be loaded: not an ONNX file"
    rows[3].error = "raised RuntimeError: out of memory"
    assert _report(rows).errors == [
        "onnxruntime at batch 1: could not be loaded: not an ONNX file",
        "onnxruntime at batch 64: raised RuntimeError: out of memory",
    ]
    assert _report(_rows()).errors == []


def test_a_row_is_found_by_runtime_and_batch_size():
    report = _report(_rows())
    assert report.result("onnxruntime", 64) is report.results[3]
    assert report.result("onnxruntime", 2) is None and report.result("pt2", 1) is None


def test_the_json_form_is_strict_and_keeps_its_keys():
    rows = _rows([Note.note("ran on the CPU")])
    rows[0].top1_agreement_interval = (0.75, 1.0)
    data = json.loads(json.dumps(_report(rows).to_dict(), allow_nan=False))
    assert set(data) == {
        "artifact_dir",
        "model",
        "device",
        "threads",
        "flops_per_sample",
        "flop_layers",
        "matmul_peak",
        "onnxruntime_settings",
        "config",
        "verified",
        "versions",
        "results",
        "notes",
        "flags",
        "errors",
    }
    assert data["flops_per_sample"] == 1000 and data["flop_layers"] == {"fc": 1000}
    assert data["matmul_peak"]["gflops_per_s"] == 50.0 and "the higher of 2 medians" in data["matmul_peak"]["method"]
    assert data["results"][1]["notes"] == [{"level": "note", "text": "ran on the CPU"}]
    assert data["results"][0]["top1_agreement_interval"] == [0.75, 1.0]
    keys = {"runtime", "batch_size", "latency_ms_p50", "latency_ms_p99", "throughput_per_s", "gflops_per_s"}
    assert keys | {"flags", "warmup_calls"} <= set(data["results"][0])


def test_render_is_the_table():
    from exporter.benchmarking.table import render

    report = _report(_rows())
    report.onnxruntime_settings = {
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "intra_op_num_threads": 2,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
    }
    report.config = {"warmup": 5, "warmup_s": 0.1, "repeats": 5, "min_time_s": 0.5}
    assert report.render() == render(report) and report.render().startswith("bench mlp (artifacts/mlp)")
