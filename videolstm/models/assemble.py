"""VideoLSTM's initialisation from trained models, as the authors assembled it.

``ucf101/model_assemble.py`` builds the VideoLSTM that is then fine-tuned
(``finetune_ucf101_rgb_motion_convALSTM.py``) from two trained models:

* a **flow ConvLSTM** → the bottom (motion) layer's input-to-state and state-to-state kernels
  and biases (W_infer_x*, W_infer_h*, b_infer_*). Its kernels must have the bottom layer's
  size (1×1 by default), so the pipeline trains this source with ``motion_kernel_size``. The
  bottom's weights on the top layer's H_{t-1} (W_e, the authors' W_infer_c*) have no source
  and keep their initial values, as do the bottom's initial-state layers.
* an **RGB ConvALSTM** → the top ConvLSTM, the attention (W_xa/W_c, W_ha/W_d, b, W_z/U), the
  top layer's initial-state layers and the readout (FC and classifier). A VideoLSTM whose
  attention reads the motion state alone (``videolstm_attention: motion``) takes W_ha, W_z and
  b, not W_xa.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from videolstm.models.variants import ConvALSTMClassifier, ConvLSTMClassifier, VideoLSTMClassifier


class AssemblyError(ValueError):
    """The source models do not fit the VideoLSTM being assembled (names the mismatch)."""


@dataclass(frozen=True)
class Copied:
    """One tensor copied into the VideoLSTM: its name there, the source and the source tensor's name."""

    target: str
    source: str
    source_name: str


def _copy(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if dst.shape != src.shape:
        raise AssemblyError(f"{what}: VideoLSTM expects shape {tuple(dst.shape)}, the source has {tuple(src.shape)}")
    dst.copy_(src)


def _copy_module(dst: nn.Module, src: nn.Module, prefix_dst: str, prefix_src: str, source: str, out: list[Copied]) -> None:
    src_params = dict(src.named_parameters())
    for name, param in dst.named_parameters():
        if name not in src_params:
            raise AssemblyError(f"{source} has no parameter {prefix_src}{name} for VideoLSTM's {prefix_dst}{name}")
        _copy(param, src_params[name], f"{prefix_dst}{name}")
        out.append(Copied(f"{prefix_dst}{name}", source, f"{prefix_src}{name}"))


@torch.no_grad()
def assemble_videolstm(videolstm: VideoLSTMClassifier, flow_convlstm: ConvLSTMClassifier, rgb_convalstm: ConvALSTMClassifier) -> list[Copied]:
    """Copy the trained weights into ``videolstm`` in place; returns what was copied.

    Raises :class:`AssemblyError` when a source is of the wrong variant or a shape differs
    (e.g. the flow ConvLSTM's kernels are not the bottom layer's size).
    """
    if not isinstance(videolstm, VideoLSTMClassifier):
        raise AssemblyError(f"the target must be a VideoLSTM, got {type(videolstm).__name__}")
    if not isinstance(flow_convlstm, ConvLSTMClassifier):
        raise AssemblyError(f"the bottom layer's source must be a ConvLSTM, got {type(flow_convlstm).__name__}")
    if not isinstance(rgb_convalstm, ConvALSTMClassifier):
        raise AssemblyError(f"the top layer's source must be a ConvALSTM, got {type(rgb_convalstm).__name__}")
    copied: list[Copied] = []

    bottom, src = videolstm.motion_cell, flow_convlstm.cell
    c_flow, hidden = videolstm.flow_channels, bottom.hidden_channels
    if src.kernel_size != bottom.kernel_size:
        raise AssemblyError(
            f"the flow ConvLSTM has {src.kernel_size}×{src.kernel_size} kernels but VideoLSTM's bottom layer "
            f"{bottom.kernel_size}×{bottom.kernel_size}: train the source with kernel_size = motion_kernel_size"
        )
    if src.input_channels != c_flow or src.hidden_channels != hidden:
        raise AssemblyError(
            f"the flow ConvLSTM maps {src.input_channels} → {src.hidden_channels} channels, VideoLSTM's bottom layer {c_flow} (flow) → {hidden}"
        )
    _copy(bottom.weight[:, :c_flow], src.weight[:, :c_flow], "motion_cell.weight (W^m_x)")
    _copy(bottom.weight[:, c_flow + hidden :], src.weight[:, c_flow:], "motion_cell.weight (W^m_h)")
    _copy(bottom.bias, src.bias, "motion_cell.bias")
    copied += [
        Copied("motion_cell.weight[:, :C']", "convlstm-flow", "cell.weight[:, :C']"),
        Copied("motion_cell.weight[:, C'+Hd:]", "convlstm-flow", "cell.weight[:, C':]"),
        Copied("motion_cell.bias", "convlstm-flow", "cell.bias"),
    ]

    for part in ("cell", "readout"):
        _copy_module(getattr(videolstm, part), getattr(rgb_convalstm, part), f"{part}.", f"{part}.", "convalstm-rgb", copied)
    if videolstm.attention.reads_input:
        _copy_module(videolstm.attention, rgb_convalstm.attention, "attention.", "attention.", "convalstm-rgb", copied)
    else:  # attention from the motion state alone: W_ha, W_z and the bias b_a; the ConvALSTM's W_xa has no place
        for name in ("w_ha", "w_z"):
            _copy_module(
                getattr(videolstm.attention, name), getattr(rgb_convalstm.attention, name), f"attention.{name}.", f"attention.{name}.", "convalstm-rgb", copied
            )
        source_bias = rgb_convalstm.attention.w_xa.bias if rgb_convalstm.attention.w_xa is not None else None
        if source_bias is None:
            raise AssemblyError("the RGB ConvALSTM's attention has no input term (W_xa) whose bias becomes VideoLSTM's b_a")
        _copy(videolstm.attention.b_a, source_bias, "attention.b_a")
        copied.append(Copied("attention.b_a", "convalstm-rgb", "attention.w_xa.bias"))
    if (videolstm.init is None) != (rgb_convalstm.init is None):
        raise AssemblyError("VideoLSTM and the ConvALSTM must both (or neither) have initial-state layers (init_state)")
    if videolstm.init is not None and rgb_convalstm.init is not None:
        _copy_module(videolstm.init, rgb_convalstm.init, "init.", "init.", "convalstm-rgb", copied)
    return copied
