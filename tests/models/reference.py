"""Naive reference implementations of the variants, written straight from the equations.

They read a built model's parameters by name and recompute everything step by step with
plain ``F.conv2d`` / ``F.linear`` over concatenated inputs: no precomputation, no gate
splitting, no execution modes. Tests compare the library's fast paths against these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def lstm_step(weight: Tensor, bias: Tensor, inp: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """gates = W ∗ cat(inp, h) + b (gate order i, f, o, g); no peepholes."""
    both = torch.cat([inp, h], dim=1)
    if weight.dim() == 2:
        gates = F.linear(both, weight, bias)
    else:
        gates = F.conv2d(both, weight, bias, padding=weight.shape[-1] // 2)
    i, f, o, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def conv(x: Tensor, layer) -> Tensor:
    return F.conv2d(x, layer.weight, layer.bias, padding=layer.weight.shape[-1] // 2)


def softmax_positions(z: Tensor) -> Tensor:
    """z (B, H, W) → exp(z) / Σ_{h,w} exp(z)."""
    e = torch.exp(z - z.amax(dim=(1, 2), keepdim=True))
    return e / e.sum(dim=(1, 2), keepdim=True)


def readout(model, features: Tensor) -> Tensor:
    r = model.readout
    return F.linear(torch.tanh(F.linear(features, r.fc.weight, r.fc.bias)), r.classifier.weight, r.classifier.bias)


def map_init(init, x: Tensor, hidden: int) -> tuple[Tensor, Tensor]:
    if init is None:
        z = x.new_zeros(x.shape[0], hidden, *x.shape[3:])
        return z, z
    mean = x.mean(dim=1)
    return torch.tanh(conv(mean, init.conv_h)), torch.tanh(conv(mean, init.conv_c))


def vector_init(init, x: Tensor, hidden: int) -> tuple[Tensor, Tensor]:
    if init is None:
        z = x.new_zeros(x.shape[0], hidden)
        return z, z
    mean = x.mean(dim=1) if x.dim() == 3 else x.mean(dim=(1, 3, 4))
    return (
        torch.tanh(F.linear(mean, init.linear_h.weight, init.linear_h.bias)),
        torch.tanh(F.linear(mean, init.linear_c.weight, init.linear_c.bias)),
    )


def convnet(model, x: Tensor, flow=None):
    return F.linear(x, model.classifier.weight, model.classifier.bias), None


def lstm(model, x: Tensor, flow=None):
    hd = model.cell.hidden_channels
    h, c = vector_init(model.init, x, hd)
    logits = []
    for t in range(x.shape[1]):
        h, c = lstm_step(model.cell.weight, model.cell.bias, x[:, t], h, c)
        logits.append(readout(model, h))
    return torch.stack(logits, 1), None


def _region_lstm(model, x: Tensor, alpha_fn):
    b, steps, ch, hh, ww = x.shape
    hd = model.cell.hidden_channels
    h, c = vector_init(model.init, x, hd)
    logits, maps = [], []
    for t in range(steps):
        alpha = alpha_fn(t, h)  # (B, N)
        regions = x[:, t].reshape(b, ch, hh * ww)
        context = (regions * alpha[:, None, :]).sum(dim=2)  # Σ_i α_i x_i
        h, c = lstm_step(model.cell.weight, model.cell.bias, context, h, c)
        logits.append(readout(model, h))
        maps.append(alpha.view(b, hh, ww))
    return torch.stack(logits, 1), torch.stack(maps, 1)


def alstm(model, x: Tensor, flow=None):
    s = model.attention.scores
    return _region_lstm(model, x, lambda t, h: torch.softmax(F.linear(h, s.weight, s.bias), dim=1))


def motion_alstm(model, x: Tensor, flow: Tensor):
    a = model.attention
    b, _, cf, hh, ww = flow.shape

    def alpha(t: int, h: Tensor) -> Tensor:
        m = flow[:, t].reshape(b, cf, hh * ww).transpose(1, 2)  # (B, N, C')
        pre = F.linear(m, a.w_m.weight, a.w_m.bias) + F.linear(h, a.w_h.weight)[:, None, :]
        e = F.linear(torch.tanh(pre), a.w.weight)[..., 0]  # (B, N)
        return torch.softmax(e, dim=1)

    return _region_lstm(model, x, alpha)


def convlstm(model, x: Tensor, flow=None):
    hd = model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    logits = []
    for t in range(x.shape[1]):
        h, c = lstm_step(model.cell.weight, model.cell.bias, x[:, t], h, c)
        logits.append(readout(model, h.flatten(1)))
    return torch.stack(logits, 1), None


def convalstm(model, x: Tensor, flow=None):
    a, hd = model.attention, model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    logits, maps = [], []
    for t in range(x.shape[1]):
        z = conv(torch.tanh(conv(x[:, t], a.w_xa) + conv(h, a.w_ha)), a.w_z)[:, 0]  # eq. 7
        att = softmax_positions(z)  # eq. 8
        attended = x[:, t] * att[:, None]  # eq. 9
        h, c = lstm_step(model.cell.weight, model.cell.bias, attended, h, c)
        logits.append(readout(model, h.flatten(1)))
        maps.append(att)
    return torch.stack(logits, 1), torch.stack(maps, 1)


def videolstm(model, x: Tensor, flow: Tensor):
    a, hd = model.attention, model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    hm, cm = map_init(model.motion_init, flow, hd)
    logits, maps = [], []
    for t in range(x.shape[1]):
        # bottom: W^m_x ∗ M_t + W_e ∗ H_{t-1} + W^m_h ∗ H^m_{t-1} + b
        hm, cm = lstm_step(model.motion_cell.weight, model.motion_cell.bias, torch.cat([flow[:, t], h], 1), hm, cm)
        z = conv(torch.tanh(conv(hm, a.w_ha)), a.w_z)[:, 0]  # Z = W_z ∗ tanh(W_ha ∗ H^m_t + b_a)
        att = softmax_positions(z)
        h, c = lstm_step(model.cell.weight, model.cell.bias, x[:, t] * att[:, None], h, c)
        logits.append(readout(model, h.flatten(1)))
        maps.append(att)
    return torch.stack(logits, 1), torch.stack(maps, 1)


REFERENCES = {
    "convnet": convnet,
    "lstm": lstm,
    "alstm": alstm,
    "convlstm": convlstm,
    "convalstm": convalstm,
    "motion_alstm": motion_alstm,
    "videolstm": videolstm,
}
