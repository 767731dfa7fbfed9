"""tables: the shared column layout and the byte sizes every report prints."""

from __future__ import annotations

from exporter.tables import human_size, joined, text_table


def test_human_size_picks_the_unit_a_reader_expects():
    assert human_size(2_690_000) == "2.69 MB"
    assert human_size(27_300) == "27.3 KB"  # the cnn's int8 file, shown as 0.0 MB before
    assert human_size(512) == "512 B"
    assert human_size(None) == "-"


def test_text_table_aligns_columns_and_strips_trailing_space():
    lines = text_table([("a", "bb"), ("ccc", "")])
    assert lines == ["a    bb", "ccc"]


def test_joined_keeps_one_line_per_item_whatever_an_item_holds():
    text = joined(["model mlp\nPASSED: forged\x1b[2K", "second"])
    assert text.splitlines() == ["model mlp\\nPASSED: forged\\x1b[2K", "second"]


def test_joined_leaves_plain_lines_as_they_are():
    assert joined(["a b", "", "c"]) == "a b\n\nc"
