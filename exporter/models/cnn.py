"""A small convolutional network for 1x28x28 images, in the seed network's style.

Two Conv-BatchNorm-ReLU-MaxPool blocks, Dropout, a Linear head. It exercises what the
seed network does not: BatchNorm statistics (buffers, and folds an exporter may make)
and a Dropout layer that eval mode must switch off, through every exporter and the
verifier. Input is (B, 28, 28) like the seed network's, so both share one input contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    channels: tuple[int, int] = (16, 32)  # output channels of the two conv blocks
    dropout: float = 0.25  # before the head; off in eval mode
    classes: int = 10  # logits, like the seed network


class ConvBlock(nn.Module):
    """Conv 3x3 (same padding) -> BatchNorm -> ReLU -> MaxPool 2x2: halves height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):  # (B, C_in, H, W)
        return self.pool(self.relu(self.bn(self.conv(x))))  # (B, C_out, H/2, W/2)


class ConvNet(nn.Module):
    """(B, 28, 28) -> two ConvBlocks -> Flatten -> Dropout -> Linear -> (B, 10) logits."""

    def __init__(self, config: CNNConfig = CNNConfig()) -> None:
        super().__init__()
        c1, c2 = config.channels
        self.features = nn.Sequential(ConvBlock(1, c1), ConvBlock(c1, c2))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c2 * 7 * 7, config.classes)

    def forward(self, x):  # x: (B, 28, 28)
        x = x.unsqueeze(1)  # (B, 1, 28, 28): one grayscale channel
        x = self.features(x)  # (B, 32, 7, 7)
        x = self.dropout(self.flatten(x))  # (B, 1568)
        return self.head(x)  # (B, 10)
