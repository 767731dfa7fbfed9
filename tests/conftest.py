"""Shared fixtures: one real export of the seed network per test session, copied where tests tamper.

Tests that export a real model are marked ``slow``; ``make test-fast`` runs the others
(``pytest -m "not slow"``). Collection fails when a test uses an exporting fixture without the mark,
so the fast tier cannot grow an export unnoticed.
"""

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
# The catalogue of small models that must fail (each for its own cause) or pass, as `file.py:Class` names them.
BROKEN = ROOT / "tests" / "catalogue.py"

# Fixtures that export a real model: a test using one, directly or through another fixture, is slow.
EXPORTING_FIXTURES = frozenset({"mlp_export", "every_format", "all_formats", "external", "catalogue_export"})
# Slow tests whose files this suite does not write marks into: (file, test).
SLOW_ELSEWHERE = frozenset({("test_readme.py", "test_the_readme_example_test_file_passes_in_a_fresh_folder")})


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        if (item.path.name, getattr(item, "originalname", item.name)) in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)
        exporting = EXPORTING_FIXTURES & set(getattr(item, "fixturenames", ()))
        if exporting and item.get_closest_marker("slow") is None:
            unmarked.append(f"{item.nodeid} (uses {', '.join(sorted(exporting))})")
    if unmarked:
        raise pytest.UsageError("mark these tests @pytest.mark.slow: they export a model\n" + "\n".join(unmarked))


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
