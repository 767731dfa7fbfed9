"""Tiny models for the sweep's tests, each for one outcome; exported through the `file.py:Class` form.

Each takes (B, 28, 28). This file imports nothing but torch and the standard library.
"""

from __future__ import annotations

import time

import torch
from torch import nn


class Sound(nn.Module):
    """One linear layer: must pass."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 28, 28)
        return self.fc(x.flatten(1))  # (B, 10)


class UnusedParameter(Sound):
    """A parameter forward never uses: exports, then must fail verification (parameters not accounted for)."""

    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(4, 4)


class RaisesInInit(nn.Module):
    """Cannot even be built."""

    def __init__(self) -> None:
        super().__init__()
        raise ValueError("this model is broken on purpose")


class Hangs(Sound):
    """Never finishes building: only a timeout ends it."""

    def __init__(self) -> None:
        super().__init__()
        time.sleep(3600)


class Hog(Sound):
    """Asks for 16 GiB while it is built: past any memory limit the tests set."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("huge", torch.zeros(2**32))
