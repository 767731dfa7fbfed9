"""pytest plugin (registered through the ``pytest11`` entry point): the ``export_check`` fixture.

    def test_net_exports(export_check):
        export_check.exports_match(Net().eval(), torch.rand(1, 28, 28))

Artifacts go to the test's own ``tmp_path``. With ``--exporter-keep DIR`` the artifacts of a
failing check are copied to ``DIR/<test name>/`` and the failure message says where. Nothing
heavy is imported until a test uses the fixture, so installing exporter costs other test
suites nothing at start-up.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("exporter", "export equivalence checks (exporter)")
    group.addoption(
        "--exporter-keep",
        metavar="DIR",
        default=None,
        help="copy the artifacts of failing export_check calls to DIR/<test name>/ for inspection",
    )


class ExportCheck:
    """What the ``export_check`` fixture returns: the two assertions, bound to one test."""

    def __init__(self, tmp_path: Path, keep: Path | None, test_name: str) -> None:
        self._tmp_path = tmp_path
        self._keep = keep
        self._test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self._calls = 0

    def exports_match(self, model: Any, example_inputs: Any, **options: Any):
        """``exporter.testing.assert_exports_match`` into this test's tmp_path (a tensor, tuple or dict)."""
        from .testing import assert_exports_match

        self._calls += 1
        out = self._tmp_path / f"exporter-{self._calls}"
        try:
            return assert_exports_match(model, example_inputs, out=out, **options)
        except AssertionError as error:
            raise AssertionError(self._kept(error, out)) from None

    def artifacts_match(self, artifact_dir: str | Path, **options: Any):
        """``exporter.testing.assert_artifacts_match``."""
        from .testing import assert_artifacts_match

        try:
            return assert_artifacts_match(artifact_dir, **options)
        except AssertionError as error:
            raise AssertionError(self._kept(error, Path(artifact_dir), whole=True)) from None

    def _kept(self, error: AssertionError, out: Path, whole: bool = False) -> str:
        message = str(error)
        if self._keep is None or not out.exists():
            return message
        target = self._keep / self._test_name / (out.name if whole else f"call-{self._calls}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(out, target, symlinks=True)
        return f"{message}\n(artifacts kept in {target})"


@pytest.fixture
def export_check(request: pytest.FixtureRequest, tmp_path: Path) -> ExportCheck:
    """Export-equivalence assertions with a per-test folder; see ``--exporter-keep``."""
    keep = request.config.getoption("--exporter-keep")
    return ExportCheck(tmp_path, Path(keep).resolve() if keep else None, request.node.name)
