"""Builders of the paper's variants and the registry that maps each variant name to its builder.

``build_model(name, num_classes, **overrides)`` is the one entry point the pipeline uses.
Overrides are sizes (defaults are the paper's):

============================= =========== ============================================================
key                           default     meaning
============================= =========== ============================================================
input_channels                512         C of the pool5-like maps x (B, T, C, H, W)
flow_channels                 = C         C' of VideoLSTM's flow maps (B, T, C', H, W)
input_dim                     4096        D of the fc7-like vectors x (B, T, D) (convnet, lstm)
flow_dim                      = D         D' of Motion ALSTM's flow fc7 vectors (B, T, D')
spatial_size                  (7, 7)      H, W of the maps (an int means square)
hidden_channels               512         ConvLSTM hidden channels (VideoLSTM: both layers)
lstm_hidden                   512         LSTM / ALSTM / Motion ALSTM hidden units (both layers)
kernel_size                   3           ConvLSTM input- and state-to-state kernels
attention_kernel_size         1           convolutional attention kernels
motion_kernel_size            1           VideoLSTM bottom (flow) ConvLSTM kernels
attention_channels            None        conv attention width; None: hidden_channels
attention_inverse_temperature 1.0         β in softmax(β·e) of every attention
fc_dim                        1024        readout FC width
dropout                       0.7         convolutional variants: dropout after the readout FC
vector_dropout                0.5         vector variants: dropout on h_t and after the readout FC
init_state                    "authors"   "authors" (zeros for ConvLSTM/LSTM, mean for the attention
                                          variants) | "mean" | "zeros"
init                          "authors"   "authors" (sparnn's schemes) | "torch" (PyTorch defaults)
gate_execution                "auto"      "auto" | "fused" | "split_xh" | "per_gate"
attention_scale               "none"      "none" (eq. 9: A ⊙ X) | "positions" (H·W · A ⊙ X)
videolstm_attention           "rgb_and_   VideoLSTM's attention reads X_t and H^m_t (the authors') |
                              motion"     "motion" (H^m_t alone, a deviation)
alstm_attention               "authors"   ALSTM attention from x_t and h_{t-1} | "hidden" (h_{t-1} alone, a deviation)
motion_alstm_attention        "authors"   Motion ALSTM: motion LSTM over flow fc7 | "flow" (flow pool5 regions and
                                          h_{t-1}, no motion LSTM; flow_channels = C'; a deviation)
============================= =========== ============================================================

The attention width of the convolutional variants is the hidden width in the authors'
ConvALSTM; their VideoLSTM uses C (the RGB channels) — the two are equal (512) at the paper's
sizes. Here both use ``attention_channels`` (default: hidden_channels), so a trained
ConvALSTM's attention can initialise VideoLSTM's at every size (``videolstm.models.assemble``).
The vector attention width is C, as the authors'.

Every key is accepted by every variant (the pipeline passes the same ``ModelConfig`` to all
of them); a variant uses the ones it needs. Unknown keys and bad values are ValueErrors.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from videolstm.models import VARIANTS
from videolstm.models.cells import EXECUTIONS
from videolstm.models.functional import ATTENTION_SCALES
from videolstm.models.init import INIT_SCHEMES
from videolstm.models.variants import (
    ALSTM_ATTENTION_INPUTS,
    INIT_STATES,
    MOTION_ALSTM_ATTENTION_INPUTS,
    VIDEOLSTM_ATTENTION_INPUTS,
    ALSTMClassifier,
    ConvALSTMClassifier,
    ConvLSTMClassifier,
    FrameClassifier,
    LSTMClassifier,
    MotionALSTMClassifier,
    SequenceModel,
    VideoLSTMClassifier,
)


@dataclass(frozen=True)
class ModelSizes:
    """The sizes a builder may use (see the module docstring); validated on creation."""

    input_channels: int = 512
    flow_channels: int | None = None
    input_dim: int = 4096
    flow_dim: int | None = None
    spatial_size: tuple[int, int] = (7, 7)
    hidden_channels: int = 512
    lstm_hidden: int = 512
    kernel_size: int = 3
    attention_kernel_size: int = 1
    motion_kernel_size: int = 1
    attention_channels: int | None = None
    attention_inverse_temperature: float = 1.0
    fc_dim: int = 1024
    dropout: float = 0.7
    vector_dropout: float = 0.5
    init_state: str = "authors"
    init: str = "authors"
    gate_execution: str = "auto"
    attention_scale: str = "none"
    videolstm_attention: str = "rgb_and_motion"
    alstm_attention: str = "authors"
    motion_alstm_attention: str = "authors"

    def __post_init__(self) -> None:
        size = self.spatial_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) and s >= 1 for s in size)):
            raise ValueError(f"spatial_size must be an int or an (H, W) pair of positive ints, got {self.spatial_size!r}")
        object.__setattr__(self, "spatial_size", (int(size[0]), int(size[1])))
        if self.flow_channels is None:
            object.__setattr__(self, "flow_channels", self.input_channels)
        if self.flow_dim is None:
            object.__setattr__(self, "flow_dim", self.input_dim)
        if self.attention_channels is None:
            object.__setattr__(self, "attention_channels", self.hidden_channels)
        for name in ("input_channels", "flow_channels", "input_dim", "flow_dim", "hidden_channels", "lstm_hidden", "fc_dim", "attention_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy ints from feature metadata
        for name in ("kernel_size", "attention_kernel_size", "motion_kernel_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1 or value % 2 == 0:
                raise ValueError(f"{name} must be a positive odd int (same padding), got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("dropout", "vector_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
            object.__setattr__(self, name, float(value))
        beta = self.attention_inverse_temperature
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta > 0:
            raise ValueError(f"attention_inverse_temperature must be a number > 0, got {beta!r}")
        object.__setattr__(self, "attention_inverse_temperature", float(beta))
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if self.init_state not in INIT_STATES:
            raise ValueError(f"init_state must be one of {INIT_STATES}, got {self.init_state!r}")
        if self.attention_scale not in ATTENTION_SCALES:
            raise ValueError(f"attention_scale must be one of {ATTENTION_SCALES}, got {self.attention_scale!r}")
        if self.videolstm_attention not in VIDEOLSTM_ATTENTION_INPUTS:
            raise ValueError(f"videolstm_attention must be one of {VIDEOLSTM_ATTENTION_INPUTS}, got {self.videolstm_attention!r}")
        if self.alstm_attention not in ALSTM_ATTENTION_INPUTS:
            raise ValueError(f"alstm_attention must be one of {ALSTM_ATTENTION_INPUTS}, got {self.alstm_attention!r}")
        if self.motion_alstm_attention not in MOTION_ALSTM_ATTENTION_INPUTS:
            raise ValueError(f"motion_alstm_attention must be one of {MOTION_ALSTM_ATTENTION_INPUTS}, got {self.motion_alstm_attention!r}")
        if self.gate_execution not in EXECUTIONS:
            raise ValueError(f"gate_execution must be one of {EXECUTIONS}, got {self.gate_execution!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


SIZE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ModelSizes))


def build_convnet(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """ConvNet: per-frame dropout + Linear on fc7 vectors (B, T, D)."""
    return FrameClassifier(sizes.input_dim, num_classes, sizes.dropout)


def _vector_kwargs(sizes: ModelSizes) -> dict[str, Any]:
    """Options every vector recurrent variant takes (hidden units, readout, dropout 0.5)."""
    return {
        "hidden_size": sizes.lstm_hidden,
        "fc_dim": sizes.fc_dim,
        "dropout": sizes.vector_dropout,
        "init_state": sizes.init_state,
        "gate_execution": sizes.gate_execution,
        "init": sizes.init,
    }


def _conv_kwargs(sizes: ModelSizes) -> dict[str, Any]:
    """Options every convolutional recurrent variant takes (hidden channels, kernels, readout)."""
    return {
        "hidden_channels": sizes.hidden_channels,
        "kernel_size": sizes.kernel_size,
        "fc_dim": sizes.fc_dim,
        "dropout": sizes.dropout,
        "init_state": sizes.init_state,
        "gate_execution": sizes.gate_execution,
        "init": sizes.init,
    }


def _conv_attention_kwargs(sizes: ModelSizes) -> dict[str, Any]:
    return {
        "attention_kernel_size": sizes.attention_kernel_size,
        "attention_scale": sizes.attention_scale,
        "attention_channels": sizes.attention_channels,
        "inverse_temperature": sizes.attention_inverse_temperature,
    }


def build_lstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """LSTM over fc7 vectors (B, T, D), ``lstm_hidden`` units."""
    return LSTMClassifier(sizes.input_dim, num_classes, **_vector_kwargs(sizes))


def build_alstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """ALSTM over pool5 maps (B, T, C, H, W), ``lstm_hidden`` units."""
    return ALSTMClassifier(
        sizes.input_channels,
        sizes.spatial_size,
        num_classes,
        inverse_temperature=sizes.attention_inverse_temperature,
        attention_input=sizes.alstm_attention,
        **_vector_kwargs(sizes),
    )


def build_motion_alstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """Motion ALSTM: RGB maps (B, T, C, H, W) attended by a motion LSTM over flow fc7 vectors (B, T, D')."""
    assert sizes.flow_dim is not None
    return MotionALSTMClassifier(
        sizes.input_channels,
        sizes.flow_dim,
        sizes.spatial_size,
        num_classes,
        inverse_temperature=sizes.attention_inverse_temperature,
        attention_input=sizes.motion_alstm_attention,
        flow_channels=sizes.flow_channels,
        **_vector_kwargs(sizes),
    )


def build_convlstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """ConvLSTM over pool5 maps (B, T, C, H, W)."""
    return ConvLSTMClassifier(sizes.input_channels, sizes.spatial_size, num_classes, **_conv_kwargs(sizes))


def build_convalstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """ConvALSTM: convolutional attention from X_t and H_{t-1} over pool5 maps (B, T, C, H, W)."""
    return ConvALSTMClassifier(sizes.input_channels, sizes.spatial_size, num_classes, **_conv_kwargs(sizes), **_conv_attention_kwargs(sizes))


def build_videolstm(num_classes: int, sizes: ModelSizes) -> SequenceModel:
    """VideoLSTM: attention from X_t and a motion ConvLSTM over flow maps (B, T, C', H, W)."""
    assert sizes.flow_channels is not None
    return VideoLSTMClassifier(
        sizes.input_channels,
        sizes.flow_channels,
        sizes.spatial_size,
        num_classes,
        motion_kernel_size=sizes.motion_kernel_size,
        attention_input=sizes.videolstm_attention,
        **_conv_kwargs(sizes),
        **_conv_attention_kwargs(sizes),
    )


#: The registry: the paper's variant names → builder(num_classes, sizes). A plain dict.
MODEL_BUILDERS: dict[str, Callable[[int, ModelSizes], SequenceModel]] = {
    "convnet": build_convnet,
    "lstm": build_lstm,
    "alstm": build_alstm,
    "convlstm": build_convlstm,
    "convalstm": build_convalstm,
    "motion_alstm": build_motion_alstm,
    "videolstm": build_videolstm,
}
assert tuple(MODEL_BUILDERS) == VARIANTS, "registry and VARIANTS disagree"


def model_sizes(**overrides: Any) -> ModelSizes:
    """The paper's sizes with ``overrides`` applied; unknown keys or bad values → ValueError."""
    unknown = sorted(set(overrides) - set(SIZE_KEYS))
    if unknown:
        raise ValueError(f"unknown model override(s) {unknown}; valid keys: {list(SIZE_KEYS)}")
    return ModelSizes(**overrides)


def build_model(name: str, num_classes: int, **overrides: Any) -> SequenceModel:
    """Build the variant ``name`` (one of :data:`videolstm.models.VARIANTS`) for ``num_classes``.

    ``overrides``: sizes (see the module docstring), e.g. ``build_model("videolstm", 101,
    hidden_channels=32, input_channels=64)``, or ``**config.train.model.model_dump()``.
    Returns a :class:`~videolstm.models.variants.SequenceModel`: ``model(x, flow=None)`` →
    :class:`~videolstm.models.variants.ModelOutput`. Unknown name, unknown override or a bad
    value → ValueError naming what is valid.
    """
    builder = MODEL_BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown model variant {name!r}; valid names: {list(VARIANTS)}")
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return builder(int(num_classes), model_sizes(**overrides))
