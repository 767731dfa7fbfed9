"""FLOPs per sample from a model's Linear and Conv2d layers: what a forward pass costs.

``bench`` divides it by latency (GFLOP/s); export records it in the manifest, where verification
reads it to size its default sample budget (a model this expensive per sample gets one whole
batch per case, as a model with this many parameters does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

FLOP_LAYERS = (nn.Linear, nn.Conv2d)  # the layers count_flops counts; others count zero


@dataclass
class FlopCount:
    """FLOPs of one sample through the model's Linear and Conv2d layers: 2 x multiply-accumulates.

    Bias additions, activations, pooling and normalisation are not counted (the usual
    convention: they are a small share next to the matrix products, and no runtime does them
    on the matrix units). ``per_sample`` is None when the model has no such layer.
    """

    per_sample: int | None
    layers: dict[str, int] = field(default_factory=dict)  # qualified layer name -> FLOPs per sample


def count_flops(model: nn.Module, example: tuple[torch.Tensor, ...] | torch.Tensor) -> FlopCount:
    """FLOPs per sample of ``model`` on ``example`` (forward's argument, or a tuple of them: a batch),
    from hooks on nn.Linear and nn.Conv2d.

    A Linear layer does ``in_features`` multiply-accumulates per output element, a Conv2d
    ``in_channels / groups * kernel height * kernel width``; FLOPs are twice that. Shapes
    come from one real forward pass, so a layer called twice counts twice and one never
    called counts zero. Runs under torch.inference_mode in eval mode (a model in training mode would update
    BatchNorm's running statistics), then restores the model's mode: the model is left as it was.
    """
    example = example if isinstance(example, tuple) else (example,)
    macs: dict[str, int] = {}
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            per_output = module.in_features
        else:
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
        name = names[module] or type(module).__name__
        macs[name] = macs.get(name, 0) + output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, FLOP_LAYERS)]
    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(*example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    batch = int(example[0].shape[0])
    layers = {name: 2 * count // batch for name, count in macs.items()}
    return FlopCount(sum(layers.values()) if layers else None, layers)
