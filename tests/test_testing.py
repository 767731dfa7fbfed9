"""exporter.testing and the pytest plugin, used the way a user's own suite would use them."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest
import torch
from torch import nn

from exporter.errors import UsageError
from exporter.testing import assert_artifacts_match, assert_exports_match

from .helpers import change_onnx_weight


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Unused(_Small):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(3, 3)


@pytest.mark.slow
def test_a_matching_model_returns_the_report():
    report = assert_exports_match(_Small().eval(), torch.rand(1, 28, 28), samples=64)
    assert report.passed and {r.runtime for r in report.runtimes} == {"torchscript", "onnxruntime"}


@pytest.mark.slow
def test_a_mismatch_raises_assertion_error_naming_it():
    with pytest.raises(AssertionError) as caught:
        assert_exports_match(_Unused().eval(), torch.rand(1, 28, 28), samples=64, formats=("onnx",))
    message = str(caught.value)
    assert message.startswith("exports of _Unused do not match eager PyTorch")
    assert "spare.weight, spare.bias are never used by forward" in message


@pytest.mark.slow
def test_an_export_that_cannot_be_made_is_an_assertion_error():
    class Branchy(_Small):
        def forward(self, x):
            return self.fc(x.flatten(1)) if x.sum() > 0 else -self.fc(x.flatten(1))

    with pytest.raises(AssertionError, match=r"could not be exported: .*branches on tensor values"):
        assert_exports_match(Branchy().eval(), torch.rand(1, 28, 28), formats=("onnx",))


@pytest.mark.slow
def test_artifacts_match_reads_only(mlp_dir):
    before = sorted(p.name for p in mlp_dir.iterdir())
    (mlp_dir / "verification.json").unlink()
    report = assert_artifacts_match(mlp_dir, samples=64)
    assert report.passed and sorted(p.name for p in mlp_dir.iterdir()) == [
        n for n in before if n != "verification.json"
    ]


@pytest.mark.slow
def test_artifacts_match_fails_on_a_tampered_file(mlp_dir):
    change_onnx_weight(mlp_dir)
    with pytest.raises(AssertionError, match=r"model\.onnx: sha256 .* the file was not loaded"):
        assert_artifacts_match(mlp_dir, samples=64)


@pytest.mark.slow
def test_an_unknown_option_is_a_usage_error(mlp_dir):
    with pytest.raises(UsageError, match="unknown verification option"):
        assert_artifacts_match(mlp_dir, tolerance=3)


def test_the_plugin_is_registered_through_its_entry_point(pytestconfig):
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("exporter") == "exporter.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("exporter")


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
