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

from videolstm.models import build_model

SIZES = dict(input_channels=24, flow_channels=20, input_dim=40, flow_dim=36, spatial_size=(3, 3),
             hidden_channels=16, lstm_hidden=28, fc_dim=50, attention_channels=12)
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
