"""The paper's architecture variants as thin modules over cells, attention and pure functions.

Every variant is called as ``model(x, flow=None, attention=None)`` and returns a
:class:`ModelOutput` with per-step logits (B, T, K) and, for the attention variants, the
attention maps (B, T, H, W).

Inputs (what the pipeline feeds, see each class's ``input_kind``, ``needs_flow``, ``flow_kind``):

* ``input_kind == "vectors"`` (convnet, lstm): x (B, T, D), fc7-like frame vectors.
* ``input_kind == "maps"`` (alstm, convlstm, convalstm, motion_alstm, videolstm):
  x (B, T, C, H, W), pool5-like frame feature maps.
* ``needs_flow``: the motion variants also take the flow stream for the same frames —
  VideoLSTM its pool5 maps, flow (B, T, C', H, W) (``flow_kind == "maps"``); Motion ALSTM its
  fc7 vectors, flow (B, T, D') (``flow_kind == "vectors"``), as in the authors' scripts.

``attention`` (B, T, H, W), attention variants only: use these maps instead of computing
them. The motion variants then run only the top (RGB) network and need no flow: this is the
hook that shows the flow reaches the logits only through the attention, and it lets one
inject hand-made maps (uniform, ground-truth boxes) into a trained model.

Readout, applied to all steps at once after the recurrence (the authors' scripts):

* convolutional variants: flattened H_t → Linear(fc_dim) → tanh → dropout (0.7) → Linear(K);
* vector variants: h_t → dropout (0.5) → Linear(fc_dim) → tanh → dropout (0.5) → Linear(K).

Initial states (``init_state``): "authors" is zeros for ConvLSTM and LSTM
(``rgb_convLSTM``/``rgb_LSTM`` pass none) and "mean" for the attention variants; "mean" is
h0 = tanh(conv_h(mean_t X)), c0 = tanh(conv_c(mean_t X)) for a ConvLSTM (the cell's kernel;
VideoLSTM's motion layer from the mean of the flow maps with its 1×1 kernel), tanh(Linear(mean
over time, and positions for the ALSTMs, of x)) for a vector LSTM (Motion ALSTM's motion LSTM
from the mean flow vector); "zeros" is zero states everywhere.

Weights (``init``): "authors" follows ``sparnn/utils`` as the authors' layers call it — see
:mod:`videolstm.models.init`; "torch" keeps PyTorch's defaults with a forget-gate bias of 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from videolstm.models.attention import ConvAttention, HiddenRegionAttention, RegionAttention
from videolstm.models.cells import ConvLSTMCell, GateKernels, LSTMCell
from videolstm.models.functional import apply_attention, attention_pool, attention_scale_factor
from videolstm.models.init import INIT_SCHEMES, initialize
from videolstm.models.layers import MapInitialState, Readout, VectorInitialState

INIT_STATES: tuple[str, ...] = ("authors", "mean", "zeros")
#: What ALSTM's attention reads: x_t and h_{t-1} (the authors') | h_{t-1} alone (the previous recipe, a deviation).
ALSTM_ATTENTION_INPUTS: tuple[str, ...] = ("authors", "hidden")
#: Motion ALSTM's attention: RGB regions and a motion LSTM over flow fc7 (the authors') | the flow pool5 regions
#: and h_{t-1}, no motion LSTM (the previous recipe, a deviation).
MOTION_ALSTM_ATTENTION_INPUTS: tuple[str, ...] = ("authors", "flow")


@dataclass
class ModelOutput:
    """What every variant returns.

    logits: (B, T, K), one prediction per time step (the test protocol sums the softmax over
    steps). attention: (B, T, H, W), Σ_{h,w} = 1 per step, for the attention variants (the
    maps used, injected ones included); None otherwise.
    """

    logits: Tensor
    attention: Tensor | None = None


def resolve_init_state(init_state: str, has_attention: bool) -> str:
    """ "mean" or "zeros": "authors" is "mean" for the attention variants, "zeros" otherwise."""
    if init_state not in INIT_STATES:
        raise ValueError(f"init_state must be one of {INIT_STATES}, got {init_state!r}")
    if init_state == "authors":
        return "mean" if has_attention else "zeros"
    return init_state


@dataclass
class MotionLayer:
    """The bottom (motion) layer of a motion variant for one sequence: its cell, weights cut for
    the sequence, the precomputed input gates of every step and its current state."""

    cell: ConvLSTMCell | LSTMCell
    kernels: GateKernels
    pre: tuple[Tensor, ...]
    state: tuple[Tensor, Tensor]


def attention_recurrence(
    cell: ConvLSTMCell | LSTMCell,
    kernels: GateKernels,
    state: tuple[Tensor, Tensor],
    steps: int,
    attention_at: Callable[[int, Tensor, Tensor | None], Tensor],
    attended_input: Callable[[Tensor, int], Tensor],
    motion: MotionLayer | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """The time loop every attention variant shares; returns (top hidden states, attention maps).

    At step t: the motion layer (if any) steps on the top layer's h_{t-1}; the attention A_t =
    ``attention_at(t, h_{t-1}, h^m_t or None)``; the top cell steps on ``attended_input(A_t, t)``.
    """
    hs, maps = [], []
    for step in range(steps):
        if motion is not None:
            motion.state = motion.cell.step(state[0], motion.state, motion.kernels, pre=motion.pre[step])
        a = attention_at(step, state[0], None if motion is None else motion.state[0])
        state = cell.step(attended_input(a, step), state, kernels)
        hs.append(state[0])
        maps.append(a)
    return hs, maps


class SequenceModel(nn.Module):
    """Base of the variants: the input metadata and the input checks.

    Class attributes the pipeline reads:

    * ``variant``: the registry name.
    * ``input_kind``: "maps" (x is (B, T, C, H, W)) or "vectors" (x is (B, T, D)).
    * ``needs_flow``: the model also takes the flow stream; ``flow_kind`` says whether as maps
      (B, T, C', H, W) or vectors (B, T, D').
    * ``has_attention``: ``ModelOutput.attention`` is set and ``attention=`` is accepted.
    * ``family``: "conv" or "vector" (which of the authors' weight schemes applies).
    """

    variant: str = ""
    input_kind: str = "maps"
    needs_flow: bool = False
    flow_kind: str = "maps"
    has_attention: bool = False
    family: str = "conv"

    # set by subclasses' __init__
    input_channels: int = 0
    input_dim: int = 0
    flow_channels: int = 0
    flow_dim: int = 0
    spatial_size: tuple[int, int] = (0, 0)

    def _check_inputs(self, x: Tensor, flow: Tensor | None, attention: Tensor | None) -> None:
        name = self.variant
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} expects x to be a torch.Tensor, got {type(x).__name__}")
        if self.input_kind == "vectors":
            if x.dim() != 3 or x.shape[2] != self.input_dim:
                raise ValueError(f"{name} expects x of shape (B, T, D) with D={self.input_dim} (fc7-like vectors), got {tuple(x.shape)}")
        else:
            c, (hh, ww) = self.input_channels, self.spatial_size
            if x.dim() != 5 or tuple(x.shape[2:]) != (c, hh, ww):
                raise ValueError(f"{name} expects x of shape (B, T, C, H, W) with C={c}, H={hh}, W={ww} (pool5-like maps), got {tuple(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} expects at least one clip and one time step, got x of shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} expects floating-point x, got {x.dtype}")
        if self.needs_flow:
            self._check_flow(x, flow, attention)
        elif flow is not None:
            raise ValueError(f"{name} takes no flow input (needs_flow is False); got flow of shape {tuple(flow.shape)}")
        if attention is not None:
            if not self.has_attention:
                raise ValueError(f"{name} has no attention; attention= is only for attention variants")
            b, t = x.shape[:2]
            expected = (b, t, *self.spatial_size)
            if not isinstance(attention, Tensor) or tuple(attention.shape) != expected:
                got = tuple(attention.shape) if isinstance(attention, Tensor) else type(attention).__name__
                raise ValueError(f"{self.variant} expects attention of shape (B, T, H, W) = {expected}, got {got}")

    def _check_flow(self, x: Tensor, flow: Tensor | None, attention: Tensor | None) -> None:
        b, t = x.shape[:2]
        expected: tuple[int, ...]
        if self.flow_kind == "maps":
            expected, what = (b, t, self.flow_channels, *self.spatial_size), f"(B, T, C', H, W) with C'={self.flow_channels}"
        else:
            expected, what = (b, t, self.flow_dim), f"(B, T, D') with D'={self.flow_dim} (the flow stream's fc7 vectors)"
        if flow is None:
            if attention is None:
                raise ValueError(f"{self.variant} needs the flow stream of shape {what} (pass model(x, flow)); got flow=None")
            return
        if not isinstance(flow, Tensor) or tuple(flow.shape) != expected:
            got = tuple(flow.shape) if isinstance(flow, Tensor) else type(flow).__name__
            raise ValueError(f"{self.variant} expects flow of shape {what} = {expected} (B, T as x's), got {got}")

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        raise NotImplementedError


class FrameClassifier(SequenceModel):
    """ "ConvNet" on stored fc7 vectors, per frame: x (B, T, D) → dropout → Linear(K) → (B, T, K).

    The pipeline's ConvNet results come from the frame CNN itself (:mod:`videolstm.features`);
    this module is the same classifier on pre-extracted vectors, for completeness of the zoo.
    """

    variant = "convnet"
    input_kind = "vectors"
    family = "vector"

    def __init__(self, input_dim: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.input_dim = input_dim
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(input_dim, num_classes)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        return ModelOutput(self.classifier(self.dropout(x)))


class LSTMClassifier(SequenceModel):
    """LSTM over fc7 vectors (``rgb_LSTM``): x (B, T, D) → LSTM(Hd) → readout → logits (B, T, K).

    W_x·x_t + b is computed for all steps in one GEMM before the recurrence.
    """

    variant = "lstm"
    input_kind = "vectors"
    family = "vector"

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.5,
        init_state: str = "authors",
        gate_execution: str = "auto",
        init: str = "authors",
    ):
        super().__init__()
        self.input_dim = input_dim
        self.cell = LSTMCell(input_dim, hidden_size, gate_execution)
        mean = resolve_init_state(init_state, self.has_attention) == "mean"
        self.init = VectorInitialState(input_dim, hidden_size) if mean else None
        self.readout = Readout(hidden_size, fc_dim, num_classes, dropout, input_dropout=dropout)
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t, d = x.shape
        state = self.init(x) if self.init is not None else self.cell.init_state(b, like=x)
        kernels = self.cell.kernels(x_channels=0, device=x.device)
        pre = self.cell.input_gates(x.reshape(b * t, d), kernels).view(b, t, -1).unbind(1)
        hs = []
        for step in range(t):
            state = self.cell.step(None, state, kernels, pre=pre[step])
            hs.append(state[0])
        return ModelOutput(self.readout(torch.stack(hs, dim=1)))


class ALSTMClassifier(SequenceModel):
    """Soft-attention LSTM over the H·W regions of pool5 maps (``cond_lstm_layer.py``).

    x (B, T, C, H, W), regions x_{t,i} ∈ R^C. At step t:
    e_{t,i} = u · tanh(W_c x_{t,i} + W_d h_{t-1} + b), α_t = softmax_i(β e_t)
    (:class:`RegionAttention`), the LSTM input is Σ_i α_{t,i} x_{t,i}, then the readout.
    W_c x + b is computed for all steps and regions at once. Attention width: C (the authors').
    ``attention_input="hidden"`` (a deviation, the recipe before the authors'): α_t =
    softmax_i(β·(W_i h_{t-1} + b_i)) (:class:`HiddenRegionAttention`), no x_t term.
    Returns logits (B, T, K) and α (B, T, H, W).
    """

    variant = "alstm"
    has_attention = True
    family = "vector"

    def __init__(
        self,
        input_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.5,
        init_state: str = "authors",
        gate_execution: str = "auto",
        init: str = "authors",
        inverse_temperature: float = 1.0,
        attention_input: str = "authors",
    ):
        super().__init__()
        if attention_input not in ALSTM_ATTENTION_INPUTS:
            raise ValueError(f"ALSTM attention_input must be one of {ALSTM_ATTENTION_INPUTS}, got {attention_input!r}")
        self.input_channels = input_channels
        self.spatial_size = (int(spatial_size[0]), int(spatial_size[1]))
        self.attention_input = attention_input
        self.cell = LSTMCell(input_channels, hidden_size, gate_execution)
        self.attention: nn.Module = (
            HiddenRegionAttention(hidden_size, self.spatial_size[0] * self.spatial_size[1], inverse_temperature)
            if attention_input == "hidden"
            else RegionAttention(input_channels, hidden_size, input_channels, inverse_temperature)
        )
        mean = resolve_init_state(init_state, self.has_attention) == "mean"
        self.init = VectorInitialState(input_channels, hidden_size) if mean else None
        self.readout = Readout(hidden_size, fc_dim, num_classes, dropout, input_dropout=dropout)
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t, c, hh, ww = x.shape
        regions = x.reshape(b, t, c, hh * ww)  # (B, T, C, N)
        state = self.init(x) if self.init is not None else self.cell.init_state(b, like=x)
        if attention is not None:
            given = attention.reshape(b, t, hh * ww).unbind(1)
            attention_at = lambda step, h, hm: given[step]  # noqa: E731
        elif self.attention_input == "hidden":
            attention_at = lambda step, h, hm: self.attention(h)  # noqa: E731  from h_{t-1} alone
        else:
            assert isinstance(self.attention, RegionAttention)
            terms = self.attention.input_term(regions.transpose(2, 3)).unbind(1)  # T × (B, N, A)
            attention_at = lambda step, h, hm: self.attention(h, terms[step])  # noqa: E731  from x_t and h_{t-1}
        hs, alphas = attention_recurrence(
            self.cell, self.cell.kernels(device=x.device), state, t, attention_at, lambda alpha, step: attention_pool(alpha, regions[:, step])
        )
        return ModelOutput(self.readout(torch.stack(hs, dim=1)), torch.stack(alphas, dim=1).view(b, t, hh, ww))


class MotionALSTMClassifier(ALSTMClassifier):
    """Motion ALSTM (``deep_cond_lstm_layer.py``, ``rgb_motion_ALSTM``): RGB regions attended
    by a motion LSTM over the flow stream's fc7 vectors.

    x (B, T, C, H, W) RGB pool5 maps, flow (B, T, D') flow fc7 vectors. At step t:

    * bottom (motion) LSTM ``motion_cell``: gates = W^m_x f_t + W^m_c h_{t-1} + W^m_h h^m_{t-1} + b
      (one :class:`LSTMCell` whose input is cat(f_t, h_{t-1}); W^m_x f_t + b is computed for
      all steps at once);
    * attention from the RGB regions and the motion state just computed:
      e_{t,i} = u · tanh(W_c x_{t,i} + W_d h^m_t + b), α_t = softmax_i(β e_t);
    * top LSTM ``cell`` over Σ_i α_{t,i} x_{t,i}, then the readout of h_t. The motion LSTM
      feeds nothing else to the classifier.

    Returns logits (B, T, K) and α (B, T, H, W). With ``attention=`` the motion LSTM is not run.

    ``attention_input="flow"`` (a deviation, the recipe before the authors'): no motion LSTM; flow
    (B, T, C', H, W) is the flow stream's pool5 maps and e_{t,i} = w · tanh(W_m m_{t,i} + W_h h_{t-1} + b)
    over its regions m_{t,i} and the top LSTM's previous state (attention width: the hidden size).
    """

    variant = "motion_alstm"
    needs_flow = True
    flow_kind = "vectors"
    has_attention = True
    family = "vector"

    def __init__(
        self,
        input_channels: int,
        flow_dim: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.5,
        init_state: str = "authors",
        gate_execution: str = "auto",
        init: str = "authors",
        inverse_temperature: float = 1.0,
        attention_input: str = "authors",
        flow_channels: int | None = None,
    ):
        super().__init__(input_channels, spatial_size, num_classes, hidden_size, fc_dim, dropout, init_state, gate_execution, init, inverse_temperature)
        if attention_input not in MOTION_ALSTM_ATTENTION_INPUTS:
            raise ValueError(f"Motion ALSTM attention_input must be one of {MOTION_ALSTM_ATTENTION_INPUTS}, got {attention_input!r}")
        self.attention_input = attention_input
        if attention_input == "flow":
            self.flow_kind = "maps"
            self.flow_channels = int(flow_channels if flow_channels is not None else input_channels)
            self.attention = RegionAttention(self.flow_channels, hidden_size, hidden_size, inverse_temperature)
            self.motion_cell = None
            self.motion_init = None
            initialize(self, init)
            return
        self.flow_dim = flow_dim
        self.motion_cell = LSTMCell(flow_dim + hidden_size, hidden_size, gate_execution)
        self.motion_cell.input_blocks = (flow_dim, hidden_size)
        mean = resolve_init_state(init_state, self.has_attention) == "mean"
        self.motion_init = VectorInitialState(flow_dim, hidden_size) if mean else None
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t, c, hh, ww = x.shape
        regions = x.reshape(b, t, c, hh * ww)
        state = self.init(x) if self.init is not None else self.cell.init_state(b, like=x)
        motion = None
        if attention is not None:  # the motion LSTM only feeds the attention: not run
            given = attention.reshape(b, t, hh * ww).unbind(1)
            attention_at = lambda step, h, hm: given[step]  # noqa: E731
        elif self.attention_input == "flow":  # the previous recipe: flow regions and h_{t-1}, no motion LSTM
            assert flow is not None and isinstance(self.attention, RegionAttention)
            terms = self.attention.input_term(flow.reshape(b, t, self.flow_channels, hh * ww).transpose(2, 3)).unbind(1)
            attention_at = lambda step, h, hm: self.attention(h, terms[step])  # noqa: E731
        else:
            assert flow is not None and isinstance(self.attention, RegionAttention) and self.motion_cell is not None
            terms = self.attention.input_term(regions.transpose(2, 3)).unbind(1)
            motion_cell = self.motion_cell
            kernels_m = motion_cell.kernels(x_channels=self.cell.hidden_channels, device=x.device)
            pre = motion_cell.input_gates(flow.reshape(b * t, -1), kernels_m).view(b, t, -1).unbind(1)
            start = self.motion_init(flow) if self.motion_init is not None else motion_cell.init_state(b, like=x)
            motion = MotionLayer(motion_cell, kernels_m, pre, start)
            attention_at = lambda step, h, hm: self.attention(hm, terms[step])  # noqa: E731  from x_t and h^m_t
        hs, alphas = attention_recurrence(
            self.cell, self.cell.kernels(device=x.device), state, t, attention_at, lambda alpha, step: attention_pool(alpha, regions[:, step]), motion
        )
        return ModelOutput(self.readout(torch.stack(hs, dim=1)), torch.stack(alphas, dim=1).view(b, t, hh, ww))


class _ConvRecurrentModel(SequenceModel):
    """Shared body of the convolutional variants: the top ConvLSTM ``cell`` over (attended)
    pool5 maps, its initial state ``init`` and the ``readout`` of the stacked hidden maps.

    Subclasses build their layers in a fixed order (so a seed gives the same initial weights):
    :meth:`_build_cell`, their own layers, then :meth:`_build_init_and_readout`, then
    :func:`~videolstm.models.init.initialize`.
    """

    def __init__(self, input_channels: int, spatial_size: tuple[int, int]):
        super().__init__()
        self.input_channels = input_channels
        self.spatial_size = (int(spatial_size[0]), int(spatial_size[1]))

    def _build_cell(self, hidden_channels: int, kernel_size: int, gate_execution: str) -> None:
        self.cell = ConvLSTMCell(self.input_channels, hidden_channels, kernel_size, gate_execution)

    def _build_init_and_readout(self, init_state: str, fc_dim: int, num_classes: int, dropout: float) -> None:
        hidden, kernel = self.cell.hidden_channels, self.cell.kernel_size
        mean = resolve_init_state(init_state, self.has_attention) == "mean"
        self.init = MapInitialState(self.input_channels, hidden, kernel) if mean else None
        self.readout = Readout(hidden * self.spatial_size[0] * self.spatial_size[1], fc_dim, num_classes, dropout)

    def _initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(H_0, C_0) of the top ConvLSTM for x (B, T, C, H, W): from the mean input, or zeros."""
        return self.init(x) if self.init is not None else self.cell.init_state(x.shape[0], self.spatial_size, like=x)

    def _logits(self, hs: list[Tensor]) -> Tensor:
        """T hidden maps (B, Hd, H, W) → logits (B, T, K)."""
        return self.readout(torch.stack(hs, dim=1).flatten(2))


class ConvLSTMClassifier(_ConvRecurrentModel):
    """ConvLSTM (eqs. 1–6, ``rgb_convLSTM``) over pool5 maps: x (B, T, C, H, W) → logits (B, T, K).

    W_x ∗ X_t + b is computed for all B·T frames in one batched convolution before the
    recurrence; the time loop runs only the state-to-state convolution.
    """

    variant = "convlstm"

    def __init__(
        self,
        input_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_channels: int = 512,
        kernel_size: int = 3,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "authors",
        gate_execution: str = "auto",
        init: str = "authors",
    ):
        super().__init__(input_channels, spatial_size)
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t = x.shape[:2]
        state = self._initial_state(x)
        kernels = self.cell.kernels(x_channels=0, device=x.device)
        pre = self.cell.input_gates(x.flatten(0, 1), kernels).unflatten(0, (b, t)).unbind(1)
        hs = []
        for step in range(t):
            state = self.cell.step(None, state, kernels, pre=pre[step])
            hs.append(state[0])
        return ModelOutput(self._logits(hs))


class ConvALSTMClassifier(_ConvRecurrentModel):
    """Convolutional attention LSTM (eqs. 7–9, ``cond_conv_lstm_layer.py``).

    x (B, T, C, H, W). At step t: Z_t = W_z ∗ tanh(W_xa ∗ X_t + W_ha ∗ H_{t-1} + b_a),
    A_t = softmax of β Z_t over the H·W positions, X̃_t = A_t ⊙ X_t (per channel, no sum; times
    H·W with ``attention_scale="positions"``) into the ConvLSTM, then the readout.
    W_xa ∗ X_t + b_a is computed for all frames at once. Returns logits (B, T, K) and A (B, T, H, W).
    """

    variant = "convalstm"
    has_attention = True

    def __init__(
        self,
        input_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_channels: int = 512,
        kernel_size: int = 3,
        attention_kernel_size: int = 1,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "authors",
        gate_execution: str = "auto",
        attention_scale: str = "none",
        init: str = "authors",
        attention_channels: int | None = None,
        inverse_temperature: float = 1.0,
    ):
        super().__init__(input_channels, spatial_size)
        self.attended_scale = attention_scale_factor(attention_scale, self.spatial_size)
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        self.attention = ConvAttention(hidden_channels, attention_channels or hidden_channels, attention_kernel_size, input_channels, inverse_temperature)
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t = x.shape[:2]
        frames = x.unbind(1)
        if attention is not None:
            given = attention.unbind(1)
            attention_at = lambda step, h, hm: given[step]  # noqa: E731
        else:
            terms = self.attention.input_term(x.flatten(0, 1)).unflatten(0, (b, t)).unbind(1)
            attention_at = lambda step, h, hm: self.attention(h, terms[step])  # noqa: E731  from X_t and H_{t-1}
        hs, maps = attention_recurrence(
            self.cell,
            self.cell.kernels(device=x.device),
            self._initial_state(x),
            t,
            attention_at,
            lambda a, step: apply_attention(a, frames[step], self.attended_scale),
        )
        return ModelOutput(self._logits(hs), torch.stack(maps, dim=1))


#: What VideoLSTM's attention reads: the authors' RGB features and motion state, or the motion state alone.
VIDEOLSTM_ATTENTION_INPUTS: tuple[str, ...] = ("rgb_and_motion", "motion")


class VideoLSTMClassifier(_ConvRecurrentModel):
    """VideoLSTM: motion-based convolutional attention (eqs. 10–15, ``deep_cond_conv_lstm_layer.py``).

    x (B, T, C, H, W) RGB maps, flow (B, T, C', H, W) flow maps M. At step t:

    * Bottom (motion) ConvLSTM ``motion_cell``, k_m×k_m kernels (1×1 by default, as the
      authors'): gates_m = W^m_x ∗ M_t + W_e ∗ H_{t-1} + W^m_h ∗ H^m_{t-1} + b. It is one
      :class:`ConvLSTMCell` whose input is cat(M_t, H_{t-1}) (input channels C' + Hd, so W_e is
      the weight block on the top layer's H_{t-1}); W^m_x ∗ M_t + b is computed for all frames
      at once and only the H_{t-1} and H^m_{t-1} terms run in the loop.
    * Attention from the RGB features and the bottom's current state:
      Z_t = W_z ∗ tanh(W_xa ∗ X_t + W_ha ∗ H^m_t + b_a), A_t = softmax over positions of β Z_t,
      X̃_t = A_t ⊙ X_t.
    * Top ConvLSTM ``cell`` (k×k) over X̃_t, then the readout of H_t. The bottom layer feeds
      nothing else to the classifier.

    ``attention_input``: "rgb_and_motion" (the authors', above) or "motion" — the attention
    from the motion state alone, Z_t = W_z ∗ tanh(W_ha ∗ H^m_t + b_a) (a deviation kept as an
    option, issue 13 part 4: does the RGB term keep the attention off what moves?).

    Returns logits (B, T, K) and A (B, T, H, W). With ``attention=`` the bottom layer is not
    run and flow is not needed. Bottom hidden width = hidden_channels; attention width =
    ``attention_channels`` (default hidden_channels; see the registry).
    """

    variant = "videolstm"
    needs_flow = True
    has_attention = True

    def __init__(
        self,
        input_channels: int,
        flow_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_channels: int = 512,
        kernel_size: int = 3,
        attention_kernel_size: int = 1,
        motion_kernel_size: int = 1,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "authors",
        gate_execution: str = "auto",
        attention_scale: str = "none",
        init: str = "authors",
        attention_channels: int | None = None,
        inverse_temperature: float = 1.0,
        attention_input: str = "rgb_and_motion",
    ):
        super().__init__(input_channels, spatial_size)
        if attention_input not in VIDEOLSTM_ATTENTION_INPUTS:
            raise ValueError(f"attention_input must be one of {VIDEOLSTM_ATTENTION_INPUTS}, got {attention_input!r}")
        self.attention_input = attention_input
        self.flow_channels = flow_channels
        self.attended_scale = attention_scale_factor(attention_scale, self.spatial_size)
        self.motion_cell = ConvLSTMCell(flow_channels + hidden_channels, hidden_channels, motion_kernel_size, gate_execution)
        self.motion_cell.input_blocks = (flow_channels, hidden_channels)
        self.attention = ConvAttention(
            hidden_channels,
            attention_channels or hidden_channels,
            attention_kernel_size,
            input_channels,
            inverse_temperature,
            reads_input=attention_input == "rgb_and_motion",
        )
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        mean = resolve_init_state(init_state, self.has_attention) == "mean"
        self.motion_init = MapInitialState(flow_channels, hidden_channels, motion_kernel_size) if mean else None
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)
        initialize(self, init)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t = x.shape[:2]
        frames = x.unbind(1)
        motion = None
        if attention is not None:  # the bottom layer only feeds the attention: not run
            given = attention.unbind(1)
            attention_at = lambda step, h, hm: given[step]  # noqa: E731
        else:
            assert flow is not None
            terms = self.attention.input_term(x.flatten(0, 1)).unflatten(0, (b, t)).unbind(1)
            kernels_m = self.motion_cell.kernels(x_channels=self.cell.hidden_channels, device=x.device)
            pre = self.motion_cell.input_gates(flow.flatten(0, 1), kernels_m).unflatten(0, (b, t)).unbind(1)
            if self.motion_init is not None:
                start = self.motion_init(flow)
            else:
                start = self.motion_cell.init_state(b, self.spatial_size, like=x)
            motion = MotionLayer(self.motion_cell, kernels_m, pre, start)
            attention_at = lambda step, h, hm: self.attention(hm, terms[step])  # noqa: E731  from X_t and H^m_t
        hs, maps = attention_recurrence(
            self.cell,
            self.cell.kernels(device=x.device),
            self._initial_state(x),
            t,
            attention_at,
            lambda a, step: apply_attention(a, frames[step], self.attended_scale),
            motion,
        )
        return ModelOutput(self._logits(hs), torch.stack(maps, dim=1))


__all__ = [
    "INIT_SCHEMES",
    "INIT_STATES",
    "ALSTMClassifier",
    "ConvALSTMClassifier",
    "ConvLSTMClassifier",
    "FrameClassifier",
    "LSTMClassifier",
    "MapInitialState",
    "ModelOutput",
    "MotionALSTMClassifier",
    "Readout",
    "SequenceModel",
    "VectorInitialState",
    "VIDEOLSTM_ATTENTION_INPUTS",
    "VideoLSTMClassifier",
    "resolve_init_state",
]
