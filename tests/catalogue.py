"""Small models that must fail verification, each for its own cause, and sound ones that must pass.

Each takes (B, 28, 28). They are exported through the `file.py:Class` model form, as a user would,
so this file imports nothing but torch and the standard library. `CASES` at the bottom says, for
each model, what the verdict must be and what a failure must name; tests/verification/test_catalogue.py
and benchmarks/verdict_catalogue.py run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class _Linear(nn.Module):
    """One linear layer over the flattened image: the whole model, unless a subclass adds a fault."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)


class _Tiny(_Linear):
    """Logits around 1e-6: smaller than float32's default atol, so only the whole-output gates can judge."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * 1e-5  # (B, 10), values ~1e-6


# --- must fail -------------------------------------------------------------------------------------


class ValueBranch(_Linear):
    """Python control flow on input values: dynamo refuses it; a trace keeps only the branch the example took."""

    def forward(self, x):  # (B, 28, 28)
        y = self.fc(x.flatten(1))  # (B, 10)
        if x.mean() > 0.5:  # the example (uniform [0, 1)) has mean ~0.5: only one branch is kept
            return y * 2
        return -y


class FrozenBatch(_Linear):
    """The batch size turned into a Python int: the export bakes it into the graph."""

    def forward(self, x):
        batch = int(x.shape[0])
        return self.fc(x.reshape(batch, 784))


class NanOutput(_Linear):
    """Outputs contain NaN: the square root of (pixel - 0.5) is NaN wherever a pixel is below 0.5."""

    def forward(self, x):
        return self.fc(x.flatten(1)) * torch.sqrt(x[:, 0, :10] - 0.5)  # (B, 10), NaN at input-defined places


class LiveDropout(_Linear):
    """Dropout forced on in forward: eval() cannot switch it off, so the reference is nondeterministic."""

    def forward(self, x):
        return nn.functional.dropout(self.fc(x.flatten(1)), p=0.5, training=True)


class UnusedParameter(_Linear):
    """A parameter forward never touches: the artifacts lack weights the model declares."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = nn.Linear(10, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class TinyFrozenScalar(_Tiny):
    """A Python float read from the input on tiny logits: a trace freezes the example's value, and
    every element stays within atol, so only the scale gate (error against the output's RMS) sees it."""

    def forward(self, x):
        return self.logits(x) * float(x.mean() * 4)  # .item() in disguise


class TinyNegated(_Tiny):
    """A value branch on tiny logits traced by the legacy exporter: its tracer warning must be
    accepted by hand, and the other branch (negated logits) fails the cosine gate."""

    def forward(self, x):
        y = self.logits(x)
        return y if bool(x[0, 0, 0] > 0.5) else -y


class IntegerIds(_Linear):
    """int64 outputs (argmax ids) plus a Python-side offset that a trace freezes: ids compare exactly."""

    def forward(self, x):
        ids = self.fc(x.flatten(1)).argmax(1) * 100_000  # (B,) int64
        return ids + int(x.sum() > 392)  # 0 or 1, frozen at the example's


class LargeBatchBranch(_Linear):
    """Behaves differently from batch 100 up: frozen by tracing at the example's batch, caught at 128."""

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return -y if x.shape[0] >= 100 else y


class SqueezedOutput(_Linear):
    """squeeze() drops the batch axis at batch 1: (10,) where the interface says (batch, 10)."""

    def forward(self, x):
        return self.fc(x.flatten(1)).squeeze()


class RunningStatistic(_Linear):
    """forward updates a buffer on every call: no two runs agree, and the cause is that buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", torch.zeros(1))

    def forward(self, x):
        self.seen += x.shape[0]
        return self.fc(x.flatten(1)) + self.seen * 1e-3


# --- must pass -------------------------------------------------------------------------------------


class TiedWeights(nn.Module):
    """An encoder/decoder pair sharing one weight: sound, and the shared weight is counted once."""

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
    """Conv + BatchNorm in eval mode: sound; an exporter may fold the BatchNorm into the conv."""

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
    """Input normalisation held in buffers, and a Dropout layer that eval() switches off: sound."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.1307))
        self.register_buffer("std", torch.tensor(0.3081))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.fc(self.dropout(x.flatten(1)))


class TinySound(_Tiny):
    """Logits around 1e-6, exported soundly: the whole-output gates judge them against their own scale."""

    def forward(self, x):
        return self.logits(x)


class InPlaceNormalise(_Linear):
    """Normalises its input in place, as much user code does: sound, since each runtime gets its own copy."""

    def forward(self, x):
        x.sub_(0.5).div_(0.25)
        return self.fc(x.flatten(1))


class IdempotentClamp(_Linear):
    """Clamps its own weight in forward: the state changes on the first call only, so it is sound."""

    def forward(self, x):
        with torch.no_grad():
            self.fc.weight.clamp_(-0.02, 0.02)
        return self.fc(x.flatten(1))


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One model exported one way, and the verdict it must get.

    ``cause``: for "fail", a substring the failure must contain: of the report's failures, or of the
    export error when ``refused`` (the exporter itself says no). ``formats``: the formats exported
    (empty: the default ones); given where the cause belongs to one runtime, or to keep the case quick.
    """

    model: str  # a class of this file
    expect: str  # "fail" or "pass"
    cause: str | None = None
    formats: tuple[str, ...] = ()
    onnx_exporter: str = "dynamo"
    refused: bool = False

    @property
    def id(self) -> str:
        return self.model if self.onnx_exporter == "dynamo" else f"{self.model}-{self.onnx_exporter}"


CASES: tuple[Case, ...] = (
    # must fail
    # an explicit list: strict (with the defaults, ONNX is left out and the traced TorchScript fails instead)
    Case("ValueBranch", "fail", "forward branches on tensor values", formats=("torchscript", "onnx"), refused=True),
    Case("ValueBranch", "fail", "differ beyond", onnx_exporter="legacy"),
    Case("FrozenBatch", "fail", "at batch 64: raised"),
    Case("FrozenBatch", "fail", "at batch 64: raised", onnx_exporter="legacy"),
    Case("NanOutput", "fail", "NaN/Inf value(s) in the reference output"),
    Case("LiveDropout", "fail", "the eager reference is nondeterministic"),
    Case("UnusedParameter", "fail", "never used by forward"),
    Case("TinyFrozenScalar", "fail", "x the reference's RMS", formats=("torchscript",)),
    Case("TinyNegated", "fail", "legacy (tracing) ONNX exporter, which warned", ("onnx",), "legacy"),
    Case("IntegerIds", "fail", "beyond atol 0 + rtol 0", formats=("torchscript",)),
    Case("LargeBatchBranch", "fail", "torchscript at batch 128, output:", formats=("torchscript",)),
    Case("SqueezedOutput", "fail", "the manifest declares", formats=("onnx",)),
    Case("RunningStatistic", "fail", "forward changes the model's state on every call", formats=("onnx",)),
    # must pass
    Case("TiedWeights", "pass"),
    Case("TiedWeights", "pass", onnx_exporter="legacy"),
    Case("ConvBatchNorm", "pass"),
    Case("ConvBatchNorm", "pass", onnx_exporter="legacy"),
    Case("NormalizedDropout", "pass"),
    Case("TinySound", "pass"),
    Case("InPlaceNormalise", "pass"),
    Case("IdempotentClamp", "pass", formats=("onnx",)),
)
