"""One entry's process: its limits, its timeout, an interrupt, what its end means, its folder placed whole."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from exporter.sweep import child
from exporter.sweep.child import Limits, Processes, place, run, slots
from exporter.sweep.fleet import Entry

MODELS = Path(__file__).resolve().parent / "fleet_models.py"


def entry(model: str, *options: str, name: str = "e") -> Entry:
    return Entry(name, model, ("--input-shape", "1,28,28", *options), None, None, (), ())


def limits(timeout_s: float = 60.0, memory_mib: int | None = None) -> Limits:
    return Limits(1, None, timeout_s, memory_mib)


def test_jobs_share_the_cores_without_oversubscribing_them():
    assert slots(2, (0, 1, 2, 3)) == [(2, (0, 1)), (2, (2, 3))]
    assert slots(3, (0, 1, 2, 3)) == [(1, (0,)), (1, (1,)), (1, (2,))]
    assert slots(4, (0, 1)) == [(1, None)] * 4  # more jobs than cores: one thread each, not pinned
    assert Limits(3, None, 1.0, None).env()["OMP_NUM_THREADS"] == "3"


def test_a_refused_entry_is_its_row_and_leaves_no_folder(tmp_path):
    row = run(entry("nosuch"), tmp_path / "work", limits())
    assert (row.status, row.name) == ("refused", "e")
    assert row.reason.startswith("unknown model 'nosuch'")
    assert row.peak_mib is not None and row.peak_mib > 0
    assert not (tmp_path / "work" / "e").exists()


def test_a_hang_is_stopped_at_its_timeout_with_its_whole_group(tmp_path):
    started = time.monotonic()
    row = run(entry(f"{MODELS}:Hangs"), tmp_path / "work", limits(timeout_s=1.0))
    assert row.status == "timed out" and row.reason == "stopped after 1 s (timeout)"
    assert time.monotonic() - started < 30  # not the hour it sleeps
    assert not (tmp_path / "work" / "e").exists()


def test_an_interrupted_sweep_stops_a_running_entry(tmp_path):
    processes = Processes()
    raised = []

    def target():
        try:
            run(entry(f"{MODELS}:Hangs"), tmp_path / "work", limits(), processes)
        except KeyboardInterrupt:
            raised.append(True)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 10
    while not processes.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = processes.alive()
    processes.stop_all()
    thread.join(timeout=20)
    assert raised == [True]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def work(tmp_path: Path, report: dict | None = None, stderr: str = "") -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "stderr.log").write_text(stderr)
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report))
    return folder


def report(passed: bool, failures: list[str] | None = None) -> dict:
    artifacts = [{"format": "onnx", "path": "model.onnx"}, {"format": "onnx-data", "path": "model.onnx.data"}]
    return {"passed": passed, "manifest": {"artifacts": artifacts}, "verification": {"failures": failures or []}}


E = entry("mlp", "--format", "onnx")


@pytest.mark.parametrize(
    ("code", "made", "stderr", "memory", "status", "reason"),
    [
        (0, report(True), "", None, "passed", ""),
        (1, report(False, ["onnxruntime differs", "second"]), "", None, "failed", "onnxruntime differs"),
        (2, None, "note: x\nerror: unknown model 'x'\n", None, "refused", "unknown model 'x'"),
        (1, None, "error: the ONNX exporter failed\n", None, "failed", "the ONNX exporter failed"),
        (1, None, "error: internal error: KeyError: 'a' (set ...)\n", None, "crashed", "internal error: KeyError"),
        (-11, None, "", None, "crashed", "killed by SIGSEGV"),
        (-9, None, "", None, "crashed", "killed by SIGKILL (the memory limit or the system's out-of-memory"),
        (2, None, "error: building Hog failed: can't allocate memory\n", 64, "crashed", "out of memory (limit 64"),
        (2, None, "error: building Hog failed: can't allocate memory\n", None, "refused", "building Hog failed"),
        (1, None, "error: internal error: MemoryError\n", 64, "crashed", "out of memory (limit 64 MiB)"),
        (1, None, "", None, "failed", "exit 1 without a report"),
    ],
)
def test_how_the_process_ended_says_what_became_of_the_entry(tmp_path, code, made, stderr, memory, status, reason):
    found = child._outcome(E, work(tmp_path, made, stderr), code, False, limits(memory_mib=memory))
    assert found[0] == status and found[1].startswith(reason)
    assert found[2] == ("onnx",)  # the formats made (the data file is not a format), else those asked for


def test_a_timeout_wins_over_whatever_the_killed_process_left(tmp_path):
    found = child._outcome(E, work(tmp_path, report(True)), -9, True, limits(timeout_s=5))
    assert found[:2] == ("timed out", "stopped after 5 s (timeout)")


def test_place_swaps_the_whole_folder_in_and_keeps_the_logs(tmp_path):
    out = tmp_path / "out"
    (out / ".sweep").mkdir(parents=True)
    (out / "e").mkdir()
    (out / "e" / "old.txt").write_text("old")
    folder = work(tmp_path, stderr="the log")
    (folder / "e").mkdir()
    (folder / "e" / "manifest.json").write_text("{}")
    place(folder, out, "e")
    assert sorted(p.name for p in (out / "e").iterdir()) == ["manifest.json"]  # the new one, whole
    assert (out / ".sweep" / "e.stderr.log").read_text() == "the log"
    assert not folder.exists()


def test_place_keeps_the_earlier_folder_when_the_entry_made_none(tmp_path):
    out = tmp_path / "out"
    (out / ".sweep").mkdir(parents=True)
    (out / "e").mkdir()
    (out / "e" / "old.txt").write_text("old")
    place(work(tmp_path), out, "e")
    assert (out / "e" / "old.txt").read_text() == "old"
