"""The summary: rows, totals, the verdict, the table, JSON and CSV; the progress line."""

from __future__ import annotations

import csv
import io
import json

import pytest

from exporter.sweep.summary import Row, SweepReport, progress_line

ROWS = (
    Row("mlp", "passed", "", 3.2, 410.0, ("onnx",)),
    Row("cnn", "passed", "", 0.0, None, ("torchscript", "onnx"), skipped=True),
    Row("unused", "failed", "parameters spare.weight never used", 4.0, 400.0, ("onnx",)),
    Row("hangs", "timed out", "stopped after 5 s (timeout)", 5.1, 220.0, ("onnx",)),
)


def test_all_passed_is_a_pass_and_one_failure_fails_the_sweep():
    assert SweepReport(ROWS[:2], 3.5, "local, 2 jobs").passed
    report = SweepReport(ROWS, 9.0, "local, 2 jobs")
    assert not report.passed
    assert report.totals == {"passed": 2, "failed": 1, "refused": 0, "crashed": 0, "timed out": 1}
    assert not SweepReport((), 0.0, "local").passed  # nothing ran: nothing was shown to pass


def test_a_row_refuses_an_unknown_status():
    with pytest.raises(ValueError, match="unknown status"):
        Row("x", "ok", "", 0.0, None, ())


def test_the_table_has_a_row_per_entry_with_its_first_reason_and_the_totals():
    lines = SweepReport(ROWS, 9.0, "local, 2 jobs").render().splitlines()
    assert lines[0].split() == ["entry", "result", "time", "peak", "mem", "formats", "first", "reason"]
    assert lines[1].split()[:5] == ["mlp", "passed", "3.2", "s", "410"]
    assert "passed (kept)" in lines[2] and "torchscript,onnx" in lines[2]
    assert lines[3].endswith("parameters spare.weight never used")
    assert lines[4].startswith("hangs") and "timed out" in lines[4]
    assert lines[-1] == (
        "FAILED: 4 entries, 2 passed, 1 failed, 1 timed out (1 kept from an earlier run); 9.0 s, local, 2 jobs"
    )


def test_json_and_csv_carry_every_row():
    report = SweepReport(ROWS, 9.0, "ray (auto), 2 in flight")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False and data["totals"]["skipped"] == 1 and data["totals"]["entries"] == 4
    assert [e["status"] for e in data["entries"]] == ["passed", "passed", "failed", "timed out"]
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["name"] for r in rows] == ["mlp", "cnn", "unused", "hangs"]
    assert rows[1]["formats"] == "torchscript onnx" and rows[1]["skipped"] == "True"
    assert rows[2]["reason"] == "parameters spare.weight never used"


def test_progress_names_the_running_entries():
    assert progress_line(3, ["mlp", "cnn"], 4) == "sweep: 3 done, 2 running (mlp, cnn), 4 left"
    assert progress_line(0, [], 2) == "sweep: 0 done, 0 running, 2 left"
