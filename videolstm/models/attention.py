"""Attention modules: thin holders of parameters around :mod:`videolstm.models.functional`.

* :class:`ConvAttention` — convolutional attention (eqs. 7–8): ConvALSTM uses the input and
  state terms; VideoLSTM's motion-based attention (eqs. 10–15) uses the state term only, fed
  with the bottom (flow) ConvLSTM's H^m_t.
* :class:`RegionAttention` — ALSTM (Sharma et al. 2015): α_t = softmax_i(W_i·h_{t-1} + b_i).
* :class:`MotionRegionAttention` — motion ALSTM: e_{t,i} = w·tanh(W_m m_{t,i} + W_h h_{t-1} + b).

The score layers have no bias where a bias could not change the softmax (it would receive a
zero gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videolstm.models.cells import resolve_backend
from videolstm.models.functional import conv2d_same, spatial_softmax


class ConvAttention(nn.Module):
    """Z = W_z ∗ tanh(W_xa ∗ X + W_ha ∗ S + b_a); A = softmax of Z over the H·W positions.

    Args:
        state_channels: channels of the state S the attention reads (H_{t-1} for ConvALSTM,
            the motion layer's H^m_t for VideoLSTM).
        attention_channels: width of the tanh layer (the authors' code: the hidden width).
        kernel_size: k×k kernels of W_xa, W_ha and W_z (the paper: 1).
        input_channels: C of X for the input term W_xa ∗ X; None: no input term (VideoLSTM,
            where Z = W_z ∗ tanh(W_ha ∗ H^m_t + b_a)).

    Parameters: ``w_xa`` (conv C→attention_channels with the bias b_a) when there is an input
    term, else ``w_ha`` carries b_a; ``w_z`` (attention_channels → 1, no bias). The
    convolutions run as :func:`~videolstm.models.functional.conv2d_same` with the cells'
    backend rule ("gemm" on CPU, ``F.conv2d`` elsewhere).
    """

    def __init__(self, state_channels: int, attention_channels: int, kernel_size: int = 1, input_channels: int | None = None):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"attention kernel_size must be a positive odd int, got {kernel_size}")
        pad = kernel_size // 2
        self.w_xa = (
            nn.Conv2d(input_channels, attention_channels, kernel_size, padding=pad, bias=True)
            if input_channels is not None
            else None
        )
        self.w_ha = nn.Conv2d(state_channels, attention_channels, kernel_size, padding=pad, bias=input_channels is None)
        self.w_z = nn.Conv2d(attention_channels, 1, kernel_size, padding=pad, bias=False)

    def input_term(self, x: Tensor) -> Tensor:
        """W_xa ∗ X + b_a for many frames at once: x (N, C, H, W) → (N, attention_channels, H, W)."""
        if self.w_xa is None:
            raise ValueError("this attention has no input term (input_channels=None)")
        return _conv(self.w_xa, x)

    def logits(self, state: Tensor, input_term: Tensor | None = None) -> Tensor:
        """Z: state (B, S, H, W), input_term (B, A, H, W) or None → (B, 1, H, W)."""
        pre = _conv(self.w_ha, state)
        if input_term is not None:
            pre = pre + input_term
        elif self.w_xa is not None:
            raise ValueError("this attention needs the input term W_xa ∗ X (see input_term)")
        return _conv(self.w_z, torch.tanh(pre))

    def forward(self, state: Tensor, input_term: Tensor | None = None) -> Tensor:
        """A: state (B, S, H, W), input_term (B, A, H, W) or None → (B, H, W), Σ_{h,w} A = 1."""
        return spatial_softmax(self.logits(state, input_term))


def _conv(layer: nn.Conv2d, x: Tensor) -> Tensor:
    return conv2d_same(x, layer.weight, layer.bias, resolve_backend("auto", x.device))


class RegionAttention(nn.Module):
    """ALSTM attention over N regions from the previous hidden state only.

    α_t = softmax_i(W_i · h_{t-1} + b_i): ``scores`` is Linear(Hd → N) holding W and b.
    ``forward(h)``: h (B, Hd) → α (B, N), α ≥ 0, Σ_i α_i = 1.
    """

    def __init__(self, hidden_size: int, num_regions: int):
        super().__init__()
        self.scores = nn.Linear(hidden_size, num_regions)

    def forward(self, h: Tensor) -> Tensor:
        return torch.softmax(self.scores(h), dim=1)


class MotionRegionAttention(nn.Module):
    """Motion ALSTM attention: context from the flow regions m_{t,i} and h_{t-1}.

    e_{t,i} = w · tanh(W_m m_{t,i} + W_h h_{t-1} + b); α_t = softmax_i(e_t).
    Parameters: ``w_m`` Linear(C' → A) holding b, ``w_h`` Linear(Hd → A, no bias),
    ``w`` Linear(A → 1, no bias).
    """

    def __init__(self, flow_channels: int, hidden_size: int, attention_size: int):
        super().__init__()
        self.w_m = nn.Linear(flow_channels, attention_size)
        self.w_h = nn.Linear(hidden_size, attention_size, bias=False)
        self.w = nn.Linear(attention_size, 1, bias=False)

    def flow_term(self, m: Tensor) -> Tensor:
        """W_m m + b for all regions (and steps) at once: m (..., N, C') → (..., N, A)."""
        return self.w_m(m)

    def forward(self, h: Tensor, flow_term: Tensor) -> Tensor:
        """α: h (B, Hd), flow_term (B, N, A) → (B, N)."""
        e = self.w(torch.tanh(flow_term + self.w_h(h).unsqueeze(1))).squeeze(2)
        return torch.softmax(e, dim=1)
