"""A folder transformers' save_pretrained wrote, as a model (eager/saved_folder.py): its class and inputs
from config.json, read as data, and the one-line refusals. Plain configs here; the exports of real
architectures, built from small random configs, are in tests/test_architectures.py."""

from __future__ import annotations

import json
import sys

import pytest

from exporter.eager import saved_folder
from exporter.eager.sources import ModelSource, resolve
from exporter.errors import ModelNotFoundError

BERT = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 99, "type_vocab_size": 2,
        "max_position_embeddings": 20}  # fmt: skip


def _folder(tmp_path, config, name="saved"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_text_models_inputs_are_ids_in_its_vocabulary_a_padding_mask_and_token_types_within_its_positions(
    tmp_path,
):
    source = resolve(str(_folder(tmp_path, BERT)))
    assert source.kind == "transformers" and source.target == "BertModel" and source.name == "saved"
    ids, mask, types = source.inputs
    assert (ids.name, ids.kind, ids.value_range, ids.shape) == ("input_ids", "token-ids", (0, 98), (1, 10))
    assert (mask.name, mask.kind) == ("attention_mask", "padding-mask") and types.value_range == (0, 1)
    assert ids.axes == {0: "batch", 1: "sequence"}  # twice the example (20) still fits the 20 positions


def test_an_image_model_takes_pixel_values_at_its_image_size_and_an_audio_model_a_second_of_samples(tmp_path):
    vit = {"model_type": "vit", "architectures": ["ViTModel"], "image_size": 24, "num_channels": 3}
    (pixels,) = resolve(str(_folder(tmp_path, vit, "vit"))).inputs
    assert (pixels.name, pixels.shape, pixels.axes) == ("pixel_values", (1, 3, 24, 24), {0: "batch"})
    audio = _folder(tmp_path, {"model_type": "wav2vec2", "conv_kernel": [3], "conv_stride": [2]}, "w2v")
    (audio / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 8000}))
    (values,) = resolve(str(audio), task="base").inputs
    assert (values.name, values.shape, values.axes) == ("input_values", (1, 8000), {0: "batch", 1: "samples"})


def test_task_picks_the_auto_class_and_an_unknown_task_or_no_architectures_is_one_line(tmp_path):
    folder = _folder(tmp_path, {**BERT, "architectures": None})
    assert resolve(str(folder), task="masked-lm").target == "AutoModelForMaskedLM"
    with pytest.raises(ModelNotFoundError, match="names no architectures: give the model's task with --task"):
        resolve(str(folder))
    with pytest.raises(ModelNotFoundError, match="--task 'poetry' is not one of base"):
        resolve(str(folder), task="poetry")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not readable JSON"),
        ('{"architectures": ["X"]}', "has no model_type"),
        ("[1]", "no model_type"),
    ],
    ids=["not-json", "no-model-type", "not-an-object"],
)
def test_a_config_that_is_not_a_transformers_config_is_one_line(tmp_path, text, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(ModelNotFoundError, match=message):
        resolve(str(folder))


def test_a_linked_config_is_refused_and_the_file_it_points_to_never_read(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(BERT))
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "config.json").symlink_to(secret)
    with pytest.raises(ModelNotFoundError, match="a link"):
        resolve(str(folder))


def test_without_transformers_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(ModelNotFoundError, match=r"needs transformers: pip install 'exporter\[transformers\]'"):
        saved_folder.model_class("BertModel")


@pytest.mark.slow  # imports transformers (seconds)
def test_only_transformers_model_classes_are_built():
    pytest.importorskip("transformers", reason="the [transformers] extra is not installed")
    with pytest.raises(ModelNotFoundError, match="is not a transformers model class"):
        saved_folder.model_class("BertConfig")
    with pytest.raises(ModelNotFoundError, match=r"has no model class 'os\.system'"):
        saved_folder.model_class("os.system")


def test_the_manifest_records_the_config_as_data_and_rebuilds_the_same_source(tmp_path):
    source = resolve(str(_folder(tmp_path, BERT)))
    recorded = source.to_manifest()
    assert recorded["kind"] == "transformers" and recorded["config"] == BERT
    again = ModelSource.from_manifest({"name": "saved", "source": recorded})
    assert (again.kind, again.target, again.config) == ("transformers", "BertModel", BERT)
    assert again.trusted(None) is again  # data only: no code the folder names runs
