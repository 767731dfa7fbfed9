"""`exporter sweep`: its help, no torch before the entries run, every mistake one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from exporter.cli.commands import cli


def test_help_has_an_example_and_names_every_outcome():
    result = CliRunner().invoke(cli, ["sweep", "--help"])
    assert result.exit_code == 0
    assert "exporter sweep fleet.toml" in result.output and "timed out" in result.output


@pytest.mark.parametrize(
    ("fleet", "args", "message"),
    [
        ('[[entry]]\nname = "a"\nmodel = "nosuch"\n', (), "fleet.toml: entry 'a': field 'model': unknown model"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\nsamples = -3\n', (), "entry 'a': field 'samples'"),
        ("not = [toml", (), "fleet.toml: not valid TOML"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--jobs", "0"), "--jobs"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--timeout", "0"), "--timeout"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--executor", "slurm"), "--executor"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--ray-address", "auto"), "--ray-address is for --executor ray"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--out", "/etc/hostname/x"), "--out"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--csv", "/no/such/dir/rows.csv"), "--csv"),
        ('[[entry]]\nname = "a"\nmodel = "mlp"\n', ("--json", "/no/such/dir/s.json"), "--json"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_wrong_fleet_file_or_option_is_one_line_and_exit_2_before_any_entry_runs(tmp_path, fleet, args, message):
    (tmp_path / "fleet.toml").write_text(fleet)
    fleet_path, out = str(tmp_path / "fleet.toml"), str(tmp_path / "out")
    result = CliRunner().invoke(cli, ["sweep", fleet_path, "--out", out, *args])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out" / "a").exists()


def test_the_same_fleet_written_right_runs_its_entries_and_imports_no_torch_itself(tmp_path):
    # each entry is refused by its own export process (an unknown package): the sweep itself runs, exit 1
    (tmp_path / "fleet.toml").write_text('[[entry]]\nname = "a"\nmodel = "nosuchpkg.mod:Net"\ninput_shape = "1,4"\n')
    code = (
        "import sys; from exporter.cli import cli\n"
        "try: cli.main(['sweep', 'fleet.toml', '--out', 'out', '--json', 's.json'], prog_name='exporter')\n"
        "except SystemExit as e: print('EXIT', e.code)\n"
        "print('HEAVY', [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "EXIT 1" in result.stdout and "HEAVY []" in result.stdout, result.stdout + result.stderr
    (row,) = json.loads((tmp_path / "s.json").read_text())["entries"]
    assert row["status"] == "refused" and "nosuchpkg" in row["reason"]


def test_ray_without_its_extra_says_which_extra_to_install(tmp_path):
    (tmp_path / "fleet.toml").write_text('[[entry]]\nname = "a"\nmodel = "mlp"\n')
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if the [ray] extra were not installed
        "from exporter.cli import cli\n"
        "cli.main(['sweep', 'fleet.toml', '--out', 'out', '--executor', 'ray'], prog_name='exporter')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --executor ray needs Ray, which is not installed here: pip install 'exporter[ray]'"
    )
    assert not (tmp_path / "out").exists()  # refused before any folder was made
