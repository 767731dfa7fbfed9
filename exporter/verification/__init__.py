"""Verification: every artifact of a folder against the eager model, on the same inputs.

``verify`` is the entry point; importing this package imports no torch (the stages, in ``run``,
are imported when it is called, once the folder's manifest has been read).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import VerifyConfig
from ..progress import Progress

if TYPE_CHECKING:
    from torch import nn

    from ..eager.reference import Held
    from .results import VerificationReport

__all__ = ["verify"]


def verify(
    artifact_dir: str | Path,
    config: VerifyConfig | None = None,
    *,
    model: nn.Module | Held | None = None,
    write: bool = True,
    progress: Progress | None = None,
    _written_here: bool = False,
) -> VerificationReport:
    """Verify an artifact folder against eager PyTorch and return the report.

    ``model``: the eager reference to use instead of rebuilding it from the manifest
    (``export`` passes the model it just exported, in a ``reference.Held`` that verification lets
    go before any runtime loads, so that the weights are held once; a module you pass stays held by
    you). ``write``: save verification.json
    and the summary in manifest.json. ``progress``: told the runtime, batch and samples done after
    every batch (``progress.on_terminal``). Raises UsageError (bad folder, inputs, device);
    a failed verification is a report whose ``passed`` is False.

    Each runtime loads a private copy of its files, made while they are hashed. ``_written_here``
    (export's own verification only): the folder is this process's private staging folder and the
    manifest's digests were taken as its files were written, so they are loaded in place.
    """
    from ..artifacts.manifest import Manifest
    from ..paths import check_shadowing

    check_shadowing()
    folder = Path(artifact_dir)
    Manifest.load(folder)  # a folder that is not one answers before torch is imported
    from .run import verify_folder

    with _strict_float32():
        return verify_folder(folder, config or VerifyConfig(), model, write, progress, _written_here)


@contextlib.contextmanager
def _strict_float32() -> Iterator[None]:
    """TF32 off while verifying: on Ampere+ GPUs cuDNN convolutions default to TF32 (10-bit
    mantissa), which would make the float32 reference itself differ from a float32 runtime by
    ~1e-3. Verification compares float32 with float32; the flags are restored afterwards."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
