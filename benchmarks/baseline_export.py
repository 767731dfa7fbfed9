"""The shortest hand-written script doing what `exporter export mlp` does, with the same exporters.

Trace + save TorchScript, export ONNX with torch's default (dynamo) exporter and a dynamic
batch, load both, compare with eager on two batch sizes. bench_export.py times it against
the toolkit. Usage: python benchmarks/baseline_export.py OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from exporter.models.mlp import NeuralNetwork

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
model = NeuralNetwork().eval()
x = torch.rand(1, 28, 28)
torch.jit.trace(model, x).save(str(out / "model.pt"))
torch.onnx.export(
    model,
    (x,),
    str(out / "model.onnx"),
    input_names=["input"],
    output_names=["logits"],
    dynamic_shapes=({0: torch.export.Dim("batch")},),
    dynamo=True,
    external_data=False,
)
scripted = torch.jit.load(str(out / "model.pt"))
session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
for batch in (1, 64):
    inputs = torch.rand(batch, 28, 28)
    with torch.no_grad():
        expected = model(inputs).numpy()
        np.testing.assert_allclose(scripted(inputs).numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(session.run(None, {"input": inputs.numpy()})[0], expected, rtol=1e-4, atol=1e-5)
print("ok")
