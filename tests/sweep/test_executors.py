"""The executors: every entry's row comes back, limits per entry, Ray only with its extra."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from exporter.errors import ExtraMissingError
from exporter.sweep.executors import RAY_EXTRA, Budget, Events, LocalExecutor, RayExecutor, check_ray, work_folder
from exporter.sweep.fleet import Entry
from exporter.sweep.summary import Row


def entry(name: str, model: str = "nosuch", timeout_s: float | None = None, memory: int | None = None) -> Entry:
    return Entry(name, model, (), timeout_s, memory, (), ())


def test_an_entry_s_own_limits_win_over_the_sweep_s():
    budget = Budget(timeout_s=60, memory_mib=2048)
    limits = budget.for_entry(entry("a"), 2, (0, 1))
    assert (limits.timeout_s, limits.memory_mib, limits.threads, limits.cores) == (60.0, 2048, 2, (0, 1))
    own = budget.for_entry(entry("b", timeout_s=5, memory=64), 1, None)
    assert (own.timeout_s, own.memory_mib) == (5.0, 64)


def test_local_jobs_run_every_entry_and_report_each_row(tmp_path):
    started, finished = [], {}
    events = Events(lambda e: started.append(e.name), lambda e, row: finished.__setitem__(e.name, row))
    entries = [entry(f"m{i}") for i in range(3)]
    (tmp_path / ".sweep").mkdir()
    executor = LocalExecutor(2, Budget(60, None), cores=(0,))
    executor.run(entries, tmp_path, events)
    assert sorted(started) == ["m0", "m1", "m2"]
    assert {name: row.status for name, row in finished.items()} == dict.fromkeys(["m0", "m1", "m2"], "refused")
    assert all("unknown model 'nosuch'" in row.reason for row in finished.values())
    assert not any(work_folder(tmp_path, e.name).exists() for e in entries)
    assert (tmp_path / ".sweep" / "m0.stderr.log").is_file()  # the logs are kept
    assert executor.description == "local, 2 jobs"


def test_a_step_of_the_sweep_that_fails_for_one_entry_is_that_entry_s_row(tmp_path):
    finished = {}
    events = Events(lambda _e: None, lambda e, row: finished.__setitem__(e.name, row))
    (tmp_path / ".sweep").mkdir()
    LocalExecutor(1, Budget(60, None), cores=(10_000,)).run([entry("a")], tmp_path, events)  # no such core
    assert finished["a"].status == "crashed" and finished["a"].reason.startswith("could not run it: ")


def test_ray_without_its_extra_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ExtraMissingError, match=RAY_EXTRA.replace("[", r"\[").replace("]", r"\]")):
        check_ray()


def test_ray_with_its_extra_is_the_module():
    pytest.importorskip("ray", reason="the [ray] extra is not installed here")
    assert check_ray().__name__ == "ray"


class _FakeRay:
    """What _gather asks of ray: get() of a finished task's (row, tar bytes)."""

    def __init__(self, result):
        self.result = result

    def get(self, _ref):
        return self.result


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


ROW = Row("a", "passed", "", 1.0, 10.0, ("onnx",))


def test_a_task_s_folder_and_logs_are_unpacked_into_place(tmp_path):
    out = tmp_path / "out"
    (out / ".sweep").mkdir(parents=True)
    packed = _tar([_file("a/manifest.json", b"{}"), _file("stderr.log", b"log")])
    row = RayExecutor(1, Budget(60, None))._gather(_FakeRay((ROW, packed)), None, entry("a"), out)
    assert row == ROW
    assert (out / "a" / "manifest.json").read_bytes() == b"{}"
    assert (out / ".sweep" / "a.stderr.log").read_bytes() == b"log"
    assert not work_folder(out, "a").exists()


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "link-out"])
def test_a_hostile_archive_from_a_task_writes_nothing_outside_and_is_that_entry_s_crash(tmp_path, how):
    out = tmp_path / "out"
    (out / ".sweep").mkdir(parents=True)
    sentinel = tmp_path / "SENTINEL"
    if how == "dot-dot":
        members = [_file("a/manifest.json", b"{}"), _file("../../../SENTINEL", b"pwned")]
    elif how == "absolute":
        members = [_file("a/manifest.json", b"{}"), _file(str(sentinel), b"pwned")]
    else:
        link = tarfile.TarInfo("a/evil")
        link.type, link.linkname = tarfile.SYMTYPE, str(sentinel)
        members = [(link, None), _file("a/evil", b"pwned")]
    row = RayExecutor(1, Budget(60, None))._gather(_FakeRay((ROW, _tar(members))), None, entry("a"), out)
    assert not sentinel.exists()
    assert not work_folder(out, "a").exists()
    if how == "absolute":  # the leading / is dropped (tarfile's data filter): it lands in the work folder, not placed
        assert row == ROW and sorted(p.name for p in (out / "a").iterdir()) == ["manifest.json"]
    else:
        assert row.status == "crashed" and "cannot be unpacked safely" in row.reason
        assert not (out / "a").exists()
