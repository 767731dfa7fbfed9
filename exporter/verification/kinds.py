"""Drawing inputs of a kind (``interface.KINDS``) as users send them: padding masks as tokenizers make
them (per row a run of ones then zeros, or zeros then ones for left padding; at least one attended
position; lengths varied across the batch, one row unpadded), ids uniform in their table, position ids
counting up. ``inputs.sample`` and ``inputs.example`` draw every input of a kind other than plain here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..interface import LEFT_PADDING_MASK, MASKS, POSITION_IDS

if TYPE_CHECKING:
    import torch


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
