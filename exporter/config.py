"""Spec dataclasses passed to the API instead of long keyword lists.

Nothing here imports torch: the CLI builds these before deciding whether torch is needed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .formats import DEFAULTS as DEFAULT_FORMATS
from .formats import NAMES as FORMATS
from .formats import RUNTIMES
from .interface import InputSpec, canonical_dtype, missing_values

ONNX_EXPORTERS = ("dynamo", "legacy")
PRECISIONS = ("float32", "float16", "bfloat16")  # --dtype: the precision a model is exported in
DISTRIBUTIONS = ("uniform", "normal")
NAN_POLICIES = ("fail", "match")

# Default tolerances per dtype. An element passes when
#     |actual - expected| <= atol + rtol * |expected|
# float32: runtimes sum the 784- and 512-term dot products in different orders
# (MKL, MLAS, cuBLAS), which moves the last few bits: measured max abs diff on the
# seed network is about 1e-6 against logits of size ~0.1, so rtol 1e-4 leaves
# room for larger models while a changed weight (diffs >= 1e-3) still fails.
# atol covers logits near zero, where a relative bound is meaningless.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1e-5, 1e-4),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
}
EXACT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "bool")  # compared exactly, whatever --atol says
# Gates on a float output as a whole, so that an output's own scale cannot fool the element rule
# (logits near 1e-5 pass any atol of 1e-5): (max abs diff / the reference's RMS, min cosine).
# Measured on sound float32 exports (mlp, cnn, the models of models/examples.py): the ratio is
# 1e-7 to 3e-6 and cosine 1 - 1e-12; broken ones (a frozen .item(), a branch taken wrongly)
# reach 0.1 to 2 and cosines of 0.9 down to -0.7. 1e-3 and 0.9999 leave 300x room on the one
# side and 100x on the other; half precisions scale with their epsilon.
DEFAULT_GATES: dict[str, tuple[float, float]] = {
    "float64": (1e-6, 0.999999),
    "float32": (1e-3, 0.9999),
    "float16": (1e-2, 0.999),
    "bfloat16": (5e-2, 0.99),
}
# int8 weights (onnx-int8) move logits by the quantisation error: measured max abs diff
# about 2.5e-3 on the seed network and the cnn (logits of size ~0.2). atol 0.01 leaves 4x
# room; rtol 0.05 scales it for trained models with larger logits. Pass/fail also needs
# top-1 agreement of at least VerifyConfig.min_agreement of the samples, where classes
# whose reference logit lies within that bound of the maximum count as tied.
QUANTIZED_TOLERANCE = (1e-2, 5e-2)
DEFAULT_MIN_AGREEMENT = 0.99
# Random samples verify feeds by default. A float32 check needs few: one changed weight moves
# most logits. A top-1 agreement gate needs many: on 390 samples one flip is 0.26 points, and
# int8 mlp, which keeps 99.4 % on large samples, read from 97.95 % to 100 % over 12 input
# seeds, so the gate would judge the draw, not the artifact. With an int8 artifact in the folder the default is 8,192,
# where the 95 % interval is about +-0.2 points; verify still takes under 3 s on the seed network.
DEFAULT_SAMPLES = 384
QUANTIZED_SAMPLES = 8192
# From this many parameters (200 MB in float32) the default is one whole batch per case (every
# batch size and every dynamic axis size still runs): a float32 check needs few samples, and at
# 281M parameters each batch of 64 costs about a second per runtime on 2 cores, so 384 samples
# made verification take longer than the export itself. --samples still sets any count.
LARGE_MODEL_PARAMETERS = 50_000_000
# ... and from this many FLOPs per sample (Linear and Conv2d layers, recorded at export): a
# resnet18 at 224x224 (3.6 GFLOPs) would otherwise spend minutes of verification on 384 samples
# in three runtimes on 2 cores, where one batch per case (193 samples) judges it as surely.
HEAVY_FLOPS_PER_SAMPLE = 1_000_000_000
BENCH_BATCH_SIZES = (1, 64, 1024)  # bench: one request; a typical serving batch; a throughput-bound batch


@dataclass(frozen=True)
class Tolerance:
    """Per-output tolerance: an element passes when |a - e| <= atol + rtol * |e|."""

    atol: float
    rtol: float
    min_agreement: float | None = None  # set for quantised runtimes: top-1 agreement needed to pass
    scale: float | None = None  # float outputs: max |a - e| must be <= scale x the reference's RMS
    min_cosine: float | None = None  # float outputs: cosine similarity with the reference at least this
    top1: bool = False  # float outputs: every top-1 class change must be a near tie (within atol + rtol)
    elementwise: bool = True  # False: element differences are measured and reported, not judged (a quantised
    # runtime judged by its accuracy drop on labelled data, see accuracy.py)

    def __post_init__(self) -> None:
        # NaN compares False with everything, so a NaN tolerance would pass every element: fail closed.
        _check_number("atol", self.atol, 0.0, math.inf)
        _check_number("rtol", self.rtol, 0.0, math.inf)
        if self.min_agreement is not None:
            _check_number("min-agreement", self.min_agreement, 0.0, 1.0)

    @classmethod
    def for_dtype(cls, dtype: str) -> Tolerance:
        """The documented default for ``dtype`` (float32's for unknown dtypes)."""
        atol, rtol = DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES["float32"])
        scale, min_cosine = DEFAULT_GATES.get(dtype, DEFAULT_GATES["float32"])
        return cls(atol=atol, rtol=rtol, scale=scale, min_cosine=min_cosine, top1=True)


