"""Every input the tool makes or reads: seeded and generated, or replayed from a file.

One recipe (``draw``) makes them all: verify's sets, bench's batches, the export example and
predict's ``random``; the same seed gives the same values everywhere. Each input is drawn
as its ``InputSpec`` says: floats uniform in their range (or normal), integers uniform in
[low, high], bools half False and half True.

Samples are grouped by ``Case``: a batch size, and a size for every other dynamic axis
(a sequence length, say). ``groups[case]`` holds ``n * batch`` samples per input, fed
``batch`` at a time, whole batches only. Every case runs the same number of batches
``n = ceil(samples / sum(batch sizes))``, so the large batches carry most samples (cheap
per sample), batch 1 still runs ``n`` times, and the cost grows linearly with ``samples``.
The default cases cover batch 1, the export's batch and 64, and each other dynamic axis
shorter and longer than the example, so a size frozen into an artifact is caught (a large
model: one batch each, and 64 left to verification's batch past 100). Saved
sets are ``.npz`` files (``batch_<B>[,LABEL=N...][:INPUT]`` arrays) that ``load`` replays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import VerifyConfig
from ..errors import InputSpecError
from ..interface import BATCH, FLOAT_DTYPES, INT_DTYPES, KV_CACHE, PLAIN, InputSpec
from . import kinds, probes
from .cases import DEFAULT_LARGE_BATCH, Case, default_batch_sizes, default_cases, prefill_cases

if TYPE_CHECKING:
    import torch

LABELS = "labels"  # the array of class indices in an --inputs .npz (accuracy.py reads them)
_SAVED = re.compile(r"^batch_(\d+)((?:,[A-Za-z_]\w*=\d+)*)(?:@(\w*)@([\w.]*))?(?::([A-Za-z_]\w*))?$")


def draw(
    generator: torch.Generator,
    shape: tuple[int, ...],
    dtype: str = "float32",
    distribution: str = "uniform",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Samples from ``generator``: floats uniform like ``torch.rand`` scaled to the range, or normal
    with its mean in the middle of the range and ~95 % of samples inside it; integers uniform in
    [low, high]; bools uniform over False/True."""
    import torch

    low, high = value_range
    if dtype == "bool":
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype in INT_DTYPES:
        return torch.randint(int(low), int(high) + 1, shape, generator=generator).to(getattr(torch, dtype))
    if distribution == "normal":
        x = torch.randn(shape, generator=generator, dtype=getattr(torch, dtype))
        return x * ((high - low) / 4) + (low + high) / 2
    return torch.rand(shape, generator=generator, dtype=getattr(torch, dtype)) * (high - low) + low


def sample(generator: torch.Generator, spec: InputSpec, shape: tuple[int, ...], config: VerifyConfig) -> np.ndarray:
    """One input's samples as a numpy array of its carrier dtype (bfloat16 values carried in float32).

    Floats are drawn in float32 and rounded to a half-precision dtype, so the same seed gives
    the same values (to that precision) whatever the model's precision.
    """
    import torch

    if spec.kind not in (None, PLAIN, KV_CACHE):  # a mask, ids, positions: drawn as users send them (kinds.py)
        drawn = kinds.draw(spec.kind, generator, shape, spec.dtype, spec.low_high)
        return drawn.float().numpy() if spec.dtype == "bfloat16" else drawn.numpy()
    if spec.dtype in FLOAT_DTYPES:
        value_range = config.input_range or spec.low_high
        x = draw(generator, shape, "float32", config.distribution, value_range)
        if spec.dtype in ("float16", "bfloat16"):
            x = x.to(getattr(torch, spec.dtype)).float()
        return x.numpy().astype("float32" if spec.dtype == "bfloat16" else spec.dtype, copy=False)
    return draw(generator, shape, spec.dtype, value_range=spec.low_high).numpy()


