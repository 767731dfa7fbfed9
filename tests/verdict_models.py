"""A second catalogue, for the verdict (issue 13): broken exports that slipped through, and sound
models that were failed. Each takes (B, 28, 28) unless it says otherwise; used through `file.py:Class`.
"""

from __future__ import annotations

import torch
from torch import nn


class _Tiny(nn.Module):
    """Logits around 1e-6: smaller than float32's default atol, so only the whole-output gates can judge."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * 1e-5  # (B, 10), values ~1e-6


# --- must fail -------------------------------------------------------------------------------------


class TinyFrozenScalar(_Tiny):
    """A Python float read from the input: a trace freezes the example's value."""

    def forward(self, x):
        return self.logits(x) * float(x.mean() * 4)  # .item() in disguise


class TinyNegated(_Tiny):
    """The legacy exporter traces the branch the example takes; uniform inputs rarely take the other."""

    def forward(self, x):
        y = self.logits(x)
        return y if bool(x[0, 0, 0] > 0.5) else -y


class IntegerIds(nn.Module):
    """int64 outputs (argmax ids) plus a Python-side offset that a trace freezes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        ids = self.fc(x.flatten(1)).argmax(1) * 100_000  # (B,) int64
        return ids + int(x.sum() > 392)  # 0 or 1, frozen at the example's


class LargeBatchBranch(nn.Module):
    """Behaves differently from batch 100 up: frozen by tracing at the example's batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return -y if x.shape[0] >= 100 else y


class SqueezedOutput(nn.Module):
    """squeeze() drops the batch axis at batch 1: (10,) where the interface says (batch, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)).squeeze()


class RunningStatistic(nn.Module):
    """forward updates a buffer on every call: no two runs agree, and the cause is that buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)
        self.register_buffer("seen", torch.zeros(1))

    def forward(self, x):
        self.seen += x.shape[0]
        return self.fc(x.flatten(1)) + self.seen * 1e-3


# --- must pass -------------------------------------------------------------------------------------


class TinySound(_Tiny):
    """Logits around 1e-6, exported soundly: the whole-output gates must not fail it."""

    def forward(self, x):
        return self.logits(x)


class InPlaceNormalise(nn.Module):
    """Normalises its input in place, as much user code does: each runtime gets its own copy."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        x.sub_(0.5).div_(0.25)
        return self.fc(x.flatten(1))


class IdempotentClamp(nn.Module):
    """Clamps its own weight in forward: the state changes on the first call only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        with torch.no_grad():
            self.fc.weight.clamp_(-0.02, 0.02)
        return self.fc(x.flatten(1))
