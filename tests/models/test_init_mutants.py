"""The authors' initial-state convolutions, both of them (issue 26).

The authors' ConvLSTM initial state is two "ConvLayer"s on the clip mean, one for h0 and one for
c0 (``MapInitialState.conv_h``, ``conv_c``); each kernel (Hd, C, k, k) is ``quick_init_xavier``:
U(±1/√C) of its input channels C alone, and its bias ``quick_zero``. PyTorch's default would be
U(±1/√(C·k·k)) with a non-zero bias, so a kernel left at the default is visible.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from videolstm.models import build_model
from videolstm.models.attention import ConvAttention
from videolstm.models.cells import ConvLSTMCell
from videolstm.models.init import cell_blocks, initialize, uniform_bound

SIZES = dict(
    input_channels=24, flow_channels=20, input_dim=40, flow_dim=36, spatial_size=(3, 3), hidden_channels=16, lstm_hidden=28, fc_dim=50, attention_channels=12
)
K = 11


def _assert_uniform_within(tensor: torch.Tensor, bound: float) -> None:
    """Inside [-bound, bound] and reaching at least 80 % of it (the bound is the one used)."""
    top = tensor.abs().max().item()
    assert top <= bound + 1e-7, (top, bound)
    assert top >= 0.8 * bound, (top, bound)


def _models_with_map_initial_state() -> list[str]:
    names = []
    for name in ("convlstm", "convalstm", "videolstm"):
        if build_model(name, K, **SIZES).init is not None:
            names.append(name)
    return names


def test_the_convolutional_variants_have_a_learned_initial_state():
    assert _models_with_map_initial_state(), "no convolutional variant has MapInitialState: the test below checks nothing"


@pytest.mark.parametrize("name", _models_with_map_initial_state())
@pytest.mark.parametrize("conv", ["conv_h", "conv_c"])
def test_both_initial_state_kernels_follow_the_authors_rule(name: str, conv: str) -> None:
    torch.manual_seed(1)
    layer = getattr(build_model(name, K, **SIZES).init, conv)
    c = SIZES["input_channels"]
    assert layer.weight.shape[1] == c
    _assert_uniform_within(layer.weight, 1 / math.sqrt(c))
    assert torch.count_nonzero(layer.bias) == 0


def test_pytorchs_default_kernel_would_fail_the_rule():
    """The check can fail: PyTorch's own bound 1/√(C·k·k) is below 80 % of 1/√C for k = 3."""
    torch.manual_seed(1)
    layer = build_model("convalstm", K, init="torch", **SIZES).init.conv_c
    with pytest.raises(AssertionError):
        _assert_uniform_within(layer.weight, 1 / math.sqrt(SIZES["input_channels"]))


# --------------------------------------------------------------------------------------------
# the rules' other edges, on modules built here


class _Conv(nn.Module):
    family = "conv"

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(modules)


def test_uniform_bound_draws_on_both_sides_of_zero():
    torch.manual_seed(0)
    t = torch.empty(20_000)
    uniform_bound(t, 16)  # U(-1/4, 1/4)
    assert t.min().item() < -0.24 and t.max().item() > 0.24
    assert abs(t.mean().item()) < 0.01
    assert abs(t.var().item() - (0.5**2) / 12) < 0.002  # variance of U(a, b) is (b - a)² / 12


def test_every_input_channel_of_a_cell_gets_its_blocks_bound():
    """Channel by channel: the first C input channels ±1/√C, the Hd hidden ones ±1/√Hd."""
    torch.manual_seed(0)
    m = build_model("convlstm", K, **SIZES)
    c, hd = SIZES["input_channels"], SIZES["hidden_channels"]
    for j in range(c + hd):
        _assert_uniform_within(m.cell.weight[:, j], 1 / math.sqrt(c if j < c else hd))


def test_attention_without_the_input_term_still_initialises_its_state_and_score_kernels():
    """videolstm_attention: motion: no W_xa, so b_a is zeroed; W_ha (S→A) and W_z (A→1) still
    follow the (in, out) rule ±1/√out."""
    torch.manual_seed(0)
    attention = ConvAttention(16, 12, kernel_size=3, reads_input=False)
    with torch.no_grad():
        attention.b_a.fill_(3.0)
        attention.w_ha.weight.fill_(7.0)
        attention.w_z.weight.fill_(7.0)
    initialize(_Conv(attention), "authors")
    assert torch.count_nonzero(attention.b_a) == 0
    _assert_uniform_within(attention.w_ha.weight, 1 / math.sqrt(12))
    _assert_uniform_within(attention.w_z.weight, 1.0)


def test_cell_blocks_are_the_input_blocks_then_the_hidden_channels():
    cell = ConvLSTMCell(24, 16, 3)
    assert cell_blocks(cell) == (24, 16)
    cell.input_blocks = (20, 4)
    assert cell_blocks(cell) == (20, 4, 16)
    del cell.input_blocks  # a cell that does not split its input: one block of all its channels
    assert cell_blocks(cell) == (24, 16)
    cell.input_blocks = (20, 5)
    with pytest.raises(ValueError, match=r"^input_blocks \(20, 5\) do not add up to the cell's 24 input channels$"):
        cell_blocks(cell)


def test_a_model_without_a_weight_family_is_refused_naming_its_type():
    with pytest.raises(ValueError, match=r"^Linear has no weight family \('conv' or 'vector'\)$"):
        initialize(nn.Linear(2, 2), "authors")


def test_an_unknown_scheme_is_refused_naming_the_schemes():
    with pytest.raises(ValueError, match=r"^init must be one of \('authors', 'torch'\), got 'xavier'$"):
        initialize(_Conv(), "xavier")


def test_a_vector_model_with_a_one_dimensional_weight_that_is_no_bias_is_refused():
    class _Vector(nn.Module):
        family = "vector"

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(ValueError, match=r"^no authors' rule for the 1-D parameter scale$"):
        initialize(_Vector(), "authors")
