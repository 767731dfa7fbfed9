"""The seed network widened: Flatten -> Linear(784, w) -> ReLU -> Linear(w, w) -> ReLU -> Linear(w, 10) -> ReLU.

784w + w^2 + 10w weights (plus 2w + 10 biases). The width comes from WIDE_WIDTH (default
1024) so that ``exporter export benchmarks/wide.py:Wide`` and the hand-written baseline
build the same model; bench_scale.py sets it per run. w=16384 is 1.13 GB of float32
weights, w=24000 is 2.38 GB (past protobuf's 2 GB: ONNX external data).
"""

from __future__ import annotations

import os

from torch import nn

WIDTH = int(os.environ.get("WIDE_WIDTH", "1024"))


class Wide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, WIDTH),
            nn.ReLU(),
            nn.Linear(WIDTH, WIDTH),
            nn.ReLU(),
            nn.Linear(WIDTH, 10),
            nn.ReLU(),
        )

    def forward(self, x):  # x: (B, 28, 28)
        return self.linear_relu_stack(self.flatten(x))  # (B, 10)
