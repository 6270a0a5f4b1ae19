"""VideoLSTM assembled from a trained flow ConvLSTM and RGB ConvALSTM (the authors' model_assemble.py)."""

from __future__ import annotations

import pytest
import torch

from videolstm.models import AssemblyError, assemble_videolstm, build_model

SIZES = dict(input_channels=6, flow_channels=4, spatial_size=(3, 3), hidden_channels=5, fc_dim=7)


def models(motion_kernel: int = 1):
    torch.manual_seed(0)
    video = build_model("videolstm", 3, motion_kernel_size=motion_kernel, **SIZES)
    torch.manual_seed(1)
    flow = build_model("convlstm", 3, kernel_size=motion_kernel, **{**SIZES, "input_channels": SIZES["flow_channels"]})
    torch.manual_seed(2)
    rgb = build_model("convalstm", 3, **SIZES)
    return video, flow, rgb


def test_bottom_takes_the_flow_convlstm_top_attention_and_readout_the_rgb_convalstm():
    video, flow, rgb = models()
    w_e_before = video.motion_cell.weight[:, 4:9].clone()
    motion_init_before = video.motion_init.conv_h.weight.clone()
    copied = assemble_videolstm(video, flow, rgb)
    cf, hd = SIZES["flow_channels"], SIZES["hidden_channels"]
    # bottom: W^m_x and W^m_h from the flow ConvLSTM's W_x and W_h, its bias too
    assert torch.equal(video.motion_cell.weight[:, :cf], flow.cell.weight[:, :cf])
    assert torch.equal(video.motion_cell.weight[:, cf + hd :], flow.cell.weight[:, cf:])
    assert torch.equal(video.motion_cell.bias, flow.cell.bias)
    # W_e (on the top layer's H_{t-1}) and the bottom's initial-state layers have no source
    assert torch.equal(video.motion_cell.weight[:, cf : cf + hd], w_e_before)
    assert torch.equal(video.motion_init.conv_h.weight, motion_init_before)
    # top cell, attention, initial state, readout: the ConvALSTM's
    for part in ("cell", "attention", "init", "readout"):
        mine, theirs = dict(getattr(video, part).named_parameters()), dict(getattr(rgb, part).named_parameters())
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.equal(mine[name], theirs[name]), f"{part}.{name}"
    assert {c.source for c in copied} == {"convlstm-flow", "convalstm-rgb"}


def test_assembled_videolstm_with_the_convalstms_attention_is_the_convalstm():
    """Given the same attention maps, the assembled VideoLSTM's top network is the ConvALSTM."""
    video, flow, rgb = models()
    assemble_videolstm(video, flow, rgb)
    video.eval(), rgb.eval()
    x = torch.randn(2, 4, 6, 3, 3)
    maps = torch.softmax(torch.randn(2, 4, 9), -1).view(2, 4, 3, 3)
    torch.testing.assert_close(video(x, attention=maps).logits, rgb(x, attention=maps).logits)


def test_a_flow_convlstm_with_other_kernels_is_refused_with_the_fix():
    video, _, rgb = models(motion_kernel=1)
    _, flow3, _ = models(motion_kernel=3)
    with pytest.raises(AssemblyError, match="kernel_size = motion_kernel_size"):
        assemble_videolstm(video, flow3, rgb)


def test_wrong_source_variants_are_refused():
    video, flow, rgb = models()
    with pytest.raises(AssemblyError, match="ConvLSTM"):
        assemble_videolstm(video, rgb, rgb)
    with pytest.raises(AssemblyError, match="ConvALSTM"):
        assemble_videolstm(video, flow, flow)


def test_motion_only_attention_takes_the_convalstms_state_weights_and_bias_not_w_xa():
    """videolstm_attention: motion has W_ha, W_z and b_a; they come from the ConvALSTM's W_d, U and b."""
    torch.manual_seed(0)
    video = build_model("videolstm", 3, videolstm_attention="motion", **SIZES)
    _, flow, rgb = models()
    with torch.no_grad():
        rgb.attention.w_xa.bias.normal_()
    copied = assemble_videolstm(video, flow, rgb)
    assert torch.equal(video.attention.w_ha.weight, rgb.attention.w_ha.weight)
    assert torch.equal(video.attention.w_z.weight, rgb.attention.w_z.weight)
    assert torch.equal(video.attention.b_a, rgb.attention.w_xa.bias)
    assert ("attention.b_a", "attention.w_xa.bias") in {(c.target, c.source_name) for c in copied}
    video.eval(), rgb.eval()  # the top network is still the ConvALSTM's
    x = torch.randn(2, 4, 6, 3, 3)
    maps = torch.softmax(torch.randn(2, 4, 9), -1).view(2, 4, 3, 3)
    torch.testing.assert_close(video(x, attention=maps).logits, rgb(x, attention=maps).logits)