@dataclass(frozen=True)
class VerifyConfig:
    """How verification feeds and judges the runtimes. Every field has a documented default."""

    seed: int = 0  # seeds the random inputs (not the weights: those come from the manifest)
    samples: int | None = None  # total samples, spread over the batch sizes; None: see samples_for
    batch_sizes: tuple[int, ...] = ()  # empty: batch 1, the export batch and 64
    distribution: str = "uniform"  # "uniform" like torch.rand, or "normal"
    input_range: tuple[float, float] | None = None  # float inputs: [low, high); normal: mean +- 2 std;
    # None: each input's own range (recorded at export), else [0, 1)
    atol: float | None = None  # None: the dtype default (DEFAULT_TOLERANCES)
    rtol: float | None = None
    nan_policy: str | None = None  # "match": NaN/Inf at the same positions on both sides pass; "fail": they
    # fail; None: as recorded at export (judging.py), else "fail"
    missing: tuple[tuple[str, tuple[str, ...]], ...] | None = None  # inputs that may hold missing values:
    # (input, ("nan", "inf")), probed with them (--missing x:nan,inf); None: as recorded at export, else none
    probes: bool = True  # the size and edge-value probes beside the seeded draws (inputs.probe_cases)
    allow_unused: bool = False  # parameters forward never touches do not fail verification
    min_agreement: float = DEFAULT_MIN_AGREEMENT  # quantised runtimes: top-1 agreement needed
    max_accuracy_drop: float | None = None  # with labelled inputs: quantised runtimes pass when their accuracy
    # is at most this share (0.005: half a point) below eager's, instead of by top-1 agreement; None: agreement
    inputs_path: Path | None = None  # replay inputs from an .npz/.npy instead of generating them
    save_inputs: Path | None = None  # keep the inputs used, as .npz
    save_outputs: Path | None = None  # keep every runtime's outputs, as .npz
    device: str | None = None  # None: the device recorded in the manifest
    source: Path | None = None  # model file for artifacts exported from `file.py:Class`
    weights: Path | None = None  # original weights file, checked against the manifest's sha256
    trust: bool = False  # load TorchScript and pt2 (code) even when the folder's signature does not check
    accept_tracer_warnings: bool = False  # pass a legacy ONNX export although its trace warned it froze a value
    localize: bool | None = None  # find the first module that differs: None on failure, True always, False never

    def __post_init__(self) -> None:
        from .errors import InputSpecError, UsageError

        check_seed(self.seed)
        for name in ("atol", "rtol"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), 0.0, math.inf)
        _check_number("min-agreement", self.min_agreement, 0.0, 1.0)
        if self.max_accuracy_drop is not None:
            _check_number("max-accuracy-drop", self.max_accuracy_drop, 0.0, 1.0)
            if self.inputs_path is None:
                raise UsageError("--max-accuracy-drop needs labelled data: --inputs FILE.npz with inputs and labels")
        if self.samples is not None and not 1 <= self.samples <= MAX_SAMPLES:
            raise InputSpecError(f"--samples must be from 1 to {MAX_SAMPLES:,}, not {self.samples}")
        if any(not 1 <= b <= MAX_SAMPLES for b in self.batch_sizes):
            raise InputSpecError(f"--batch-size must be from 1 to {MAX_SAMPLES:,}")
        if self.input_range is not None:
            low, high = self.input_range
            if not (math.isfinite(low) and math.isfinite(high) and high > low):
                raise InputSpecError(f"--input-range {low},{high}: give finite LOW < HIGH")
        if self.distribution not in DISTRIBUTIONS:
            raise UsageError(f"--distribution must be one of {', '.join(DISTRIBUTIONS)}")
        if self.nan_policy is not None and self.nan_policy not in NAN_POLICIES:
            raise UsageError(f"--nan-policy must be one of {', '.join(NAN_POLICIES)}")
        if self.missing is not None:
            object.__setattr__(self, "missing", missing_values(self.missing))
        check_device(self.device)
        from .paths import check_writable_file

        for option, path in (("--save-inputs", self.save_inputs), ("--save-outputs", self.save_outputs)):
            if path is not None:
                check_writable_file(path, option)

    def samples_for(self, quantized: bool, large: bool = False) -> int:
        """``samples`` if given, else the default: QUANTIZED_SAMPLES when a quantised runtime is judged,
        1 (one whole batch per case) for a ``large`` model (LARGE_MODEL_PARAMETERS), else DEFAULT_SAMPLES."""
        if self.samples is not None:
            return self.samples
        if quantized:
            return QUANTIZED_SAMPLES
        return 1 if large else DEFAULT_SAMPLES

    def relaxed(self, dtype: str = "float32") -> list[str]:
        """Each rule set looser than the default by hand, as the verdict states it: ``--atol 0.227 (22,700x
        the float32 default 1e-05; the whole-output gates off)``. ``dtype``: the outputs' float dtype."""
        default = Tolerance.for_dtype(dtype)
        rules = []
        for name, given, usual in (("atol", self.atol, default.atol), ("rtol", self.rtol, default.rtol)):
            if given is not None and given > usual:
                ratio = given / usual
                times = f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"
                rules.append(f"--{name} {given:g} ({times} the {dtype} default {usual:g})")
        if rules:  # a hand-set tolerance replaces the whole-output gates (see tolerance())
            rules[-1] = rules[-1][:-1] + "; the whole-output gates off)"
        if self.min_agreement < DEFAULT_MIN_AGREEMENT:
            rules.append(f"--min-agreement {self.min_agreement:g} (the default is {DEFAULT_MIN_AGREEMENT:g})")
        rules += [flag for flag, on in (
            ("--nan-policy match", self.nan_policy == "match"),
            ("--allow-unused", self.allow_unused),
            ("--accept-tracer-warnings", self.accept_tracer_warnings),
        ) if on]  # fmt: skip
        return rules

    def tolerance(self, dtype: str, quantized: bool = False) -> Tolerance:
        """The tolerance for an output of ``dtype``, after overrides; ``quantized``: the int8 policy."""
        if dtype in EXACT_DTYPES:
            return Tolerance(atol=0.0, rtol=0.0)  # ids, indices, masks: one off is wrong
        if quantized:
            atol, rtol = QUANTIZED_TOLERANCE
            return Tolerance(atol=atol, rtol=rtol, min_agreement=self.min_agreement)
        default = Tolerance.for_dtype(dtype)
        if self.atol is None and self.rtol is None:
            return default
        # Tolerances given by hand replace the whole-output gates too: the user has chosen the bound.
        return Tolerance(
            atol=default.atol if self.atol is None else self.atol,
            rtol=default.rtol if self.rtol is None else self.rtol,
            top1=True,
        )


