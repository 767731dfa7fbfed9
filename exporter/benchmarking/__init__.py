"""``exporter bench``: how fast each runtime of an artifact folder runs, beside eager and the machine's peak.

run.py drives the runners (the same ones verify uses, through their ``prepare`` fast path),
measure.py times calls and counts FLOPs, results.py holds the rows, table.py prints them.
Importing this package imports no torch: ``bench`` reads the folder's manifest first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import BenchConfig

if TYPE_CHECKING:
    from .results import BenchReport, BenchResult

__all__ = ["BenchConfig", "BenchReport", "BenchResult", "bench"]


def bench(
    artifact_dir: str | Path, config: BenchConfig | None = None, *, progress: Callable[[str], None] | None = None
) -> BenchReport:
    """Benchmark eager and every runtime in ``artifact_dir`` at every batch size, on ``config.device``.

    ``config`` defaults to ``BenchConfig()`` (batch 1, 64 and 1024, every core). ``progress``
    receives a one-line status before each measurement (``progress.ProgressLine`` writes it to stderr).
    Raises UsageError for a bad config, folder or manifest (exit 2), and ExporterError (exit 1)
    when a file is missing or does not match its sha256: nothing is loaded then. A runtime that
    fails to load or run gets rows with ``error`` set; the others still run. torch's thread
    count is set for the run and restored on return.
    """
    from .. import formats
    from ..artifacts.manifest import Manifest
    from ..paths import check_shadowing

    check_shadowing()
    config = config or BenchConfig()  # checked when it was made
    folder = Path(artifact_dir)
    manifest = Manifest.load(folder)
    entries = formats.select(manifest.artifacts, config.runtimes)  # an unknown runtime answers before torch loads
    from .run import bench_folder

    return bench_folder(folder, manifest, entries, config, progress)


def __getattr__(name: str):
    if name in ("BenchReport", "BenchResult"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
