"""A model's interface: its named inputs (shape, dtype, value range, dynamic axes) and named outputs.

Plain data, no torch: the CLI parses ``--input`` and ``--dynamic`` into these before deciding
whether torch is needed, and the manifest records them. Outputs are whatever forward returns
(a tensor, a tuple or list, a dict, nested), flattened in order with stable dotted names by
``flatten``; every runtime's outputs are flattened the same way and named by position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import InputSpecError

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, "bool")
# Other spellings users write, as torch spells them (torch.long is int64, torch.int int32, torch.half
# float16) and as mixed-precision tools do (fp16, bf16): each means one of DTYPES.
DTYPE_ALIASES = {
    "float": "float32", "fp32": "float32", "half": "float16", "fp16": "float16", "bf16": "bfloat16",
    "double": "float64", "fp64": "float64", "long": "int64", "int": "int32", "short": "int16",
    "char": "int8", "byte": "uint8",
}  # fmt: skip


def canonical_dtype(text: str) -> str:
    """``text`` as one of DTYPES (``long`` -> int64, ``torch.half`` -> float16); unknown spellings unchanged."""
    name = str(text).strip().removeprefix("torch.")
    return DTYPE_ALIASES.get(name, name)


BATCH = "batch"  # the label of axis 0, dynamic for every input by default
MAX_SAMPLE_ELEMENTS = 1 << 26  # elements in one input sample: far above any image model, far below memory
MAX_EXPORT_BATCH = 1 << 16  # the export example's batch: verify feeds batches of this size
# An input's name: an identifier, or dotted as Optimum names a cache (``past_key_values.0.key``), which a forward
# taking its inputs by position (eager/kv_cache.py) receives; forward's keyword parameters are identifiers.
_INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
# An axis label: an identifier, or a sum of them (``past_sequence+sequence``: the attention mask of a decode step
# spans the past and the new tokens), whose size is always the sum of its parts' sizes, never drawn on its own.
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\+[A-Za-z_][A-Za-z0-9_]*)*$")
_RANGE = re.compile(r"^(-?[0-9.eE+-]+)\.\.(-?[0-9.eE+-]+)$")


# --- input kinds: what an input means, so it is drawn as users send it (verification/kinds.py draws them) ----
# An attention mask drawn uniform 0/1 has rows with nothing attended (softmax over nothing, where runtimes
# legitimately differ: a false alarm), and a range of 1..1 tests no masking at all. Kinds are inferred from
# transformers' conventional names (KIND_OF_NAME) or declared (--input-kind NAME:KIND, InputSpec(kind=...)).

PADDING_MASK = "padding-mask"  # ones then zeros per row, at least one one
LEFT_PADDING_MASK = "left-padding-mask"  # zeros then ones per row, at least one one
TOKEN_IDS = "token-ids"  # uniform in the vocabulary: [0, num_embeddings - 1] of the Embedding they feed
TOKEN_TYPE_IDS = "token-type-ids"  # uniform in the token type table
POSITION_IDS = "position-ids"  # 0, 1, 2 ... per row, from a random start that keeps them in the table
KV_CACHE = "kv-cache"  # a past key or value of a decoder: uniform, and its past axis also tried empty (prefill)
PLAIN = "plain"  # as the dtype and range say (uniform)

KINDS: dict[str, str] = {  # kind -> how it is drawn, for the report and --help
    PADDING_MASK: "padding masks: per row ones then zeros, 1 to all positions attended, lengths varied",
    LEFT_PADDING_MASK: "left-padding masks: per row zeros then ones, 1 to all positions attended, lengths varied",
    TOKEN_IDS: "token ids uniform in [{low:g}, {high:g}]",
    TOKEN_TYPE_IDS: "token type ids uniform in [{low:g}, {high:g}]",
    POSITION_IDS: "position ids counting up per row, within [{low:g}, {high:g}]",
    KV_CACHE: "past keys or values uniform in [{low:g}, {high:g}), the past also empty (prefill)",
    PLAIN: "",
}
MASKS = (PADDING_MASK, LEFT_PADDING_MASK)
INDICES = (TOKEN_IDS, TOKEN_TYPE_IDS, POSITION_IDS)  # integers whose range is the table they index

KIND_OF_NAME: dict[str, str] = {  # transformers' conventional names
    "attention_mask": PADDING_MASK,
    "decoder_attention_mask": PADDING_MASK,
    "input_ids": TOKEN_IDS,
    "decoder_input_ids": TOKEN_IDS,
    "token_type_ids": TOKEN_TYPE_IDS,
    "position_ids": POSITION_IDS,
}


def infer_kind(name: str) -> str | None:
    """The kind a conventional input name implies; None for any other name."""
    return KIND_OF_NAME.get(name)


def parameter_name(name: str) -> str:
    """The forward parameter an input name reaches: the name itself, its dots as underscores when dotted."""
    return name.replace(".", "_")


def label_parts(label: str) -> tuple[str, ...]:
    """The labels a sum label adds up (``past_sequence+sequence`` -> both); a plain label itself."""
    return tuple(label.split("+"))


def label_size(label: str, sizes: dict[str, int], default: int) -> int:
    """The size of ``label`` among ``sizes``: a sum label's is the sum of its parts' (``default`` when one is
    missing from ``sizes``, as a plain label's is)."""
    parts = label_parts(label)
    if len(parts) == 1:
        return sizes.get(label, default)
    return sum(sizes[p] for p in parts) if all(p in sizes for p in parts) else default


def describe_kind(kind: str, low: float, high: float) -> str:
    """How an input of ``kind`` is drawn, in words (the report's inputs line)."""
    return KINDS[kind].format(low=low, high=high)


@dataclass(frozen=True)
class InputSpec:
    """One input of forward: its example's shape (batch first), dtype, value range and dynamic axes.

    ``value_range`` is [low, high) for floats (default [0, 1), like ``torch.rand``) and
    [low, high] for integers (no default: ids of an Embedding need the vocabulary's size,
    so an integer input without a range is an error, never all zeros). bool draws False/True.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] | None = None
    dynamic: tuple[tuple[int, str], ...] = ((0, BATCH),)  # (axis, label); axis 0 is the batch
    kind: str | None = None  # what it means (exporter.kinds): drawn as users send it; None: plain

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
        if self.kind is not None and self.kind not in KINDS:
            raise InputSpecError(f"input {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind in INDICES and self.dtype not in INT_DTYPES:
            raise InputSpecError(f"input {self.name!r}: {self.kind} are integers, not {self.dtype}")
        if not _INPUT_NAME.match(self.name):
            raise InputSpecError(
                f"input name {self.name!r} must be an identifier (a forward parameter's name), or dotted identifiers "
                "as Optimum names a cache (past_key_values.0.key)"
            )
        if len(self.shape) < 1 or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in self.shape):
            raise InputSpecError(f"input {self.name!r}: shape {list(self.shape)} needs positive sizes, batch first")
        if self.shape[0] > MAX_EXPORT_BATCH:
            raise InputSpecError(
                f"input {self.name!r}: an example batch of {self.shape[0]:,} is more than this tool exports"
            )
        if math.prod(self.shape[1:]) > MAX_SAMPLE_ELEMENTS:
            raise InputSpecError(
                f"input {self.name!r}: one sample of shape {list(self.shape[1:])} has more than "
                f"{MAX_SAMPLE_ELEMENTS:,} elements, more than this tool verifies"
            )
        if self.dtype not in DTYPES:
            raise InputSpecError(
                f"input {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)} "
                f"(or {', '.join(DTYPE_ALIASES)})"
            )
        if self.value_range is not None:
            low, high = self.value_range
            if not (math.isfinite(low) and math.isfinite(high) and high >= low):
                raise InputSpecError(f"input {self.name!r}: range {low}..{high} must be finite with LOW <= HIGH")
            if self.dtype in FLOAT_DTYPES and not high > low:
                raise InputSpecError(f"input {self.name!r}: a float range needs LOW < HIGH")
        elif self.dtype in INT_DTYPES and self.kind not in (*MASKS, *INDICES):
            raise InputSpecError(
                f"integer input {self.name!r} needs the range its values come from (token ids: the vocabulary): "
                f"--input {self.name}:{','.join(map(str, self.shape))}:{self.dtype}:0..999"
            )
        for axis, label in self.dynamic:
            if not 0 <= axis < len(self.shape):
                raise InputSpecError(f"input {self.name!r} has no axis {axis} (shape {list(self.shape)})")
            if not _LABEL.match(label):
                raise InputSpecError(
                    f"dynamic axis label {label!r} must be an identifier, like seq (or a sum: past_sequence+sequence)"
                )

    @property
    def axes(self) -> dict[int, str]:
        return dict(self.dynamic)

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def low_high(self) -> tuple[float, float]:
        if self.dtype == "bool" or self.kind in MASKS:
            return (0, 1)
        if self.value_range is None and self.kind in INDICES:
            return (0, 0)  # the table's size is not known yet: the export finds it from the model
        return self.value_range if self.value_range is not None else (0.0, 1.0)

    def describe(self) -> str:
        """What is drawn for it, for the report: ``ids int64 (1, 32) uniform integers in [0, 999]``."""
        low, high = self.low_high
        if self.kind not in (None, PLAIN):
            what = describe_kind(self.kind, low, high)
        elif self.dtype == "bool":
            what = "False/True, half each"
        elif self.dtype in INT_DTYPES:
            what = f"uniform integers in [{low:g}, {high:g}]"
        else:
            what = f"uniform in [{low:g}, {high:g})"
        dims = ", ".join(self.axes.get(i, str(d)) for i, d in enumerate(self.shape))
        return f"{self.name} {self.dtype} ({dims}) {what}"

    def to_manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "range": None if self.value_range is None else list(self.value_range),
            "dynamic_axes": {str(axis): label for axis, label in self.dynamic},
            **({"kind": self.kind} if self.kind is not None else {}),
        }

    @classmethod
    def from_manifest(cls, data: Any, where: str = "manifest.json") -> InputSpec:
        from .errors import ManifestError

        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            shape = data["shape"]
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                raise TypeError("shape is not a list of integers")
            rng = data.get("range")
            axes = data.get("dynamic_axes")
            axes = {"0": BATCH} if axes is None else axes  # {}: no dynamic axis at all
            return cls(
                name=str(data["name"]),
                shape=tuple(shape),
                dtype=str(data["dtype"]),
                value_range=None if rng is None else (float(rng[0]), float(rng[1])),
                dynamic=tuple(sorted((int(a), str(label)) for a, label in dict(axes).items())),
                kind=None if data.get("kind") is None else str(data["kind"]),
            )
        except InputSpecError as error:
            raise ManifestError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ManifestError(
                f"{where}: an input needs name, shape (a list of integers) and dtype ({error})"
            ) from None


def parse_input(text: str) -> InputSpec:
    """``NAME:SHAPE[:DTYPE[:LOW..HIGH]]``, e.g. ``ids:1,32:int64:0..999``. Raises InputSpecError."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4:
        raise InputSpecError(
            f"--input {text!r} is not NAME:SHAPE[:DTYPE[:LOW..HIGH]] (for example ids:1,32:int64:0..999)"
        )
    name, shape = parts[0], parse_shape(parts[1], minimum_dims=1)
    dtype = parts[2] if len(parts) > 2 and parts[2] else "float32"
    value_range = None
    if len(parts) == 4:
        match = _RANGE.match(parts[3].strip())
        if not match:
            raise InputSpecError(f"--input {text!r}: the range must be LOW..HIGH, for example 0..999")
        try:
            value_range = (float(match[1]), float(match[2]))
        except ValueError:
            raise InputSpecError(f"--input {text!r}: the range must be LOW..HIGH, for example 0..999") from None
    return InputSpec(name, shape, dtype, value_range)


MAX_AXIS_SIZE = 1 << 20  # the largest size a --dynamic range may declare: a typo must not allocate the machine away


def parse_dynamic(text: str) -> tuple[str, int, str] | tuple[str, int, str, tuple[int, int]]:
    """``NAME:AXIS[:LABEL[:MIN..MAX]]``, e.g. ``ids:1:seq`` (label default: ``NAME_AXIS``) or
    ``ids:1:seq:1..512`` (the sizes it is served at, which verification tries up to; axis 0 takes
    only a range: ``x:0:batch:1..256``). Raises InputSpecError."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4) or not parts[1].isdigit():
        raise InputSpecError(f"--dynamic {text!r} is not NAME:AXIS[:LABEL[:MIN..MAX]] (for example ids:1:seq:1..512)")
    axis = int(parts[1])
    label = parts[2] if len(parts) > 2 and parts[2] else (BATCH if axis == 0 else f"{parts[0]}_{axis}")
    if axis == 0 and (len(parts) < 4 or label != BATCH):
        raise InputSpecError(f"--dynamic {text!r}: axis 0 is the batch, dynamic already (give NAME:0:batch:MIN..MAX)")
    if len(parts) < 4:
        return parts[0], axis, label
    return parts[0], axis, label, parse_size_range(parts[3], f"--dynamic {text!r}")


def parse_size_range(text: str, where: str) -> tuple[int, int]:
    """``MIN..MAX`` as two integers with 1 <= MIN <= MAX <= MAX_AXIS_SIZE; InputSpecError naming ``where``."""
    match = re.fullmatch(r"\s*(\d+)\.\.(\d+)\s*", str(text))
    if not match:
        raise InputSpecError(f"{where}: the size range must be MIN..MAX, for example 1..512")
    low, high = int(match[1]), int(match[2])
    if not 1 <= low <= high <= MAX_AXIS_SIZE:
        raise InputSpecError(f"{where}: the size range needs 1 <= MIN <= MAX <= {MAX_AXIS_SIZE:,}, not {low}..{high}")
    return low, high


def with_dynamic(specs: Iterable[InputSpec], extra: Iterable[tuple[str, int, str]]) -> tuple[InputSpec, ...]:
    """``specs`` with the ``--dynamic`` axes added; UsageError naming an unknown input."""
    specs = tuple(specs)
    by_name = {s.name: s for s in specs}
    added: dict[str, list[tuple[int, str]]] = {}
    for name, axis, label in extra:
        if name not in by_name:
            raise InputSpecError(f"--dynamic names input {name!r}, but the inputs are {', '.join(by_name)}")
        added.setdefault(name, []).append((axis, label))
    return tuple(replace(s, dynamic=tuple(sorted({**s.axes, **dict(added.get(s.name, []))}.items()))) for s in specs)


def parse_kind(text: str) -> tuple[str, str]:
    """``NAME:KIND``, e.g. ``mask:left-padding-mask``. Raises InputSpecError."""
    name, _, kind = text.partition(":")
    if not name or kind not in KINDS:
        raise InputSpecError(f"--input-kind {text!r} is not NAME:KIND with KIND one of {', '.join(KINDS)}")
    return name, kind


def with_kinds(specs: Iterable[InputSpec], declared: Iterable[tuple[str, str]] = ()) -> tuple[InputSpec, ...]:
    """``specs`` with each input's kind: as declared (``--input-kind``), else as its conventional name implies
    (``attention_mask``: a padding mask), else as it was. UsageError naming an unknown input."""
    specs = tuple(specs)
    given = dict(declared)
    unknown = [n for n in given if n not in {s.name for s in specs}]
    if unknown:
        raise InputSpecError(
            f"--input-kind names input {unknown[0]!r}, but the inputs are {', '.join(s.name for s in specs)}"
        )
    return tuple(replace(s, kind=given.get(s.name) or s.kind or infer_kind(s.name)) for s in specs)


def cast_floats(specs: tuple[InputSpec, ...], dtype: str | None) -> tuple[InputSpec, ...]:
    """Float inputs in the model's precision (``--dtype``); other inputs as they are."""
    if dtype is None:
        return specs
    return tuple(replace(s, dtype=dtype) if s.dtype in FLOAT_DTYPES else s for s in specs)


def parse_shape(text: str, minimum_dims: int = 2) -> tuple[int, ...]:
    """Parse "1,28,28" into (1, 28, 28); raises InputSpecError on anything else."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputSpecError(
            f"input shape {text!r} is not a list of integers: write it as 1,28,28 (batch first)"
        ) from None
    if len(shape) < minimum_dims or any(d <= 0 for d in shape):
        raise InputSpecError(f"input shape {text!r} needs a batch dimension and positive sizes, for example 1,28,28")
    if math.prod(shape[1:]) > MAX_SAMPLE_ELEMENTS or shape[0] > MAX_EXPORT_BATCH:
        raise InputSpecError(
            f"input shape {text!r} is larger than this tool exports (a sample of at most {MAX_SAMPLE_ELEMENTS:,} "
            f"elements, a batch of at most {MAX_EXPORT_BATCH:,})"
        )
    return shape


@dataclass(frozen=True)
class OutputSpec:
    """One flattened output: its name, its shape at the example (dynamic axes by label) and dtype."""

    name: str
    shape: tuple[int | str, ...] = ()
    dtype: str = "float32"

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a nested tuple/list/dict, in order, with dotted paths (``0``, ``logits``, ``aux.1``).

    A bare leaf gets the path ``""``: the caller names it (``output``, or the registry's name).
    """
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (tuple, list)):
        items = enumerate(value)
    else:
        return [(prefix, value)]
    leaves: list[tuple[str, Any]] = []
    for key, item in items:
        leaves += flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return leaves