def example(specs: tuple[InputSpec, ...], seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The export example (tracing input), each input at its example shape, seeded: floats uniform in
    their range like the seed's ``torch.rand``, in the input's own dtype."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return {s.name: _example_value(generator, s).to(device) for s in specs}


def _example_value(generator: torch.Generator, spec: InputSpec) -> torch.Tensor:
    if spec.kind not in (None, PLAIN, KV_CACHE):
        return kinds.draw(spec.kind, generator, spec.shape, spec.dtype, spec.low_high)
    return draw(generator, spec.shape, spec.dtype, value_range=spec.low_high)


def seeded_batches(specs: tuple[InputSpec, ...], seed: int, batch_size: int, samples: int) -> Iterator[dict]:
    """Whole batches covering ``samples``, drawn in turn from one generator seeded with ``seed``
    (the same for every runtime), one batch at a time (bench, predict's random)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    config = VerifyConfig()
    for _ in range(math.ceil(samples / batch_size)):
        case = Case(batch_size)
        yield {s.name: np.ascontiguousarray(sample(generator, s, case.shape(s), config)) for s in specs}


@dataclass
class InputSet:
    groups: dict[Case, dict[str, np.ndarray]]  # case -> input name -> (n_batches * batch, ...)
    origin: str  # how the set was made, for the report
    labels: dict[Case, np.ndarray] | None = None  # case -> class index per sample (--inputs with labels)
    plan: probes.Plan | None = None  # the probes chosen, and those the budget left out; None: no probes

    @property
    def samples(self) -> int:
        """Samples of the seeded (or replayed) cases; the probes' are counted apart (``probe_samples``)."""
        return sum(self.count(case) for case in self.groups if not case.probe)

    @property
    def probe_samples(self) -> int:
        return sum(self.count(case) for case in self.groups if case.probe)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({case.batch for case in self.groups if not case.probe})

    def sizes_tried(self) -> dict[str, list[int]]:
        """Every size each dynamic axis was fed at (the batch first), probes included."""
        found: dict[str, set[int]] = {BATCH: set()}
        for case in self.groups:
            found[BATCH].add(case.batch)
            for label, size in case.sizes:
                found.setdefault(label, set()).add(size)
        return {label: sorted(sizes) for label, sizes in found.items()}

    def count(self, case: Case) -> int:
        return len(next(iter(self.groups[case].values())))

    def first_batches(self, among: Iterable[Case] | None = None) -> InputSet:
        """The first whole batch of every case (of those in ``among``): what eager's determinism check runs again."""
        keep = set(self.groups if among is None else among)
        return InputSet(
            {
                c: {name: data[: c.batch] for name, data in arrays.items()}
                for c, arrays in self.groups.items()
                if c in keep
            },
            self.origin,
        )

    def batches(self, case: Case) -> Iterator[dict[str, np.ndarray]]:
        arrays = self.groups[case]
        for start in range(0, self.count(case), case.batch):
            yield {name: data[start : start + case.batch] for name, data in arrays.items()}

    def save(self, path: Path) -> None:
        single = len(next(iter(self.groups.values()))) == 1
        arrays = {}
        for case, named in self.groups.items():
            key = f"batch_{case.batch}" + "".join(f",{label}={size}" for label, size in case.sizes)
            plain = not (case.sizes or case.draw or case.probe)
            key += "" if plain else f"@{case.draw}@{case.probe}" if case.draw or case.probe else ""
            for name, data in named.items():
                arrays[key if single and plain else f"{key}:{name}"] = data
        try:
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)
        except OSError as error:
            raise InputSpecError(f"cannot write inputs to {path}: {error.strerror}") from None

    @classmethod
    def generate(
        cls,
        specs: tuple[InputSpec, ...],
        config: VerifyConfig,
        export_batch: int,
        labels: dict[str, int] | None = None,
        quantized: bool = False,
        sweep: tuple[Case, ...] = (),
        large: bool = False,
        ranges: dict[str, tuple[int, int]] | None = None,
    ) -> InputSet:
        """Seeded samples of every input for every case (see ``default_cases``).

        ``labels``: the example's size of each dynamic axis other than the batch. ``quantized``:
        a quantised runtime will be judged, so the default sample count is the larger one its
        top-1 agreement gate needs (``VerifyConfig.samples_for``). ``sweep``: more cases, one batch
        each, drawn after the others (so the others' samples are the same with or without them).
        ``large``: a model of at least LARGE_MODEL_PARAMETERS parameters or HEAVY_FLOPS_PER_SAMPLE,
        whose default is one whole batch per case, and no batch of 64 when the sweep runs a larger
        one (both stand for "a batch the export did not see"; each costs a model's worth of compute
        per sample); the origin says so.
        """
        import torch

        budget = large and config.samples is None and not quantized
        sizes = config.batch_sizes or default_batch_sizes(export_batch)
        larger = any(c.batch > DEFAULT_LARGE_BATCH for c in sweep)
        stands_in = budget and not config.batch_sizes and larger and export_batch != DEFAULT_LARGE_BATCH
        if stands_in:
            sizes = tuple(b for b in sizes if b != DEFAULT_LARGE_BATCH)
        cases = default_cases(sizes, labels or {}) + prefill_cases(specs, labels or {})
        samples = config.samples_for(quantized, large)
        batches = math.ceil(samples / sum(case.batch for case in cases))
        generator = torch.Generator().manual_seed(config.seed)
        groups: dict[Case, dict[str, np.ndarray]] = {}
        seeded = [*((c, batches) for c in cases), *((c, 1) for c in sweep if c not in cases)]
        plan = None
        if config.probes and ranges is not None:
            cost = sum(count * c.batch * _longer(c, labels or {}) for c, count in seeded)
            plan = _plan(specs, config, export_batch, labels or {}, ranges, [c for c, _ in seeded], cost)
        for case, count in [*seeded, *((c, 1) for c in _probe_cases(plan, labels or {}))]:
            drawn = replace(config, distribution=case.draw) if case.draw else config
            groups[case] = {}
            edges = None if case.value_probe is None else np.random.default_rng(_draw_seed(generator))
            for spec in specs:
                shape = case.shape(spec)
                values = sample(generator, spec, (count * case.batch, *shape[1:]), drawn)
                if edges is not None and spec.name == case.value_probe[1]:
                    value_range = (config.input_range or spec.low_high) if spec.dtype in FLOAT_DTYPES else spec.low_high
                    values = probes.edge_values(case.value_probe[0], spec, values, value_range, edges)
                groups[case][spec.name] = values
        origin = _origin(specs, config)
        if budget:
            dropped = " (the batch past 100 stands for 64)" if stands_in else ""
            origin += (
                f"; one batch per case{dropped}, the default for a model this large or this costly per sample "
                "(--samples draws more)"
            )
        return cls(groups, origin, plan=plan)

    @classmethod
    def load(cls, path: Path, specs: tuple[InputSpec, ...], batch_size: int | None) -> InputSet:
        """Replay a saved ``.npz``; or split samples into batches: one array (one input), or an
        ``.npz`` with one array per input name (the same number of samples each). Beside the
        samples (``inputs``, or one array per input name) a ``labels`` array gives each sample's
        class (``take_labels``); the labels are split into the same batches."""
        path = Path(path)
        if not path.is_file():
            raise InputSpecError(f"inputs file {path} does not exist")
        from .arrays import array_keys, read_arrays

        wanted = _wanted_keys(array_keys(path), specs, path)  # from the archive's directory: no member read yet
        arrays = read_arrays(path, wanted)  # headers checked first; no pickles, no complex numbers
        labels = take_labels(arrays, path)
        if not arrays:
            raise InputSpecError(f"{path} holds no arrays" + (" but labels" if labels is not None else ""))
        names = [s.name for s in specs]
        if all(_SAVED.match(k) for k in arrays):
            if labels is not None:
                raise InputSpecError(
                    f"{path}: labels go with samples (inputs, or one array per input), not a saved set"
                )
            groups = _saved_groups(arrays, names, path)
        elif set(names) <= set(arrays):
            groups = _split({n: arrays[n] for n in names}, specs, batch_size, path, labels)
        elif len(arrays) == 1 and len(specs) == 1:
            groups = _split({names[0]: next(iter(arrays.values()))}, specs, batch_size, path, labels)
        else:
            raise InputSpecError(
                f"{path} holds {', '.join(arrays)}: give one array per input ({', '.join(names)}), "
                "or a set saved with --save-inputs"
            )
        split_labels = {case: named.pop(LABELS) for case, named in groups.items()} if labels is not None else None
        for case, named in groups.items():
            for spec in specs:
                named[spec.name] = _checked(named[spec.name], spec, case, path)
        ordered = dict(sorted(groups.items()))
        origin = f"file {path}" + (" (labelled)" if labels is not None else "")
        return cls(ordered, origin, None if split_labels is None else {c: split_labels[c] for c in ordered})


