"""``sweep``: a fleet of models exported and verified in parallel, each in its own process, into OUT/NAME.

    fleet   the fleet file: entries, defaults, each checked by export's own parser
    resume  the entry digest and the record that lets a rerun skip what passed
    child   one entry's process: limits, timeout, outcome; its folder placed all or nothing
    executors  on this machine (``--jobs``) or as Ray tasks (``--executor ray``)
    summary the rows, the totals, the table, JSON and CSV; the progress line

Nothing here imports torch: each entry's process does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..paths import make_folder
from ..progress import Progress
from .executors import Budget, Events, LocalExecutor, RayExecutor, check_ray
from .fleet import Entry, Fleet
from .resume import RECORDS, entry_digest, passed_before, record_path, write_record
from .summary import Row, SweepReport, progress_line

EXECUTORS = ("local", "ray")
DEFAULT_TIMEOUT_S = 900.0  # a model this tool exports in minutes; a hang is caught without waiting all night


@dataclass(frozen=True)
class SweepConfig:
    """How a fleet is swept. ``jobs`` None: one per core this process may use (Ray: one per CPU asked)."""

    out: Path = Path("artifacts")
    jobs: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S  # per entry, unless the entry says ``timeout``
    memory_mib: int | None = None  # per entry address-space limit, unless the entry says ``memory_mib``
    executor: str = "local"
    ray_address: str | None = None  # None with the ray executor: a local Ray started for the run
    force: bool = False  # run every entry, even one that passed before with the same digest

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UsageError(f"unknown executor {self.executor!r}: choose local or ray")
        if self.jobs is not None and self.jobs < 1:
            raise UsageError(f"--jobs {self.jobs}: at least 1")
        if not self.timeout_s > 0:
            raise UsageError(f"--timeout {self.timeout_s}: seconds above 0")
        if self.ray_address is not None and self.executor != "ray":
            raise UsageError("--ray-address is for --executor ray")


def sweep(fleet: Fleet, config: SweepConfig | None = None, progress: Progress | None = None) -> SweepReport:
    """Export and verify every entry of ``fleet`` into ``config.out``/NAME; one row per entry, in fleet order.

    An entry that passed before with the same digest is kept (its row says so) unless ``config.force``.
    Raises UsageError for an unusable --out, or ExtraMissingError for Ray without the extra; what an entry
    does (fail, crash, hang, run out of memory) is its row, never an error. Interrupted, it stops every entry's
    process and leaves OUT/NAME folders only whole.
    """
    import time

    config = config or SweepConfig()
    if config.executor == "ray":
        check_ray()  # before any folder is made
    started = time.monotonic()
    out = Path(config.out)
    make_folder(out, "--out")
    make_folder(out / RECORDS, "--out")
    rows: dict[str, Row] = {}
    digests = {entry.name: entry_digest(entry) for entry in fleet.entries}
    todo: list[Entry] = []
    for entry in fleet.entries:
        if not config.force and passed_before(out, entry, digests[entry.name]):
            rows[entry.name] = _kept(out, entry)
        else:
            todo.append(entry)
    running: list[str] = []

    def tell() -> None:
        if progress is not None:
            progress(progress_line(len(rows), running, len(fleet.entries) - len(rows) - len(running)))

    def started_one(entry: Entry) -> None:
        running.append(entry.name)
        tell()

    def finished_one(entry: Entry, row: Row) -> None:
        if entry.name in running:
            running.remove(entry.name)
        rows[entry.name] = row
        write_record(out, entry, digests[entry.name], row.status, row.to_dict())
        tell()

    executor = _executor(config, len(todo))
    tell()
    executor.run(todo, out, Events(started_one, finished_one))
    ordered = tuple(rows[entry.name] for entry in fleet.entries)
    ran = executor.description if todo else "nothing to run again"
    return SweepReport(ordered, round(time.monotonic() - started, 2), ran)


def _kept(out: Path, entry: Entry) -> Row:
    """The row of an entry not run again: as recorded, marked skipped."""
    import json

    recorded = json.loads(record_path(out, entry.name).read_text())["row"]
    return Row(entry.name, "passed", "", 0.0, None, tuple(recorded.get("formats") or ()), skipped=True)


def _executor(config: SweepConfig, entries: int) -> LocalExecutor | RayExecutor:
    from .child import available_cores

    cores = available_cores()
    budget = Budget(config.timeout_s, config.memory_mib)
    jobs = max(1, min(config.jobs or len(cores), max(entries, 1)))
    if config.executor == "ray":
        return RayExecutor(jobs, budget, config.ray_address, threads=max(1, len(cores) // jobs))
    return LocalExecutor(jobs, budget, cores)


__all__ = ["EXECUTORS", "Entry", "Fleet", "Row", "SweepConfig", "SweepReport", "sweep"]
