"""Weight initialisation schemes of the variants.

"authors" is what the authors' layers do (``sparnn/utils/utils.py`` as each layer calls it):

* Convolutional models (ConvLSTM, ConvALSTM, VideoLSTM) use ``quick_init_xavier``:
  uniform in ±1/√``shape[1]`` of the parameter *as the authors store it*. For a convolution
  kernel (out, in, k, k) that is ±1/√in — the input channels of that kernel alone, not
  in·k·k: W_x* ±1/√C, W_h* ±1/√Hd, VideoLSTM's bottom W_infer_x* ±1/√C', W_infer_h* ±1/√Hd,
  W_infer_c* (on the top layer's H) ±1/√Hd, the initial-state convolutions ±1/√C. Their
  attention and dense matrices are stored (in, out), so the bound is ±1/√out: W_c, W_d
  ±1/√(attention width), u ±1 (out = 1), the readout FC ±1/√fc_dim and the classifier ±1/√K.
* Vector models (LSTM, ALSTM, Motion ALSTM) use ``quick_init_norm(scale=0.1)`` for every
  matrix (cells, attention, initial-state layers, readout): normal with std 0.1.
* Every bias is zero (``quick_zero``), the forget gate's included.

"torch" keeps PyTorch's defaults (``nn.Linear``/``nn.Conv2d``) and the cells' own
``reset_parameters`` (uniform ±1/√((C_in + Hd)·k²), forget-gate bias 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from videolstm.models.attention import ConvAttention
from videolstm.models.cells import ConvLSTMCell, LSTMCell
from videolstm.models.layers import MapInitialState, Readout

INIT_SCHEMES: tuple[str, ...] = ("authors", "torch")

#: std of the authors' ``quick_init_norm`` (vector models).
VECTOR_STD = 0.1


def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialise ``model``'s parameters in place with ``scheme`` (see the module docstring).

    ``model.family`` ("conv" or "vector") says which of the authors' rules applies.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {INIT_SCHEMES}, got {scheme!r}")
    if scheme == "torch":
        return
    family = getattr(model, "family", None)
    with torch.no_grad():
        if family == "vector":
            _vector_family(model)
        elif family == "conv":
            _conv_family(model)
        else:
            raise ValueError(f"{type(model).__name__} has no weight family ('conv' or 'vector')")


def uniform_bound(tensor: torch.Tensor, fan: int) -> None:
    """tensor ~ U(−1/√fan, 1/√fan) (the authors' ``quick_init_xavier`` with dim_vec[1] = fan)."""
    bound = 1.0 / math.sqrt(fan)
    tensor.uniform_(-bound, bound)


def cell_blocks(cell: ConvLSTMCell | LSTMCell) -> tuple[int, ...]:
    """Channel counts of the cell's weight along its input axis: the input blocks, then Hd."""
    blocks = tuple(getattr(cell, "input_blocks", (cell.input_channels,)))
    if sum(blocks) != cell.input_channels:
        raise ValueError(f"input_blocks {blocks} do not add up to the cell's {cell.input_channels} input channels")
    return blocks + (cell.hidden_channels,)


def _conv_family(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, ConvLSTMCell):
            start = 0
            for width in cell_blocks(module):
                uniform_bound(module.weight[:, start : start + width], width)
                start += width
            assert module.bias is not None  # the authors' cells have a bias
            module.bias.zero_()
        elif isinstance(module, MapInitialState):
            for conv in (module.conv_h, module.conv_c):
                uniform_bound(conv.weight, conv.weight.shape[1])  # (out, in, k, k): ±1/√in
                assert conv.bias is not None
                conv.bias.zero_()
        elif isinstance(module, ConvAttention):
            for layer in (module.w_xa, module.w_ha, module.w_z):
                if layer is None:  # no input term (videolstm_attention: motion): its bias is b_a
                    module.b_a.zero_()
                    continue
                uniform_bound(layer.weight, layer.weight.shape[0])  # authors store (in, out): ±1/√out
                if layer.bias is not None:
                    layer.bias.zero_()
        elif isinstance(module, Readout):
            for dense in (module.fc, module.classifier):
                uniform_bound(dense.weight, dense.weight.shape[0])  # DenseLayer W (in, out): ±1/√out
                dense.bias.zero_()


def _vector_family(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            param.normal_(0.0, VECTOR_STD)
        elif name.endswith("bias"):
            param.zero_()
        else:  # pragma: no cover - every 1-D parameter of the zoo is a bias
            raise ValueError(f"no authors' rule for the 1-D parameter {name}")
