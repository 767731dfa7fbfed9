"""A decoder with its KV cache (``--task text-generation-with-past``): Optimum's input and output names, the
mask's axis tied to the past and the new tokens, a prefill step (an empty past) and several past lengths
verified; broken twins (a weight changed, two present outputs swapped) fail for their cause. The slow tests
build tiny random-config GPT2 and Llama models in the test (nothing is downloaded)."""

from __future__ import annotations

import pytest

from exporter.eager import kv_cache
from exporter.eager.sources import ModelSource
from exporter.errors import InputSpecError, ManifestError, ModelNotFoundError
from exporter.interface import InputSpec, Interface, label_size
from exporter.verification.cases import Case, prefill_cases

GPT2_CONFIG = {"model_type": "gpt2", "vocab_size": 99, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}
OPTIMUM_INPUTS = [
    "input_ids",
    "past_key_values.0.key",
    "past_key_values.0.value",
    "past_key_values.1.key",
    "past_key_values.1.value",
    "attention_mask",
    "position_ids",
]
OPTIMUM_OUTPUTS = ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]


def test_the_inputs_are_optimums_names_in_optimums_order():
    specs = kv_cache.infer_inputs(GPT2_CONFIG, "config.json")
    assert [s.name for s in specs] == OPTIMUM_INPUTS
    past = specs[1]
    assert past.shape == (1, 4, kv_cache.EXAMPLE_PAST, 8) and past.axes == {0: "batch", 2: "past_sequence"}
    assert specs[-2].axes[1] == "past_sequence+sequence"
    assert kv_cache.present_names(2) == tuple(OPTIMUM_OUTPUTS[1:])


def test_llama_grouped_heads_and_a_config_without_layers():
    llama = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4}
    specs = kv_cache.infer_inputs({**llama, "num_key_value_heads": 2}, "config.json")
    assert len(specs) == 3 + 2 * 3 and specs[1].shape == (1, 2, kv_cache.EXAMPLE_PAST, 8)
    with pytest.raises(ModelNotFoundError, match="layer count"):
        kv_cache.infer_inputs({"vocab_size": 99}, "config.json")
    with pytest.raises(ModelNotFoundError, match="vocab_size"):
        kv_cache.infer_inputs({**llama, "vocab_size": None}, "config.json")


def test_a_sum_label_is_the_sum_of_its_parts_in_every_case_and_never_drawn_alone():
    specs = kv_cache.infer_inputs(GPT2_CONFIG, "config.json")
    mask = specs[-2]
    assert Interface(specs).labels == {"past_sequence": 8, "sequence": 4}  # the sum follows, it is not a label
    assert Case(2, (("past_sequence", 0), ("sequence", 3))).shape(mask) == (2, 3)
    assert Case(1, (("past_sequence", 16), ("sequence", 1))).shape(mask) == (1, 17)
    assert label_size("a+b", {"a": 2}, 7) == 7  # a part unknown: the example's size, as for a plain label


def test_prefill_is_tried_for_a_cache_past_axis_and_for_nothing_else():
    specs = kv_cache.infer_inputs(GPT2_CONFIG, "config.json")
    labels = Interface(specs).labels
    assert prefill_cases(specs, labels) == [Case(2, (("past_sequence", 0), ("sequence", 4)))]
    plain = tuple(s for s in specs if s.kind != "kv-cache")
    assert prefill_cases(plain, labels) == []


@pytest.mark.parametrize("label", ["a+", "+a", "a+1b", "a + b", "a-b"])
def test_a_malformed_sum_label_is_refused(label):
    with pytest.raises(InputSpecError, match="label"):
        InputSpec("x", (1, 4), dynamic=((1, label),))


@pytest.mark.parametrize("name", ["past_key_values..0", ".key", "a.b-c", "past key"])
def test_a_malformed_dotted_input_name_is_refused(name):
    with pytest.raises(InputSpecError, match="identifier"):
        InputSpec(name, (1, 4))


