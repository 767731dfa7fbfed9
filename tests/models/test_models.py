"""The registry of built-in models (models/__init__.py); each network is tested in its own file."""

from __future__ import annotations

import pytest

from exporter import models


@pytest.mark.parametrize("name", sorted(models.REGISTRY), ids=str)
def test_registry_entries_declare_their_input(name):
    entry = models.get(name)
    assert entry.input_shape[0] == 1 and len(entry.input_shape) >= 2
    assert entry.dtype == "float32" and entry.input_name and entry.output_names and entry.description
    assert ":" in entry.target


def test_registry_has_no_unknown_names():
    assert models.get("no-such-model") is None


HOSTILE_MODELS = "open({sentinel!r}, 'w').write('ran')\nREGISTRY = {{}}\n"


@pytest.mark.parametrize(
    "command",
    [["models"], pytest.param(["export", "mlp", "--format", "onnx", "--no-verify"], marks=pytest.mark.slow)],
    ids=str,
)  # the export really exports the seed network (in a subprocess): slow
def test_a_models_py_in_the_current_folder_never_runs(tmp_path, command):
    import subprocess
    import sys

    sentinel = tmp_path / "sentinel"
    (tmp_path / "models.py").write_text(HOSTILE_MODELS.format(sentinel=str(sentinel)))
    run = subprocess.run([sys.executable, "-m", "exporter", *command], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not sentinel.exists()
    assert command[0] != "models" or "mlp" in run.stdout
    # the control: a plain `import models` from that folder does run it
    subprocess.run([sys.executable, "-c", "import models"], cwd=tmp_path, check=True)
    assert sentinel.exists()
