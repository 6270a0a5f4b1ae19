"""The previous recipe's ALSTM and Motion ALSTM attention (issue 20's ablation options), from their equations.

* ``alstm_attention: hidden``: α_t = softmax_i(β·(W_i · h_{t-1} + b_i)), no x_t term.
* ``motion_alstm_attention: flow``: no motion LSTM; e_{t,i} = w · tanh(W_m m_{t,i} + W_h h_{t-1} + b)
  over the flow pool5 regions m_{t,i}, α_t = softmax_i(β·e_t).

With ``init_state: zeros`` h_0 = 0, so the first step's attention is a closed form of the parameters.
"""

from __future__ import annotations

import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.models import build_model
from videolstm.training import feature_columns

C, CF, H, W, K = 4, 3, 3, 2, 3


def _alstm(beta: float = 1.0):
    torch.manual_seed(0)
    return build_model(
        "alstm",
        K,
        input_channels=C,
        spatial_size=(H, W),
        lstm_hidden=5,
        fc_dim=6,
        init_state="zeros",
        alstm_attention="hidden",
        attention_inverse_temperature=beta,
    ).eval()


def _motion_alstm():
    torch.manual_seed(0)
    return build_model(
        "motion_alstm",
        K,
        input_channels=C,
        flow_channels=CF,
        spatial_size=(H, W),
        lstm_hidden=5,
        fc_dim=6,
        input_dim=7,
        init_state="zeros",
        motion_alstm_attention="flow",
    ).eval()


def test_alstm_hidden_attention_starts_at_softmax_of_beta_b_and_reads_no_current_input():
    model = _alstm(beta=2.0)
    with torch.no_grad():
        model.attention.scores.bias.copy_(torch.arange(H * W, dtype=torch.float32) / 3)
        x = torch.randn(2, 4, C, H, W)
        alpha = model(x).attention.reshape(2, 4, H * W)
        want = torch.softmax(2.0 * model.attention.scores.bias, dim=0)  # h_0 = 0: softmax(β(W·0 + b))
        torch.testing.assert_close(alpha[:, 0], want.expand(2, -1))
        changed = x.clone()
        changed[:, 2] += 5.0  # x_2 changes: α_2 depends on h_1 only, α_3 on h_2 (which read x_2)
        beta_changed = model(changed).attention.reshape(2, 4, H * W)
    torch.testing.assert_close(beta_changed[:, :3], alpha[:, :3])
    assert not torch.allclose(beta_changed[:, 3], alpha[:, 3])
    assert not any("w_c" in n for n, _ in model.named_parameters())  # no region term


def test_alstm_authors_attention_does_read_the_current_input():
    torch.manual_seed(0)
    model = build_model("alstm", K, input_channels=C, spatial_size=(H, W), lstm_hidden=5, fc_dim=6, init_state="zeros").eval()
    x = torch.randn(2, 4, C, H, W)
    changed = x.clone()
    changed[:, 2] += 5.0
    with torch.no_grad():
        assert not torch.allclose(model(changed).attention[:, 2], model(x).attention[:, 2])


def test_motion_alstm_flow_attention_is_the_flow_regions_and_h_prev_without_a_motion_lstm():
    model = _motion_alstm()
    assert model.motion_cell is None and model.flow_kind == "maps"
    assert feature_columns(model.input_kind, model.needs_flow, "rgb", model.flow_kind) == ("rgb_pool5", "flow_pool5")
    x, flow = torch.randn(2, 4, C, H, W), torch.randn(2, 4, CF, H, W)
    with torch.no_grad():
        alpha = model(x, flow=flow).attention.reshape(2, 4, H * W)
        m0 = flow[:, 0].reshape(2, CF, H * W).transpose(1, 2)  # (B, N, C') regions of step 0
        a = model.attention
        e = a.w(torch.tanh(a.w_c(m0))).squeeze(2)  # h_0 = 0: w · tanh(W_m m + b)
        torch.testing.assert_close(alpha[:, 0], torch.softmax(e, dim=1))
        rgb_changed = x.clone()
        rgb_changed[:, 1] += 5.0  # RGB x_1 reaches α only through h_1, i.e. from step 2 on
        flow_changed = flow.clone()
        flow_changed[:, 1] += 5.0  # flow m_1 changes α_1 directly
        by_rgb = model(rgb_changed, flow=flow).attention.reshape(2, 4, H * W)
        by_flow = model(x, flow=flow_changed).attention.reshape(2, 4, H * W)
    torch.testing.assert_close(by_rgb[:, :2], alpha[:, :2])
    assert not torch.allclose(by_rgb[:, 2], alpha[:, 2])
    torch.testing.assert_close(by_flow[:, 0], alpha[:, 0])
    assert not torch.allclose(by_flow[:, 1], alpha[:, 1])


def test_unknown_attention_forms_are_refused():
    with pytest.raises(ValueError, match="alstm_attention must be one of"):
        build_model("alstm", K, input_channels=C, spatial_size=(H, W), alstm_attention="x")
    with pytest.raises(ValueError, match="motion_alstm_attention must be one of"):
        build_model("motion_alstm", K, input_channels=C, spatial_size=(H, W), motion_alstm_attention="x")
