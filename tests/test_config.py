"""config: every value a config cannot use is refused as it is made, with a UsageError naming the option;
the tolerance each output gets; ``parse_range``."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from exporter.config import (
    DEFAULT_GATES,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_TOLERANCES,
    EXACT_DTYPES,
    MAX_SAMPLES,
    QUANTIZED_TOLERANCE,
    BenchConfig,
    ExportConfig,
    Tolerance,
    TritonConfig,
    VerifyConfig,
    check_device,
    parse_range,
)
from exporter.errors import ArtifactDirError, DeviceError, InputSpecError, UsageError
from exporter.interface import InputSpec

# --- VerifyConfig: refused values, each with the option it names ------------------------------------------


@pytest.mark.parametrize(
    "change, option",
    [
        ({"atol": math.nan}, "--atol"),  # NaN compares False with everything: it would pass every element
        ({"rtol": math.nan}, "--rtol"),
        ({"atol": -1e-5}, "--atol"),
        ({"rtol": math.inf}, "--rtol must be finite"),
        ({"atol": True}, "--atol"),  # a bool is not a number here
        ({"min_agreement": 1.5}, "--min-agreement"),
        ({"min_agreement": math.nan}, "--min-agreement"),
        ({"max_accuracy_drop": 0.01}, "--max-accuracy-drop needs labelled data"),
        ({"max_accuracy_drop": 2.0, "inputs_path": "labelled.npz"}, "--max-accuracy-drop must be from 0 to 1"),
        ({"samples": 0}, "--samples"),
        ({"samples": MAX_SAMPLES + 1}, "--samples"),
        ({"batch_sizes": (1, 0)}, "--batch-size"),
        ({"batch_sizes": (MAX_SAMPLES + 1,)}, "--batch-size"),
        ({"input_range": (1.0, 1.0)}, "--input-range"),
        ({"input_range": (0.0, math.nan)}, "--input-range"),
        ({"distribution": "gaussian"}, "--distribution"),
        ({"nan_policy": "ignore"}, "--nan-policy"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**63}, "--seed"),
        ({"seed": 1.5}, "--seed"),
        ({"seed": True}, "--seed"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={v!r}" for k, v in v.items()),
)
def test_verify_config_refuses_a_bad_value_naming_its_option(change, option):
    with pytest.raises(UsageError, match=option) as caught:
        VerifyConfig(**change)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"atol": 0.0, "rtol": 0.0},
        {"atol": 1e9},
        {"min_agreement": 0.0},
        {"min_agreement": 1.0},
        {"max_accuracy_drop": 0.005, "inputs_path": "labelled.npz"},
        {"samples": 1},
        {"samples": MAX_SAMPLES},
        {"batch_sizes": (1, MAX_SAMPLES)},
        {"input_range": (-1.0, 1.0)},
        {"distribution": "normal", "nan_policy": "match"},
        {"seed": 0},
        {"seed": 2**63 - 1},
    ],
    ids=lambda v: ",".join(f"{k}={v!r}" for k, v in v.items()),
)
def test_verify_config_takes_the_values_at_the_edges_of_the_allowed(change):
    config = VerifyConfig(**change)
    assert all(getattr(config, k) == v for k, v in change.items())


@pytest.mark.parametrize(
    "device",
    [
        "gpu",
        "cuda:",
        "cuda:12345",
        "CPU",
        "cuda:-1",
        " cpu",
        "cpu\n",  # a final newline: $ alone would let it through
    ],
)
def test_a_device_that_is_not_auto_cpu_cuda_or_cuda_n_is_refused(device):
    with pytest.raises(DeviceError, match="is not auto, cpu, cuda or cuda:N") as caught:
        VerifyConfig(device=device)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("device", [None, "auto", "cpu", "cuda", "cuda:0", "cuda:1234"])
def test_a_device_spelled_as_documented_is_taken_whether_or_not_it_exists(device):
    check_device(device)
    assert VerifyConfig(device=device).device == device


def test_output_files_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    with pytest.raises(ArtifactDirError, match="--save-inputs"):
        VerifyConfig(save_inputs=tmp_path)  # a folder, not a file
    with pytest.raises(ArtifactDirError, match="--save-outputs"):
        VerifyConfig(save_outputs=tmp_path / "missing" / "out.npz")
    ok = VerifyConfig(save_inputs=tmp_path / "in.npz", save_outputs=tmp_path / "out.npz")
    assert ok.save_inputs == tmp_path / "in.npz" and not ok.save_inputs.exists()  # checked, not written


# --- the tolerance each output gets ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", EXACT_DTYPES)
def test_exact_dtypes_compare_exactly_whatever_tolerance_is_given(dtype):
    for config in (VerifyConfig(), VerifyConfig(atol=1.0, rtol=1.0)):
        assert config.tolerance(dtype) == Tolerance(atol=0.0, rtol=0.0)
        assert config.tolerance(dtype, quantized=True) == Tolerance(atol=0.0, rtol=0.0)


@pytest.mark.parametrize("dtype", sorted(DEFAULT_TOLERANCES))
def test_float_dtypes_get_their_documented_defaults_and_gates(dtype):
    tolerance = VerifyConfig().tolerance(dtype)
    assert (tolerance.atol, tolerance.rtol) == DEFAULT_TOLERANCES[dtype] != (0.0, 0.0)
    assert (tolerance.scale, tolerance.min_cosine) == DEFAULT_GATES[dtype] and tolerance.top1
    assert tolerance.min_agreement is None and tolerance.elementwise


def test_an_unknown_dtype_gets_float32s_tolerance():
    assert Tolerance.for_dtype("float8_e4m3") == Tolerance.for_dtype("float32") == VerifyConfig().tolerance("complex")
    assert Tolerance.for_dtype("float16") != Tolerance.for_dtype("float32")


def test_a_quantised_runtime_gets_the_int8_policy_and_the_configs_agreement():
    tolerance = VerifyConfig(min_agreement=0.95).tolerance("float32", quantized=True)
    assert (tolerance.atol, tolerance.rtol) == QUANTIZED_TOLERANCE and tolerance.min_agreement == 0.95
    assert VerifyConfig().tolerance("float32", quantized=True).min_agreement == DEFAULT_MIN_AGREEMENT
    # Making fp32 exact does not make int8 exact: its policy is its own.
    exact = VerifyConfig(atol=0.0, rtol=0.0)
    assert (exact.tolerance("float32", quantized=True).atol, exact.tolerance("float32").atol) == (1e-2, 0.0)
    assert VerifyConfig().tolerance("float32").min_agreement is None  # fp32 is judged element by element


def test_a_hand_set_atol_or_rtol_replaces_its_half_and_drops_the_whole_output_gates():
    atol_only = VerifyConfig(atol=1e-3).tolerance("float16")
    assert (atol_only.atol, atol_only.rtol) == (1e-3, DEFAULT_TOLERANCES["float16"][1])
    rtol_only = VerifyConfig(rtol=0.5).tolerance("float32")
    assert (rtol_only.atol, rtol_only.rtol) == (DEFAULT_TOLERANCES["float32"][0], 0.5)
    for given in (atol_only, rtol_only):
        assert given.scale is None and given.min_cosine is None and given.top1  # the user chose the bound


@pytest.mark.parametrize(
    "fields, name",
    [({"atol": math.nan}, "--atol"), ({"rtol": -1.0}, "--rtol"), ({"min_agreement": 1.01}, "--min-agreement")],
    ids=["nan-atol", "negative-rtol", "agreement"],
)
def test_a_tolerance_itself_refuses_a_value_that_would_pass_everything(fields, name):
    with pytest.raises(UsageError, match=name):
        Tolerance(**{"atol": 0.0, "rtol": 0.0, **fields})
    assert Tolerance(atol=0.0, rtol=0.0, min_agreement=1.0).min_agreement == 1.0


# --- ExportConfig ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"formats": ("tflite",)}, "unknown format tflite: choose from"),
        ({"formats": ()}, r"unknown format \(none\)"),
        ({"onnx_exporter": "torchscript"}, "--onnx-exporter"),
        ({"dtype": "int8"}, "--dtype"),
        ({"input_shape": (1, 4), "inputs": (InputSpec("x", (1, 4)),)}, "not both"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**63}, "--seed"),
        ({"device": "gpu"}, "is not auto, cpu, cuda"),
    ],
    ids=["format", "no-format", "exporter", "dtype", "shape-and-inputs", "seed-negative", "seed-2**63", "device"],
)
def test_export_config_refuses_a_bad_value_naming_its_option(tmp_path, change, message):
    with pytest.raises(UsageError, match=message) as caught:
        ExportConfig(out=tmp_path, **change)
    assert caught.value.exit_code == 2


def test_export_config_refuses_an_out_that_is_a_file_and_takes_one_it_can_create(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(ArtifactDirError, match="--out"):
        ExportConfig(out=tmp_path / "file")
    config = ExportConfig(out=tmp_path / "new" / "artifacts", formats=("onnx", "pt2"), dtype="float16", seed=2**63 - 1)
    assert config.formats == ("onnx", "pt2") and not (tmp_path / "new").exists()  # checked, not made


def test_example_inputs_are_the_inputs_given_or_one_float_input_from_the_shape(tmp_path):
    ids = InputSpec("ids", (1, 8), "int64", (0, 9))
    assert ExportConfig(out=tmp_path, inputs=(ids,)).example_inputs() == (ids,)
    assert ExportConfig(out=tmp_path, input_shape=(2, 5)).example_inputs() == (InputSpec("input", (2, 5)),)
    assert ExportConfig(out=tmp_path).example_inputs() is None  # the registry's shape, or an error later


# --- BenchConfig -----------------------------------------------------------------------------------------

FAST = BenchConfig(batch_sizes=(1, 3), warmup=1, warmup_s=0, repeats=2, min_time_s=0, peak_runs=1, accuracy_samples=12)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_sizes": (0,)}, "batch sizes must be positive"),
        ({"batch_sizes": (1, -4)}, "batch sizes must be positive"),
        ({"batch_sizes": ()}, "batch sizes must be positive"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"repeats": 0}, "repeats"),
        ({"runtimes": ("tflite",)}, "no runtime 'tflite'"),
        ({"accuracy_samples": 0}, "--accuracy-samples must be from 1"),
        ({"accuracy_samples": MAX_SAMPLES + 1}, "--accuracy-samples must be from 1"),
        ({"warmup": -1}, "warm-up calls and times must be >= 0"),
        ({"min_time_s": -0.1}, "warm-up calls and times must be >= 0"),
        ({"peak_runs": 0}, "peak runs >= 1"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**63}, "--seed"),
    ],
    ids=[
        "zero",
        "negative",
        "none",
        "threads",
        "repeats",
        "runtime",
        "accuracy",
        "accuracy-huge",
        "warmup",
        "min-time",
        "peak-runs",
        "seed-negative",
        "seed-2**63",
    ],
)
def test_bad_settings_are_usage_errors_before_any_folder_is_read(change, message):
    with pytest.raises(UsageError, match=message) as caught:
        replace(FAST, **change)  # the config refuses them as it is made: bench never sees them
    assert caught.value.exit_code == 2


def test_bench_takes_runtime_and_format_names_and_zero_warm_up():
    config = replace(FAST, runtimes=("onnx-int8", "onnxruntime", "pt2", "torchscript"), warmup=0, min_time_s=0)
    assert config.runtimes == ("onnx-int8", "onnxruntime", "pt2", "torchscript")


def test_a_device_bench_cannot_use_is_refused_before_anything_loads():
    with pytest.raises(UsageError, match="is not auto, cpu, cuda"):
        BenchConfig(device="gpu")
    assert BenchConfig().device == "cpu"  # the CPU unless asked: the numbers a CPU server would see


# --- TritonConfig ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 2**31, 1.5, True, "8"])
def test_a_bad_max_batch_size_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="max-batch-size") as caught:
        TritonConfig(max_batch_size=bad)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("good", [0, 1, 64, 2**31 - 1])
def test_every_max_batch_size_model_config_holds_is_taken(good):
    assert TritonConfig(max_batch_size=good).max_batch_size == good


# --- parse_range -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected", [("0,1", (0.0, 1.0)), ("-1.5, 2e3", (-1.5, 2000.0)), ("-2,-1", (-2.0, -1.0))]
)
def test_parse_range_reads_low_and_high(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "is not LOW,HIGH"),
        ("a,b", "is not LOW,HIGH"),
        ("0,1,2", "is not LOW,HIGH"),
        ("", "is not LOW,HIGH"),
        ("1,0", "finite LOW < HIGH"),
        ("1,1", "finite LOW < HIGH"),
        ("0,inf", "finite LOW < HIGH"),
        ("nan,1", "finite LOW < HIGH"),
    ],
)
def test_parse_range_refuses_anything_else(text, message):
    with pytest.raises(InputSpecError, match=message):
        parse_range(text)