def _wanted_keys(keys: list[str] | None, specs: tuple[InputSpec, ...], path: Path) -> list[str] | None:
    """The members of an .npz to read, decided from its keys alone (None: an .npy, or every member);
    InputSpecError for keys no layout takes, before any member is read."""
    if keys is None:
        return None
    names = [s.name for s in specs]
    samples = [k for k in keys if k != LABELS]
    if samples and all(_SAVED.match(k) for k in samples):
        return keys
    if set(names) <= set(samples):
        return [*names, *([LABELS] if LABELS in keys else [])]  # the inputs' arrays only: the rest stays unread
    if len(samples) <= 1 and len(specs) == 1:
        return keys
    raise InputSpecError(
        f"{path} holds {', '.join(keys)}: give one array per input ({', '.join(names)}), "
        "or a set saved with --save-inputs"
    )


def _longer(case: Case, labels: dict[str, int]) -> float:
    """How much longer than the example a case's other dynamic axes make each sample (1: as long)."""
    return math.prod(size / labels[label] for label, size in case.sizes if labels.get(label))


def _plan(specs, config: VerifyConfig, export_batch: int, labels: dict[str, int], ranges, seeded, cost) -> probes.Plan:
    """The probes for this set: see probes.plan. Sizes the seeded cases already try are not probed again."""
    covered: dict[str, set[int]] = {BATCH: {c.batch for c in seeded}}
    for label in labels:
        covered[label] = {dict(c.sizes).get(label, labels[label]) for c in seeded}
    examples = {BATCH: export_batch, **labels}
    full = {label: ranges.get(label, (1, max(example, 1))) for label, example in examples.items()}
    missing = dict(config.missing or ())
    return probes.plan(specs, examples, full, covered, missing, cost, config.seed)


