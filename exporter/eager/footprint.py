"""What an export needs of the machine, measured from the model, checked before the export starts.

Verification holds the weights once (the eager model is let go before any runtime loads, and
runtimes load one at a time), so an export's peak memory is about ``PEAK_PER_WEIGHT`` times the
weights (measured: docs/measurements.md, `benchmarks/bench_scale.py`). The eager model is
already in memory when the check runs, so what must still be free is the rest of that peak. The
disk holds every artifact at once (each about the weights' size; int8 about a quarter) and the
``--weights`` copy.

The figures read are the kernel's available memory (``MemAvailable``, and a cgroup's limit where
one is set) and the output folder's free disk: never this process's own size, so that a long-lived
caller (a test run, a notebook) is judged by what is free, not by what it already holds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import TooBigError

PEAK_PER_WEIGHT = 1.5  # peak RSS / weights of export + verify: 1.56x at 1 GB (imports included), 1.07x at 8 GB
SLACK = 256 << 20  # activations, the runtimes' own libraries and arenas: what a small model needs anyway
DISK_SLACK = 16 << 20  # the manifest, the report, the graph of an ONNX file with external data
# Export seconds per GB of float32 weights by format: TorchScript (trace, save, hash) and ONNX as
# bench_scale.py --steps measured them at 8 GB on the loaded 2-core machine (docs/measurements.md);
# pt2 and int8 not measured (guesses). A run's own pace corrects them after its first step.
SECONDS_PER_GB = {"torchscript": 17.0, "onnx": 21.0, "pt2": 20.0, "onnx-int8": 30.0}
BIG = 1_000_000_000  # weights from which the long steps say how long they will take
DISK_PER_WEIGHT = {"torchscript": 1.0, "onnx": 1.0, "pt2": 1.0, "onnx-int8": 0.25}  # file bytes / weights


@dataclass(frozen=True)
class Footprint:
    """What one export needs beyond what it holds already: ``memory`` free and ``disk`` free, in bytes."""

    weights: int  # bytes of the eager parameters and buffers
    memory: int
    disk: int

    @classmethod
    def of(cls, weights: int, formats: tuple[str, ...] | list[str], copy: bool) -> Footprint:
        """``copy``: the weights are kept in the folder too (``--weights``, ``weights.pt``)."""
        disk = sum(DISK_PER_WEIGHT.get(name, 1.0) for name in formats) + (1.0 if copy else 0.0)
        return cls(weights, int(weights * (PEAK_PER_WEIGHT - 1.0)) + SLACK, int(weights * disk) + DISK_SLACK)


def model_bytes(model) -> int:
    """Bytes of a module's parameters and buffers (a tied tensor once)."""
    seen, total = set(), 0
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


PROC_MEMINFO, CGROUP = Path("/proc/meminfo"), Path("/sys/fs/cgroup")


def free_memory(meminfo: Path = PROC_MEMINFO, cgroup: Path = CGROUP) -> int | None:
    """Bytes the kernel says a new allocation can have without swapping, within a cgroup v2 limit
    where one is set (None: not known here)."""
    available = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        return None
    limit = _cgroup_room(cgroup)
    return available if limit is None or available is None else min(available, limit)


def _cgroup_room(cgroup: Path) -> int | None:
    """A cgroup v2 memory limit's room left (limit - the group's usage), or None without a limit."""
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((cgroup / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def free_disk(folder: Path) -> int | None:
    """Free bytes on the file system of ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(size: int) -> str:
    """Bytes in GB (MB below one): the scale of a model too big for the machine."""
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def check(need: Footprint, out: Path, what: str) -> None:
    """Raise TooBigError (exit 2) when the free memory or the disk under ``out`` cannot hold ``need``."""
    memory, disk = free_memory(), free_disk(out)
    weights = _size(need.weights)
    if memory is not None and memory < need.memory:
        raise TooBigError(
            f"{what} needs about {_size(need.memory)} more free memory (its weights are {weights}, "
            f"held once while verifying), and {_size(memory)} is available: close other programs "
            "or use a machine with more memory"
        )
    if disk is not None and disk < need.disk:
        raise TooBigError(
            f"{what} needs about {_size(need.disk)} of free disk in {out} (its weights are {weights}, "
            f"once per format), and {_size(disk)} is free: free some space, write elsewhere (--out) "
            "or export fewer formats (--formats)"
        )


class Pace:
    """How long each long step of an export should take: the weights' size times the measured seconds
    per GB, scaled by how this run's finished steps compared with their own estimates."""

    def __init__(self, weights: int) -> None:
        self.weights = weights
        self.expected = 0.0  # estimated seconds of the steps done so far
        self.took = 0.0  # and what they took

    def _base(self, step: str) -> float:
        return SECONDS_PER_GB.get(step, 10.0) * self.weights / 1e9

    def estimate(self, step: str) -> str | None:
        """``about 3 min`` for a big model's step (None below ``BIG``: the step is short)."""
        if self.weights < BIG:
            return None
        seconds = self._base(step) * (self.took / self.expected if self.expected else 1.0)
        return f"about {_duration(seconds)}"

    def done(self, step: str, seconds: float) -> None:
        self.expected += self._base(step)
        self.took += seconds


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
