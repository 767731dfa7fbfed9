"""The table `exporter bench` prints, from hand-made results: every value in its column, a failed row saying
why, blocks per batch size, and the notes and footnotes only where they apply."""

from __future__ import annotations

from exporter.benchmarking.measure import MatmulPeak, config_dict
from exporter.benchmarking.results import BenchReport, BenchResult
from exporter.benchmarking.table import render
from exporter.config import BenchConfig
from exporter.eager.flops import FlopCount

ORT = {
    "graph_optimization_level": "ORT_ENABLE_ALL",
    "intra_op_num_threads": 2,
    "inter_op_num_threads": 1,
    "execution_mode": "ORT_SEQUENTIAL",
}


def _row(runtime: str, fmt: str, batch: int, **fields) -> BenchResult:
    timed = {
        "latency_ms_p50": 1.234,
        "latency_ms_p99": 2.5,
        "runs": 405,
        "throughput_per_s": 1_234_567.0,
        "gflops_per_s": 12.3,
        "peak_fraction": 0.246,
        "speedup_vs_eager": 1.5,
        "size_bytes": 2_690_000,
        "max_abs_diff": 1.19e-7,
        "top1_agreement": 1.0,
    }
    return BenchResult(runtime, fmt, batch, **{**timed, **fields})


def _report(results: list[BenchResult], **fields) -> BenchReport:
    base = {
        "artifact_dir": "artifacts/mlp",
        "model": "mlp",
        "device": "cpu",
        "threads": {"torch_intra_op": 2, "onnxruntime_intra_op": 2, "onnxruntime_inter_op": 1, "cores_available": 2},
        "flops": FlopCount(1_070_080, {"a": 1, "b": 2, "c": 3}),
        "peak": MatmulPeak(50.0, 0.3, 2048, 5, 2, [50.0]),
        "onnxruntime_settings": ORT,
        "config": config_dict(BenchConfig(), (1, 64), 2),
        "verified": True,
        "results": results,
        "versions": {"processor": "Test CPU @ 2GHz", "gpu": "Test GPU"},
    }
    return BenchReport(**{**base, **fields})


def _rows() -> list[BenchResult]:
    eager = _row("eager", "eager", 1, size_bytes=None, max_abs_diff=None, top1_agreement=None, speedup_vs_eager=1.0)
    int8 = _row("onnxruntime-int8", "onnx-int8", 1, top1_agreement=0.98, top1_agreement_within_tolerance=0.995)
    return [
        eager,
        _row("onnxruntime", "onnx", 1),
        int8,
        _row("eager", "eager", 64, size_bytes=None),
        _row("pt2", "pt2", 64),
    ]


def _blocks(text: str) -> dict[int, tuple[str, list[str]]]:
    """Per batch size: its header line and its rows (``batch N:``, then the column header, then one row each)."""
    lines, found = text.splitlines(), {}
    for i, line in enumerate(lines):
        if line.startswith("batch ") and line.endswith(":"):
            rows = []
            for row in lines[i + 2 :]:
                if not row:
                    break
                rows.append(row)
            found[int(line[6:-1])] = (lines[i + 1], rows)
    return found


def _cell_ends_under(header: str, column: str, line: str, value: str) -> bool:
    """A right-aligned value ends where its column's header ends."""
    end = header.index(column) + len(column)
    return line[end - len(value) : end] == value


def test_each_value_sits_in_its_column():
    header, (eager, ort, int8) = _blocks(render(_report(_rows())))[1]
    assert eager.startswith("eager ") and ort.startswith("onnxruntime ") and int8.startswith("onnxruntime-int8 ")
    for column, value in (
        ("max diff", "1.19e-07"),
        ("top-1", "100.0%"),
        ("p50 ms", "1.234"),
        ("p99 ms", "2.500"),
        ("samples/s", "1,234,567"),
        ("vs eager", "1.50x"),
        ("GFLOP/s", "12.3"),
        ("of peak", "25%"),
    ):
        assert _cell_ends_under(header, column, ort, value), (column, ort)
    assert _cell_ends_under(header, "top-1", int8, "98.0%")
    assert _cell_ends_under(header, "max diff", eager, "ref") and _cell_ends_under(header, "top-1", eager, "ref")


def test_a_value_wider_than_its_column_shifts_the_row_the_negative_twin():
    wide = _row("onnxruntime", "onnx", 1, throughput_per_s=123_456_789_012.0)  # 15 characters in a 9-wide column
    header, (line,) = _blocks(render(_report([wide])))[1]
    assert not _cell_ends_under(header, "vs eager", line, "1.50x")