def _probe_cases(plan: probes.Plan | None, labels: dict[str, int]) -> list[Case]:
    """The plan's probes as cases: each size on its own axis (the others at the example's), then the values."""
    if plan is None:
        return []
    example = tuple(sorted(labels.items()))
    cases = []
    for label, size, batch in plan.sizes:
        sizes = example if label == BATCH else tuple(sorted({**labels, label: size}.items()))
        cases.append(Case(batch, sizes, probe="size"))
    cases += [Case(probes.PROBE_BATCH, example, probe=f"{kind}.{name}") for kind, name in plan.values]
    return cases


def _draw_seed(generator: torch.Generator) -> int:
    """A seed for numpy's generator, drawn from ``generator``: the edge values follow the set's seed."""
    import torch

    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _origin(specs: tuple[InputSpec, ...], config: VerifyConfig) -> str:
    """How the set was made: one float input keeps the short form the seed's report has always shown."""
    if len(specs) == 1 and specs[0].dtype in FLOAT_DTYPES:
        low, high = config.input_range or specs[0].low_high
        return f"{config.distribution} in [{low:g}, {high:g}), seed {config.seed}"
    described = "; ".join(spec.describe() for spec in specs)
    return f"{described}; seed {config.seed}" + (", floats normal" if config.distribution == "normal" else "")


