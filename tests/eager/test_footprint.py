"""The up-front check: an export the machine's free memory or disk cannot hold is exit 2 before it starts.

Every figure the check reads (free memory, free disk) is patched: the test process's own size (a
long pytest run is large) must play no part, and no test depends on this machine's free memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.eager import footprint
from exporter.eager.footprint import Footprint
from exporter.errors import TooBigError

GB = 10**9


def _room(monkeypatch, memory: int | None, disk: int | None) -> None:
    monkeypatch.setattr(footprint, "free_memory", lambda *_a, **_k: memory)
    monkeypatch.setattr(footprint, "free_disk", lambda *_a, **_k: disk)


def test_the_footprint_is_measured_from_the_weights_and_the_formats():
    need = Footprint.of(8 * GB, ("torchscript", "onnx"), copy=False)
    assert need.memory == int(8 * GB * (footprint.PEAK_PER_WEIGHT - 1)) + footprint.SLACK  # the eager copy is held
    assert need.disk == 16 * GB + footprint.DISK_SLACK
    more = Footprint.of(8 * GB, ("torchscript", "onnx", "onnx-int8"), copy=True)
    assert more.disk == 8 * GB * 3 + 2 * GB + footprint.DISK_SLACK  # int8 a quarter, the weights' copy once more
    assert Footprint.of(GB, ("onnx",), copy=False).memory < need.memory


def test_a_job_that_fits_passes_and_one_that_does_not_says_how_much_it_needs(monkeypatch, tmp_path):
    need = Footprint.of(8 * GB, ("torchscript", "onnx"), copy=False)
    _room(monkeypatch, memory=need.memory, disk=need.disk)
    footprint.check(need, tmp_path, "exporting big")  # exactly enough
    _room(monkeypatch, memory=need.memory - 1, disk=need.disk)
    with pytest.raises(TooBigError, match=r"exporting big needs about 4\.3 GB more free memory .* 8\.0 GB.*available"):
        footprint.check(need, tmp_path, "exporting big")
    _room(monkeypatch, memory=need.memory, disk=GB)
    with pytest.raises(TooBigError, match=rf"16\.0 GB of free disk in {tmp_path} .* 1\.0 GB is free"):
        footprint.check(need, tmp_path, "exporting big")
    _room(monkeypatch, memory=None, disk=None)  # not known here: not guessed
    footprint.check(need, tmp_path, "exporting big")


def test_free_memory_is_the_kernels_available_figure_within_a_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert footprint.free_memory(meminfo, cgroup) == 20_000_000 * 1024  # no cgroup files: no limit
    (cgroup / "memory.max").write_text("max\n")
    assert footprint.free_memory(meminfo, cgroup) == 20_000_000 * 1024
    (cgroup / "memory.max").write_text(f"{8 * GB}\n")
    (cgroup / "memory.current").write_text(f"{3 * GB}\n")
    assert footprint.free_memory(meminfo, cgroup) == 5 * GB  # the group's room, not the machine's
    assert footprint.free_memory(tmp_path / "absent", cgroup) is None


def test_free_disk_is_that_of_the_nearest_existing_folder(tmp_path):
    assert footprint.free_disk(tmp_path / "not" / "yet") == footprint.free_disk(tmp_path) > 0


def test_export_stops_with_exit_2_before_anything_is_written_when_memory_is_short(monkeypatch, tmp_path):
    from exporter import exporting
    from exporter.cli import cli

    written = []
    monkeypatch.setattr(exporting, "_write_artifacts", lambda *a, **_k: written.append(a))
    _room(monkeypatch, memory=10**6, disk=10**15)
    result = CliRunner().invoke(cli, ["export", "mlp", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 2 and not written
    assert "exporting mlp needs about" in result.output and "more free memory" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not any(Path(tmp_path / "out").iterdir())  # no staging folder left behind


def test_export_goes_ahead_when_the_figures_say_it_fits(monkeypatch, tmp_path):
    """The twin: with room enough the check lets the export start (here stopped just after, by a stub writer)."""
    from exporter import exporting
    from exporter.config import ExportConfig
    from exporter.errors import ExportFailedError

    def stop(*_args, **_kwargs):
        raise ExportFailedError("the writer was reached")

    monkeypatch.setattr(exporting, "_write_artifacts", stop)
    _room(monkeypatch, memory=10**15, disk=10**15)
    with pytest.raises(ExportFailedError, match="the writer was reached"):
        exporting.export("mlp", ExportConfig(out=tmp_path, device="cpu"))


def test_a_big_models_steps_are_estimated_from_its_size_and_then_from_this_runs_own_pace(monkeypatch):
    monkeypatch.setattr(footprint, "SECONDS_PER_GB", {"torchscript": 10.0, "onnx": 20.0})
    pace = footprint.Pace(2 * GB)
    assert pace.estimate("torchscript") == "about 20 s"
    pace.done("torchscript", 40.0)  # this machine: twice as slow as measured
    assert pace.estimate("onnx") == "about 80 s"
    assert footprint.Pace(8 * GB).estimate("onnx") == "about 3 min"  # 160 s
    assert footprint.Pace(footprint.BIG - 1).estimate("onnx") is None  # a small model: no estimate


@pytest.mark.slow
def test_exports_progress_says_how_long_a_big_models_steps_take(monkeypatch, tmp_path):
    from exporter import ExportConfig, export

    monkeypatch.setattr(footprint, "BIG", 0)  # the mlp taken for a big model
    seen: list[str] = []
    export("mlp", ExportConfig(out=tmp_path, device="cpu", verify=False), progress=seen.append)
    assert seen[0].startswith("export mlp: torchscript (1/2), about ") and seen[1].startswith(
        "export mlp: onnx (2/2), about"
    )
