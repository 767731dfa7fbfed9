"""A folder saved by transformers' ``save_pretrained`` (config.json + weights) as a model.

``resolve`` reads config.json (plain JSON, no torch, no transformers) and infers the inputs users
send: token ids in the vocabulary with a padding mask (and token type ids where the config has a
type table), a sequence axis that stays within the position table; pixel values at the config's
image size; raw audio at the feature extractor's sampling rate. ``load`` builds the model with
transformers from that folder only (``local_files_only``: nothing is downloaded; no code the folder
names is run, ``trust_remote_code`` stays off); weights come from safetensors, or a ``.bin`` that
transformers loads with ``weights_only=True``. ``build`` makes the same architecture from the config
alone, for ``verify`` to load the folder's recorded copy of the weights into.

The class is config.json's ``architectures[0]``, or the Auto class of ``--task``; it must be a
transformers model class (nothing else is imported).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError, first_line
from ..interface import InputSpec

if TYPE_CHECKING:
    from torch import nn

EXTRA = "pip install 'exporter[transformers]'"
MAX_CONFIG_BYTES = 1 << 22  # a config.json is a few KB; a larger file is not one
DEFAULT_SEQUENCE = 16  # tokens in the example (verify also tries half and twice this)
DEFAULT_SAMPLING_RATE = 16_000
TASKS = {  # --task -> the Auto class that builds it
    "base": "AutoModel",
    "feature-extraction": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "text-generation": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "fill-mask": "AutoModelForMaskedLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "image-classification": "AutoModelForImageClassification",
    "audio-classification": "AutoModelForAudioClassification",
    "ctc": "AutoModelForCTC",
    "text-generation-with-past": "AutoModelForCausalLM",  # with its KV cache as named inputs and outputs
}
FORWARD_TASKS = ("text-generation-with-past",)  # tasks that change forward itself (eager/kv_cache.py), recorded


def is_saved_folder(spec: str) -> bool:
    path = Path(spec)
    return path.is_dir() and (path / "config.json").is_file()


def read_config(folder: Path) -> dict[str, Any]:
    """config.json as a dict; ModelNotFoundError in one line when it is not a transformers config."""
    path = folder / "config.json"
    if path.is_symlink() or path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelNotFoundError(f"{path} is not a transformers config (a link, or larger than a config is)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelNotFoundError(f"{path} is not readable JSON: {first_line(error)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelNotFoundError(f"{path} has no model_type: it is not a config saved by transformers")
    return config


def class_name(config: dict[str, Any], task: str | None, where: Path) -> str:
    """The transformers class to build: ``--task``'s Auto class, else config.json's ``architectures[0]``."""
    if task is not None:
        if task not in TASKS:
            raise ModelNotFoundError(f"--task {task!r} is not one of {', '.join(TASKS)}")
        return TASKS[task]
    found = config.get("architectures")
    if isinstance(found, list) and found and isinstance(found[0], str) and re.fullmatch(r"[A-Za-z_]\w*", found[0]):
        return found[0]
    raise ModelNotFoundError(
        f"{where / 'config.json'} names no architectures: give the model's task with --task ({', '.join(TASKS)})"
    )


def infer_inputs(config: dict[str, Any], folder: Path, task: str | None = None) -> tuple[InputSpec, ...]:
    """The inputs a model of this config takes, as users send them (see the module's docstring); a decode
    step's, with the cache, for ``text-generation-with-past`` (kv_cache.infer_inputs)."""
    from ..interface import PADDING_MASK, TOKEN_IDS, TOKEN_TYPE_IDS

    if task in FORWARD_TASKS:
        from . import kv_cache

        return kv_cache.infer_inputs(config, str(folder / "config.json"))

    if "conv_kernel" in config and "conv_stride" in config:  # wav2vec2, hubert, wavlm: raw audio
        rate = _sampling_rate(folder)
        return (InputSpec("input_values", (1, rate), "float32", (-1.0, 1.0), ((0, "batch"), (1, "samples"))),)
    if isinstance(config.get("image_size"), (int, list)) and "num_channels" in config:
        size = config["image_size"]
        height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
        shape = (1, int(config["num_channels"]), int(height), int(width))
        return (InputSpec("pixel_values", shape, "float32", (-1.0, 1.0)),)
    vocabulary = config.get("vocab_size")
    if not isinstance(vocabulary, int) or vocabulary < 1:
        raise ModelNotFoundError(
            f"{folder / 'config.json'}: cannot tell this model's inputs (no vocab_size, image_size or conv layers): "
            "declare them with --input NAME:SHAPE[:DTYPE[:LOW..HIGH]]"
        )
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    length = DEFAULT_SEQUENCE if not isinstance(positions, int) else max(1, min(DEFAULT_SEQUENCE, positions // 2))
    axes = ((0, "batch"), (1, "sequence"))
    specs = [
        InputSpec("input_ids", (1, length), "int64", (0, vocabulary - 1), axes, TOKEN_IDS),
        InputSpec("attention_mask", (1, length), "int64", (0, 1), axes, PADDING_MASK),
    ]
    types = config.get("type_vocab_size")
    if isinstance(types, int) and types > 0:
        specs.append(InputSpec("token_type_ids", (1, length), "int64", (0, types - 1), axes, TOKEN_TYPE_IDS))
    return tuple(specs)


def _sampling_rate(folder: Path) -> int:
    """The feature extractor's sampling rate (preprocessor_config.json), else 16 kHz; one second of it."""
    path = folder / "preprocessor_config.json"
    try:
        rate = json.loads(path.read_text()).get("sampling_rate") if path.is_file() and not path.is_symlink() else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        rate = None
    return int(rate) if isinstance(rate, int) and 0 < rate <= 192_000 else DEFAULT_SAMPLING_RATE


def model_class(name: str) -> type:
    """The transformers class ``name``; ModelNotFoundError naming the extra when transformers is missing."""
    try:
        import transformers
    except ImportError:
        raise ModelNotFoundError(f"a saved transformers folder needs transformers: {EXTRA}") from None
    found = getattr(transformers, name, None) if re.fullmatch(r"[A-Za-z_]\w*", name) else None
    if not isinstance(found, type):
        raise ModelNotFoundError(f"transformers {transformers.__version__} has no model class {name!r}")
    base = (transformers.PreTrainedModel,)
    if not (issubclass(found, base) or name.startswith("AutoModel")):
        raise ModelNotFoundError(f"{name} is not a transformers model class")
    return found


def _prepared(model: nn.Module, task: str | None) -> nn.Module:
    """Eval mode, dict outputs; without a KV cache in its outputs (a cache object is not a tensor), or, for
    ``text-generation-with-past``, with the cache as named tensors (kv_cache.with_cache)."""
    config = model.config
    if hasattr(config, "use_cache"):
        config.use_cache = False
    config.return_dict = True
    model = model.eval()
    if task in FORWARD_TASKS:
        from . import kv_cache

        layers = getattr(config, "num_hidden_layers", None)
        if not isinstance(layers, int):
            raise ModelNotFoundError(f"--task {task}: {type(model).__name__} is not a decoder with layers")
        return kv_cache.with_cache(model, layers)
    return model


def load(folder: Path, name: str, task: str | None = None) -> nn.Module:
    """The model saved in ``folder``, with its weights, built by transformers from that folder only."""
    cls = model_class(name)
    from transformers.utils import logging

    logging.disable_progress_bar()  # a bar per load on the terminal; the export says what it loaded
    logging.set_verbosity_error()  # config notes (a GPT2 bos id past a small vocabulary) are not the user's task
    try:
        model = cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as error:  # transformers raises OSError, ValueError, EnvironmentError...
        raise ModelNotFoundError(f"transformers cannot load {folder}: {first_line(error)}") from None
    return _prepared(model, task)


def build(config: dict[str, Any], name: str, task: str | None = None) -> nn.Module:
    """The architecture ``config`` describes, freshly initialised (verify then loads the recorded weights)."""
    cls = model_class(name)
    import transformers

    try:
        settings = transformers.AutoConfig.for_model(**config)
        model = (
            cls.from_config(settings, trust_remote_code=False)
            if name.startswith("AutoModel")
            else cls._from_config(settings)
        )
    except Exception as error:  # an edited or foreign config: transformers says why
        raise ModelNotFoundError(
            f"transformers cannot build {name} from the recorded config: {first_line(error)}"
        ) from None
    return _prepared(model, task)
