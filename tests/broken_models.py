"""Small models taking (B, 28, 28) inputs: classic broken exports, and sound ones that must pass.

Used by test_broken_exports.py through the `file.py:Class` model form, as a user would.
"""

from __future__ import annotations

import torch
from torch import nn


class _Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)


# --- must fail ------------------------------------------------------------------------


class ValueBranch(_Base):
    """Python control flow on input values: tracing records only the branch the example took."""

    def forward(self, x):  # (B, 28, 28)
        y = self.fc(x.flatten(1))  # (B, 10)
        if x.mean() > 0.5:  # the example (uniform [0, 1)) has mean ~0.5: only one branch is kept
            return y * 2
        return -y


class FrozenBatch(_Base):
    """The batch size turned into a Python int: tracing bakes it into the graph."""

    def forward(self, x):
        batch = int(x.shape[0])
        return self.fc(x.reshape(batch, 784))


class NanOutput(_Base):
    """Outputs contain NaN: the square root of (pixel - 0.5) is NaN wherever a pixel is below 0.5."""

    def forward(self, x):
        return self.fc(x.flatten(1)) * torch.sqrt(x[:, 0, :10] - 0.5)  # (B, 10), NaN at input-defined places


class LiveDropout(_Base):
    """Dropout forced on in forward: eval() cannot switch it off."""

    def forward(self, x):
        return nn.functional.dropout(self.fc(x.flatten(1)), p=0.5, training=True)


class UnusedParameter(_Base):
    """A parameter forward never touches: the artifacts lack weights the model declares."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = nn.Linear(10, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


# --- must pass ------------------------------------------------------------------------


class TiedWeights(nn.Module):
    """An encoder/decoder pair sharing one weight: counted once."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(784, 32, bias=False)
        self.decoder = nn.Linear(32, 784, bias=False)
        self.decoder.weight = self.encoder.weight  # tied (transposed use below)
        self.head = nn.Linear(784, 10)

    def forward(self, x):
        h = torch.relu(self.encoder(x.flatten(1)))  # (B, 32)
        recon = h @ self.encoder.weight  # (B, 784): the tied weight used again
        return self.head(recon)


class ConvBatchNorm(nn.Module):
    """Conv + BatchNorm in eval mode: an exporter may fold the BatchNorm into the conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        with torch.no_grad():  # non-trivial statistics, so a wrong fold would show
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x.unsqueeze(1))))  # (B, 4, 28, 28)
        return self.head(y.flatten(1))


class NormalizedDropout(nn.Module):
    """Input normalisation held in buffers, and a Dropout layer that eval() switches off."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.1307))
        self.register_buffer("std", torch.tensor(0.3081))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.fc(self.dropout(x.flatten(1)))
