"""Every command the README and docs/ show runs as shown, and passes.

Each ```sh block in README.md and docs/*.md is preceded by ``<!-- flow: NAME -->`` (run by this test)
or ``<!-- not run: WHY -->`` (say why: it needs Docker, or it is the setup itself). Flows run in one
fresh folder holding what a checkout has (``models/examples.py``, ``examples/``), in order: the
README's first, then each docs page's; a flow of the same name on two pages must be the same commands,
and runs once. Each command must exit 0, unless its line ends with ``# exit N``; a command that needs
CUDA is skipped on a machine without it (and said so).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!-- (flow: [\w-]+|not run: [^>]+) -->\n)?```sh\n(.*?)```", re.S)


def blocks(page: Path) -> list[tuple[str | None, str]]:
    """(marker, text) of every sh block of ``page``; marker None when it has none."""
    return [(m[1], m[2]) for m in _BLOCK.finditer(page.read_text())]


def commands(text: str) -> list[str]:
    """A block's commands: continuation lines joined, comment-only lines left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def flows() -> dict[str, list[str]]:
    """Each flow's commands, README first, in the order the pages show them."""
    found: dict[str, list[str]] = {}
    shown: dict[tuple[str, Path], list[str]] = {}
    for page in PAGES:
        for marker, text in blocks(page):
            if marker and marker.startswith("flow: "):
                shown.setdefault((marker[6:], page), []).extend(commands(text))
    for (name, _page), lines in shown.items():
        found.setdefault(name, lines)
    return found


def test_every_shell_block_is_run_or_says_why_not():
    unmarked = [
        f"{page.relative_to(ROOT)}: {text.splitlines()[0]}" for page in PAGES for m, text in blocks(page) if not m
    ]
    assert not unmarked, "mark these with <!-- flow: NAME --> or <!-- not run: WHY -->:\n" + "\n".join(unmarked)


def test_a_flow_shown_on_two_pages_is_the_same_on_both():
    by_page: dict[str, dict[Path, list[str]]] = {}
    for page in PAGES:
        for marker, text in blocks(page):
            if marker and marker.startswith("flow: "):
                by_page.setdefault(marker[6:], {}).setdefault(page, []).extend(commands(text))
    for name, pages in by_page.items():
        versions = {tuple(_bare(line) for line in lines) for lines in pages.values()}
        assert len(versions) == 1, f"flow {name} differs between {', '.join(p.name for p in pages)}"


def test_the_parser_finds_markers_joins_continuations_and_drops_comments(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- flow: demo -->\n```sh\nexporter export mlp \\\n  --name x  # why\n# a comment\nexporter models\n```\n"
        "```sh\nexporter models\n```\n"
    )
    found = blocks(page)
    assert [m for m, _ in found] == ["flow: demo", None]  # the second block has no marker: the test above fails
    assert commands(found[0][1]) == ["exporter export mlp --name x  # why", "exporter models"]


def _bare(line: str) -> str:
    """A command without its trailing comment: what two pages must agree on."""
    return line.split("  #")[0].split(" # ")[0].rstrip()


def _expected_exit(line: str) -> int:
    match = re.search(r"#\s*exit (\d+)\s*$", line)
    return int(match[1]) if match else 0


def _world(tmp_path: Path) -> Path:
    """A fresh folder with what the docs' commands name from a checkout."""
    world = tmp_path / "checkout"
    world.mkdir()
    shutil.copytree(ROOT / "models", world / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "examples", world / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return world


@pytest.mark.slow
def test_every_flow_runs_as_shown_and_passes(tmp_path):
    import torch

    world = _world(tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("PYTHONPATH", None)  # as a user's shell: the installed package, not this checkout's folder
    ran, skipped = 0, []
    for name, lines in flows().items():
        for line in lines:
            if "--device cuda" in line and not torch.cuda.is_available():
                skipped.append(line)
                continue
            result = subprocess.run(
                ["bash", "-c", line], cwd=world, env=env, capture_output=True, text=True, timeout=900
            )  # fmt: skip
            want = _expected_exit(line)
            assert result.returncode == want, (
                f"flow {name}: `{line}` exited {result.returncode}, not {want}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
            )
            ran += 1
    assert ran >= 40, f"only {ran} commands ran"  # the README's and the reference's, at least
    assert all("--device cuda" in line for line in skipped)
