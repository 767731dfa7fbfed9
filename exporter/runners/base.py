"""The runner interface shared by every runtime.

A runner is a context manager (``activate`` loads the model, ``deactivate`` frees it)
with a public ``infer`` that checks the feed against the runner's declared input,
times the call, and hands the batch to the subclass's ``_infer``. Feeds and results
are numpy arrays, so every runtime is compared on exactly the same bytes.

Two more things a loaded runner answers: ``prepare(feed)``, a call that runs one fixed
feed as fast as the runtime allows (what ``bench`` times: subclasses may bind the feed
and the output buffers once), ``tensors()``, the parameters and constants the loaded
artifact holds (what parameter accounting reads, without loading the file again), and
``module_outputs(feed)``, each eager module's output as the runtime computes it (localisation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CannotOpenUp, InputSpecError
from ..interface import InputSpec, Interface, flatten
from ..notes import Note

Feed = dict[str, np.ndarray]  # one batch: an array per input, by name


def carrier(dtype: str) -> np.dtype:
    """The numpy dtype that carries ``dtype``: itself, or float32 for bfloat16 (numpy has none;
    every bfloat16 value is exactly a float32 value, so nothing is lost)."""
    return np.dtype("float32" if dtype == "bfloat16" else dtype)


@dataclass
class Runner:
    """Base class. Subclasses implement ``_activate``, ``_infer`` and optionally ``_deactivate``."""

    runtime: str  # the name used in reports: "eager", "torchscript", "onnxruntime"
    interface: Interface  # what it is fed, in forward's order, and its flattened outputs, in order
    notes: list[Note] = field(default_factory=list)  # facts worth reporting (execution provider, ...)
    inference_times: list[float] = field(default_factory=list)  # seconds per infer() call
    is_active: bool = False

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return self.interface.inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.interface.output_names

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

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one batch. Raises InputSpecError when ``feed`` does not fit ``input_meta``."""
        self._check(feed)
        start = time.perf_counter()
        outputs = self._infer(feed)
        self.inference_times.append(time.perf_counter() - start)
        return outputs

    def infer_all(self, batches: Iterable[Feed]) -> dict[str, np.ndarray]:
        """Run every batch in turn; each output concatenated over the batches, by name.

        Raises ValueError when ``batches`` is empty: there is nothing to concatenate, and an
        empty result would pass for a run of zero samples.
        """
        parts = [self.infer(batch) for batch in batches]
        if not parts:
            raise ValueError(f"{self.runtime}: no batches to run")
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def prepare(self, feed: Feed) -> Callable[[], dict[str, np.ndarray]]:
        """A call that runs ``feed`` once (checked here, once); its outputs may be reused buffers.

        The feed is checked here, once; the default call runs ``_infer`` untimed, and runners with a
        faster path for a fixed feed override ``_prepare``. Outputs of the returned call are only
        valid until its next call.
        """
        self._check(feed)
        return self._prepare(feed)

    def tensors(self) -> Mapping[str, np.ndarray]:
        """The parameters, buffers and constants the loaded artifact holds, by name (on the CPU).

        A mapping, which may make each array only when it is looked up (ONNX Runtime's runner does).
        """
        if not self.is_active:
            raise RuntimeError(f"{self.runtime} runner used outside its `with` block")
        return self._tensors()

    def module_outputs(self, feed: Feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Each module's output on ``feed``, by the eager model's module path, and the line of the user's
        code that leads to it (where the artifact recorded one): what localisation compares.

        Raises CannotOpenUp (a RuntimeError) when the runtime keeps no map from its operations to modules.
        """
        self._check(feed)
        return self._module_outputs(feed)

    def declared_shapes(self) -> dict[str, list[int | None]]:
        """Each output's shape as the artifact itself declares it (None: a symbolic size); {}: it declares none."""
        return {}

    def settings(self) -> dict[str, Any]:
        """How the runtime is configured, as a report records it."""
        return {}

    def _check(self, feed: Feed) -> None:
        """Every input by name, with its dtype, rank and every size that is not dynamic."""
        if not self.is_active:
            raise RuntimeError(f"{self.runtime} runner used outside its `with` block")
        expected = [spec.name for spec in self.inputs]
        if sorted(feed) != sorted(expected):
            raise InputSpecError(
                f"{self.runtime} expects inputs {', '.join(expected)}, got {', '.join(feed) or 'none'}"
            )
        for spec in self.inputs:
            value, axes = feed[spec.name], spec.axes
            shape = ", ".join(axes.get(i, str(d)) for i, d in enumerate(spec.shape))
            fixed = all(value.shape[i] == d for i, d in enumerate(spec.shape) if i not in axes)
            if value.ndim != len(spec.shape) or not fixed:
                raise InputSpecError(
                    f"{self.runtime} expects input {spec.name!r} of shape ({shape}), got {value.shape}"
                )
            if value.dtype != carrier(spec.dtype):
                raise InputSpecError(f"{self.runtime} expects {spec.dtype} input {spec.name!r}, got {value.dtype}")

    def _named(self, values: object) -> dict[str, np.ndarray]:
        """Name forward's return value (a tensor, a tuple/list or a dict, nested) with ``output_names``."""
        leaves = flatten(values)
        if len(leaves) != len(self.output_names):
            raise ValueError(f"{self.runtime} returned {len(leaves)} outputs, expected {len(self.output_names)}")
        return {name: to_numpy(v) for name, (_, v) in zip(self.output_names, leaves, strict=True)}

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _prepare(self, feed: Feed) -> Callable[[], dict[str, np.ndarray]]:
        return lambda: self._infer(feed)

    def _tensors(self) -> Mapping[str, np.ndarray]:
        raise NotImplementedError

    def _module_outputs(self, feed: Feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:  # noqa: ARG002
        raise CannotOpenUp(f"{self.runtime} keeps no map from its operations to the eager modules")


def to_numpy(value: object) -> np.ndarray:
    """A tensor (or array) as a numpy array on the CPU; bfloat16 as float32, which holds it exactly."""
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if detach is not None:
        tensor = detach().to("cpu")
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()  # numpy has no bfloat16; float32 holds every value exactly
        return tensor.numpy()
    return np.asarray(value)
