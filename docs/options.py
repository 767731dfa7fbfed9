"""Write docs/reference.md's option tables from click itself, so they cannot drift from ``--help``.

    .venv/bin/python docs/options.py           # rewrite the tables in docs/reference.md
    .venv/bin/python docs/options.py --check   # exit 1 and print a diff when they are out of date

Each command of ``exporter.cli.cli`` has one block in the file, ``<!-- options: COMMAND -->``
... ``<!-- /options -->``, and the script rewrites what lies between: a row per option, made
from its own ``get_help_record`` (the text ``exporter COMMAND --help`` shows, defaults, choices
and ranges included). What the help cannot say belongs in the prose above the block.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
BLOCK = re.compile(r"(<!-- options: (\S+) -->\n).*?(<!-- /options -->)", re.S)


def _cell(text: str) -> str:
    """One table cell: click's line breaks and double spaces folded, and ``|`` escaped (also in code)."""
    return " ".join(text.split()).replace("|", r"\|")


def table(group: click.Group, name: str) -> str:
    """The markdown table of ``name``'s options, one row per option, as its --help lists them."""
    command = group.commands[name]
    ctx = click.Context(command, info_name=name, parent=click.Context(group, info_name="exporter"))
    options = [param for param in command.params if isinstance(param, click.Option)]  # not the arguments
    records = [record for option in options if (record := option.get_help_record(ctx))]  # None: hidden
    if not records:
        return "No options but `--help`.\n"
    rows = [f"| `{_cell(flags)}` | {_cell(meaning)} |" for flags, meaning in records]
    return "\n".join(["| option | meaning |", "| --- | --- |", *rows]) + "\n"


def render(text: str, group: click.Group) -> str:
    """``text`` with every block's table regenerated. Raises ValueError when a command has no block,
    two blocks, or a block names no command."""
    names = [match[2] for match in BLOCK.finditer(text)]
    problems = [f"no <!-- options: {n} --> block" for n in group.commands if n not in names]
    problems += [f"more than one <!-- options: {n} --> block" for n in sorted(set(names)) if names.count(n) > 1]
    problems += [f"<!-- options: {n} --> names no command" for n in names if n not in group.commands]
    if problems:
        raise ValueError("; ".join(problems))
    return BLOCK.sub(lambda m: f"{m[1]}\n{table(group, m[2])}\n{m[3]}", text)


def check(path: Path = REFERENCE, group: click.Group | None = None) -> str:
    """The unified diff from ``path`` to what this script would write there: empty when up to date."""
    group = group or _cli()
    text = path.read_text()
    wanted = render(text, group)
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    lines = difflib.unified_diff(
        text.splitlines(keepends=True), wanted.splitlines(keepends=True), str(name), f"{name} (generated)"
    )
    return "".join(lines)


def main(argv: list[str], path: Path = REFERENCE) -> int:
    try:
        if argv == ["--check"]:
            diff = check(path)
            if diff:
                print(f"the option tables are out of date: run .venv/bin/python docs/options.py\n{diff}", end="")
                return 1
            return 0
        if argv:
            print("usage: docs/options.py [--check]", file=sys.stderr)
            return 2
        path.write_text(render(path.read_text(), _cli()))
        return 0
    except ValueError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1


def _cli() -> click.Group:
    if str(ROOT) not in sys.path:  # document this checkout, whatever is installed
        sys.path.insert(0, str(ROOT))
    from exporter.cli.commands import cli

    return cli


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
