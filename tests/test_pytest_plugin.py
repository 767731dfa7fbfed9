"""The pytest plugin: the ``export_check`` fixture, found through its entry point, and ``--exporter-keep DIR``,
which copies a failing check's artifacts to DIR/<test name>/ and says where."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import exporter.testing
from exporter.pytest_plugin import ExportCheck


def test_the_plugin_is_registered_through_its_entry_point(pytestconfig):
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("exporter") == "exporter.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("exporter")


def test_importing_the_plugin_imports_no_torch():
    code = (
        "import sys, exporter.pytest_plugin; print([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# --- the fixture, with the assertions faked (what they check is test_testing.py's) ---------------------------


class _Fake:
    """Stands in for exporter.testing's assertions: records each call, writes into ``out``, fails when told."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls = fail, []

    def exports(self, model, example_inputs, *, out, **options):
        self.calls.append((model, example_inputs, out, options))
        out.mkdir(parents=True)
        (out / "manifest.json").write_text("{}")
        (out / "link").symlink_to("manifest.json")
        if self.fail:
            raise AssertionError(f"exports of {model} do not match eager PyTorch")
        return "the report"

    def artifacts(self, artifact_dir, **options):
        self.calls.append((artifact_dir, options))
        if self.fail:
            raise AssertionError(f"artifacts in {artifact_dir} do not match eager PyTorch")
        return "the report"


@pytest.fixture
def passing(monkeypatch) -> _Fake:
    fake = _Fake()
    monkeypatch.setattr(exporter.testing, "assert_exports_match", fake.exports)
    monkeypatch.setattr(exporter.testing, "assert_artifacts_match", fake.artifacts)
    return fake


@pytest.fixture
def failing(passing) -> _Fake:
    passing.fail = True
    return passing


def test_the_fixture_exports_into_this_tests_tmp_path_one_folder_per_call(export_check, passing, tmp_path):
    assert isinstance(export_check, ExportCheck)
    assert export_check.exports_match("net", "x", samples=64) == "the report"
    export_check.exports_match("net", "y", formats=("onnx",))
    assert [(c[2], c[3]) for c in passing.calls] == [
        (tmp_path / "exporter-1", {"samples": 64}),
        (tmp_path / "exporter-2", {"formats": ("onnx",)}),
    ]
    assert export_check.artifacts_match("release/Net", model="net") == "the report"
    assert passing.calls[-1] == ("release/Net", {"model": "net"})


@pytest.mark.usefixtures("failing")
def test_without_keep_a_failure_is_the_assertions_own_message(export_check):
    with pytest.raises(AssertionError) as caught:
        export_check.exports_match("Net", "x")
    assert str(caught.value) == "exports of Net do not match eager PyTorch"


@pytest.mark.usefixtures("failing")
def test_with_keep_a_failing_calls_artifacts_are_copied_under_the_test_name(tmp_path):
    keep = tmp_path / "kept"
    check = ExportCheck(tmp_path / "work", keep, "test_net[cpu/fp32 case]")
    for call in (1, 2):
        with pytest.raises(AssertionError) as caught:
            check.exports_match("Net", "x")
        target = keep / "test_net_cpu_fp32_case_" / f"call-{call}"  # a name that is one folder
        assert str(caught.value) == f"exports of Net do not match eager PyTorch\n(artifacts kept in {target})"
        assert (target / "manifest.json").read_text() == "{}"
        assert (target / "link").is_symlink()  # copied as a link, never followed


@pytest.mark.usefixtures("passing")
def test_with_keep_a_passing_call_keeps_nothing(tmp_path):
    keep = tmp_path / "kept"
    ExportCheck(tmp_path / "work", keep, "test_net").exports_match("Net", "x")
    assert not keep.exists()


def test_with_keep_a_failure_before_anything_was_written_keeps_nothing(monkeypatch, tmp_path):
    def cannot_export(*_args, **_kwargs):
        raise AssertionError("Net could not be exported: forward branches on tensor values")

    monkeypatch.setattr(exporter.testing, "assert_exports_match", cannot_export)
    keep = tmp_path / "kept"
    with pytest.raises(AssertionError) as caught:
        ExportCheck(tmp_path / "work", keep, "test_net").exports_match("Net", "x")
    assert str(caught.value) == "Net could not be exported: forward branches on tensor values"
    assert not keep.exists()


