"""Input kinds: what an input means, so it is drawn as the values users send, not uniform noise.

An attention mask drawn uniform 0/1 has rows with no attended position: softmax over nothing,
where runtimes legitimately disagree (a false alarm), and a range of 1..1 tests no masking at
all. A mask is drawn as the padding masks tokenizers make instead: per row a run of ones then
zeros (zeros then ones for left padding), at least one attended position, lengths varied across
the batch. Token ids, token type ids and position ids are integers whose range is the table
they index (found from the model's nn.Embedding when not declared); position ids count up.

Kinds are inferred from transformers' conventional input names (``KIND_OF_NAME``) and can be
declared (``--input-kind NAME:KIND``, ``InputSpec(kind=...)``); ``plain`` draws as the dtype
says. Plain data here; ``draw`` imports torch when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PADDING_MASK = "padding-mask"  # ones then zeros per row, at least one one
LEFT_PADDING_MASK = "left-padding-mask"  # zeros then ones per row, at least one one
TOKEN_IDS = "token-ids"  # uniform in the vocabulary: [0, num_embeddings - 1] of the Embedding they feed
TOKEN_TYPE_IDS = "token-type-ids"  # uniform in the token type table
POSITION_IDS = "position-ids"  # 0, 1, 2 ... per row, from a random start that keeps them in the table
PLAIN = "plain"  # as the dtype and range say (uniform)

KINDS: dict[str, str] = {  # kind -> how it is drawn, for the report and --help
    PADDING_MASK: "padding masks: per row ones then zeros, 1 to all positions attended, lengths varied",
    LEFT_PADDING_MASK: "left-padding masks: per row zeros then ones, 1 to all positions attended, lengths varied",
    TOKEN_IDS: "token ids uniform in [{low:g}, {high:g}]",
    TOKEN_TYPE_IDS: "token type ids uniform in [{low:g}, {high:g}]",
    POSITION_IDS: "position ids counting up per row, within [{low:g}, {high:g}]",
    PLAIN: "",
}
MASKS = (PADDING_MASK, LEFT_PADDING_MASK)
INDICES = (TOKEN_IDS, TOKEN_TYPE_IDS, POSITION_IDS)  # integers whose range is the table they index

KIND_OF_NAME: dict[str, str] = {  # transformers' conventional names
    "attention_mask": PADDING_MASK,
    "decoder_attention_mask": PADDING_MASK,
    "input_ids": TOKEN_IDS,
    "decoder_input_ids": TOKEN_IDS,
    "token_type_ids": TOKEN_TYPE_IDS,
    "position_ids": POSITION_IDS,
}


def infer(name: str) -> str | None:
    """The kind a conventional input name implies; None for any other name."""
    return KIND_OF_NAME.get(name)


def describe(kind: str, low: float, high: float) -> str:
    """How an input of ``kind`` is drawn, in words (the report's inputs line)."""
    return KINDS[kind].format(low=low, high=high)


def draw(
    kind: str, generator: torch.Generator, shape: tuple[int, ...], dtype: str, value_range: tuple[float, float]
) -> torch.Tensor:
    """Samples of an input of ``kind`` with ``shape`` (batch first; the last axis is the sequence)."""
    import torch

    target = getattr(torch, dtype)
    low, high = int(value_range[0]), int(value_range[1])
    if kind in MASKS:
        if not shape or shape[-1] < 1:
            return torch.ones(shape, dtype=target)
        rows = int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1
        length = shape[-1]
        lengths = torch.randint(1, length + 1, (rows,), generator=generator)  # every row attends somewhere
        if rows > 1:
            lengths[0] = length  # one row unpadded, as the longest sequence in a batch is
        positions = torch.arange(length)
        mask = positions[None, :] < lengths[:, None]
        if kind == LEFT_PADDING_MASK:
            mask = mask.flip(-1)
        return mask.reshape(shape).to(target)
    if kind == POSITION_IDS:
        length = shape[-1] if shape else 1
        span = max(0, high - low - length + 1)
        rows = shape[:-1] if len(shape) > 1 else ()
        starts = torch.randint(0, span + 1, (*rows, 1), generator=generator) + low
        return (starts + torch.arange(length)).clamp(max=high).reshape(shape).to(target)
    return torch.randint(low, high + 1, shape, generator=generator).to(target)  # token ids, token types
