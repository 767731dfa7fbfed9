"""The fleet file: defaults, entries, export's own parser on every field, one line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli.commands import cli
from exporter.errors import FleetError
from exporter.sweep.fleet import load

EXPORT = cli.commands["export"]


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_apply_to_every_entry_and_an_entry_overrides_them(tmp_path):
    (tmp_path / "net.py").write_text("class Net: pass\n")
    (tmp_path / "w.safetensors").write_bytes(b"")
    fleet = load(
        write(
            tmp_path,
            'formats = ["onnx"]\ntimeout = 30\nsamples = 64\n'
            '[[entry]]\nname = "a"\nmodel = "mlp"\n'
            '[[entry]]\nname = "b"\nmodel = "net.py:Net"\ninputs = ["x:1,8", "y:1,4:int64:0..9"]\n'
            'dynamic = ["x:1:len"]\nformats = ["torchscript", "onnx"]\nweights = "w.safetensors"\n'
            "allow_unused = true\natol = 1e-6\nmemory_mib = 512\n",
        ),
        EXPORT,
    )
    a, b = fleet.entries
    assert (a.name, a.model, a.timeout_s, a.memory_mib) == ("a", "mlp", 30, None)
    assert a.options == ("--format", "onnx", "--samples", "64")
    assert b.model == f"{tmp_path / 'net.py'}:Net"  # relative to the fleet file, not the working folder
    assert b.options[:4] == ("--format", "torchscript", "--format", "onnx")
    assert list(b.options[6:10]) == ["--input", "x:1,8", "--input", "y:1,4:int64:0..9"]
    assert "--allow-unused" in b.options and b.options[b.options.index("--atol") + 1] == "1e-06"
    assert b.options[b.options.index("--weights") + 1] == str(tmp_path / "w.safetensors")
    assert b.files == (tmp_path / "w.safetensors",) and b.memory_mib == 512
    args = b.export_args(tmp_path / "out", tmp_path / "r.json")
    assert args[:6] == ["export", b.model, "--out", str(tmp_path / "out"), "--name", "b"]
    assert args[-2:] == ["--json", str(tmp_path / "r.json")]
    EXPORT.make_context("export", args[1:])  # what the child runs parses as export's own command line


def test_a_false_flag_is_left_out_and_a_negatable_one_says_no(tmp_path):
    fleet = load(
        write(tmp_path, '[[entry]]\nname = "a"\nmodel = "mlp"\nallow_unused = false\nlocalize = false\n'), EXPORT
    )
    assert fleet.entries[0].options == ("--no-localize",)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('name = "a"\nmodel = "nosuch"', ("entry 'a'", "field 'model'", "unknown model 'nosuch'")),
        ('name = "a"\nmodel = "missing.py:Net"', ("entry 'a'", "field 'model'", "does not exist")),
        ('name = "a"\nmodel = "mlp"\nformats = ["tflite"]', ("entry 'a'", "field 'formats'", "'tflite'")),
        ('name = "a"\nmodel = "mlp"\ninputs = ["x:1,2:int99"]', ("field 'inputs'", "int99")),
        ('name = "a"\nmodel = "mlp"\ndynamic = ["x"]', ("field 'dynamic'",)),
        ('name = "a"\nmodel = "mlp"\nsamples = 0', ("field 'samples'", "0 is not in the range")),
        ('name = "a"\nmodel = "mlp"\natol = -1.0', ("field 'atol'",)),
        ('name = "a"\nmodel = "mlp"\nallow_unused = "yes"', ("field 'allow_unused'", "true or false")),
        ('name = "a"\nmodel = "mlp"\nformats = [["onnx"]]', ("field 'formats'", "list of strings")),
        ('name = "a"\nmodel = "mlp"\nbogus = 1', ("entry 'a'", "unknown field 'bogus'")),
        ('name = "a"\nmodel = "mlp"\nout = "x"', ("field 'out'", "the sweep's to set")),
        ('name = "a"\nmodel = "mlp"\nno_verify = true', ("field 'no_verify'", "the sweep's to set")),
        ('name = "a"\nmodel = "mlp"\ntimeout = 0', ("field 'timeout'", "above 0")),
        ('name = "a"\nmodel = "mlp"\nmemory_mib = 1.5', ("field 'memory_mib'", "whole number")),
        ('name = ".a"\nmodel = "mlp"', ("entry '.a'", "field 'name'", "plain folder name")),
        ('name = "a/b"\nmodel = "mlp"', ("field 'name'",)),
        ('model = "mlp"', ("entry #2", "field 'name'", "missing")),
        ('name = "a"', ("entry 'a'", "field 'model'", "missing")),
        ('name = "a"\nmodel = "--help"', ("entry 'a'", "field 'model'", "is an option")),
    ],
)
def test_a_wrong_entry_is_one_line_naming_the_entry_and_the_field(tmp_path, body, names):
    with pytest.raises(FleetError) as caught:
        load(write(tmp_path, f'[[entry]]\nname = "ok"\nmodel = "mlp"\n[[entry]]\n{body}\n'), EXPORT)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'fleet.toml'}: ") and "\n" not in message
    for name in names:
        assert name in message


def test_the_same_entries_written_right_load(tmp_path):
    body = 'name = "a"\nmodel = "mlp"\nformats = ["onnx"]\nsamples = 1\natol = 0.0\ntimeout = 5\nmemory_mib = 64\n'
    assert [
        e.name
        for e in load(write(tmp_path, f'[[entry]]\nname = "ok"\nmodel = "mlp"\n[[entry]]\n{body}'), EXPORT).entries
    ] == ["ok", "a"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x = [", "not valid TOML"),
        ('formats = ["onnx"]\n', "no entries"),
        ("entry = 3\n", "no entries"),
        ('bogus = 1\n[[entry]]\nname = "a"\nmodel = "mlp"\n', "defaults: unknown field 'bogus'"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n[[entry]]\nname = "a"\nmodel = "cnn"\n', "used by an earlier entry"),
    ],
)
def test_a_wrong_file_is_one_line(tmp_path, text, says):
    with pytest.raises(FleetError, match=says):
        load(write(tmp_path, text), EXPORT)


def test_a_missing_or_binary_file_is_one_line(tmp_path):
    with pytest.raises(FleetError, match="cannot read the fleet file"):
        load(tmp_path / "absent.toml", EXPORT)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FleetError, match="not a text file"):
        load(tmp_path / "bin.toml", EXPORT)