@pytest.mark.usefixtures("failing")
def test_with_keep_a_failing_folder_is_copied_whole_and_an_earlier_copy_replaced(tmp_path):
    folder = tmp_path / "release" / "Net"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    keep = tmp_path / "kept"
    (keep / "test_release" / "Net").mkdir(parents=True)
    (keep / "test_release" / "Net" / "stale.txt").write_text("from an earlier run")
    with pytest.raises(AssertionError, match=re.escape(f"(artifacts kept in {keep / 'test_release' / 'Net'})")):
        ExportCheck(tmp_path / "work", keep, "test_release").artifacts_match(folder)
    assert sorted(p.name for p in (keep / "test_release" / "Net").iterdir()) == ["manifest.json"]


# --- --exporter-keep in a user's own suite -------------------------------------------------------------------

FAKED_SUITE = """
from pathlib import Path

import exporter.testing


def _fake(model, example_inputs, *, out, **options):
    out.mkdir(parents=True)
    (out / "model.onnx").write_text(model)
    if model == "bad":
        raise AssertionError("exports of bad do not match eager PyTorch")


exporter.testing.assert_exports_match = _fake


def test_good(export_check):
    export_check.exports_match("good", None)


def test_bad(export_check):
    export_check.exports_match("bad", None)
"""


def _pytest(folder: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True)


@pytest.mark.slow  # a user's suite that exports, run by pytest in a subprocess
def test_exporter_keep_copies_only_the_failing_tests_artifacts(tmp_path):
    (tmp_path / "test_user.py").write_text(FAKED_SUITE)
    run = _pytest(tmp_path, "--exporter-keep", "kept", "test_user.py")
    assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    kept = (tmp_path / "kept").resolve()
    assert f"(artifacts kept in {kept / 'test_bad' / 'call-1'})" in run.stdout
    assert sorted(p.name for p in kept.iterdir()) == ["test_bad"]
    assert (kept / "test_bad" / "call-1" / "model.onnx").read_text() == "bad"


def test_without_exporter_keep_nothing_is_kept_and_the_option_is_in_the_help(tmp_path):
    (tmp_path / "test_user.py").write_text(FAKED_SUITE)
    run = _pytest(tmp_path, "test_user.py")
    assert "1 failed, 1 passed" in run.stdout and "artifacts kept in" not in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_user.py"]
    assert "--exporter-keep=DIR" in _pytest(tmp_path, "--help").stdout


USER_SUITE = '''
import json
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Leaky(Net):
    """Dropout forced on: eager disagrees with itself."""

    def forward(self, x):
        return nn.functional.dropout(self.fc(x.flatten(1)), 0.5, training=True)


def test_net_matches(export_check):
    report = export_check.exports_match(Net().eval(), torch.rand(1, 28, 28), samples=64)
    assert report.passed


def test_leaky_fails(export_check):
    export_check.exports_match(Leaky().eval(), torch.rand(1, 28, 28), samples=64, formats=("onnx",))


def test_tampered_folder_fails(export_check, tmp_path):
    from exporter import ExportConfig, export

    net = Net().eval()
    folder = export(net, ExportConfig(out=tmp_path), example_input=torch.rand(1, 28, 28)).path
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"][0]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    export_check.artifacts_match(folder, model=net, samples=64)
'''


@pytest.mark.slow
def test_a_users_suite_finds_the_fixture_without_any_conftest(tmp_path):
    (tmp_path / "test_user_model.py").write_text(textwrap.dedent(USER_SUITE))
    keep = tmp_path / "kept"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--exporter-keep", str(keep)]
    result = subprocess.run(
        [*command, "test_user_model.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "2 failed, 1 passed" in out
    assert "exports of Leaky do not match eager PyTorch" in out and "the eager reference is nondeterministic" in out
    assert re.search(r"artifacts in \S+ do not match eager PyTorch", out)  # the tampered folder's own failure
    assert "sha256 " in out and "the file was not loaded" in out
    kept = sorted(p.name for p in keep.iterdir())
    assert kept == ["test_leaky_fails", "test_tampered_folder_fails"], kept
    assert (keep / "test_leaky_fails" / "call-1" / "Leaky" / "manifest.json").exists()
    assert "artifacts kept in" in out
