"""A decoder language model with its KV cache as named tensors, as Optimum's ``text-generation-with-past``
exports it.

transformers 5 passes the cache as a ``DynamicCache`` object, which no runtime takes. ``with_cache`` gives
the model a forward that takes tensors only, in Optimum's order and under Optimum's names:

- ``input_ids`` (batch, sequence): the new tokens;
- ``past_key_values.N.key`` / ``past_key_values.N.value`` (batch, kv heads, past_sequence, head dim) per layer;
- ``attention_mask`` (batch, past_sequence + sequence): the past and the new tokens;
- ``position_ids`` (batch, sequence);

builds a ``DynamicCache`` from the past tensors and returns ``logits`` then ``present.N.key`` /
``present.N.value`` (the past with the new tokens appended). The dotted names are not Python identifiers:
forward takes each as an identifier (``past_key_values_0_key``) and the wrapper maps each to its layer.

The mask's axis is labelled ``past_sequence+sequence``: a sum label, whose size every case draws as the
sum of its parts (``interface.label_parts``), so the mask always matches the past and the new tokens. The
past inputs are of kind ``kv-cache``: verification also tries their past axis at 0 (the prefill step, as
Optimum's generation loop feeds it: an empty past).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError
from ..interface import KV_CACHE, PADDING_MASK, POSITION_IDS, TOKEN_IDS, InputSpec, parameter_name

if TYPE_CHECKING:
    from torch import nn

TASK = "text-generation-with-past"
PAST = "past_sequence"
SEQUENCE = "sequence"
TOTAL = f"{PAST}+{SEQUENCE}"
EXAMPLE_PAST = 8  # past tokens in the example (verify also tries 0, half and twice this)
EXAMPLE_SEQUENCE = 4  # new tokens in the example


def past_names(layers: int) -> tuple[str, ...]:
    return tuple(f"past_key_values.{n}.{part}" for n in range(layers) for part in ("key", "value"))


def present_names(layers: int) -> tuple[str, ...]:
    return tuple(f"present.{n}.{part}" for n in range(layers) for part in ("key", "value"))


def _dimensions(config: dict[str, Any], where: str) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) from a decoder's config (Llama's and GPT2's spellings)."""
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    heads = config.get("num_attention_heads", config.get("n_head"))
    hidden = config.get("hidden_size", config.get("n_embd"))
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, head_dim)):
        raise ModelNotFoundError(
            f"{where}: --task {TASK} needs a decoder config with its layer count, heads and hidden size "
            "(num_hidden_layers/n_layer, num_attention_heads/n_head, hidden_size/n_embd)"
        )
    return layers, kv_heads, head_dim


def infer_inputs(config: dict[str, Any], where: str) -> tuple[InputSpec, ...]:
    """The inputs of a decode step with its cache, as Optimum names and orders them."""
    vocabulary = config.get("vocab_size")
    if not isinstance(vocabulary, int) or vocabulary < 1:
        raise ModelNotFoundError(f"{where}: --task {TASK} needs a language model's vocab_size")
    layers, kv_heads, head_dim = _dimensions(config, where)
    positions = config.get("max_position_embeddings") or config.get("n_positions") or 1 << 20
    new = ((0, "batch"), (1, SEQUENCE))
    specs = [InputSpec("input_ids", (1, EXAMPLE_SEQUENCE), "int64", (0, vocabulary - 1), new, TOKEN_IDS)]
    cache = ((0, "batch"), (2, PAST))
    for name in past_names(layers):  # keys and values as attention makes them: centred, of unit scale
        specs.append(InputSpec(name, (1, kv_heads, EXAMPLE_PAST, head_dim), "float32", (-1.0, 1.0), cache, KV_CACHE))
    total = EXAMPLE_PAST + EXAMPLE_SEQUENCE
    specs.append(InputSpec("attention_mask", (1, total), "int64", (0, 1), ((0, "batch"), (1, TOTAL)), PADDING_MASK))
    # positions of the new tokens; the past may be as long as the table less the longest new run verify tries
    specs.append(InputSpec("position_ids", (1, EXAMPLE_SEQUENCE), "int64", (0, positions - 1), new, POSITION_IDS))
    return tuple(specs)


def with_cache(model: nn.Module, layers: int) -> nn.Module:
    """``model`` (a transformers causal LM) as one whose forward takes ``infer_inputs``' tensors by position and
    returns ``{"logits", "present.N.key", "present.N.value"}``. Shares the model's parameters and buffers (a
    shallow copy whose class adds only this forward), so parameter names and the state digest are the model's."""
    import copy

    from transformers import DynamicCache

    cls = type(model)
    names = ["input_ids", *(parameter_name(n) for n in past_names(layers)), "attention_mask", "position_ids"]

    def call(self: nn.Module, *inputs: Any) -> dict[str, Any]:
        input_ids, past, (attention_mask, position_ids) = inputs[0], inputs[1:-2], inputs[-2:]
        cache = DynamicCache()
        for layer in range(layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = cls.forward(
            self,
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        if not isinstance(out.past_key_values, DynamicCache):  # BERT's LM head, asked for a cache, returns none
            raise TypeError(
                f"{cls.__name__} returned no DynamicCache: --task {TASK} takes a decoder-only causal LM (GPT2, Llama)"
            )
        named: dict[str, Any] = {"logits": out.logits}
        for layer, cached in enumerate(out.past_key_values.layers):
            named[f"present.{layer}.key"] = cached.keys
            named[f"present.{layer}.value"] = cached.values
        return named

    # forward names each tensor (torch.export and the ONNX exporter take one parameter per input; the dotted
    # input names map to identifiers, interface.parameter_name); the names are identifiers built above
    namespace: dict[str, Any] = {}
    exec(
        f"def forward(self, {', '.join(names)}):\n    return _call(self, {', '.join(names)})\n",
        {"_call": call},
        namespace,
    )
    forward = namespace["forward"]
    cached = type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__})
    cached.__qualname__ = cls.__qualname__
    wrapped = copy.copy(model)
    wrapped.__class__ = cached
    return wrapped
