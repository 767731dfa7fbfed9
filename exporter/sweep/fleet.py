"""The fleet file: a TOML list of models to export, each entry checked by ``exporter export``'s own parser.

    timeout = 300                  # defaults: any entry field, at the top of the file
    formats = ["onnx"]

    [[entry]]
    name = "mlp"                   # the folder OUT/NAME
    model = "mlp"                  # anything `exporter export` takes as MODEL

    [[entry]]
    name = "tagger"
    model = "models/examples.py:Tagger"
    inputs = ["ids:1,32:int64:0..999"]
    dynamic = ["ids:1:seq"]
    atol = 1e-5

An entry's other fields are export's options under their Python names (``--input`` is ``inputs``,
``--format`` is ``formats``, ``--batch-size`` is ``batch_sizes``, ``--inputs FILE`` is ``inputs_file``):
a list for a repeatable option, ``true`` for a flag. Each entry becomes the argument list of one
``exporter export`` run, and that list is parsed by the export command itself (handed in by the CLI,
so this module has no second parser of the same flags): a wrong value is refused here, before any
entry runs, as one line naming the file, the entry and the field. Relative paths (a model file, a
saved folder, weights, inputs) are taken from the fleet file's folder.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..eager.sources import resolve
from ..errors import FleetError, UsageError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # export's rule for a folder name (no leading dot)
# Fields of the sweep itself; every other field is one of export's options.
SWEEP_FIELDS = {
    "name": "the folder OUT/NAME (required)",
    "model": "what `exporter export` takes as MODEL (required)",
    "timeout": "seconds before the entry is stopped (default: --timeout)",
    "memory_mib": "address-space limit of the entry's process, MiB (default: --memory-mib, else none)",
}
# export's options the sweep sets itself: the folder, the report, the progress, the verification.
RESERVED = {"out", "name", "json_path", "quiet", "help", "no_verify"}  # no_verify: a sweep verifies every entry


@dataclass(frozen=True)
class Entry:
    """One model of the fleet: how to call ``exporter export`` on it, and the files it reads."""

    name: str
    model: str  # as export takes it, a relative path made absolute
    options: tuple[str, ...]  # export's arguments after MODEL, without --out, --name, --json, --quiet
    timeout_s: float | None  # None: the sweep's --timeout
    memory_mib: int | None  # None: the sweep's --memory-mib (None there: no limit)
    files: tuple[Path, ...]  # the weights and inputs files it names (hashed for resume)
    settings: tuple[tuple[str, Any], ...]  # the fields as written (after defaults), for the resume digest

    def export_args(self, out: Path, json_path: Path) -> list[str]:
        """The arguments of ``exporter export`` for this entry, its folder OUT/NAME, its report at ``json_path``."""
        return ["export", self.model, "--out", str(out), "--name", self.name, *self.options, "--json", str(json_path)]


@dataclass(frozen=True)
class Fleet:
    path: Path
    entries: tuple[Entry, ...]


def load(path: Path, command: click.Command) -> Fleet:
    """Read and check the fleet file at ``path``; ``command`` is ``exporter export``, whose parser checks each entry.

    Raises FleetError (exit 2) for a file that is missing or not TOML, no entries, a missing or unknown field,
    a duplicate or unusable name, or a value export's parser refuses; the message names the entry and the field.
    """
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise FleetError(f"{where}: cannot read the fleet file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise FleetError(f"{where}: not a text file") from None
    except tomllib.TOMLDecodeError as error:
        raise FleetError(f"{where}: not valid TOML: {error}") from None
    raw_entries = data.pop("entry", None)
    if not isinstance(raw_entries, list) or not raw_entries or not all(isinstance(e, dict) for e in raw_entries):
        raise FleetError(f"{where}: no entries: add at least one [[entry]] table with a name and a model")
    options = _options(command)
    for key in data:
        _check_field(where, "defaults", key, options)
    base = Path(path).resolve().parent
    entries, seen = [], set()
    for i, raw in enumerate(raw_entries, 1):
        label = f"entry {raw['name']!r}" if isinstance(raw.get("name"), str) else f"entry #{i}"
        for key in raw:
            _check_field(where, label, key, options)
        fields = {**data, **raw}
        entry = _entry(where, label, fields, options, command, base)
        if entry.name in seen:
            raise FleetError(f"{where}: {label}: field 'name': {entry.name!r} is used by an earlier entry")
        seen.add(entry.name)
        entries.append(entry)
    return Fleet(Path(path), tuple(entries))


def _options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name not in RESERVED}


def _check_field(where: str, label: str, key: str, options: dict[str, click.Option]) -> None:
    if key in SWEEP_FIELDS:
        return
    if key in RESERVED:
        raise FleetError(
            f"{where}: {label}: field {key!r} is the sweep's to set (each entry goes to --out/NAME, verified, "
            "with its report in --out/.sweep): remove it"
        )
    if key not in options:
        raise FleetError(
            f"{where}: {label}: unknown field {key!r}: use name, model, timeout, memory_mib or one of export's "
            "options by its Python name (inputs, formats, dynamic, weights, atol, rtol, ...)"
        )


def _entry(
    where: str, label: str, fields: dict[str, Any], options: dict[str, click.Option], command: click.Command, base: Path
) -> Entry:
    def bad(field: str, why: str) -> FleetError:
        return FleetError(f"{where}: {label}: field {field!r}: {why}")

    for required in ("name", "model"):
        if not isinstance(fields.get(required), str) or not fields[required].strip():
            raise bad(required, "missing: every entry needs a name and a model (a string)")
    name, model = fields["name"], _model(fields["model"], base)
    if model.startswith("-"):
        raise bad("model", f"{model!r} is an option, not a model")
    if not NAME.match(name):
        raise bad("name", f"{name!r} must be a plain folder name (letters, digits, _ . -; no leading dot)")
    timeout = fields.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise bad("timeout", f"{timeout!r} is not a number of seconds above 0")
    memory = fields.get("memory_mib")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0):
        raise bad("memory_mib", f"{memory!r} is not a whole number of MiB above 0")
    args: list[str] = []
    files: list[Path] = []
    for key, value in fields.items():
        if key in SWEEP_FIELDS:
            continue
        option = options[key]
        if option.is_flag:
            args += _flag(option, value, bad(key, "expected true or false"))
            continue
        for text in _values(option, value, bad(key, _expected(option))):
            if isinstance(option.type, click.Path):
                text = str(base / text)
                files.append(Path(text))
            args += [option.opts[0], text]
    try:
        command.make_context("export", [model, *args], resilient_parsing=False)
    except click.UsageError as error:
        field = _field_of(error, options)
        raise bad(field, error.format_message()) from None
    try:
        resolve(model, need_shape=False)  # export's own check of MODEL (no code runs, nothing is imported)
    except UsageError as error:
        raise bad("model", first_line(error)) from None
    settings = tuple(sorted((k, v) for k, v in fields.items() if k not in ("timeout", "memory_mib")))
    return Entry(name, model, tuple(args), timeout, memory, tuple(files), settings)


def _model(model: str, base: Path) -> str:
    """A model file or saved folder named relative to the fleet file, made absolute; other forms as given."""
    location, sep, target = model.rpartition(":")
    if sep and location.endswith(".py"):
        return f"{base / location}:{target}"
    if (base / model).is_dir():
        return str(base / model)
    return model


def _flag(option: click.Option, value: Any, error: FleetError) -> list[str]:
    """A flag's command line: ``--flag`` for true, nothing for false (``--no-flag`` where it has one)."""
    if not isinstance(value, bool):
        raise error
    if value:
        return [option.opts[0]]
    return [option.secondary_opts[0]] if option.secondary_opts else []


def _values(option: click.Option, value: Any, error: FleetError) -> list[str]:
    """The command-line values of one field: one per item of a repeatable option (a single value is a list of one)."""
    items = value if option.multiple and isinstance(value, list) else [value]
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in items):
        raise error
    return [str(v) for v in items]


def _expected(option: click.Option) -> str:
    return "expected a list of strings or numbers" if option.multiple else "expected a string or a number"


def _field_of(error: click.UsageError, options: dict[str, click.Option]) -> str:
    """The field a parser error is about: the option click names, under its Python name."""
    param = getattr(error, "param", None)
    if param is not None and param.name in options:
        return param.name
    return "model" if param is not None and param.name == "model" else "options"
