"""The maths of the model zoo as pure functions (no parameters, no state).

The modules in :mod:`videolstm.models.cells`, :mod:`~videolstm.models.attention` and
:mod:`~videolstm.models.variants` only hold parameters and call these.

Shape letters: B batch, T time steps, C input channels, Hd hidden channels, H×W the feature
map, N = H·W positions (regions), K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: The order of the four gates along the first axis of every gate parameter tensor
#: (``weight[0:Hd]`` is the input gate i, then forget f, output o, and the candidate g).
#: ``torch.nn.LSTMCell`` uses i, f, g, o instead; see :func:`gate_permutation`.
GATE_ORDER: tuple[str, str, str, str] = ("i", "f", "o", "g")


def gate_permutation(src_order: tuple[str, ...], dst_order: tuple[str, ...] = GATE_ORDER) -> list[int]:
    """Block indices that reorder gate blocks from ``src_order`` to ``dst_order``.

    ``dst_weight = src_weight.view(4, Hd, ...)[perm].reshape(4 * Hd, ...)``; e.g. from
    ``torch.nn.LSTMCell`` (``("i", "f", "g", "o")``) to ours: ``[0, 1, 3, 2]``.
    """
    if sorted(src_order) != sorted(dst_order) or len(set(src_order)) != len(src_order):
        raise ValueError(f"gate orders must be permutations of each other, got {src_order} and {dst_order}")
    return [src_order.index(gate) for gate in dst_order]


def lstm_update(i: Tensor, f: Tensor, o: Tensor, g: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM state update from the four gate pre-activations (no peepholes; eqs. 1–6).

    i, f, o, g, c: the same shape, (B, Hd, H, W) or (B, Hd).
    Returns (h, c): c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c').
    """
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)
    return h_next, c_next


