"""Where the entries run: on this machine, N processes at a time, or as tasks on a Ray cluster.

Both run each entry through ``child.run`` (its own process, limits, timeout) and hand every finished row
to ``Events``; both leave each entry's folder at OUT/NAME through ``child.place`` only once it ended.
Ray is an optional extra, imported only when asked for: without it, ``check_ray`` says what to install.
"""

from __future__ import annotations

import io
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExtraMissingError, UsageError, first_line
from . import child
from .fleet import Entry
from .resume import RECORDS
from .summary import Row

RAY_EXTRA = "pip install 'exporter[ray]'"


@dataclass
class Events:
    """What an executor tells the sweep: an entry started, an entry ended (with its row); one call at a time."""

    started: Callable[[Entry], None]
    finished: Callable[[Entry, Row], None]


@dataclass(frozen=True)
class Budget:
    """Per entry, unless the entry says otherwise: seconds and MiB of address space (None: no limit)."""

    timeout_s: float
    memory_mib: int | None

    def for_entry(self, entry: Entry, threads: int, cores: tuple[int, ...] | None) -> child.Limits:
        timeout = entry.timeout_s if entry.timeout_s is not None else self.timeout_s
        memory = entry.memory_mib if entry.memory_mib is not None else self.memory_mib
        return child.Limits(threads, cores, float(timeout), memory)


def work_folder(out: Path, name: str) -> Path:
    return Path(out) / RECORDS / f"{name}.work"


@dataclass
class LocalExecutor:
    """``jobs`` entries at a time on this machine, each in its own process pinned to its share of the cores."""

    jobs: int
    budget: Budget
    cores: tuple[int, ...] = field(default_factory=child.available_cores)

    @property
    def description(self) -> str:
        return f"local, {self.jobs} job{'s' if self.jobs != 1 else ''}"

    def run(self, entries: Sequence[Entry], out: Path, events: Events) -> None:
        free: queue.Queue = queue.Queue()
        for slot in child.slots(self.jobs, self.cores):
            free.put(slot)
        processes = child.Processes()
        told = threading.Lock()  # events are told from the job threads, one at a time

        def one(entry: Entry) -> Row:
            threads, cores = free.get()
            try:
                if processes.stopping.is_set():
                    raise KeyboardInterrupt
                with told:
                    events.started(entry)
                work = work_folder(out, entry.name)
                try:
                    row = child.run(entry, work, self.budget.for_entry(entry, threads, cores), processes)
                    child.place(work, out, entry.name)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # the sweep's own step failed for this entry: its row says so
                    row = Row(entry.name, "crashed", f"could not run it: {first_line(error)}", 0.0, None, ())
                with told:  # before the slot is free: the next entry starts after this one is counted done
                    events.finished(entry, row)
                return row
            finally:
                free.put((threads, cores))

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sweep")
        futures = {pool.submit(one, entry): entry for entry in entries}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)  # signals get through
                for future in done:
                    future.result()  # raises what a job raised (an interrupt)
        except BaseException:
            processes.stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            for entry in entries:
                shutil.rmtree(work_folder(out, entry.name), ignore_errors=True)
            raise
        pool.shutdown(wait=True)


def check_ray() -> Any:
    """The ray module, or ExtraMissingError (exit 2) saying which extra to install."""
    try:
        import ray
    except ImportError:
        raise ExtraMissingError(f"--executor ray needs Ray, which is not installed here: {RAY_EXTRA}") from None
    return ray


@dataclass
class RayExecutor:
    """Entries as Ray tasks (each asks for its threads as CPUs, and its memory limit as memory), ``jobs`` in
    flight at a time; each task runs the entry in a process on its worker and sends the folder back as a tar.

    ``address``: a running cluster (``ray://HOST:10001``, ``HOST:6379`` or ``auto``); None starts a local Ray
    for the run and stops it afterwards. On a cluster, exporter (and any model file or weights an entry names,
    at the same path) must be on every worker.
    """

    jobs: int
    budget: Budget
    address: str | None = None
    threads: int = 1

    @property
    def description(self) -> str:
        where = self.address or "local Ray started for the run"
        return f"ray ({where}), {self.jobs} in flight"

    def run(self, entries: Sequence[Entry], out: Path, events: Events) -> None:
        ray = check_ray()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                if self.address is None:
                    cpus = max(self.jobs * self.threads, 1)
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            except Exception as error:
                raise UsageError(f"--ray-address {self.address}: cannot connect to Ray ({first_line(error)})") from None
        task = ray.remote(max_retries=0)(run_remote)
        waiting = list(entries)
        flying: dict[Any, Entry] = {}
        try:
            while waiting or flying:
                while waiting and len(flying) < self.jobs:
                    entry = waiting.pop(0)
                    limits = self.budget.for_entry(entry, self.threads, None)
                    memory = None if limits.memory_mib is None else limits.memory_mib * 2**20
                    options = {"num_cpus": self.threads, **({"memory": memory} if memory else {})}
                    flying[task.options(**options).remote(entry, limits)] = entry
                    events.started(entry)
                done, _ = ray.wait(list(flying), num_returns=1, timeout=0.2)
                for ref in done:
                    entry = flying.pop(ref)
                    events.finished(entry, self._gather(ray, ref, entry, out))
        except BaseException:
            for ref in flying:
                ray.cancel(ref)  # a KeyboardInterrupt in the task, which kills its entry's process group
            for entry in entries:
                shutil.rmtree(work_folder(out, entry.name), ignore_errors=True)
            raise
        finally:
            if started_here:
                ray.shutdown()

    def _gather(self, ray: Any, ref: Any, entry: Entry, out: Path) -> Row:
        """The task's row, its folder and logs unpacked into the work folder, then placed at OUT/NAME."""
        try:
            row, packed = ray.get(ref)
        except Exception as error:  # the worker died, or the task could not start
            return Row(entry.name, "crashed", f"the Ray task failed: {first_line(error)}", 0.0, None, ())
        work = work_folder(out, entry.name)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as archive:
                archive.extractall(work, filter="data")  # refuses links out, absolute paths, devices
        except (tarfile.TarError, OSError) as error:  # nothing of it is placed: the work folder goes
            shutil.rmtree(work, ignore_errors=True)
            why = f"the Ray task sent back an archive that cannot be unpacked safely ({first_line(error)})"
            return Row(entry.name, "crashed", why, row.seconds, row.peak_mib, row.formats)
        child.place(work, out, entry.name)
        return row


def run_remote(entry: Entry, limits: child.Limits) -> tuple[Row, bytes]:
    """On a Ray worker: run the entry into a temporary folder; its row, and its folder and logs as a tar."""
    with tempfile.TemporaryDirectory(prefix="exporter-sweep-") as temp:
        work = Path(temp) / "work"
        row = child.run(entry, work, limits)  # a cancelled task's KeyboardInterrupt stops the process group
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path in sorted(work.iterdir()):
                if path.name == entry.name or path.name in child.LOGS:
                    archive.add(path, arcname=path.name)
        return row, buffer.getvalue()
