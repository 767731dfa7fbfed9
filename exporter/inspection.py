"""``inspect``: a model's structure and parameter table, as the seed article prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import VerifyConfig
from .manifest import MANIFEST_NAME, Manifest
from .tables import text_table


@dataclass
class ParameterRow:
    name: str
    shape: tuple[int, ...]
    count: int
    first_values: list[float]  # the first values of the tensor, flattened


@dataclass
class ModelInspection:
    name: str
    structure: str  # print(model)
    parameters: list[ParameterRow]
    buffers: list[ParameterRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.parameters)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "total": self.total}

    def render(self) -> str:
        lines = [f"Model structure: {self.structure}", ""]
        head = ("Layer", "Size", "Elements", "Values (first 4)")
        rows = [head] + [
            (r.name, str(list(r.shape)), f"{r.count:,}", ", ".join(f"{v:.4f}" for v in r.first_values))
            for r in self.parameters
        ]
        lines += text_table(rows)
        lines.append(f"Total parameters: {self.total:,}")
        if self.buffers:
            lines.append(f"Buffers (not parameters): {', '.join(b.name for b in self.buffers)}")
        return "\n".join(lines)


def inspect(
    target: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    config: VerifyConfig | None = None,
) -> ModelInspection:
    """Inspect a model spec (built from ``seed``) or an artifact folder's eager model."""
    import torch

    from . import reference
    from .sources import resolve

    path = Path(target)
    if path.is_dir() and (path / MANIFEST_NAME).exists():
        manifest = Manifest.load(path)
        model = reference.rebuild(path, manifest, config or VerifyConfig(device="cpu"), torch.device("cpu"))
        name = str(manifest.model.get("name"))
    else:
        source = resolve(str(target), input_shape, need_shape=False)
        model = reference.build(source, seed, torch.device("cpu"))
        name = source.name

    def row(n: str, t: torch.Tensor) -> ParameterRow:
        return ParameterRow(n, tuple(t.shape), t.numel(), [float(v) for v in t.detach().flatten()[:4]])

    return ModelInspection(
        name=name,
        structure=str(model),
        parameters=[row(n, p) for n, p in model.named_parameters()],
        buffers=[row(n, b) for n, b in model.named_buffers()],
    )
