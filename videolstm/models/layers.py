"""Small layers the variants share: the per-step readout and the initial-state layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Readout(nn.Module):
    """Per-step classifier: (B, T, F) → [dropout] → Linear(fc_dim) → tanh → dropout → Linear(K) → (B, T, K).

    ``input_dropout`` (the vector variants' dropout on h_t) is 0 for the convolutional ones.
    """

    def __init__(self, in_features: int, fc_dim: int, num_classes: int, dropout: float, input_dropout: float = 0.0):
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout)
        self.fc = nn.Linear(in_features, fc_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fc_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.dropout(torch.tanh(self.fc(self.input_dropout(features)))))


class MapInitialState(nn.Module):
    """ConvLSTM initial state from the clip mean: x (B, T, C, H, W) → (h0, c0), each (B, Hd, H, W).

    h0 = tanh(conv_h(mean_t x)), c0 = tanh(conv_c(mean_t x)), k×k "same" convolutions.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        self.conv_h = nn.Conv2d(input_channels, hidden_channels, kernel_size, padding=kernel_size // 2)
        self.conv_c = nn.Conv2d(input_channels, hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = x.mean(dim=1)
        return torch.tanh(self.conv_h(mean)), torch.tanh(self.conv_c(mean))


class VectorInitialState(nn.Module):
    """LSTM initial state from the clip mean: x (B, T, D) or (B, T, C, H, W) → (h0, c0), each (B, Hd).

    The mean runs over time (and the H·W positions for maps); h0 = tanh(Linear_h(mean)),
    c0 = tanh(Linear_c(mean)).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.linear_h = nn.Linear(input_size, hidden_size)
        self.linear_c = nn.Linear(input_size, hidden_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = x.mean(dim=1) if x.dim() == 3 else x.mean(dim=(1, 3, 4))
        return torch.tanh(self.linear_h(mean)), torch.tanh(self.linear_c(mean))