def test_a_manifest_task_this_tool_does_not_know_is_refused():
    source = {"kind": "transformers", "class_name": "AutoModelForCausalLM", "config": GPT2_CONFIG}
    recorded = ModelSource.from_manifest({"source": {**source, "task": kv_cache.TASK}})
    assert recorded.task == kv_cache.TASK and recorded.to_manifest()["task"] == kv_cache.TASK
    with pytest.raises(ManifestError, match="task"):
        ModelSource.from_manifest({"source": {**source, "task": "os.system"}})


# --- exported and verified: tiny random GPT2 and Llama -----------------------------------------------------


def _decoder(name: str):
    transformers = pytest.importorskip("transformers", reason="the [transformers] extra is not installed")
    if name == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4))
    config = transformers.LlamaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config)


def _exported(tmp_path, name: str):
    import torch

    from exporter import ExportConfig, export
    from exporter.config import VerifyConfig

    torch.manual_seed(0)
    model = _decoder(name)
    model.save_pretrained(tmp_path / name)
    quick = VerifyConfig(samples=8, batch_sizes=(1, 3), probes=False)
    config = ExportConfig(out=tmp_path / "out", device="cpu", formats=("onnx",), task=kv_cache.TASK,
                          verify_config=quick)  # fmt: skip
    return export(str(tmp_path / name), config), quick, {n for n, _ in model.named_parameters()}


def _tried(folder) -> dict:
    import json

    return json.loads((folder / "verification.json").read_text())["sizes_tried"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_the_cache_export_passes_at_prefill_and_several_past_lengths_with_optimums_names(tmp_path, name):
    import onnx

    result, _, _ = _exported(tmp_path, name)
    assert result.passed, result.report.failures
    graph = onnx.load(str(result.path / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == OPTIMUM_INPUTS
    assert [o.name for o in graph.output] == OPTIMUM_OUTPUTS
    assert [i["name"] for i in result.manifest.inputs] == OPTIMUM_INPUTS
    past = _tried(result.path)["past_sequence"]
    assert 0 in past and len([p for p in past if p > 0]) >= 2, past  # prefill, and decode steps at 2+ past lengths
    present = next(o for o in result.manifest.outputs if o["name"] == "present.0.key")
    assert present["shape"][2] == "past_sequence+sequence"


def _swap_outputs(folder, first: str, second: str) -> None:
    """Swap which tensors the ONNX graph returns as ``first`` and ``second`` (a wiring mistake)."""
    import onnx

    path = folder / "model.onnx"
    model = onnx.load(str(path))
    rename = {first: second, second: first}
    for node in model.graph.node:
        node.output[:] = [rename.get(o, o) for o in node.output]
        node.input[:] = [rename.get(i, i) for i in node.input]
    onnx.save(model, str(path))


@pytest.mark.slow
def test_broken_twins_of_the_cache_export_fail_for_their_cause(tmp_path):
    from exporter import verify
    from tests.helpers import change_onnx_weight, restamp

    result, quick, names = _exported(tmp_path, "gpt2")
    assert result.passed, result.report.failures
    _swap_outputs(result.path, "present.1.key", "present.1.value")
    restamp(result.path)
    swapped = verify(result.path, quick, write=False)  # rebuilt from the recorded config, task and weights
    assert not swapped.passed
    assert any("present.1.key" in f for f in swapped.failures), swapped.failures
    assert not any("logits" in f for f in swapped.failures), swapped.failures  # the logits are still right
    _swap_outputs(result.path, "present.1.key", "present.1.value")  # wired back: a weight changed instead
    import onnx

    graph = onnx.load(str(result.path / "model.onnx")).graph
    weight = next(i.name for i in graph.initializer if i.name in names and "h.1.attn.c_attn.weight" in i.name)
    change_onnx_weight(result.path, weight, delta=3.0)
    restamp(result.path)
    broken = verify(result.path, quick, write=False)
    assert not broken.passed
    assert any(weight in f for f in broken.failures), broken.failures


@pytest.mark.slow
def test_an_encoder_folder_asked_for_its_cache_is_one_line_and_exit_2(tmp_path):
    import torch
    from click.testing import CliRunner

    from exporter.cli.commands import cli

    transformers = pytest.importorskip("transformers", reason="the [transformers] extra is not installed")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    args = ["export", str(tmp_path / "bert"), "--task", kv_cache.TASK, "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "decoder-only causal LM" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no half-written folder
