"""One entry, exported and verified by ``exporter export`` in a process of its own, and what became of it.

The process runs in its own session (its whole group is stopped on a timeout or an interrupt), with
its threads and cores limited so parallel jobs share the machine instead of oversubscribing it, and,
where asked, an address-space limit (RLIMIT_AS), so running out of memory fails that entry only. It
writes into a work folder of its own; the artifact folder is moved to OUT/NAME only once the process
has ended (``place``), all or nothing, so a killed sweep never leaves a half-written OUT/NAME.

The outcome is read from the process as the CLI states it: its JSON report (passed or failed), exit 2
(refused: a mistake in the entry, said in one line), exit 1 without a report (failed: an exporter could
not make an artifact; crashed: the CLI's "internal error" line, out of memory included), a signal
(crashed), or the clock (timed out).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..artifacts.atomic import move_into_place
from ..config import FORMATS
from .fleet import Entry
from .resume import RECORDS
from .summary import Row

POLL_S = 0.05  # how often a running entry is checked for its end, its timeout, or a stop
OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "not enough memory", "out of memory", "bad_alloc")
LOGS = ("stdout.log", "stderr.log")


@dataclass(frozen=True)
class Limits:
    """What one entry's process may use: threads, cores (None: any), seconds, address space."""

    threads: int
    cores: tuple[int, ...] | None
    timeout_s: float
    memory_mib: int | None

    def env(self) -> dict[str, str]:
        """The environment that caps torch's (OpenMP) and the BLAS libraries' thread pools."""
        n = str(self.threads)
        return {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def slots(jobs: int, cores: tuple[int, ...]) -> list[tuple[int, tuple[int, ...] | None]]:
    """Each job's threads and cores: the cores split evenly (at least one thread each); with more jobs than
    cores, no pinning (they share every core, one thread each)."""
    if jobs > len(cores):
        return [(1, None)] * jobs
    share = len(cores) // jobs
    return [(share, cores[i * share : (i + 1) * share]) for i in range(jobs)]


def available_cores() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return tuple(range(os.cpu_count() or 1))


class Processes:
    """The entries' process groups alive now, so an interrupted sweep stops every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self.stopping = threading.Event()

    def add(self, pid: int) -> None:
        with self._lock:
            self._groups.add(pid)

    def discard(self, pid: int) -> None:
        with self._lock:
            self._groups.discard(pid)

    def alive(self) -> list[int]:
        with self._lock:
            return sorted(self._groups)

    def stop_all(self) -> None:
        self.stopping.set()
        for group in self.alive():
            _kill_group(group)


def run(entry: Entry, work: Path, limits: Limits, processes: Processes | None = None) -> Row:
    """Run ``exporter export`` on ``entry`` into ``work`` (made fresh); its folder, if any, is left at work/NAME.

    Returns the entry's row. Never raises for what the entry does: a crash, a hang or running out of memory
    is that entry's row. Raises KeyboardInterrupt when ``processes`` is told to stop meanwhile.
    """
    processes = processes or Processes()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report_path = work / "report.json"
    command = [sys.executable, "-m", "exporter", *entry.export_args(work, report_path), "--quiet"]
    started = time.monotonic()
    with open(work / LOGS[0], "wb") as stdout, open(work / LOGS[1], "wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=limits.env(), start_new_session=True
        )
    processes.add(process.pid)
    try:
        _confine(process.pid, limits)
        status, peak_kib, timed_out = _wait(process, limits.timeout_s, processes.stopping)
    except BaseException:  # interrupted while it runs (a Ray task cancelled): the entry goes with it
        _kill_group(process.pid)
        process.wait()
        raise
    finally:
        processes.discard(process.pid)
    seconds = time.monotonic() - started
    process.returncode = status  # reaped by wait4 here: Popen must not wait for it again
    if processes.stopping.is_set():
        raise KeyboardInterrupt
    status_text, reason, formats = _outcome(entry, work, status, timed_out, limits)
    return Row(entry.name, status_text, reason, round(seconds, 2), round(peak_kib / 1024, 1), formats)


def place(work: Path, out: Path, name: str) -> None:
    """Move what a finished entry left in ``work`` into the sweep's folder: work/NAME to OUT/NAME (swapped in
    whole), its logs to OUT/.sweep/NAME.stdout.log and .stderr.log; then remove ``work``."""
    folder = work / name
    if folder.is_dir() and not folder.is_symlink():
        move_into_place(folder, Path(out) / name)
    records = Path(out) / RECORDS
    for log in LOGS:
        if (work / log).is_file():
            os.replace(work / log, records / f"{name}.{log}")
    shutil.rmtree(work, ignore_errors=True)


def _confine(pid: int, limits: Limits) -> None:
    """Pin the process to its cores and cap its address space, right after it started (before torch loads).

    A process that already ended has nothing to confine; any other failure is raised (the entry's row then says
    it could not be run), never an entry left running without the limit it was given."""
    with contextlib.suppress(ProcessLookupError):
        if limits.cores is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(pid, limits.cores)
        if limits.memory_mib is not None:
            size = limits.memory_mib * 2**20
            resource.prlimit(pid, resource.RLIMIT_AS, (size, size))


def _wait(process: subprocess.Popen, timeout_s: float, stopping: threading.Event) -> tuple[int, int, bool]:
    """Wait for the process (wait4, which also gives its peak resident memory); kill its group on a timeout or
    a stop. Returns (exit code as Popen gives it, peak KiB, whether it timed out)."""
    deadline = time.monotonic() + timeout_s
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss, timed_out
        if not timed_out and (time.monotonic() > deadline or stopping.is_set()):
            timed_out = not stopping.is_set()
            _kill_group(process.pid)
        time.sleep(POLL_S)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _outcome(entry: Entry, work: Path, code: int, timed_out: bool, limits: Limits) -> tuple[str, str, tuple[str, ...]]:
    """(status, first reason, formats) from how the process ended and what it left."""
    formats = tuple(entry.options[i + 1] for i, arg in enumerate(entry.options) if arg == "--format")
    if timed_out:
        return "timed out", f"stopped after {limits.timeout_s:g} s (timeout)", formats
    if code < 0:
        name = signal.Signals(-code).name
        why = " (the memory limit or the system's out-of-memory killer?)" if -code == signal.SIGKILL else ""
        return "crashed", f"killed by {name}{why}", formats
    report = _report(work / "report.json")
    if report is not None:
        made = tuple(a["format"] for a in report["manifest"].get("artifacts", ()) if a.get("format") in FORMATS)
        if report.get("passed") is True and code == 0:
            return "passed", "", made or formats
        failures = (report.get("verification") or {}).get("failures") or ["verification failed"]
        return "failed", str(failures[0]), made or formats
    line = _error_line(work / LOGS[1])
    if limits.memory_mib is not None and any(sign in line for sign in OUT_OF_MEMORY):
        # past RLIMIT_AS an allocation fails: whichever step it was in and however it was reported
        return "crashed", f"out of memory (limit {limits.memory_mib} MiB): {line}", formats
    if code == 2:
        return "refused", line, formats
    if line.startswith("internal error:"):
        return "crashed", line, formats
    return "failed", line or f"exit {code} without a report", formats


def _report(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("manifest"), dict) else None


def _error_line(path: Path) -> str:
    """The CLI's own one-line error (``error: ...``), else the last line the process wrote on stderr."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error: ")]
    line = errors[-1].removeprefix("error: ") if errors else (lines[-1] if lines else "")
    return line if len(line) <= 300 else line[:297] + "..."