def test_rows_come_in_one_block_per_batch_size_and_every_line_fits_100_columns():
    text = render(_report(_rows()))
    blocks = _blocks(text)
    assert sorted(blocks) == [1, 64] and len(blocks[1][1]) == 3 and len(blocks[64][1]) == 2
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "sizes: onnxruntime 2.69 MB, onnxruntime-int8 2.69 MB, pt2 2.69 MB" in text  # once, not per row


def test_a_failed_row_says_why_and_the_failures_are_listed_at_the_end():
    failed = BenchResult("onnxruntime", "onnx", 1, size_bytes=100, error="could not be loaded: not an ONNX file")
    text = render(_report([_row("eager", "eager", 1, size_bytes=None), failed]))
    _header, rows = _blocks(text)[1]
    assert rows[1].split() == ["onnxruntime", "-", "-", "failed"]
    assert text.splitlines()[-2:] == [
        "1 measurement(s) failed:",
        "  onnxruntime at batch 1: could not be loaded: not an ONNX file",
    ]
    passed = render(_report(_rows()))
    assert "failed" not in passed


def test_a_figure_that_does_not_add_up_is_marked_and_its_cause_given_once():
    flagged = [_row("onnxruntime", "onnx", 1, flags={"peak": "130% of the peak"}), _row("pt2", "pt2", 1)]
    text = render(_report(flagged))
    _header, (ort, pt2) = _blocks(text)[1]
    assert ort.endswith("!") and not pt2.endswith("!")
    assert "onnxruntime at batch 1 (130% of the peak): no float32 runtime can pass the float32 matmul peak" in (
        text.replace("\n    ", " ")
    )
    assert "do not add up" not in render(_report(_rows()))


def test_the_int8_footnote_only_with_an_int8_row():
    assert "int8: GFLOP/s counts the same multiply-accumulates" in render(_report(_rows()))
    without = [r for r in _rows() if r.format != "onnx-int8"]
    assert "int8:" not in render(_report(without))


def test_the_header_names_the_device_threads_flops_and_peak():
    lines = render(_report(_rows())).splitlines()
    assert lines[0] + " " + lines[1].strip() == (
        "bench mlp (artifacts/mlp) on the CPU (Test CPU @ 2GHz): torch 2 threads, onnxruntime intra-op 2, "
        "inter-op 1 (2 cores available)"
    )  # wrapped to 100 columns
    lines = lines[:1] + lines[2:]
    assert lines[1] == "FLOPs: 1,070,080 per sample (2 x multiply-accumulates of 3 Linear/Conv2d layers)"
    assert lines[2].startswith("matmul peak: 50.0 GFLOP/s (torch.mm of two 2048x2048 float32 matrices")
    cuda = render(_report(_rows(), device="cuda:0")).splitlines()[0]
    assert "on cuda:0 (Test GPU; host Test CPU @ 2GHz)" in cuda


def test_unknown_flops_and_a_failed_verification_are_said():
    text = render(_report(_rows(), flops=FlopCount(None, {}), verified=False))
    assert "FLOPs: unknown (no Linear or Conv2d layer): GFLOP/s not shown" in text
    assert "note: this folder's last verification FAILED" in text
    for verified in (True, None):
        assert "verification FAILED" not in render(_report(_rows(), verified=verified))


def test_the_settings_and_timing_lines_say_how_it_was_measured():
    text = render(_report(_rows()))
    text = " ".join(line.strip() for line in text.splitlines())  # the prose is wrapped to 100 columns
    assert "onnxruntime: ORT_ENABLE_ALL, intra-op 2 threads, inter-op 1, ORT_SEQUENTIAL" in text
    assert "timing: warm-up (5 calls, 0.1 s, then until the latency settles), then at least 5 calls and 0.5 s" in text
    assert "at least 1,024 per batch size" in text


def test_each_runtimes_notes_are_printed_once_at_the_end():
    from exporter.notes import Note

    note = Note.note("no CUDA provider: ran on the CPU")
    rows = [_row("onnxruntime", "onnx", batch, notes=[note]) for batch in (1, 64)]  # every row carries it
    lines = render(_report(rows)).splitlines()
    assert lines.count("note: onnxruntime: no CUDA provider: ran on the CPU") == 1
    assert not [line for line in render(_report(_rows())).splitlines() if line.startswith("note:")]
