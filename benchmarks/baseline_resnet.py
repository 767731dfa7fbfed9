"""What an engineer would write by hand to export benchmarks/resnet.py:ResNet18 and check it on 65 samples.

Build the model (seed 0, eval), trace + save TorchScript, export ONNX with torch's default (dynamo)
exporter and a dynamic batch, load both, compare with eager at batch 1 and 64 (65 samples).
bench_scale.py --resnet times it against `exporter export`. Usage: python benchmarks/baseline_resnet.py OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resnet import ResNet18

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
model = ResNet18().eval()
x = torch.rand(1, 3, 224, 224)
with torch.no_grad():
    torch.jit.trace(model, x).save(str(out / "model.pt"))
    torch.onnx.export(
        model,
        (torch.rand(2, 3, 224, 224),),
        str(out / "model.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
    )
scripted = torch.jit.load(str(out / "model.pt"))
session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
for batch in (1, 64):
    inputs = torch.rand(batch, 3, 224, 224)
    with torch.no_grad():
        expected = model(inputs).numpy()
        np.testing.assert_allclose(scripted(inputs).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(session.run(None, {"input": inputs.numpy()})[0], expected, rtol=1e-3, atol=1e-4)
print("ok")
