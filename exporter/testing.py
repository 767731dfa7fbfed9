"""Equivalence assertions for your own test suite, like ``torch.testing.assert_close`` for exports.

    from exporter.testing import assert_exports_match

    def test_my_model_exports():
        assert_exports_match(MyModel().eval(), torch.rand(1, 28, 28))

Both functions run exactly the verification ``exporter verify`` runs and raise
``AssertionError`` whose message is the report's failure block: every mismatch, the
parameter accounting included. On success they return the VerificationReport, so a test
can assert more. A mistake in the call itself (a bad option, an unreadable folder) raises
the toolkit's UsageError, not AssertionError.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_FORMATS, ExportConfig, VerifyConfig
from .errors import ExportFailedError

if TYPE_CHECKING:
    import torch

    from .verification.results import VerificationReport


def assert_exports_match(
    model: torch.nn.Module,
    example_inputs: Any,
    *,
    dynamic: dict[str, dict[int, str]] | None = None,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    atol: float | None = None,
    rtol: float | None = None,
    samples: int | None = None,
    batch_sizes: tuple[int, ...] = (),
    seed: int = 0,
    out: str | Path | None = None,
    **verify_options: Any,
) -> VerificationReport:
    """Export ``model`` (on its example's device) and assert every artifact matches eager.

    ``example_inputs``: a tensor, a tuple of tensors (forward's arguments) or a dict of tensors
    by parameter name; ``dynamic``: more dynamic axes, ``{"ids": {1: "seq"}}`` (axis 0, the
    batch, is dynamic already). ``out``: keep the artifact folder there (default: a temporary
    folder, removed after).
    ``verify_options``: any other VerifyConfig field (``nan_policy``, ``allow_unused``,
    ``min_agreement``, ``input_range``, ...). Raises AssertionError listing every mismatch,
    or naming the exporter step that failed.
    """
    from .exporting import export

    config = ExportConfig(
        out=Path(out) if out is not None else Path("."),
        device=_device_of(example_inputs),
        formats=tuple(formats),
        seed=seed,
        verify_config=_verify_config(atol, rtol, samples, batch_sizes, seed, verify_options),
    )
    with tempfile.TemporaryDirectory(prefix="exporter-") as scratch:
        if out is None:
            config = replace(config, out=Path(scratch))
        try:
            result = export(model, config, example_inputs=example_inputs, dynamic=dynamic)
        except ExportFailedError as error:
            raise AssertionError(f"{type(model).__name__} could not be exported: {error}") from error
        kept = result.path if out is not None else None  # a temporary folder is gone by the time anyone reads this
        _raise_on_failure(result.report, f"exports of {type(model).__name__} do not match eager PyTorch", kept)
        return result.report


def assert_artifacts_match(
    artifact_dir: str | Path,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    samples: int | None = None,
    batch_sizes: tuple[int, ...] = (),
    seed: int = 0,
    model: torch.nn.Module | None = None,
    **verify_options: Any,
) -> VerificationReport:
    """Assert that an exported folder (a release's, say) still matches eager, hashes included.

    The folder is only read: no verification.json is written into it. ``model``: the eager
    reference to compare with (default: rebuilt from the manifest). ``verify_options``: any
    other VerifyConfig field (``source``, ``weights``, ``device``, ...).
    """
    from .verification import verify

    config = _verify_config(atol, rtol, samples, batch_sizes, seed, verify_options)
    report = verify(artifact_dir, config, model=model, write=False)
    _raise_on_failure(report, f"artifacts in {artifact_dir} do not match eager PyTorch", None)
    return report


def _device_of(values: Any) -> str:
    """The device of the first tensor among the example values (cpu when there is none)."""
    from .interface import flatten

    devices = [str(leaf.device) for _, leaf in flatten(values) if hasattr(leaf, "device")]
    return devices[0] if devices else "cpu"


def _verify_config(atol, rtol, samples, batch_sizes, seed, options: dict[str, Any]) -> VerifyConfig:
    unknown = set(options) - set(VerifyConfig.__dataclass_fields__)
    if unknown:
        from .errors import UsageError

        raise UsageError(f"unknown verification option(s): {', '.join(sorted(unknown))}")
    return VerifyConfig(
        atol=atol, rtol=rtol, samples=samples, batch_sizes=tuple(batch_sizes), seed=seed, **options
    )  # fmt: skip


def _raise_on_failure(report: VerificationReport | None, headline: str, folder: Path | None) -> None:
    if report is None or report.passed:
        return
    lines = [f"{headline}: {len(report.failures)} problem(s)"]
    lines += [f"  - {line}" for line in report.failures]
    if folder is not None:
        lines.append(f"(artifacts: {folder})")
    raise AssertionError("\n".join(lines))
