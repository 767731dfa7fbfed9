"""Small networks of the shapes teams ship, one per kind the README lists; the tests export each.

Each builds without arguments (as `exporter export FILE.py:Class` needs) and is tiny, so a
whole export and verification takes seconds. Shapes are comments on each line of forward.
"""

from __future__ import annotations

import torch
from torch import nn


class TwoInputs(nn.Module):
    """An image and a feature vector: forward(image, features)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4 + 8, 10)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(image).mean(dim=(2, 3))  # (B, 4)
        return self.head(torch.cat([pooled, features], dim=1))  # (B, 10)


class Tagger(nn.Module):
    """Token ids (int64) through an Embedding, any sequence length: forward(ids)."""

    def __init__(self, vocabulary: int = 1000, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.head = nn.Linear(width, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))  # (B, T) -> (B, T, 16) -> (B, 5)


class FrozenLength(Tagger):
    """A Tagger that divides by the sequence length as a Python int: tracing freezes it."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = int(ids.shape[1])  # a constant in a trace: other lengths get the wrong mean
        return self.head(self.embed(ids).sum(dim=1) / length)


class TupleOutputs(nn.Module):
    """Returns (logits, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(12, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = torch.relu(self.body(x))  # (B, 6)
        return self.head(embedding), embedding  # (B, 3), (B, 6)


class DictOutputs(TupleOutputs):
    """Returns {"logits": ..., "embedding": ...}."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, embedding = super().forward(x)
        return {"logits": logits, "embedding": embedding}


class WrongSecondOutput(TupleOutputs):
    """The second output scales by a Python float read from the input: a trace freezes that number."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = super().forward(x)
        return logits, embedding * float(x.abs().max())  # .item() in disguise: constant once traced


class Recurrent(nn.Module):
    """An LSTM over (B, T, 8), last step through a Linear."""

    cell = nn.LSTM

    def __init__(self) -> None:
        super().__init__()
        self.rnn = self.cell(input_size=8, hidden_size=12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, 12)
        return self.head(out[:, -1])  # (B, 4)


class GatedRecurrent(Recurrent):
    """The same with a GRU."""

    cell = nn.GRU


class Encoder(nn.Module):
    """One TransformerEncoderLayer over (B, T, 16), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x).mean(dim=1))  # (B, T, 16) -> (B, 4)
