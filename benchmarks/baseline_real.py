"""The hand-written script for a saved transformers folder: what a user writes without the toolkit.

Load the model with transformers, export ONNX with torch's default (dynamo) exporter with named
inputs and dynamic batch (and sequence) axes, run it in ONNX Runtime and compare with eager at two
batch sizes. bench_real.py times it against `exporter export FOLDER --format onnx`.
Usage: python benchmarks/baseline_real.py FOLDER OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
config = json.loads((folder / "config.json").read_text())
model = getattr(transformers, config["architectures"][0]).from_pretrained(folder, local_files_only=True).eval()
model.config.use_cache = False


def inputs(batch: int, length: int) -> dict[str, torch.Tensor]:
    if "conv_kernel" in config:
        return {"input_values": torch.rand(batch, length * 250) * 2 - 1}
    if "image_size" in config:
        size = config["image_size"]
        return {"pixel_values": torch.rand(batch, config["num_channels"], size, size) * 2 - 1}
    mask = (torch.arange(length)[None, :] < torch.randint(1, length + 1, (batch, 1))).long()
    return {"input_ids": torch.randint(0, config["vocab_size"], (batch, length)), "attention_mask": mask}


example = inputs(2, 16)
batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
dynamic = {name: {0: batch, **({1: seq} if value.dim() == 2 else {})} for name, value in example.items()}
torch.onnx.export(
    model, (), str(out / "model.onnx"), kwargs=example, input_names=list(example), dynamic_shapes=dynamic,
    dynamo=True, external_data=False,
)  # fmt: skip
session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
for size in (1, 8):
    feed = inputs(size, 16)
    with torch.no_grad():
        expected = next(iter(model(**feed).values())).numpy()
    got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
