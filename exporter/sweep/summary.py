"""The sweep's summary: one row per entry, the totals, as a table, JSON or CSV; and its progress line."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..tables import text_table

STATUSES = ("passed", "failed", "refused", "crashed", "timed out")


@dataclass(frozen=True)
class Row:
    """What became of one entry. ``status`` is one of STATUSES; ``reason`` the first one ("" when it passed)."""

    name: str
    status: str
    reason: str
    seconds: float  # wall time of its process (0 when skipped)
    peak_mib: float | None  # peak resident memory of its process (None when skipped, or not measured)
    formats: tuple[str, ...]
    skipped: bool = False  # resumed: it passed before with the same digest, and was not run again

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "formats": list(self.formats)}


@dataclass(frozen=True)
class SweepReport:
    rows: tuple[Row, ...]
    seconds: float  # the whole sweep's wall time
    executor: str  # "local (2 jobs)", "ray (auto)"

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.status == "passed" for row in self.rows)

    @property
    def totals(self) -> dict[str, int]:
        return {status: sum(row.status == status for row in self.rows) for status in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "totals": {**self.totals, "skipped": sum(r.skipped for r in self.rows), "entries": len(self.rows)},
            "seconds": self.seconds,
            "executor": self.executor,
            "entries": [row.to_dict() for row in self.rows],
        }

    def to_csv(self) -> str:
        """One line per entry, the columns of ``Row`` (formats joined by spaces)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        names = [f.name for f in fields(Row)]
        writer.writerow(names)
        for row in self.rows:
            values = row.to_dict()
            writer.writerow([" ".join(values[n]) if n == "formats" else values[n] for n in names])
        return buffer.getvalue()

    def render(self) -> str:
        header = ["entry", "result", "time", "peak mem", "formats", "first reason"]
        table = [header]
        for row in self.rows:
            result = f"{row.status} (kept)" if row.skipped else row.status
            time = "-" if row.skipped else f"{row.seconds:.1f} s"
            peak = "-" if row.peak_mib is None else f"{row.peak_mib:.0f} MiB"
            table.append([row.name, result, time, peak, ",".join(row.formats) or "-", row.reason])
        totals = ", ".join(f"{count} {status}" for status, count in self.totals.items() if count)
        skipped = sum(r.skipped for r in self.rows)
        kept = f" ({skipped} kept from an earlier run)" if skipped else ""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            *text_table(table),
            "",
            f"{verdict}: {len(self.rows)} entries, {totals}{kept}; {self.seconds:.1f} s, {self.executor}",
        ]
        return "\n".join(lines)


def progress_line(done: int, running: Sequence[str], left: int) -> str:
    """``sweep: 3 done, 2 running (mlp, cnn), 4 left``."""
    names = f" ({', '.join(running)})" if running else ""
    return f"sweep: {done} done, {len(running)} running{names}, {left} left"
