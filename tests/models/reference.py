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
    """Dropout is off in eval and in these tests: FC → tanh → classifier."""
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


def region_scores(att, regions: Tensor, state: Tensor) -> Tensor:
    """e_i = u · tanh(W_c x_i + W_d s + b), times β, then softmax over i.

    regions (B, N, C), state (B, S) → α (B, N).
    """
    pre = F.linear(regions, att.w_c.weight, att.w_c.bias) + F.linear(state, att.w_d.weight)[:, None, :]
    e = F.linear(torch.tanh(pre), att.w.weight)[..., 0]
    return torch.softmax(att.inverse_temperature * e, dim=1)


def alstm(model, x: Tensor, flow=None):
    b, steps, ch, hh, ww = x.shape
    hd = model.cell.hidden_channels
    h, c = vector_init(model.init, x, hd)
    logits, maps = [], []
    for t in range(steps):
        regions = x[:, t].reshape(b, ch, hh * ww)
        alpha = region_scores(model.attention, regions.transpose(1, 2), h)  # from x_{t,i} and h_{t-1}
        context = (regions * alpha[:, None, :]).sum(dim=2)  # Σ_i α_i x_i
        h, c = lstm_step(model.cell.weight, model.cell.bias, context, h, c)
        logits.append(readout(model, h))
        maps.append(alpha.view(b, hh, ww))
    return torch.stack(logits, 1), torch.stack(maps, 1)


def motion_alstm(model, x: Tensor, flow: Tensor):
    """Bottom LSTM over the flow vectors f_t with input cat(f_t, h_{t-1}); attention from x and h^m_t."""
    b, steps, ch, hh, ww = x.shape
    hd = model.cell.hidden_channels
    h, c = vector_init(model.init, x, hd)
    hm, cm = vector_init(model.motion_init, flow, model.motion_cell.hidden_channels)
    logits, maps = [], []
    for t in range(steps):
        hm, cm = lstm_step(model.motion_cell.weight, model.motion_cell.bias, torch.cat([flow[:, t], h], 1), hm, cm)
        regions = x[:, t].reshape(b, ch, hh * ww)
        alpha = region_scores(model.attention, regions.transpose(1, 2), hm)
        h, c = lstm_step(model.cell.weight, model.cell.bias, (regions * alpha[:, None, :]).sum(dim=2), h, c)
        logits.append(readout(model, h))
        maps.append(alpha.view(b, hh, ww))
    return torch.stack(logits, 1), torch.stack(maps, 1)


def convlstm(model, x: Tensor, flow=None):
    hd = model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    logits = []
    for t in range(x.shape[1]):
        h, c = lstm_step(model.cell.weight, model.cell.bias, x[:, t], h, c)
        logits.append(readout(model, h.flatten(1)))
    return torch.stack(logits, 1), None


def conv_attention(a, x_t: Tensor, state: Tensor) -> Tensor:
    """Eqs. 7–8: Z = W_z ∗ tanh(W_xa ∗ X + W_ha ∗ S + b_a); A = softmax over positions of β Z."""
    z = conv(torch.tanh(conv(x_t, a.w_xa) + conv(state, a.w_ha)), a.w_z)[:, 0]
    return softmax_positions(a.inverse_temperature * z)


def convalstm(model, x: Tensor, flow=None):
    a, hd = model.attention, model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    logits, maps = [], []
    for t in range(x.shape[1]):
        att = conv_attention(a, x[:, t], h)  # from X_t and H_{t-1}
        attended = x[:, t] * att[:, None] * model.attended_scale  # eq. 9 (scale 1 unless "positions")
        h, c = lstm_step(model.cell.weight, model.cell.bias, attended, h, c)
        logits.append(readout(model, h.flatten(1)))
        maps.append(att)
    return torch.stack(logits, 1), torch.stack(maps, 1)


def videolstm(model, x: Tensor, flow: Tensor):
    a, hd = model.attention, model.cell.hidden_channels
    h, c = map_init(model.init, x, hd)
    hm, cm = map_init(model.motion_init, flow, model.motion_cell.hidden_channels)
    logits, maps = [], []
    for t in range(x.shape[1]):
        # bottom: W^m_x ∗ M_t + W_e ∗ H_{t-1} + W^m_h ∗ H^m_{t-1} + b
        hm, cm = lstm_step(model.motion_cell.weight, model.motion_cell.bias, torch.cat([flow[:, t], h], 1), hm, cm)
        if model.attention_input == "motion":  # the option without the RGB term: Z = U ∗ tanh(W_d ∗ H^m_t + b)
            z = conv(torch.tanh(conv(hm, a.w_ha) + a.b_a[None, :, None, None]), a.w_z)[:, 0]
            att = softmax_positions(a.inverse_temperature * z)
        else:
            att = conv_attention(a, x[:, t], hm)  # Z = U ∗ tanh(W_c ∗ X_t + W_d ∗ H^m_t + b)
        h, c = lstm_step(model.cell.weight, model.cell.bias, x[:, t] * att[:, None] * model.attended_scale, h, c)
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