def split_gates(gates: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split stacked pre-activations (B, 4·Hd, ...) into (i, f, o, g), each (B, Hd, ...) (views)."""
    i, f, o, g = gates.chunk(4, dim=1)
    return i, f, o, g


def im2col(x: Tensor, kernel_size: int) -> Tensor:
    """The k·k shifted copies of x as a matrix, for a stride-1 "same" convolution as one GEMM.

    x: (B, C, H, W) (any memory layout). Returns (B·H·W, C·k²); column order (C, kh, kw), C
    slowest, which is the order of a (O, C, k, k) weight viewed as (O, C·k²). For k = 1 it is
    x itself, channels last (a free view when x is already channels-last).
    """
    b, c, h, w = x.shape
    if kernel_size == 1:
        cols = x.reshape(b, c, h * w).transpose(1, 2)  # (B, HW, C)
    else:
        cols = F.unfold(x, kernel_size, padding=kernel_size // 2).transpose(1, 2)  # (B, HW, C·k·k)
    return cols.reshape(b * h * w, -1)


def col2map(out: Tensor, batch: int, height: int, width: int) -> Tensor:
    """GEMM result (B·H·W, O) → (B, O, H, W), a view (channels-last strides, no copy)."""
    o = out.shape[1]
    return out.view(batch, height * width, o).transpose(1, 2).view(batch, o, height, width)


def conv2d_same(x: Tensor, weight: Tensor, bias: Tensor | None = None, backend: str = "conv2d") -> Tensor:
    """Stride-1 "same" convolution with an odd square kernel, by one of two equal formulations.

    x: (B, C, H, W); weight: (O, C, k, k); bias: (O,) or None. Returns (B, O, H, W).

    * "conv2d": ``F.conv2d`` (oneDNN on CPU, cuDNN on GPU).
    * "gemm": :func:`im2col` + one matrix product (B·H·W, C·k²) @ (C·k², O). On 7×7 maps this
      runs at the sgemm rate, which oneDNN's direct convolution does not reach on this CPU (see
      ``ConvLSTMCell``). The result is a (B, O, H, W) view of a channels-last buffer.
    """
    b, _, h, w = x.shape
    o, _, k, _ = weight.shape
    if backend == "conv2d":
        return F.conv2d(x, weight, bias, padding=k // 2)
    if backend != "gemm":
        raise ValueError(f"conv backend must be 'conv2d' or 'gemm', got {backend!r}")
    cols = im2col(x, k)
    flat = weight.reshape(o, -1).t()  # (C·k·k, O)
    out = torch.mm(cols, flat) if bias is None else torch.addmm(bias, cols, flat)
    return col2map(out, b, h, w)


def spatial_softmax(z: Tensor) -> Tensor:
    """Softmax over the spatial positions (eq. 8).

    z: (B, H, W) or (B, 1, H, W) attention logits. Returns A: (B, H, W), A ≥ 0, Σ_{h,w} A = 1.
    """
    if z.dim() == 4:
        if z.shape[1] != 1:
            raise ValueError(f"spatial_softmax expects z of shape (B, 1, H, W) or (B, H, W), got {tuple(z.shape)}")
        z = z[:, 0]
    if z.dim() != 3:
        raise ValueError(f"spatial_softmax expects z of shape (B, 1, H, W) or (B, H, W), got {tuple(z.shape)}")
    return torch.softmax(z.flatten(1), dim=1).view_as(z)


ATTENTION_SCALES: tuple[str, ...] = ("none", "positions")


def apply_attention(attention: Tensor, x: Tensor, scale: float = 1.0) -> Tensor:
    """Attended input of the convolutional attention (eq. 9): X̃ = A ⊙ X, per channel, no sum.

    attention: (B, H, W); x: (B, C, H, W). Returns (B, C, H, W) with X̃[b, c] = s · A[b] · X[b, c].
    ``scale`` s is 1 in the paper; ``attention_scale="positions"`` uses s = H·W, so a uniform
    attention passes X through unchanged (see :func:`attention_scale_factor`).
    """
    out = x * attention.unsqueeze(1)
    return out * scale if scale != 1.0 else out


def attention_scale_factor(mode: str, spatial_size: tuple[int, int]) -> float:
    """s of :func:`apply_attention`: 1 for "none" (eq. 9 as written), H·W for "positions".

    Why "positions" exists: a softmax over 7 × 7 positions averages 1/49, so A ⊙ X is ~49× smaller
    than X and, under RMSProp (whose steps do not grow with the needed weight scale), the
    ConvLSTM's input weights take far longer to compensate. Measured on the embedded synthetic
    set, VideoLSTM on RGB: 17.5 % test accuracy with s = 1, 37.5–47.5 % with s = H·W (3 seeds).
    The attention maps themselves (``ModelOutput.attention``) are the same softmax either way.
    """
    if mode not in ATTENTION_SCALES:
        raise ValueError(f"attention_scale must be one of {ATTENTION_SCALES}, got {mode!r}")
    return float(spatial_size[0] * spatial_size[1]) if mode == "positions" else 1.0


def attention_pool(alpha: Tensor, x: Tensor) -> Tensor:
    """Soft-attention context of ALSTM (Sharma et al. 2015): Σ_i α_i x_i over the N regions.

    alpha: (B, N) or (B, H, W); x: (B, C, H, W) or (B, C, N) (channels first, as pool5 maps).
    Returns (B, C).
    """
    b, c = x.shape[:2]
    regions = x.reshape(b, c, -1)  # (B, C, N)
    weights = alpha.reshape(b, -1, 1)  # (B, N, 1)
    return torch.bmm(regions, weights).squeeze(2)


def sequence_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy summed over the time steps, averaged over the batch (the paper's loss).

    logits: (B, T, K); labels: (B,) one class per clip (the same target at every step) or
    (B, T) one per step (int64). Returns a scalar.
    """
    if logits.dim() != 3:
        raise ValueError(f"sequence_loss expects logits of shape (B, T, K), got {tuple(logits.shape)}")
    b, t, k = logits.shape
    if labels.dim() == 1:
        if labels.shape[0] != b:
            raise ValueError(f"sequence_loss: labels (B,) must match logits' B={b}, got {tuple(labels.shape)}")
        labels = labels.unsqueeze(1).expand(b, t)
    elif labels.shape != (b, t):
        raise ValueError(f"sequence_loss expects labels of shape (B,) or (B, T) = ({b}, {t}), got {tuple(labels.shape)}")
    per_step = F.cross_entropy(logits.reshape(b * t, k), labels.reshape(b * t), reduction="sum")
    return per_step / b
