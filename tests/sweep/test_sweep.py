"""The whole sweep, as a user runs it: a fleet with one entry per outcome, with local jobs and on a local Ray.

Slow: each run exports the seed model, the cnn and a model that fails verification (ONNX only, few samples),
and starts the entries that are refused, hang, or run out of memory (each stopped within seconds).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.artifacts.manifest import Manifest

MODELS = Path(__file__).resolve().parent / "fleet_models.py"
FLEET = f"""
formats = ["onnx"]
samples = 16
batch_sizes = [1, 4]

[[entry]]
name = "mlp"
model = "mlp"

[[entry]]
name = "cnn"
model = "cnn"

[[entry]]
name = "unused"
model = "{MODELS}:UnusedParameter"
input_shape = "1,28,28"

[[entry]]
name = "raises"
model = "{MODELS}:RaisesInInit"
input_shape = "1,28,28"

[[entry]]
name = "hangs"
model = "{MODELS}:Hangs"
input_shape = "1,28,28"
timeout = 10

[[entry]]
name = "hog"
model = "{MODELS}:Hog"
input_shape = "1,28,28"
memory_mib = 3072
"""
EXPECTED = {
    "mlp": ("passed", ""),
    "cnn": ("passed", ""),
    "unused": ("failed", "onnxruntime parameters: parameters spare.weight, spare.bias are never used by forward"),
    "raises": ("refused", "building RaisesInInit failed: this model is broken on purpose"),
    "hangs": ("timed out", "stopped after 10 s (timeout)"),
    "hog": ("crashed", "out of memory (limit 3072 MiB): "),
}


def sweep(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "sweep", *args], cwd=cwd, capture_output=True, text=True, **kw
    )


def no_leftovers(out: Path) -> None:
    """Nothing half-written: no staging folder of export's, no work folder of the sweep's."""
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]
    assert not [p.name for p in (out / ".sweep").iterdir() if p.name.endswith(".work")]


def check_rows(out: Path, result: subprocess.CompletedProcess, summary: dict) -> None:
    assert result.returncode == 1, result.stderr
    rows = {row["name"]: row for row in summary["entries"]}
    assert list(rows) == list(EXPECTED)  # fleet order
    for name, (status, reason) in EXPECTED.items():
        assert rows[name]["status"] == status, (name, rows[name])
        assert rows[name]["reason"].startswith(reason), (name, rows[name])
        assert rows[name]["formats"] == ["onnx"] and rows[name]["peak_mib"] > 0
    assert summary["totals"] == {
        **{"passed": 2, "failed": 1, "refused": 1, "crashed": 1, "timed out": 1},
        **{"skipped": 0, "entries": 6},
    }
    for name in ("mlp", "cnn"):  # passed: a verified, signed folder at OUT/NAME
        assert Manifest.load(out / name).verdict["passed"] is True
    assert Manifest.load(out / "unused").verdict["passed"] is False  # kept, marked failed, as export keeps it
    for name in ("raises", "hangs", "hog"):
        assert not (out / name).exists()
    no_leftovers(out)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "fleet.toml").write_text(FLEET)
    result = sweep("fleet.toml", "--out", "out", "--jobs", "2", "--json", "summary.json", "--csv", "rows.csv", cwd=root)
    return root, result


@pytest.mark.slow
def test_local_jobs_give_each_entry_its_own_outcome(local_run):
    root, result = local_run
    check_rows(root / "out", result, json.loads((root / "summary.json").read_text()))
    assert "FAILED: 6 entries, 2 passed, 1 failed, 1 refused, 1 crashed, 1 timed out" in result.stdout
    assert [r["status"] for r in csv.DictReader((root / "rows.csv").open())] == [s for s, _ in EXPECTED.values()]


@pytest.mark.slow
def test_a_rerun_keeps_what_passed_and_runs_what_changed(local_run):
    root, _ = local_run
    passing = FLEET.split('[[entry]]\nname = "unused"')[0]
    (root / "again.toml").write_text(passing)
    kept = sweep("again.toml", "--out", "out", "--json", "-", cwd=root)
    assert kept.returncode == 0, kept.stderr
    summary = json.loads(kept.stdout)
    rows = summary["entries"]
    assert [(r["name"], r["status"], r["skipped"]) for r in rows] == [("mlp", "passed", True), ("cnn", "passed", True)]
    assert summary["executor"] == "nothing to run again"
    # one setting of one entry changed: that entry runs again, the other is still kept
    (root / "changed.toml").write_text(passing.replace('model = "cnn"', 'model = "cnn"\natol = 2e-5'))
    changed = sweep("changed.toml", "--out", "out", "--json", "-", cwd=root)
    assert changed.returncode == 0, changed.stderr
    rows = json.loads(changed.stdout)["entries"]
    assert [(r["name"], r["skipped"]) for r in rows] == [("mlp", True), ("cnn", False)]
    no_leftovers(root / "out")


@pytest.mark.slow
def test_ray_started_locally_gives_the_same_outcomes(tmp_path):
    pytest.importorskip("ray", reason="the [ray] extra is not installed here")
    (tmp_path / "fleet.toml").write_text(FLEET)
    result = sweep("fleet.toml", "--out", "out", "--jobs", "2", "--executor", "ray", "--json", "-", cwd=tmp_path)
    summary = json.loads(result.stdout)
    check_rows(tmp_path / "out", result, summary)
    assert summary["executor"].startswith("ray (local Ray started for the run)")


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_killing_the_sweep_stops_every_entry_and_leaves_no_half_written_folder(tmp_path, how):
    (tmp_path / "fleet.toml").write_text(FLEET.replace("timeout = 10", "timeout = 600"))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "sweep", "fleet.toml", "--out", str(out), "--jobs", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _processes_naming(str(out / ".sweep")) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the first entries run
    time.sleep(2)  # torch is loading, or an export is being written
    assert _processes_naming(str(out / ".sweep")), "no entry started"
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr.strip().splitlines()[-1].startswith("error: aborted")
    time.sleep(0.5)
    assert _processes_naming(str(out / ".sweep")) == []  # no entry left running
    no_leftovers(out)
    for folder in out.iterdir():
        if not folder.name.startswith("."):  # an entry that finished before the kill: whole
            Manifest.load(folder)


def test_progress_counts_done_running_and_left_never_more_running_than_jobs(tmp_path):
    # entries export refuses at once (an unknown model, past the fleet file's check): real processes, no torch
    from exporter.sweep import SweepConfig
    from exporter.sweep import sweep as run_sweep
    from exporter.sweep.fleet import Entry, Fleet

    entries = tuple(Entry(f"m{i}", "nosuch", (), None, None, (), ()) for i in range(4))
    lines: list[str] = []
    report = run_sweep(Fleet(tmp_path / "f.toml", entries), SweepConfig(out=tmp_path / "out", jobs=2), lines.append)
    assert [row.status for row in report.rows] == ["refused"] * 4 and not report.passed
    running = [int(line.split(", ")[1].split()[0]) for line in lines]
    assert max(running) == 2 and lines[0] == "sweep: 0 done, 0 running, 4 left"
    assert lines[-1] == "sweep: 4 done, 0 running, 0 left"
    assert any("running (m" in line for line in lines)


def test_what_passed_before_is_kept_and_force_runs_it_again(tmp_path, monkeypatch):
    import exporter.sweep as sweep_module
    from exporter.sweep import SweepConfig
    from exporter.sweep import sweep as run_sweep
    from exporter.sweep.fleet import Entry, Fleet
    from exporter.sweep.resume import record_path

    entries = (Entry("m", "nosuch", (), None, None, (), ()),)
    fleet, out = Fleet(tmp_path / "f.toml", entries), tmp_path / "out"
    record_path(out, "m").parent.mkdir(parents=True)
    record_path(out, "m").write_text(json.dumps({"row": {"formats": ["onnx"]}}))
    # as if OUT/m held a passing verdict of this digest (the slow rerun test above makes a real one)
    monkeypatch.setattr(sweep_module, "passed_before", lambda _out, _entry, _digest: True)
    (kept,) = run_sweep(fleet, SweepConfig(out=out)).rows
    assert (kept.status, kept.skipped, kept.formats) == ("passed", True, ("onnx",))
    (forced,) = run_sweep(fleet, SweepConfig(out=out, force=True)).rows
    assert (forced.status, forced.skipped) == ("refused", False)  # run again: export refuses it
