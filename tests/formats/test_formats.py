"""The one table of formats (formats/__init__.py), and every format of it exported and verified together.

The table tests are plain data (no torch); the end-to-end test exports every registered model to every
format once for the package (``conftest.all_formats``). Each format's own behaviour is tested in its own
file: test_torchscript, test_onnx, test_pt2, test_onnx_int8.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from exporter import models
from exporter.errors import UsageError
from exporter.formats import (
    DEFAULTS,
    EAGER,
    FORMATS,
    NAMES,
    RUNTIMES,
    SIDE_FILES,
    TABLE,
    ExportSpec,
    exporter_module,
    get,
    label,
    runtime_name,
    select,
    spellings,
)

# --- the table ----------------------------------------------------------------------------------


def test_each_format_has_its_own_name_file_runtime_and_label():
    for field in ("name", "file", "runtime", "label", "module"):
        values = [getattr(f, field) for f in TABLE]
        assert len(set(values)) == len(values), field
    assert NAMES == ("torchscript", "onnx", "pt2", "onnx-int8") and DEFAULTS == ("torchscript", "onnx")
    assert RUNTIMES == (EAGER, "torchscript", "onnxruntime", "pt2", "onnxruntime-int8")
    assert not set(SIDE_FILES) & set(FORMATS)  # weights and external data are bound, never run


def test_only_the_torch_formats_run_code_when_loaded():
    assert [f.name for f in TABLE if f.runs_code] == ["torchscript", "pt2"]
    assert not FORMATS["onnx"].runs_code and not FORMATS["onnx-int8"].runs_code  # ONNX files are data


@pytest.mark.parametrize("spec", TABLE, ids=lambda f: f.name)
def test_a_format_is_found_by_its_format_or_its_runtime_name(spec):
    assert get(spec.name) is spec and get(spec.runtime) is spec
    assert runtime_name(spec.name) == spec.runtime and label(spec.runtime) == spec.label


def test_names_that_are_no_format_are_kept_as_they_are():
    assert get("eager") is None and get("tflite") is None
    assert runtime_name("eager") == "eager" and runtime_name("tflite") == "tflite"
    assert label("eager") == "PyTorch" and label("tflite") == "tflite"


def test_spellings_give_the_format_name_only_where_it_differs():
    assert spellings() == "torchscript, onnxruntime (onnx), pt2, onnxruntime-int8 (onnx-int8)"
    assert spellings([FORMATS["pt2"]]) == "pt2"


def _entries(*formats: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(format=f) for f in formats]


def test_select_keeps_the_runnable_artifacts_asked_for_by_either_name_in_table_order():
    artifacts = _entries("torchscript", "onnx", "weights", "onnx-data", "pt2")
    assert [a.format for a in select(artifacts, ())] == ["torchscript", "onnx", "pt2"]  # side files never run
    assert [a.format for a in select(artifacts, ("pt2", "onnxruntime"))] == ["onnx", "pt2"]
    assert [a.format for a in select(artifacts, ("onnx", "eager"))] == ["onnx"]  # eager is always there


@pytest.mark.parametrize("wanted", [("tflite",), ("onnx-int8",), ("weights",)], ids=str)
def test_select_refuses_a_runtime_the_folder_lacks_naming_what_it_has(wanted):
    with pytest.raises(UsageError) as caught:
        select(_entries("torchscript", "onnx", "weights"), wanted)
    assert str(caught.value) == (
        f"this folder has no runtime {wanted[0]!r}: it has eager, torchscript, onnxruntime (onnx)"
    )


@pytest.mark.parametrize("spec", TABLE, ids=lambda f: f.name)
def test_each_format_names_the_module_that_exports_it(spec):
    module = exporter_module(spec.name)
    assert module.__name__ == f"exporter.formats.{spec.module}" and callable(module.export)


def test_the_table_is_read_without_importing_torch():
    code = "import sys, exporter.formats as f; f.TABLE, f.spellings(); print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_dynamic_shapes_share_one_dim_per_label_and_take_the_suggested_bounds():
    spec = ExportSpec(("x", "y"), ("out",), dynamic=({0: "batch", 1: "seq"}, {0: "batch"}))
    free = spec.dynamic_shapes()
    assert free[0][0] is free[1][0]  # one batch for both inputs: torch.export ties them
    assert free[0][0].__name__ == "batch" and free[0][1].__name__ == "seq"
    bounded = spec.dynamic_shapes({"seq": (3, 512)})
    assert (bounded[0][1].min, bounded[0][1].max) == (3, 512)
    assert (free[0][1].min, free[0][1].max) != (3, 512)  # the bound is only where it was asked for
    assert bounded[1][0].__name__ == "batch" and bounded[1][0].max == free[1][0].max


# --- every format together (slow: exports every registered model to every format) ---------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(models.REGISTRY), ids=str)
def test_every_format_exports_and_verifies(all_formats, name):
    result = all_formats[name]
    assert result.passed, result.report.failures
    runtimes = {r.runtime for r in result.report.runtimes}
    assert runtimes == {"torchscript", "onnxruntime", "pt2", "onnxruntime-int8"}
    assert [a.format for a in result.manifest.artifacts] == ["torchscript", "onnx", "pt2", "onnx-int8"]
    accounts = result.report.parameters.artifacts
    assert all(a.total == result.report.parameters.eager_total for a in accounts.values())
