"""What judged an export, recorded in its manifest and used again by ``verify``.

Export records, under the manifest's ``judging`` key, every setting that decided its verdict and
is not already in the manifest (the inputs' kinds and value ranges are, under ``inputs``): the NaN
policy, tolerances set by hand, the float input range, the inputs declared to hold missing values,
and every dynamic axis's size range (given with ``--dynamic NAME:AXIS:LABEL:MIN..MAX``, or the
default). ``resolve`` gives ``verify`` the same settings: a setting not given to ``verify`` is
taken from the record; one given overrides it, and the report says which (``notes``).

No torch here: export builds the record before verification imports anything heavy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import VerifyConfig
from ..errors import InputSpecError, ManifestError, UsageError
from ..interface import BATCH, FLOAT_DTYPES, MAX_AXIS_SIZE, Interface, missing_values

# A dynamic axis without a declared range is tried from 1 to well past twice the example: four
# times it, and at least DEFAULT_MAX_SIZE (so an example of 2 still meets a size past 4). The
# batch axis's default reaches gates.LARGE_BATCH, the batch past 100 verification already runs.
DEFAULT_SIZE_FACTOR = 4
DEFAULT_MAX_SIZE = 8
DEFAULT_MAX_BATCH = 128

_SETTINGS = ("nan_policy", "atol", "rtol", "input_range", "missing")
_FLAGS = {"nan_policy": "--nan-policy", "atol": "--atol", "rtol": "--rtol", "input_range": "--input-range",
          "missing": "--missing"}  # fmt: skip


def default_range(label: str, example: int) -> tuple[int, int]:
    """The size range of an axis none was declared for: 1 to DEFAULT_SIZE_FACTOR x the example (the batch:
    at least DEFAULT_MAX_BATCH; any other axis: at least DEFAULT_MAX_SIZE)."""
    floor = DEFAULT_MAX_BATCH if label == BATCH else DEFAULT_MAX_SIZE
    return 1, min(MAX_AXIS_SIZE, max(floor, DEFAULT_SIZE_FACTOR * example))


def size_ranges(interface: Interface, export_batch: int, declared: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Every dynamic axis label (the batch first) with its range: ``declared`` where given, else the default.
    InputSpecError for a range of a label no input has, or one that leaves out the example's size."""
    examples = {BATCH: export_batch, **interface.labels}
    unknown = sorted(set(declared) - set(examples))
    if unknown:
        raise InputSpecError(
            f"a size range is given for {', '.join(unknown)}, which no input has as a dynamic axis "
            f"(the dynamic axes are {', '.join(examples)})"
        )
    ranges = {}
    for label, example in examples.items():
        low, high = (int(v) for v in declared.get(label, default_range(label, example)))
        if high > MAX_AXIS_SIZE:
            raise InputSpecError(f"dynamic axis {label!r}: the range {low}..{high} passes {MAX_AXIS_SIZE:,}")
        if not low <= example <= high:
            raise InputSpecError(
                f"dynamic axis {label!r}: the range {low}..{high} leaves out the example's size {example}"
            )
        ranges[label] = (low, high)
    return ranges


def recorded(config: VerifyConfig, ranges: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The manifest's ``judging`` object for an export judged by ``config`` over ``ranges``."""
    return {
        "nan_policy": config.nan_policy or "fail",
        "atol": config.atol,
        "rtol": config.rtol,
        "input_range": None if config.input_range is None else list(config.input_range),
        "missing": {name: list(kinds) for name, kinds in config.missing or ()},
        "dynamic_ranges": {label: [low, high] for label, (low, high) in ranges.items()},
    }


def check_missing(config: VerifyConfig, interface: Interface) -> None:
    """Inputs declared to hold missing values must be float inputs of the model: InputSpecError otherwise."""
    specs = {s.name: s for s in interface.inputs}
    for name, _ in config.missing or ():
        if name not in specs:
            raise InputSpecError(f"--missing names input {name!r}, but the inputs are {', '.join(specs)}")
        if specs[name].dtype not in FLOAT_DTYPES:
            raise InputSpecError(f"--missing {name}: only float inputs hold NaN or Inf, {name} is {specs[name].dtype}")


def resolve(config: VerifyConfig, record: dict[str, Any] | None) -> tuple[VerifyConfig, list[str]]:
    """``config`` with every setting it leaves unset (None) taken from the export's ``record``, and one line
    per setting the record decided or ``config`` overrode, for the report. Without a record (a folder of an
    older exporter) the defaults hold and nothing is said."""
    if not record:
        return replace(config, nan_policy=config.nan_policy or "fail"), []
    if not isinstance(record, dict):
        raise ManifestError("manifest.json: judging must be an object")
    try:
        saved = {
            "nan_policy": record.get("nan_policy") or "fail",
            "atol": _number(record.get("atol")),
            "rtol": _number(record.get("rtol")),
            "input_range": None if record.get("input_range") is None else tuple(map(float, record["input_range"])),
            "missing": missing_values(dict(record.get("missing") or {})) or None,
        }
        # the recorded values pass the same checks as given ones (a hostile manifest cannot set a NaN atol)
        replace(VerifyConfig(), **saved)
    except (TypeError, ValueError, UsageError) as error:  # UsageError: what VerifyConfig refuses
        raise ManifestError(f"manifest.json: judging holds a setting verify cannot use ({error})") from None
    taken, notes = {}, []
    for name in _SETTINGS:
        given, kept = getattr(config, name), saved[name]
        if given is None:
            taken[name] = kept
            if kept is not None and not (name == "nan_policy" and kept == "fail"):
                notes.append(f"{_FLAGS[name]} {_text(kept)} as recorded at export")
        elif given != kept and not (name == "missing" and not given and not kept):
            notes.append(f"{_FLAGS[name]} {_text(given)} given to verify overrides the export's {_text(kept)}")
    return replace(config, **taken), notes


def declared_ranges(record: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """The recorded size range of each dynamic axis ({} for a folder of an older exporter)."""
    found = (record or {}).get("dynamic_ranges") or {}
    try:
        return {str(label): (int(low), int(high)) for label, (low, high) in dict(found).items()}
    except (TypeError, ValueError):
        raise ManifestError("manifest.json: judging.dynamic_ranges must map each label to [min, max]") from None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _text(value: Any) -> str:
    if value is None:
        return "(the default)"
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):  # missing values
        return " ".join(f"{name}:{','.join(kinds)}" for name, kinds in value)
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
