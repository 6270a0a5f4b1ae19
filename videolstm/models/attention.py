"""Attention modules: thin holders of parameters around :mod:`videolstm.models.functional`.

Both follow the soft attention of Xu et al. as the authors' code has it
(``sparnn/layers/basic/cond_lstm_layer.py``, ``cond_conv_lstm_layer.py``,
``deep_cond_lstm_layer.py``, ``deep_cond_conv_lstm_layer.py``): a score per position from the
input features at that position and a recurrent state,

    e = u · tanh(W_c x + W_d s + b)            (+ c, a constant that cannot change a softmax)
    α = softmax over positions of β·e          (β: the inverse temperature, 1 in the paper)

* :class:`ConvAttention` — over the H×W positions of a feature map, with convolutions (eqs.
  7–8: ConvALSTM reads X_t and H_{t-1}; VideoLSTM reads X_t and the motion layer's H^m_t).
* :class:`RegionAttention` — over the N = H·W regions of pool5 as vectors (ALSTM reads x_{t,i}
  and h_{t-1}; Motion ALSTM reads x_{t,i} and the motion LSTM's h^m_t).

The score layers carry no bias where a bias could not change the softmax (it would receive a
zero gradient), so the authors' ``c_att`` has no counterpart here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videolstm.models.cells import resolve_backend
from videolstm.models.functional import conv2d_same, spatial_softmax


def _check_temperature(inverse_temperature: float) -> float:
    value = float(inverse_temperature)
    if not value > 0:
        raise ValueError(f"attention inverse temperature must be > 0, got {inverse_temperature!r}")
    return value


class ConvAttention(nn.Module):
    """Z = W_z ∗ tanh(W_xa ∗ X + W_ha ∗ S + b_a); A = softmax of β·Z over the H·W positions.

    Args:
        state_channels: channels of the state S (H_{t-1} for ConvALSTM, H^m_t for VideoLSTM).
        attention_channels: width of the tanh layer.
        kernel_size: k×k kernels of W_xa, W_ha and W_z (the paper: 1).
        input_channels: C of X (the input term W_xa ∗ X; both variants have it).
        inverse_temperature: β (the paper: 1).

    With ``reads_input=False`` the input term is left out — Z = W_z ∗ tanh(W_ha ∗ S + b_a), the
    attention depends on the state alone (VideoLSTM's ``videolstm_attention: motion``, a
    deviation from the authors kept as an option; ConvALSTM always reads X).

    Parameters: ``w_xa`` (conv C→attention_channels, holds b_a; absent without the input term,
    where ``b_a`` is its own (attention_channels,) parameter), ``w_ha`` (conv
    S→attention_channels, no bias), ``w_z`` (attention_channels → 1, no bias). The
    convolutions run as :func:`~videolstm.models.functional.conv2d_same` with the cells' backend
    rule ("gemm" on CPU, ``F.conv2d`` elsewhere).
    """

    def __init__(
        self,
        state_channels: int,
        attention_channels: int,
        kernel_size: int = 1,
        input_channels: int = 0,
        inverse_temperature: float = 1.0,
        reads_input: bool = True,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"attention kernel_size must be a positive odd int, got {kernel_size}")
        if reads_input and input_channels < 1:
            raise ValueError(f"convolutional attention needs the input features X (input_channels >= 1), got {input_channels}")
        pad = kernel_size // 2
        self.inverse_temperature = _check_temperature(inverse_temperature)
        self.reads_input = bool(reads_input)
        self.attention_channels = attention_channels
        if self.reads_input:
            self.w_xa: nn.Conv2d | None = nn.Conv2d(input_channels, attention_channels, kernel_size, padding=pad, bias=True)
        else:
            self.w_xa = None
            self.b_a = nn.Parameter(torch.zeros(attention_channels))
        self.w_ha = nn.Conv2d(state_channels, attention_channels, kernel_size, padding=pad, bias=False)
        self.w_z = nn.Conv2d(attention_channels, 1, kernel_size, padding=pad, bias=False)

    def input_term(self, x: Tensor) -> Tensor:
        """W_xa ∗ X + b_a for many frames at once: x (N, C, H, W) → (N, attention_channels, H, W).

        Without the input term (``reads_input=False``): b_a at every position (x gives the shape only).
        """
        if self.w_xa is None:
            return self.b_a.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[-2:])
        return _conv(self.w_xa, x)

    def logits(self, state: Tensor, input_term: Tensor) -> Tensor:
        """β·Z: state (B, S, H, W), input_term (B, A, H, W) → (B, 1, H, W)."""
        z = _conv(self.w_z, torch.tanh(_conv(self.w_ha, state) + input_term))
        return z * self.inverse_temperature if self.inverse_temperature != 1.0 else z

    def forward(self, state: Tensor, input_term: Tensor) -> Tensor:
        """A: state (B, S, H, W), input_term (B, A, H, W) → (B, H, W), Σ_{h,w} A = 1."""
        return spatial_softmax(self.logits(state, input_term))


def _conv(layer: nn.Conv2d, x: Tensor) -> Tensor:
    return conv2d_same(x, layer.weight, layer.bias, resolve_backend("auto", x.device))


class HiddenRegionAttention(nn.Module):
    """ALSTM attention from the previous hidden state alone (Sharma et al. 2015; the recipe before the
    authors' was adopted — a deviation): α_t = softmax_i(β·(W_i · h_{t-1} + b_i)).

    Parameters: ``scores`` Linear(Hd → N) holding W and b. ``forward(h)``: h (B, Hd) → α (B, N).
    """

    def __init__(self, hidden_size: int, num_regions: int, inverse_temperature: float = 1.0):
        super().__init__()
        self.inverse_temperature = _check_temperature(inverse_temperature)
        self.scores = nn.Linear(hidden_size, num_regions)

    def forward(self, h: Tensor) -> Tensor:
        return torch.softmax(self.scores(h) * self.inverse_temperature, dim=1)


class RegionAttention(nn.Module):
    """Soft attention over N regions: e_i = w · tanh(W_c x_i + W_d s + b), α = softmax_i(β·e).

    Args:
        input_channels: C of each region x_i.
        state_size: size of the state s (h_{t-1} for ALSTM, h^m_t for Motion ALSTM).
        attention_size: width of the tanh layer (the authors': C).
        inverse_temperature: β (the authors' ``temperature_inverse``, 1).

    Parameters: ``w_c`` Linear(C → A) holding b, ``w_d`` Linear(S → A, no bias), ``w``
    Linear(A → 1, no bias). Call :meth:`input_term` once for all regions of all steps, then
    ``forward(s, input_term_t)`` per step.
    """

    def __init__(self, input_channels: int, state_size: int, attention_size: int, inverse_temperature: float = 1.0):
        super().__init__()
        self.inverse_temperature = _check_temperature(inverse_temperature)
        self.w_c = nn.Linear(input_channels, attention_size)
        self.w_d = nn.Linear(state_size, attention_size, bias=False)
        self.w = nn.Linear(attention_size, 1, bias=False)

    def input_term(self, regions: Tensor) -> Tensor:
        """W_c x + b: regions (..., N, C) → (..., N, A)."""
        return self.w_c(regions)

    def forward(self, state: Tensor, input_term: Tensor) -> Tensor:
        """α: state (B, S), input_term (B, N, A) → (B, N), α ≥ 0, Σ_i α_i = 1."""
        e = self.w(torch.tanh(input_term + self.w_d(state).unsqueeze(1))).squeeze(2)
        return torch.softmax(e * self.inverse_temperature, dim=1)
