"""The ONNX Runtime runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Runner


@dataclass
class OnnxRuntimeRunner(Runner):
    data: bytes | str = b""  # the hash-checked .onnx bytes, or the path of a private copy (over 2 GB)
    device: Any = None  # torch.device the rest of the run uses; picks the execution provider
    session: Any = None
    workdir: Any = None  # the TemporaryDirectory holding that private copy, removed on deactivate

    def _activate(self) -> None:
        from ..formats import onnx as fmt

        self.session = fmt.session(self.data, self.device)
        used = self.session.get_providers()
        self.notes.append(f"execution providers: {', '.join(used)}")
        if getattr(self.device, "type", "cpu") == "cuda" and "CUDAExecutionProvider" not in used:
            self.notes.append("onnxruntime has no CUDA provider here (install onnxruntime-gpu): it ran on the CPU")

    def _deactivate(self) -> None:
        self.session = None
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None

    def _infer(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.output_names), {self.input_meta.name: feed})
        return self._named(values)
