"""The shapes verification feeds: a ``Case`` is a batch size and a size for every other dynamic axis.

``default_cases`` gives the ones every set tries (batch 1, the export's batch and 64; each other
dynamic axis shorter and longer than the example); probes (probes.py) add their own cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..interface import KV_CACHE, InputSpec, label_size
from . import probes

DEFAULT_LARGE_BATCH = 64


@dataclass(frozen=True, order=True)
class Case:
    """One shape the runtimes are fed: a batch size, and the size of every other dynamic axis."""

    batch: int
    sizes: tuple[tuple[str, int], ...] = ()  # (label, size) for dynamic axes other than the batch
    draw: str = ""  # "normal": floats drawn normal whatever the set's distribution (the widened sweep)
    probe: str = ""  # a probe (probes.py), reported apart: "size", or "KIND.INPUT" for edge values ("zeros.x")

    @property
    def label(self) -> str:
        extra = ", ".join(
            [*(f"{label}={size}" for label, size in self.sizes), *([self.draw] if self.draw else []), self.probe_text]
        )
        return f"{self.batch} ({extra.strip(', ')})" if extra.strip(", ") else str(self.batch)

    @property
    def value_probe(self) -> tuple[str, str] | None:
        """(kind, input) of an edge-value probe; None for any other case."""
        if not self.probe or self.probe == "size":
            return None
        kind, _, name = self.probe.partition(".")
        return kind, name

    @property
    def probe_text(self) -> str:
        """What an edge-value probe feeds, as failures name it: ``exact zeros (0 and -0) in `x```."""
        found = self.value_probe
        return "" if found is None else f"{probes.VALUE_PROBES[found[0]]} in `{found[1]}`"

    def shape(self, spec: InputSpec) -> tuple[int, ...]:
        """``spec``'s shape in this case: its dynamic axes resized."""
        sizes = {"batch": self.batch, **dict(self.sizes)}
        return tuple(label_size(spec.axes.get(i, ""), sizes, d) for i, d in enumerate(spec.shape))


def prefill_cases(specs: tuple[InputSpec, ...], labels: dict[str, int]) -> list[Case]:
    """At batch 2, each past axis of a KV cache (kind ``kv-cache``) at 0: the prefill step, the past empty as
    Optimum's generation loop feeds it; the other axes at the example's sizes."""
    past = sorted({label for s in specs if s.kind == KV_CACHE for axis, label in s.dynamic if axis and label in labels})
    return [Case(2, tuple(sorted({**labels, label: 0}.items()))) for label in past]


def default_batch_sizes(export_batch: int) -> tuple[int, ...]:
    return tuple(sorted({1, export_batch, DEFAULT_LARGE_BATCH}))


def default_cases(batch_sizes: tuple[int, ...], labels: dict[str, int]) -> list[Case]:
    """Each batch size with the example's other sizes; then, at batch 2, each other dynamic axis
    shorter (half) and longer (twice) than the example."""
    example = tuple(sorted(labels.items()))
    cases = [Case(b, example) for b in batch_sizes]
    for label, size in sorted(labels.items()):
        for other in sorted({max(1, size // 2), size * 2} - {size}):
            cases.append(Case(2, tuple(sorted({**labels, label: other}.items()))))
    return cases
