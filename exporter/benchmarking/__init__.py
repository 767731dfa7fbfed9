"""``exporter bench``: how fast each runtime of an artifact folder runs, beside eager and the machine's peak.

run.py drives the runners (the same ones verify uses, through their ``prepare`` fast path),
measure.py times calls and counts FLOPs, results.py holds the rows, table.py prints them.
"""

from __future__ import annotations

from ..config import BenchConfig
from .results import BenchReport, BenchResult
from .run import bench

__all__ = ["BenchConfig", "BenchReport", "BenchResult", "bench"]
