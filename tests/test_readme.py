"""The README's promises: its example test file runs as a user's suite, every command is documented
(in docs/reference.md, and in one line of the README), and the README stays short with working docs links.
Its shell examples run in tests/test_flows.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from exporter.cli.commands import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "reference.md").read_text()


def test_the_readme_example_test_file_passes_in_a_fresh_folder(tmp_path):
    match = re.search(r"<!-- example: (\S+) -->\n```python\n(.*?)```", README, re.S)
    assert match, "the README lost its example test file"
    (tmp_path / match[1]).write_text(match[2])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", match[1]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed, 1 skipped" in result.stdout


def test_every_command_has_a_reference_section_and_a_readme_line():
    for name in cli.commands:
        assert f"### `exporter {name}" in REFERENCE, f"docs/reference.md has no section for {name}"
        assert f"`exporter {name}" in README, f"README.md does not mention exporter {name}"


def test_the_readme_stays_short_and_its_docs_links_resolve():
    size = (ROOT / "README.md").stat().st_size
    assert size <= 12_500, f"README.md is {size:,} bytes, past 12,500: move reference material to docs/"
    links = re.findall(r"\]\((docs/[^)#\s]*)", README)
    assert links, "the README links to nothing in docs/"
    for link in links:
        assert (ROOT / link).is_file(), f"README.md links to {link}, which does not exist"


def test_the_readme_gives_exactly_the_two_setup_commands():
    block = re.search(r"## Two commands on a fresh machine\n\n(?:<!--.*?-->\n)?```sh\n(.*?)```", README, re.S)
    assert block and [line.split()[:2] for line in block[1].strip().splitlines()] == [["make", "run"], ["make", "test"]]
