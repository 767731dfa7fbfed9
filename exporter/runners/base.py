"""The runner interface shared by every runtime.

A runner is a context manager (``activate`` loads the model, ``deactivate`` frees it)
with a public ``infer`` that checks the feed against the runner's declared input,
times the call, and hands the batch to the subclass's ``_infer``. Feeds and results
are numpy arrays, so every runtime is compared on exactly the same bytes.

Two more things a loaded runner answers: ``prepare(feed)``, a call that runs one fixed
feed as fast as the runtime allows (what ``bench`` times: subclasses may bind the feed
and the output buffers once), and ``tensors()``, the parameters and constants the loaded
artifact holds (what parameter accounting reads, without loading the file again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputSpecError


@dataclass(frozen=True)
class InputMeta:
    """What a runner accepts: a batch of ``sample_shape`` samples of ``dtype``."""

    name: str
    sample_shape: tuple[int, ...]  # shape of one sample, without the batch dimension
    dtype: str


@dataclass
class Runner:
    """Base class. Subclasses implement ``_activate``, ``_infer`` and optionally ``_deactivate``."""

    runtime: str  # the name used in reports: "eager", "torchscript", "onnxruntime"
    input_meta: InputMeta
    output_names: tuple[str, ...]
    notes: list[str] = field(default_factory=list)  # facts worth reporting (execution provider, ...)
    inference_times: list[float] = field(default_factory=list)  # seconds per infer() call
    is_active: bool = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def infer(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch. Raises InputSpecError when ``feed`` does not fit ``input_meta``."""
        self._check(feed)
        start = time.perf_counter()
        outputs = self._infer(feed)
        self.inference_times.append(time.perf_counter() - start)
        return outputs

    def infer_all(self, batches: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
        """Run every batch in turn; each output concatenated over the batches, by name."""
        parts = [self.infer(batch) for batch in batches]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def prepare(self, feed: np.ndarray) -> Callable[[], dict[str, np.ndarray]]:
        """A call that runs ``feed`` once (checked here, once); its outputs may be reused buffers.

        The default goes through ``infer``; runners with a faster path for a fixed feed override
        ``_prepare``. Outputs of the returned call are only valid until its next call.
        """
        self._check(feed)
        return self._prepare(feed)

    def tensors(self) -> dict[str, np.ndarray]:
        """The parameters, buffers and constants the loaded artifact holds, by name (on the CPU)."""
        if not self.is_active:
            raise RuntimeError(f"{self.runtime} runner used outside its `with` block")
        return self._tensors()

    def settings(self) -> dict[str, Any]:
        """How the runtime is configured, as a report records it."""
        return {}

    def _check(self, feed: np.ndarray) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.runtime} runner used outside its `with` block")
        meta = self.input_meta
        if feed.ndim != len(meta.sample_shape) + 1 or tuple(feed.shape[1:]) != meta.sample_shape:
            raise InputSpecError(
                f"{self.runtime} expects input {meta.name!r} of shape (batch, "
                f"{', '.join(map(str, meta.sample_shape))}), got {tuple(feed.shape)}"
            )
        if feed.dtype != np.dtype(meta.dtype):
            raise InputSpecError(f"{self.runtime} expects {meta.dtype} input, got {feed.dtype}")

    def _named(self, values: object) -> dict[str, np.ndarray]:
        """Name a model's return value (tensor, tuple or list) with ``output_names``."""
        items = list(values) if isinstance(values, (tuple, list)) else [values]
        if len(items) != len(self.output_names):
            raise ValueError(f"{self.runtime} returned {len(items)} outputs, expected {len(self.output_names)}")
        return {name: _to_numpy(v) for name, v in zip(self.output_names, items, strict=True)}

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def _infer(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _prepare(self, feed: np.ndarray) -> Callable[[], dict[str, np.ndarray]]:
        return lambda: self._infer(feed)

    def _tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _to_numpy(value: object) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if detach is not None:
        return detach().to("cpu").numpy()
    return np.asarray(value)