@dataclass(frozen=True)
class ExportConfig:
    """What `export` writes and where."""

    out: Path = Path("artifacts")  # artifacts go to OUT/NAME/
    name: str | None = None  # None: the registry name, or the class name
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0  # seeds the weight initialisation and the example input
    formats: tuple[str, ...] | None = None  # None: the defaults, each left out (with its cause) when it cannot be
    # built; a list given: every one must build, or nothing is written
    opset: int | None = None  # None: the exporter's default opset
    onnx_exporter: str = "dynamo"  # "dynamo" (torch.export based, torch's default) or "legacy"
    external_data: bool = False  # ONNX weights in model.onnx.data (automatic past 2 GB)
    input_shape: tuple[int, ...] | None = None  # shorthand for one float input named "input" (models outside
    # the registry need it or ``inputs``)
    inputs: tuple[InputSpec, ...] = ()  # every input of forward: name, example shape, dtype, range (--input)
    dynamic: tuple[tuple[str, int, str], ...] = ()  # more dynamic axes: (input, axis, label) (--dynamic), or
    # {"ids": {1: "seq"}} as export(dynamic=...) takes them; (input, axis, label, (min, max)) or "seq:1..512" add
    # the sizes it is served at, which land in dynamic_ranges
    dynamic_ranges: tuple[tuple[str, int, int], ...] = ()  # (label, min, max) per dynamic axis ("batch" too),
    # recorded in the manifest; verification tries sizes up to max. None given: 1 to well past twice the example
    output_names: tuple[str, ...] | None = None  # None: from what forward returns (--output-names)
    dtype: str | None = None  # export the model in this precision (float16, bfloat16); None: as it is
    weights: Path | None = None  # a state_dict (.pt/.pth) or .safetensors file
    verify: bool = True  # run verification after writing, and record it in the manifest
    verify_config: VerifyConfig = field(default_factory=VerifyConfig)
    input_kinds: tuple[tuple[str, str], ...] = ()  # (input, kind) (--input-kind): how it is drawn (interface.KINDS);
    # conventional names (attention_mask, input_ids...) have theirs already
    strict_formats: bool = True  # set False when ``formats`` is None (the defaults): see ``formats``
    task: str | None = None  # a transformers folder: the model class's task (``causal-lm``...); None: config.json's

    def example_inputs(self) -> tuple[InputSpec, ...] | None:
        """The inputs given: ``inputs``, or ``input_shape`` as one float input named ``input``; None: none."""
        if self.inputs:
            return tuple(self.inputs)
        return None if self.input_shape is None else (InputSpec("input", tuple(self.input_shape)),)

    def __post_init__(self) -> None:
        from .errors import UsageError

        check_seed(self.seed)
        if self.formats is None:
            object.__setattr__(self, "formats", DEFAULT_FORMATS)
            object.__setattr__(self, "strict_formats", False)
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise UsageError(f"unknown format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
        if self.onnx_exporter not in ONNX_EXPORTERS:
            raise UsageError(f"--onnx-exporter must be one of {', '.join(ONNX_EXPORTERS)}")
        if self.dtype is not None:
            object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
            if self.dtype not in PRECISIONS:
                raise UsageError(
                    f"--dtype must be one of {', '.join(PRECISIONS)} (or half, fp16, bf16, float), not {self.dtype!r}"
                )
        dynamic, ranges = dynamic_axes(self.dynamic)
        object.__setattr__(self, "dynamic", dynamic)
        _, given = dynamic_axes([("", 1, label, (low, high)) for label, low, high in self.dynamic_ranges])
        merged = {label: (low, high) for label, low, high in (*given, *ranges)}
        object.__setattr__(self, "dynamic_ranges", tuple((label, *merged[label]) for label in sorted(merged)))
        if self.input_shape is not None and self.inputs:
            raise UsageError("give --input-shape (one float input) or --input (per input), not both")
        check_device(self.device)
        from .paths import check_creatable_folder

        check_creatable_folder(Path(self.out), "--out")


@dataclass(frozen=True)
class BenchConfig:
    """What `bench` times and how. Every field has a documented default."""

    batch_sizes: tuple[int, ...] = BENCH_BATCH_SIZES
    threads: int | None = None  # None: the cores this process may run on; sets torch and ORT intra-op threads
    warmup: int = 5  # untimed calls per runtime and batch size (first-call allocation, JIT profiling runs) ...
    warmup_s: float = 0.1  # ... and at least this long: the previous runtime's threads take a moment to go idle
    repeats: int = 5  # at least this many timed calls per runtime and batch size ...
    min_time_s: float = 0.5  # ... and at least this long, so batch 1 gets thousands of calls for its p99
    seed: int = 0  # seeds the benchmark's input (uniform in [0, 1), like verify's)
    accuracy_samples: int = 1024  # samples compared with eager per runtime and batch size (whole batches)
    runtimes: tuple[str, ...] = ()  # runtime or format names to time (eager always runs); empty: all
    peak_runs: int = 5  # timed matmuls per peak measurement (before and after the runtimes); medians kept
    source: str | Path | None = None  # the code the artifact came from (file.py or pkg.mod:Class), as --source
    trust: bool = False  # load TorchScript and pt2 (code) even when the folder's signature does not check
    device: str = "cpu"  # cpu | cuda | cuda:N | auto: where eager, TorchScript and pt2 run (ONNX Runtime: its provider)

    def __post_init__(self) -> None:
        """UsageError for values that cannot be benchmarked (a batch size < 1, say)."""
        from .errors import UsageError

        check_seed(self.seed)
        check_device(self.device)
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise UsageError(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if not 1 <= self.accuracy_samples <= MAX_SAMPLES:
            raise UsageError(f"--accuracy-samples must be from 1 to {MAX_SAMPLES:,}, got {self.accuracy_samples}")
        if min(self.warmup, self.warmup_s, self.min_time_s) < 0 or min(self.repeats, self.peak_runs) < 1:
            raise UsageError("warm-up calls and times must be >= 0, repeats and peak runs >= 1")
        unknown = [r for r in self.runtimes if r not in (*RUNTIMES, *FORMATS)]
        if unknown:
            from .formats import spellings

            raise UsageError(f"there is no runtime {', '.join(map(repr, unknown))}: choose from eager, {spellings()}")


@dataclass(frozen=True)
class TritonConfig:
    """What `triton` writes. Raises UsageError for a max_batch_size ModelConfig cannot hold."""

    max_batch_size: int = 64  # Triton forms batches up to this size (64: the largest batch verify runs by default);
    # 0 turns Triton's batching off, and dims then keep the batch dimension
    dynamic_batching: bool = True  # let Triton merge requests into batches (only when max_batch_size > 0)
    force: bool = False  # replace a non-empty model folder
    allow_unverified: bool = False  # write it even when no passed verification of this manifest is recorded
    allow_untrusted_code: bool = False  # write a TorchScript file of an unsigned folder, with a warning, not refuse

    def __post_init__(self) -> None:
        from .errors import UsageError

        size, most = self.max_batch_size, 2**31 - 1  # an int32 in ModelConfig
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= most:
            raise UsageError(f"--max-batch-size must be an integer from 0 (no batching) to {most}, not {size!r}")


def dynamic_axes(given) -> tuple[tuple[tuple[str, int, str], ...], tuple[tuple[str, int, int], ...]]:
    """``dynamic`` as (input, axis, label) triples, and the size ranges given with them as (label, min, max):
    from triples or (input, axis, label, (min, max)), or from the API's ``{"ids": {1: "seq"}}``, where a label
    may carry its range (``"seq:1..512"`` or ``("seq", 1, 512)``)."""
    from .errors import InputSpecError, UsageError
    from .interface import parse_size_range

    if isinstance(given, dict):
        try:
            given = [(name, axis, label) for name, axes in given.items() for axis, label in dict(axes).items()]
        except (TypeError, ValueError, AttributeError):
            raise UsageError(
                f"dynamic must map each input to {{axis: label}}, like {{'ids': {{1: 'seq'}}}}, not {given!r}"
            ) from None
        given = [(n, a, *_label_range(label)) for n, a, label in given]
    triples, ranges = [], {}
    for item in given:
        if isinstance(item, (tuple, list)) and len(item) == 4 and item[3] is None:
            item = item[:3]
        if not (
            isinstance(item, (tuple, list)) and len(item) in (3, 4) and isinstance(item[0], str)
            and isinstance(item[1], int) and not isinstance(item[1], bool) and isinstance(item[2], str)
        ):  # fmt: skip
            raise UsageError(
                f"dynamic entry {item!r} is not (input, axis, label): give {{'ids': {{1: 'seq'}}}}, "
                "[('ids', 1, 'seq')] or, with the sizes it is served at, {'ids': {1: 'seq:1..512'}}"
            )
        name, axis, label = item[:3]
        if len(item) == 4:
            try:
                low, high = (int(v) for v in item[3])
            except (TypeError, ValueError):
                raise UsageError(f"dynamic entry {item!r}: the size range must be (min, max)") from None
            low, high = parse_size_range(f"{low}..{high}", f"dynamic axis {label!r}")
            if ranges.get(label, (low, high)) != (low, high):
                raise InputSpecError(f"dynamic axis {label!r} is given two ranges: {ranges[label]} and {(low, high)}")
            ranges[label] = (low, high)
        if axis != 0:
            triples.append((name, axis, label))
    return tuple(triples), tuple((label, low, high) for label, (low, high) in sorted(ranges.items()))


def _label_range(label) -> tuple:
    """A label of the API's dict form as (label,) or (label, (min, max)): ``"seq"``, ``"seq:1..512"`` or
    ``("seq", 1, 512)``."""
    from .interface import parse_size_range

    if isinstance(label, (tuple, list)) and len(label) == 3:
        return label[0], (label[1], label[2])
    if isinstance(label, str) and ":" in label:
        text, sizes = label.split(":", 1)
        return text, parse_size_range(sizes, f"dynamic axis {text!r}")
    return (label,)


MAX_SAMPLES = 1_000_000  # a bound that keeps a typo from allocating the machine away
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer


def check_seed(seed: int) -> None:
    """Refuse a seed torch cannot take (negative, or past 2**63-1): UsageError, exit 2."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        from .errors import UsageError

        raise UsageError(f"--seed must be an integer from 0 to 2**63-1, not {seed!r}")


def _check_number(name: str, value: float, low: float, high: float) -> None:
    from .errors import UsageError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        bounds = f"from {low:g} to {high:g}" if math.isfinite(high) else f"a finite number >= {low:g}"
        raise UsageError(f"--{name} must be {bounds}, not {value!r}")
    if math.isinf(value):
        raise UsageError(f"--{name} must be finite, not {value!r}")


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,4})?)$")


def check_device(text: str | None) -> None:
    """Refuse a device that is not auto, cpu, cuda or cuda:N (whether it exists is the reference's question)."""
    if text is not None and not (isinstance(text, str) and _DEVICE.fullmatch(text)):  # fullmatch: no trailing \n
        from .errors import DeviceError

        raise DeviceError(f"{text!r} is not auto, cpu, cuda or cuda:N")


def parse_range(text: str) -> tuple[float, float]:
    """Parse "LOW,HIGH" into two finite floats with LOW < HIGH; raises InputSpecError otherwise."""
    from .errors import InputSpecError

    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise InputSpecError(f"{text!r} is not LOW,HIGH (for example 0,1)") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise InputSpecError(f"{text!r}: give finite LOW < HIGH")
    return low, high
