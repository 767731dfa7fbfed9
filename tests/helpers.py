"""Helpers for tests that tamper with artifact folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def change_onnx_weight(folder: Path, name: str = "linear_relu_stack.2.weight", delta: float = 0.5) -> None:
    """Add ``delta`` to the first element of an ONNX initializer, in place."""
    import onnx
    from onnx import numpy_helper

    path = folder / "model.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == name:
            values = numpy_helper.to_array(init).copy()
            values.flat[0] += np.float32(delta)
            init.CopyFrom(numpy_helper.from_array(values, name))
            break
    else:
        raise KeyError(name)
    onnx.save(model, str(path))


def restamp(folder: Path) -> None:
    """Rewrite the manifest's sha256 and size of every file to match what is on disk now."""
    from exporter.artifacts.integrity import sha256_file

    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for artifact in data["artifacts"]:
        file = folder / artifact["path"]
        artifact["sha256"], artifact["bytes"] = sha256_file(file), file.stat().st_size
    path.write_text(json.dumps(data))
