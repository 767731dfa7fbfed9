"""Every input the tool makes or reads: seeded and generated, or replayed from a file.

One generator recipe (``draw``) makes them all: verify's sets, bench's batches, the export
example and predict's ``random``; the same seed gives the same values everywhere.

Samples are grouped by batch size: ``groups[b]`` holds ``n * b`` samples that are fed
``b`` at a time, whole batches only. Every batch size runs the same number of batches
``n = ceil(samples / sum(batch sizes))``, so the large batches carry most samples (cheap
per sample), batch 1 still runs ``n`` times, and the cost grows linearly with
``samples``. The defaults cover batch 1, the export's batch and 64, so a batch size
frozen into an artifact is caught. Saved sets are ``.npz`` files with one
array ``batch_<B>`` per batch size, which ``load`` replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import VerifyConfig
from .errors import InputSpecError

if TYPE_CHECKING:
    import torch

DEFAULT_LARGE_BATCH = 64


def draw(
    generator: torch.Generator,
    shape: tuple[int, ...],
    dtype: str = "float32",
    distribution: str = "uniform",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Samples from ``generator``: uniform like ``torch.rand`` scaled to the range, or normal
    with its mean in the middle of the range and ~95 % of samples inside it."""
    import torch

    low, high = value_range
    if distribution == "normal":
        x = torch.randn(shape, generator=generator, dtype=getattr(torch, dtype))
        return x * ((high - low) / 4) + (low + high) / 2
    return torch.rand(shape, generator=generator, dtype=getattr(torch, dtype)) * (high - low) + low


def example(shape: tuple[int, ...], dtype: str, seed: int, device: torch.device) -> torch.Tensor:
    """The export example (tracing input): uniform in [0, 1) like the seed's ``torch.rand``, seeded."""
    import torch

    return draw(torch.Generator().manual_seed(seed), tuple(shape), dtype).to(device)


def seeded_batches(sample_shape: tuple[int, ...], dtype: str, seed: int, batch_size: int, samples: int):
    """Whole batches covering ``samples``, uniform in [0, 1), drawn in turn from one generator
    seeded with ``seed`` (the same for every runtime), one batch at a time (bench)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for _ in range(math.ceil(samples / batch_size)):
        x = draw(generator, (batch_size, *sample_shape))
        yield np.ascontiguousarray(x.numpy().astype(dtype, copy=False))


def default_batch_sizes(export_batch: int) -> tuple[int, ...]:
    return tuple(sorted({1, export_batch, DEFAULT_LARGE_BATCH}))


@dataclass
class InputSet:
    groups: dict[int, np.ndarray]  # batch size -> (n_batches * batch size, *sample_shape)
    origin: str  # how the set was made, for the report

    @property
    def samples(self) -> int:
        return sum(len(a) for a in self.groups.values())

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        data = self.groups[batch_size]
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]

    def save(self, path: Path) -> None:
        try:
            with open(path, "wb") as handle:
                np.savez(handle, **{f"batch_{b}": a for b, a in self.groups.items()})
        except OSError as error:
            raise InputSpecError(f"cannot write inputs to {path}: {error.strerror}") from None

    @classmethod
    def generate(
        cls, sample_shape: tuple[int, ...], dtype: str, config: VerifyConfig, export_batch: int, quantized: bool = False
    ) -> InputSet:
        """Seeded random samples: uniform like ``torch.rand`` (scaled to the range) or normal.

        ``quantized``: a quantised runtime will be judged, so the default sample count is the
        larger one its top-1 agreement gate needs (``VerifyConfig.samples_for``).
        """
        import torch

        sizes = config.batch_sizes or default_batch_sizes(export_batch)
        samples = config.samples_for(quantized)
        low, high = config.input_range  # VerifyConfig has checked them, and the sample and batch counts
        batches = math.ceil(samples / sum(sizes))
        generator = torch.Generator().manual_seed(config.seed)
        groups: dict[int, np.ndarray] = {}
        for b in sizes:
            x = draw(generator, (batches * b, *sample_shape), "float32", config.distribution, (low, high))
            groups[b] = x.numpy().astype(dtype, copy=False)
        origin = f"{config.distribution} in [{low:g}, {high:g}), seed {config.seed}"
        return cls(groups, origin)

    @classmethod
    def load(cls, path: Path, sample_shape: tuple[int, ...], dtype: str, batch_size: int | None) -> InputSet:
        """Replay a saved ``.npz`` (``batch_<B>`` arrays), or split one array of samples into batches."""
        path = Path(path)
        if not path.is_file():
            raise InputSpecError(f"inputs file {path} does not exist")
        from .arrays import read_arrays

        arrays = read_arrays(path)  # headers checked first; no pickles, no complex numbers
        if not arrays:
            raise InputSpecError(f"{path} holds no arrays")
        saved = {k: v for k, v in arrays.items() if k.startswith("batch_") and k[6:].isdigit()}
        if any(int(k[6:]) < 1 for k in saved):
            raise InputSpecError(f"{path} holds an array named batch_0: saved batches are batch_<B> with B >= 1")
        if saved and len(saved) == len(arrays):
            groups = {int(k[6:]): v for k, v in saved.items()}
        elif len(arrays) == 1:
            (data,) = arrays.values()
            if data.ndim == len(sample_shape):  # a single sample
                data = data[None]
            if data.ndim == 0 or len(data) == 0:
                raise InputSpecError(f"{path} holds no samples")
            b = batch_size or min(len(data), DEFAULT_LARGE_BATCH)
            groups = {}
            full = len(data) - len(data) % b
            if full:
                groups[b] = data[:full]
            if len(data) % b:
                groups[len(data) % b] = data[full:]
        else:
            raise InputSpecError(f"{path} holds several arrays ({', '.join(arrays)}): give one, or batch_<B> arrays")
        for b, data in groups.items():
            if data.ndim != len(sample_shape) + 1 or tuple(data.shape[1:]) != tuple(sample_shape):
                raise InputSpecError(
                    f"{path}: samples must have shape {tuple(sample_shape)}, got {tuple(data.shape[1:])}"
                )
            if len(data) == 0 or len(data) % b:
                raise InputSpecError(f"{path}: batch_{b} holds {len(data)} samples, not a multiple of {b}")
            if not np.issubdtype(data.dtype, np.number):
                raise InputSpecError(f"{path}: inputs must be numbers, got {data.dtype}")
            groups[b] = np.ascontiguousarray(data.astype(dtype, copy=False))
        return cls(dict(sorted(groups.items())), f"file {path}")
