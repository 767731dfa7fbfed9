"""What an engineer would write by hand to export benchmarks/wide.py:Wide and check it.

Build the model (seed 0), trace + save TorchScript, export ONNX with torch's default (dynamo)
exporter and a dynamic batch (external data past 2 GB, as torch.onnx requires), load both,
compare with eager at batch 1 and 64. bench_scale.py times it (and its peak RSS) against
`exporter export`. Usage: WIDE_WIDTH=W python benchmarks/baseline_scale.py OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wide import Wide

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
model = Wide().eval()
weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
x = torch.rand(1, 28, 28)
with torch.no_grad():
    torch.jit.trace(model, x).save(str(out / "model.pt"))
    torch.onnx.export(
        model,
        (x,),
        str(out / "model.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=weight_bytes > 2 * 1024**3 * 0.9,
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
