"""Where an artifact first departs from eager: the first module whose output differs.

Every runner answers ``module_outputs(feed)``: each eager module's output as that runtime computes
it, by module path. Eager records them with a forward hook on every module, in the order modules
finish (a child before its parent); ONNX maps them through the dynamo exporter's per-node
``name_scopes`` metadata (extra graph outputs of a session of its own over the checked copy); pt2
through each graph node's ``nn_module_stack``.

Modules are compared in eager's finishing order with the runtime's tolerance; the first that
differs is reported with how much and the line of the user's code that leads to it (from the
artifact's recorded stack trace). Every module that finished before it agrees, so its inputs,
where they come from modules, agree too; a divergence in functional code between modules is
reported at the next module that consumes it (or the model itself). TorchScript keeps no map
from its operations to modules, int8 changes every layer by design, and the legacy ONNX
exporter writes no module names: those say they cannot be opened up instead of guessing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from .. import formats, runners
from ..artifacts.manifest import ArtifactEntry, Manifest
from ..config import VerifyConfig
from ..errors import first_line
from .compare import OutputComparison
from .inputs import InputSet
from .results import Divergence, VerificationReport

TORCHSCRIPT_WHY = "TorchScript keeps no map from its operations to the eager modules"
INT8_WHY = "int8 changes every layer by design, so the first layer that differs would say nothing"


def localize_runtimes(
    report: VerificationReport,
    folder: Path,
    manifest: Manifest,
    checked: set[str],
    model: nn.Module,
    device: torch.device,
    feeds: InputSet,
    config: VerifyConfig,
    staged: bool = False,
) -> None:
    """Set ``first_divergence`` on each runtime that ran and failed (every one that ran when
    ``config.localize`` is True), on the first batch of its first failing batch size."""
    entries = {a.path: a for a in manifest.artifacts}
    for result in report.runtimes:
        if not _wanted(result, config):
            continue
        failing = next((b for b in result.batches if not b.passed), result.batches[0])
        start = time.perf_counter()
        try:
            case = next(c for c in feeds.groups if c.batch == failing.batch_size and dict(c.sizes) == failing.sizes)
            feed = next(iter(feeds.batches(case)))
            found = _localize(entries[result.artifact], folder, manifest, checked, model, device, feed, config, staged)
        except Exception as error:  # an artifact that cannot be run this way: say so, never guess
            found = Divergence.none(f"cannot be opened up: {first_line(error)}")
        found.batch = failing.label
        found.seconds = round(time.perf_counter() - start, 3)
        result.first_divergence = found


def wanted(report: VerificationReport, config: VerifyConfig) -> bool:
    """Whether ``localize_runtimes`` would open up any runtime (and so needs the eager model)."""
    return config.localize is not False and any(_wanted(result, config) for result in report.runtimes)


def _wanted(result, config: VerifyConfig) -> bool:
    return not (result.error or not result.batches or (config.localize is None and result.passed))


def _localize(
    entry: ArtifactEntry, folder, manifest: Manifest, checked, model, device, feed, config, staged
) -> Divergence:
    fmt = formats.FORMATS[entry.format]
    if fmt.quantized:
        return Divergence.none(f"cannot be opened up: {INT8_WHY}")
    if fmt.engine == "torch.jit":
        return Divergence.none(f"cannot be opened up: {TORCHSCRIPT_WHY}")
    if any(e.path not in checked for e in (entry, *manifest.side_entries(entry))):
        return Divergence.none("cannot be opened up: a file it needs failed the hash check")
    with runners.open_artifact(
        folder, manifest, entry, device, trust=True, staged=staged, intermediates=True
    ) as runner:  # untrusted code never gets here: its runtime did not run (result.error)
        got, lines = runner.module_outputs(feed)
    kinds = {path: type(module).__name__ for path, module in model.named_modules()}
    with runners.eager(model, device, manifest.interface) as eager:
        expected, _ = eager.module_outputs(feed)
    agreeing = 0
    for path, want in expected.items():
        have = got.get(path)
        if have is None or have.shape != want.shape:
            continue  # not mapped, or a module whose last node is not its output: not compared
        cmp = OutputComparison.from_arrays(path, want, have, config.tolerance(str(want.dtype)))
        if cmp.passed:
            agreeing += 1
            continue
        return Divergence(
            module=path,
            type=kinds.get(path),
            max_abs=cmp.max_abs_diff,
            max_rel=cmp.max_rel_diff,
            line=lines.get(path),
            agreeing=agreeing,
            reason=cmp.reasons[0] if cmp.reasons else None,
        )
    return Divergence.none(
        f"no divergence found: the {agreeing} module output(s) compared agree with eager "
        "(a difference arising outside modules, or at other inputs, is not located)",
        agreeing,
    )
