"""Small models that break, or do not, on what users serve and uniform draws never hit (issue 22).

Each broken one fails for its own cause, most only on a probe: a size the seeded cases never take, an
exact value, a declared missing value; or on a rebuild that draws from an unseeded generator, or an
artifact off by more than eager's own float32 error where the float64 oracle judges. Each sound one looks alike and must
pass. `CASES` says how each is exported and what its verdict must name; tests/verification/test_served.py
runs them. Like tests/catalogue.py, this file imports only torch, numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


class _Image(nn.Module):
    """One linear layer over a (B, 28, 28) image, as the catalogue's models."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)


class _Clip(nn.Module):
    """A (B, T, 8) clip, T dynamic (label frames, example 32): the mean frame through one linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)


# --- must fail, each on its own probe --------------------------------------------------------------


class PadsShortClips(_Clip):
    """Clips under 4 frames are padded to 4 in Python: a trace keeps the unpadded path of the 32-frame
    example, so the artifact disagrees at 1, 2 and 3 frames and nowhere the seeded cases go (16, 32, 64)."""

    def forward(self, x):  # (B, T, 8)
        if x.shape[1] < 4:
            x = nn.functional.pad(x, (0, 0, 0, 4 - x.shape[1]))
        return self.fc(x.mean(1))  # (B, 4)


class Atan2(_Image):
    """atan2(y, x) at y = +0, x < 0: pi in eager, -pi in ONNX Runtime; uniform draws never give y = 0."""

    def forward(self, x):
        angle = torch.atan2(x[:, 0, :10], x[:, 1, :10] - 0.5)  # (B, 10)
        return self.fc(x.flatten(1)) + angle


class SignOfMissing(_Image):
    """sign(NaN) is 0 in eager and NaN in ONNX Runtime: an input with missing readings breaks it."""

    def forward(self, x):
        return self.fc(torch.sign(x - 0.5).flatten(1))


class MaxPoolOfMissing(_Image):
    """Max-pooling then imputing NaN: torch's pool propagates NaN (imputed to -1), ONNX Runtime's skips it."""

    def forward(self, x):
        pooled = nn.functional.max_pool2d(x[:, None], 2)[:, 0]  # (B, 14, 14)
        return torch.nan_to_num(pooled, nan=-1.0).flatten(1)[:, :10] + self.fc(torch.nan_to_num(x).flatten(1))


class UnseededFeatures(_Image):
    """Random features from a numpy generator seeded by the OS: no rebuild can draw them again."""

    def __init__(self) -> None:
        super().__init__()
        draws = np.random.default_rng().standard_normal((10,))
        self.register_buffer("features", torch.from_numpy(draws).float())

    def forward(self, x):
        return self.fc(x.flatten(1)) + self.features


class _Latitudes(nn.Module):
    """LayerNorm over raw latitudes (37.70..37.80): cancellation leaves float32 eager 1e-4 off the true answer."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 4)


class LatitudesOffInTrace(_Latitudes):
    """The traced artifact is 5e-4 off: inside the whole-output gates, twice eager's own float32 error,
    so the float64 oracle must not let it through."""

    def forward(self, x):  # (B, 16)
        y = self.fc(self.norm(x))
        return y + 5e-4 if torch.jit.is_tracing() else y


# --- must pass -----------------------------------------------------------------------------------------


class ClipMean(_Clip):
    """The clip model without the padding: every length runs the same graph."""

    def forward(self, x):
        return self.fc(x.mean(1))


class Atan2Shifted(_Image):
    """atan2 away from the branch cut (x > 0 always): exact zeros of y give 0 everywhere."""

    def forward(self, x):
        return self.fc(x.flatten(1)) + torch.atan2(x[:, 0, :10], x[:, 1, :10] + 0.5)


class ImputesMissing(_Image):
    """NaN readings replaced by 0 before the layer: finite outputs in eager and every runtime."""

    def forward(self, x):
        return self.fc(torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).flatten(1))


class LayerNormRows(nn.Module):
    """LayerNorm over each row: a constant row gives exactly the bias, a constant output the gates cannot judge."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(28)
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(self.norm(x).flatten(1)) + self.norm(x)[:, 0, :10]


class ConstantAtBatchOne(_Image):
    """Centred over the batch: at batch 1 every output is exactly 0, elsewhere it varies. Sound."""

    def forward(self, x):
        centred = x - x.mean(0, keepdim=True)
        return self.fc(centred.flatten(1)).sum(1, keepdim=True)  # (B, 1)


class NumpyFeatures(_Image):
    """Random features from numpy's global generator in __init__: seeded at build, so rebuilt the same."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("features", torch.from_numpy(np.random.standard_normal(10)).float())

    def forward(self, x):
        return self.fc(x.flatten(1)) + self.features


class Latitudes(_Latitudes):
    """The latitudes model exported soundly: ONNX Runtime fails the float32 rule, yet is closer to float64."""

    def forward(self, x):
        return self.fc(self.norm(x))


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One model exported one way, the verdict it must get over every seed, and what a failure names.

    ``verify``: fields of VerifyConfig for export's verification and every re-verification
    (``missing``, say). ``rebuild``: judge by re-verifying the folder (the model rebuilt from its
    code), not by export's own verification. ``cause``: a substring one failure must hold.
    """

    model: str
    expect: str  # "fail" or "pass"
    cause: str | None = None
    formats: tuple[str, ...] = ("onnx",)
    shape: tuple[int, ...] = (1, 28, 28)
    dynamic: tuple = ()
    verify: dict = field(default_factory=dict, hash=False, compare=False)
    rebuild: bool = False
    value_range: tuple[float, float] | None = None  # the input's range; None: [0, 1)
    probe: bool = True  # a must-fail case caught by a probe only (with the probes off its seeded draws pass)

    @property
    def id(self) -> str:
        return self.model


MISSING_X = {"missing": (("input", ("nan",)),)}
CLIP = {"shape": (1, 32, 8), "dynamic": (("input", 1, "frames"),)}
LATITUDES = {"shape": (1, 16), "value_range": (37.70, 37.80)}

CASES: tuple[Case, ...] = (
    Case("PadsShortClips", "fail", "fails at the probed size(s)", ("torchscript",), **CLIP),
    Case("Atan2", "fail", "fails on exact zeros in `input`"),
    Case("SignOfMissing", "fail", "fails on NaN in `input`", verify=MISSING_X),
    Case("MaxPoolOfMissing", "fail", "fails on NaN in `input`", verify=MISSING_X),
    Case("UnseededFeatures", "fail", "a generator this tool does not seed", ("torchscript",), rebuild=True),
    Case("LatitudesOffInTrace", "fail", "elements differ beyond", ("torchscript",), probe=False, **LATITUDES),
    Case("ClipMean", "pass", formats=("torchscript", "onnx"), **CLIP),
    Case("Atan2Shifted", "pass"),
    Case("ImputesMissing", "pass", verify=MISSING_X),
    Case("LayerNormRows", "pass", formats=("torchscript", "onnx")),
    Case("ConstantAtBatchOne", "pass"),
    Case("NumpyFeatures", "pass", formats=("torchscript",), rebuild=True),
    Case("Latitudes", "pass", **LATITUDES),
)
