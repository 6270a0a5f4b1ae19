"""The authors' weight initialisation (``sparnn/utils/utils.py`` as their layers call it), checked
against the rules written out here, not against the module code.

quick_init_xavier(shape): U(-1/sqrt(shape[1]), +1/sqrt(shape[1])) of the tensor as the authors
store it — conv kernels (out, in, k, k) → in; attention/dense matrices (in, out) → out.
quick_init_norm(scale=0.1): N(0, 0.1²). quick_zero: every bias.
"""

from __future__ import annotations

import math

import pytest
import torch

from videolstm.models import build_model

SIZES = dict(
    input_channels=24, flow_channels=20, input_dim=40, flow_dim=36, spatial_size=(3, 3), hidden_channels=16, lstm_hidden=28, fc_dim=50, attention_channels=12
)
K = 11


def within(tensor: torch.Tensor, bound: float) -> None:
    """All values in [-bound, bound], and the extremes come close to it (it is the bound used)."""
    top = tensor.abs().max().item()
    assert top <= bound + 1e-7, (top, bound)
    assert top >= 0.8 * bound, (top, bound)


@pytest.mark.parametrize("name", ["convlstm", "convalstm", "videolstm"])
def test_convolutional_kernels_are_uniform_in_one_over_sqrt_of_each_kernels_input_channels(name: str) -> None:
    torch.manual_seed(0)
    m = build_model(name, K, **SIZES)
    c, hd = SIZES["input_channels"], SIZES["hidden_channels"]
    w = m.cell.weight  # (4·Hd, C + Hd, k, k): W_x* over the first C input channels, W_h* over the rest
    within(w[:, :c], 1 / math.sqrt(c))
    within(w[:, c:], 1 / math.sqrt(hd))
    assert torch.count_nonzero(m.cell.bias) == 0  # no forget-gate bias of 1
    if name == "videolstm":
        cf = SIZES["flow_channels"]
        wm = m.motion_cell.weight  # [M (C') | top H (Hd) | H^m (Hd)]
        within(wm[:, :cf], 1 / math.sqrt(cf))  # W_infer_x*
        within(wm[:, cf : cf + hd], 1 / math.sqrt(hd))  # W_infer_c*: hybrid (context_out, feature_out)
        within(wm[:, cf + hd :], 1 / math.sqrt(hd))  # W_infer_h*
        assert torch.count_nonzero(m.motion_cell.bias) == 0
    if m.init is not None:  # ConvLayer kernels (Hd, C, 3, 3)
        within(m.init.conv_h.weight, 1 / math.sqrt(c))
        assert torch.count_nonzero(m.init.conv_h.bias) == 0


@pytest.mark.parametrize("name", ["convalstm", "videolstm"])
def test_convolutional_attention_and_readout_use_their_output_width(name: str) -> None:
    torch.manual_seed(0)
    m = build_model(name, K, **SIZES)
    a = SIZES["attention_channels"]
    within(m.attention.w_xa.weight, 1 / math.sqrt(a))  # Wc_att (in, A): ±1/√A
    within(m.attention.w_ha.weight, 1 / math.sqrt(a))  # Wd_att (state, A): ±1/√A
    within(m.attention.w_z.weight, 1.0)  # U_att (A, 1): ±1/√1
    assert torch.count_nonzero(m.attention.w_xa.bias) == 0
    within(m.readout.fc.weight, 1 / math.sqrt(SIZES["fc_dim"]))  # DenseLayer W (H·W·Hd, 1024): ±1/√1024
    within(m.readout.classifier.weight, 1 / math.sqrt(K))
    assert torch.count_nonzero(m.readout.fc.bias) == 0 and torch.count_nonzero(m.readout.classifier.bias) == 0


@pytest.mark.parametrize("name", ["lstm", "alstm", "motion_alstm"])
def test_vector_variants_draw_every_matrix_from_a_normal_with_std_0_1_and_zero_biases(name: str) -> None:
    torch.manual_seed(0)
    m = build_model(name, K, **SIZES)
    matrices = torch.cat([p.detach().flatten() for n, p in m.named_parameters() if p.dim() >= 2])
    assert matrices.numel() > 5000
    assert abs(matrices.std().item() - 0.1) < 0.005 and abs(matrices.mean().item()) < 0.005
    for n, p in m.named_parameters():
        if p.dim() == 1:
            assert torch.count_nonzero(p) == 0, n


def test_torch_scheme_keeps_pytorchs_defaults_and_the_forget_bias() -> None:
    torch.manual_seed(0)
    m = build_model("convlstm", K, init="torch", **SIZES)
    hd = SIZES["hidden_channels"]
    assert torch.all(m.cell.bias[hd : 2 * hd] == 1.0)
    fan_in = (SIZES["input_channels"] + hd) * 9
    within(m.cell.weight, 1 / math.sqrt(fan_in))


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="init must be one of"):
        build_model("lstm", K, init="xavier")
