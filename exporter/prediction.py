"""``predict``: run one input through each runtime and show what the seed article shows.

As in the article: ``nn.Softmax(dim=1)`` over the logits, then ``argmax(1)``. Each
runtime's probabilities and class are returned side by side with whether they agree.
TARGET is an artifact folder (eager, TorchScript, ONNX Runtime, hash-checked first) or a
registered model name (eager only, weights from ``seed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import formats, runners
from .artifacts import trust
from .artifacts.manifest import Manifest
from .config import VerifyConfig
from .errors import UsageError
from .images import check_input_path, load_samples
from .interface import Interface, OutputSpec
from .paths import check_shadowing
from .progress import Progress
from .tables import joined, text_table


@dataclass
class Prediction:
    """Per runtime: a (N, classes) array of probabilities and the (N,) predicted classes."""

    input_notes: list[str]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    classes: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # runtimes not loaded and why; the recorded verification

    @property
    def agree(self) -> bool:
        values = list(self.classes.values())
        return all(np.array_equal(values[0], v) for v in values[1:])

    def to_dict(self) -> dict[str, Any]:
        def one(rt: str, i: int) -> dict[str, Any]:
            return {"class": int(self.classes[rt][i]), "probabilities": [float(p) for p in self.probabilities[rt][i]]}

        n = len(next(iter(self.classes.values())))
        predictions = {rt: one(rt, 0) if n == 1 else [one(rt, i) for i in range(n)] for rt in self.classes}
        return {"predictions": predictions, "agree": self.agree, "input": self.input_notes, "notes": self.notes}

    def render(self) -> str:
        runtimes = list(self.classes)
        lines = [f"input: {'; '.join(self.input_notes)}"]
        n = len(self.classes[runtimes[0]])
        if n == 1:
            rows = [("class", *runtimes)]
            classes = self.probabilities[runtimes[0]].shape[1]
            rows += [(str(c), *(f"{self.probabilities[rt][0, c]:.4f}" for rt in runtimes)) for c in range(classes)]
            rows.append(("predicted", *(str(int(self.classes[rt][0])) for rt in runtimes)))
        else:
            rows = [("sample", *runtimes)]
            for i in range(n):
                cells = (f"{int(self.classes[rt][i])} ({self.probabilities[rt][i].max():.3f})" for rt in runtimes)
                rows.append((str(i), *cells))
        lines += text_table(rows)
        if len(runtimes) > 1:
            lines.append(f"runtimes agree: {'yes' if self.agree else 'NO'}")
        lines += [f"note: {note}" for note in self.notes]
        return joined(lines)  # input notes and notes can name the folder's inputs and files


def predict(
    target: str | Path,
    input_spec: str,
    runtime: str = "all",
    *,
    seed: int = 0,
    config: VerifyConfig | None = None,
    progress: Progress | None = None,
) -> Prediction:
    """Predict ``input_spec`` (image, .npy or 'random') with ``target``'s runtimes.

    ``runtime``: a runtime or format name (``onnxruntime`` or ``onnx``), or ``all``: eager and
    every runtime the folder has. Results are keyed by runtime name, as in every report. ``progress``:
    told each runtime of a folder before it runs (``progress.on_terminal``).
    """
    check_shadowing()
    if runtime != "all" and formats.get(runtime) is None and runtime != formats.EAGER:
        raise UsageError(f"--runtime must be one of {', '.join(formats.RUNTIMES)} (or a format name) or all")
    if input_spec != "random":
        check_input_path(input_spec)
    config = config or VerifyConfig(device="cpu")
    path = Path(target)
    if path.is_dir():
        manifest = Manifest.load(path)  # a folder that is not an artifact folder answers before torch is imported
        return _predict_folder(path, manifest, input_spec, runtime, seed, config, progress or (lambda _message: None))
    from .eager.sources import resolve

    source = resolve(str(target))
    if runtime not in (formats.EAGER, "all"):
        raise UsageError(f"{target} is a model, not an artifact folder: only --runtime eager can run it")
    import torch

    from .eager import reference

    device = torch.device("cpu")
    model = reference.build(source, seed, device)
    feed, notes = load_samples(input_spec, source.inputs, seed)
    outputs = source.output_names or ("output",)
    result = Prediction(notes)
    with runners.eager(model, device, Interface(source.inputs, tuple(OutputSpec(n) for n in outputs))) as runner:
        _record(result, formats.EAGER, runner.infer(feed)[outputs[0]])
    return result


def _predict_folder(
    path: Path, manifest: Manifest, input_spec: str, runtime: str, seed: int, config: VerifyConfig, progress
) -> Prediction:
    from .eager import reference

    device = reference.device_for(config.device, manifest.device)
    interface = manifest.interface
    specs, outputs = interface.inputs, interface.output_names
    if runtime in ("all", formats.EAGER):
        entries = formats.select(manifest.artifacts, ()) if runtime == "all" else []
    else:
        entry = manifest.artifact(formats.get(runtime).name)
        if entry is None:
            raise UsageError(f"{path} has no {runtime} artifact: export it with --format {formats.get(runtime).name}")
        entries = [entry]
    untrusted = manifest.refusal(config.trust)
    explicit = runtime not in ("all", formats.EAGER)  # a runtime asked for by name: refused, not skipped
    skipped = [e for e in entries if untrusted and formats.FORMATS[e.format].runs_code and not explicit]
    entries = [e for e in entries if e not in skipped]
    feed, notes = load_samples(input_spec, specs, seed)
    result = Prediction(notes)
    if skipped:
        result.notes.append(trust.advice([formats.runtime_name(e.format) for e in skipped], untrusted or ""))
    verdict = manifest.verdict
    if verdict is None:
        result.notes.append(f"no recorded verification matches this manifest: run `exporter verify {path}`")
    elif not verdict.get("passed"):
        result.notes.append(f"the recorded verification FAILED: run `exporter verify {path}` to see why")
    steps = len(entries) + (runtime in ("all", formats.EAGER))
    samples = f"{len(next(iter(feed.values())))} sample(s)"
    if runtime in ("all", formats.EAGER):
        progress(f"predict: eager on {samples} (1/{steps})")
        model = reference.rebuild(path, manifest, config, device)
        with runners.eager(model, device, interface) as runner:
            _record(result, formats.EAGER, runner.infer(feed)[outputs[0]])
    for i, entry in enumerate(entries, steps - len(entries) + 1):
        progress(f"predict: {formats.runtime_name(entry.format)} on {samples} ({i}/{steps})")
        with runners.open_artifact(path, manifest, entry, device, trust=config.trust) as runner:
            _record(result, runner.runtime, runner.infer(feed)[outputs[0]])
    return result


def _record(result: Prediction, runtime: str, logits: np.ndarray) -> None:
    """Softmax over dim 1, then argmax(1), exactly as the seed article predicts."""
    import torch

    probabilities = torch.nn.Softmax(dim=1)(torch.from_numpy(np.asarray(logits, dtype=np.float32)))
    result.probabilities[runtime] = probabilities.numpy()
    result.classes[runtime] = probabilities.argmax(1).numpy()
