"""The seed network, exactly as the seed article writes it.

Source: ``shared/seed/pytorch-model.md`` (PyTorch basics: nn.Module). Three Linear
layers with a ReLU after each one, the last ReLU included, so every logit is >= 0
and several logits are often exactly zero (the verifier's top-1 check handles the
ties this makes). Attribute names are kept (``flatten``, ``linear_relu_stack``) so
parameter names match the article's ``named_parameters()`` listing.
"""

from __future__ import annotations

from torch import nn


class NeuralNetwork(nn.Module):
    """Flatten -> Linear(784, 512) -> ReLU -> Linear(512, 512) -> ReLU -> Linear(512, 10) -> ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
            nn.ReLU(),
        )

    def forward(self, x):  # x: (B, 28, 28)
        x = self.flatten(x)  # (B, 784)
        logits = self.linear_relu_stack(x)  # (B, 10)
        return logits