def output_names(value: Any, single: str = "output") -> tuple[str, ...]:
    """Default names of forward's flattened outputs: ``single`` for one tensor, ``output_0``, ``output_1``...
    for a tuple (``output_1.0`` when nested), the keys (dotted when nested) for a dict."""
    leaves = flatten(value)
    if len(leaves) == 1 and leaves[0][0] == "":
        return (single,)
    return tuple(path if isinstance(value, dict) else f"output_{path}" for path, _ in leaves)


@dataclass(frozen=True)
class Interface:
    """Every input and output of a model, as the manifest records them."""

    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...] = field(default=())

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def labels(self) -> dict[str, int]:
        """Every dynamic axis label other than the batch, with its size in the example. A sum label is left out:
        its size follows its parts'."""
        found: dict[str, int] = {}
        for spec in self.inputs:
            for axis, label in spec.dynamic:
                if label != BATCH and len(label_parts(label)) == 1:
                    found.setdefault(label, spec.shape[axis])
        return found


MISSING_KINDS = ("nan", "inf")  # what --missing declares an input may hold


def parse_missing(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME:nan[,inf]``: an input that may hold missing values, and which. Raises InputSpecError."""
    name, _, kinds = text.partition(":")
    if not kinds:
        raise InputSpecError(f"--missing {text!r} is not NAME:nan[,inf] (for example x:nan)")
    return missing_values([(name, tuple(k.strip() for k in kinds.split(",") if k.strip()))])[0]


def missing_values(given) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``given`` ({"x": ["nan"]} or [("x", ("nan", "inf"))]) as sorted (input, kinds); InputSpecError otherwise."""
    items = given.items() if isinstance(given, dict) else given
    found: dict[str, set[str]] = {}
    try:
        for name, kinds in items:
            kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
            unknown = [k for k in kinds if k not in MISSING_KINDS]
            if not isinstance(name, str) or not name or unknown or not kinds:
                raise InputSpecError(
                    f"--missing {name}:{','.join(map(str, kinds))}: give NAME:nan or NAME:nan,inf (for example x:nan)"
                )
            found.setdefault(name, set()).update(kinds)
    except (TypeError, ValueError):
        raise InputSpecError(f"missing values {given!r}: give {{'x': ['nan']}} or [('x', ('nan',))]") from None
    return tuple((name, tuple(k for k in MISSING_KINDS if k in kinds)) for name, kinds in sorted(found.items()))