def _saved_groups(arrays: dict[str, np.ndarray], names: list[str], path: Path) -> dict[Case, dict]:
    groups: dict[Case, dict[str, np.ndarray]] = {}
    for key, data in arrays.items():
        match = _SAVED.match(key)
        if int(match[1]) < 1:
            raise InputSpecError(f"{path} holds an array named {key}: saved batches are batch_<B> with B >= 1")
        sizes = tuple(sorted((p.split("=")[0], int(p.split("=")[1])) for p in match[2].split(",") if p))
        name = match[5] or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise InputSpecError(f"{path}: array {key!r} names no input of this model ({', '.join(names)})")
        groups.setdefault(Case(int(match[1]), sizes, match[3] or "", match[4] or ""), {})[name] = data
    for case, named in groups.items():
        missing = [n for n in names if n not in named]
        if missing:
            raise InputSpecError(f"{path}: batch {case.label} lacks input(s) {', '.join(missing)}")
    return groups


def _split(
    arrays: dict[str, np.ndarray], specs, batch_size: int | None, path: Path, labels: np.ndarray | None = None
) -> dict[Case, dict]:
    """Samples per input, split into whole batches of ``batch_size`` (default: up to 64) and a remainder;
    ``labels`` (one per sample) split alike, under the key ``labels`` of each case."""
    counts = set()
    for spec in specs:
        data = arrays[spec.name]
        if data.ndim == len(spec.shape) - 1:  # a single sample
            arrays[spec.name] = data = data[None]
        if data.ndim == 0 or len(data) == 0:
            raise InputSpecError(f"{path} holds no samples for {spec.name!r}")
        counts.add(len(data))
    if len(counts) != 1:
        raise InputSpecError(f"{path}: every input needs the same number of samples, got {sorted(counts)}")
    total = counts.pop()
    if labels is not None:
        check_count(labels, total, path)
        arrays = {**arrays, LABELS: labels}
    b = batch_size or min(total, DEFAULT_LARGE_BATCH)
    full = total - total % b
    groups: dict[Case, dict[str, np.ndarray]] = {}
    if full:
        groups[Case(b)] = {n: a[:full] for n, a in arrays.items()}
    if total % b:
        groups[Case(total % b)] = {n: a[full:] for n, a in arrays.items()}
    return groups


def _checked(data: np.ndarray, spec: InputSpec, case: Case, path: Path) -> np.ndarray:
    """``data`` as the input's carrier dtype, once its shape and values fit ``spec``."""
    from ..runners.base import carrier

    fixed = [(i, d) for i, d in enumerate(spec.shape) if i not in spec.axes]
    if data.ndim != len(spec.shape) or any(data.shape[i] != d for i, d in fixed):
        want = ", ".join(spec.axes.get(i, str(d)) for i, d in enumerate(spec.shape))
        raise InputSpecError(f"{path}: input {spec.name!r} must have shape ({want}), got {tuple(data.shape)}")
    if len(data) == 0 or len(data) % case.batch:
        raise InputSpecError(f"{path}: batch {case.label} holds {len(data)} samples, not a multiple of {case.batch}")
    if data.dtype == np.bool_ and spec.dtype == "bool":
        return np.ascontiguousarray(data)
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputSpecError(f"{path}: input {spec.name!r} must hold real numbers, got {data.dtype}")
    if spec.dtype in INT_DTYPES and not np.issubdtype(data.dtype, np.integer):
        raise InputSpecError(f"{path}: input {spec.name!r} is {spec.dtype}: give integers, not {data.dtype}")
    return np.ascontiguousarray(data.astype(carrier(spec.dtype), copy=False))


def take_labels(arrays: dict[str, np.ndarray], path: Path) -> np.ndarray | None:
    """Remove and return the ``labels`` array of ``arrays`` (None when there is none), once it is
    a 1-D array of integers; InputSpecError otherwise."""
    labels = arrays.pop(LABELS, None)
    if labels is None:
        return None
    if labels.ndim != 1:
        raise InputSpecError(f"{path}: labels must be one class index per sample (1-D), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputSpecError(f"{path}: labels must be integer class indices, not {labels.dtype}")
    return labels.astype(np.int64, copy=False)


def check_count(labels: np.ndarray, samples: int, path: Path) -> None:
    if len(labels) != samples:
        raise InputSpecError(f"{path}: {len(labels)} labels for {samples} samples: give one label per sample")
