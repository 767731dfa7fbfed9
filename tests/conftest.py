"""Shared fixtures: one real export of the seed network per test session, copied where tests tamper."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The signing key every export makes (exporter.trust) goes to a private folder of this test
# session, never the user's ~/.config/exporter; subprocesses inherit it.
os.environ["EXPORTER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="exporter-test-config-")

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "broken_models.py"


@pytest.fixture(scope="session")
def mlp_export(tmp_path_factory):
    """The seed network exported (both formats, verified) once for the whole session."""
    from exporter import ExportConfig, export

    out = tmp_path_factory.mktemp("exported")
    return export("mlp", ExportConfig(out=out, device="cpu"))


@pytest.fixture
def mlp_dir(mlp_export, tmp_path) -> Path:
    """A private copy of the exported folder that a test may tamper with."""
    target = tmp_path / "mlp"
    shutil.copytree(mlp_export.path, target)
    return target
