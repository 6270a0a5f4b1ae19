"""The paper's architecture variants as thin modules over cells, attention and pure functions.

Every variant is called as ``model(x, flow=None, attention=None)`` and returns a
:class:`ModelOutput` with per-step logits (B, T, K) and, for the attention variants, the
attention maps (B, T, H, W).

Inputs (what the pipeline feeds, see each class's ``input_kind`` and ``needs_flow``):

* ``input_kind == "vectors"`` (convnet, lstm): x (B, T, D), fc7-like frame vectors.
* ``input_kind == "maps"`` (alstm, convlstm, convalstm, motion_alstm, videolstm):
  x (B, T, C, H, W), pool5-like frame feature maps.
* ``needs_flow`` (motion_alstm, videolstm): flow (B, T, C', H, W), the flow stream's maps for
  the same frames (B, T, H, W equal to x's).

``attention`` (B, T, H, W), attention variants only: use these maps instead of computing
them. The motion variants then run only the top (RGB) network and need no flow: this is the
hook that shows the flow reaches the logits only through the attention, and it lets one
inject hand-made maps (uniform, ground-truth boxes) into a trained model.

Readout of every recurrent variant, applied to all steps at once after the recurrence:
flattened H_t → Linear(fc_dim) → tanh → dropout → Linear(K).

Initial state, ``init_state="mean"`` (the authors' code): h0 = tanh(conv_h(mean_t X)),
c0 = tanh(conv_c(mean_t X)) for the ConvLSTMs (the cell's kernel size; VideoLSTM's motion
layer from the mean of the flow maps M); tanh(Linear(mean over time, and positions for the
ALSTMs, of x)) for the vector LSTMs. ``"zeros"``: zero states, no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from videolstm.models.attention import ConvAttention, MotionRegionAttention, RegionAttention
from videolstm.models.cells import ConvLSTMCell, LSTMCell
from videolstm.models.functional import apply_attention, attention_pool, attention_scale_factor

INIT_STATES: tuple[str, ...] = ("mean", "zeros")


@dataclass
class ModelOutput:
    """What every variant returns.

    logits: (B, T, K), one prediction per time step (the test protocol sums the softmax over
    steps). attention: (B, T, H, W), Σ_{h,w} = 1 per step, for the attention variants (the
    maps used, injected ones included); None otherwise.
    """

    logits: Tensor
    attention: Tensor | None = None


class Readout(nn.Module):
    """Per-step classifier: features (B, T, F) → Linear(fc_dim) → tanh → dropout → Linear(K) → (B, T, K)."""

    def __init__(self, in_features: int, fc_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(in_features, fc_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fc_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.dropout(torch.tanh(self.fc(features))))


class MapInitialState(nn.Module):
    """ConvLSTM initial state from the clip mean: x (B, T, C, H, W) → (h0, c0), each (B, Hd, H, W).

    h0 = tanh(conv_h(mean_t x)), c0 = tanh(conv_c(mean_t x)), k×k "same" convolutions.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        self.conv_h = nn.Conv2d(input_channels, hidden_channels, kernel_size, padding=kernel_size // 2)
        self.conv_c = nn.Conv2d(input_channels, hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = x.mean(dim=1)
        return torch.tanh(self.conv_h(mean)), torch.tanh(self.conv_c(mean))


class VectorInitialState(nn.Module):
    """LSTM initial state from the clip mean: x (B, T, D) or (B, T, C, H, W) → (h0, c0), each (B, Hd).

    The mean runs over time (and the H·W positions for maps); h0 = tanh(Linear_h(mean)),
    c0 = tanh(Linear_c(mean)).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.linear_h = nn.Linear(input_size, hidden_size)
        self.linear_c = nn.Linear(input_size, hidden_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = x.mean(dim=1) if x.dim() == 3 else x.mean(dim=(1, 3, 4))
        return torch.tanh(self.linear_h(mean)), torch.tanh(self.linear_c(mean))


def _check_init_state(init_state: str) -> None:
    if init_state not in INIT_STATES:
        raise ValueError(f"init_state must be one of {INIT_STATES}, got {init_state!r}")


class SequenceModel(nn.Module):
    """Base of the variants: the input metadata and the input checks.

    Class attributes the pipeline reads:

    * ``variant``: the registry name.
    * ``input_kind``: "maps" (x is (B, T, C, H, W)) or "vectors" (x is (B, T, D)).
    * ``needs_flow``: the model also takes flow maps (B, T, C', H, W).
    * ``has_attention``: ``ModelOutput.attention`` is set and ``attention=`` is accepted.
    """

    variant: str = ""
    input_kind: str = "maps"
    needs_flow: bool = False
    has_attention: bool = False

    # set by subclasses' __init__
    input_channels: int = 0
    input_dim: int = 0
    flow_channels: int = 0
    spatial_size: tuple[int, int] = (0, 0)

    def _check_inputs(self, x: Tensor, flow: Tensor | None, attention: Tensor | None) -> None:
        name = self.variant
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} expects x to be a torch.Tensor, got {type(x).__name__}")
        if self.input_kind == "vectors":
            if x.dim() != 3 or x.shape[2] != self.input_dim:
                raise ValueError(
                    f"{name} expects x of shape (B, T, D) with D={self.input_dim} (fc7-like vectors), got {tuple(x.shape)}"
                )
        else:
            c, (hh, ww) = self.input_channels, self.spatial_size
            if x.dim() != 5 or tuple(x.shape[2:]) != (c, hh, ww):
                raise ValueError(
                    f"{name} expects x of shape (B, T, C, H, W) with C={c}, H={hh}, W={ww} (pool5-like maps), "
                    f"got {tuple(x.shape)}"
                )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} expects at least one clip and one time step, got x of shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} expects floating-point x, got {x.dtype}")
        if self.needs_flow:
            if flow is None and attention is None:
                raise ValueError(
                    f"{name} needs flow maps of shape (B, T, C', H, W) with C'={self.flow_channels} "
                    "(pass model(x, flow)); got flow=None"
                )
            if flow is not None:
                b, t, _, hh, ww = x.shape
                expected = (b, t, self.flow_channels, hh, ww)
                if not isinstance(flow, Tensor) or flow.dim() != 5 or tuple(flow.shape) != expected:
                    got = tuple(flow.shape) if isinstance(flow, Tensor) else type(flow).__name__
                    raise ValueError(
                        f"{name} expects flow of shape (B, T, C', H, W) = {expected} (B, T, H, W as x's, "
                        f"C'={self.flow_channels}), got {got}"
                    )
        elif flow is not None:
            raise ValueError(f"{name} takes no flow input (needs_flow is False); got flow of shape {tuple(flow.shape)}")
        if attention is not None:
            if not self.has_attention:
                raise ValueError(f"{name} has no attention; attention= is only for attention variants")
            b, t = x.shape[:2]
            expected = (b, t, *self.spatial_size)
            if not isinstance(attention, Tensor) or tuple(attention.shape) != expected:
                got = tuple(attention.shape) if isinstance(attention, Tensor) else type(attention).__name__
                raise ValueError(f"{name} expects attention of shape (B, T, H, W) = {expected}, got {got}")

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        raise NotImplementedError


class FrameClassifier(SequenceModel):
    """"ConvNet": the frame CNN's own classifier on fc7 vectors, per frame.

    x (B, T, D) → dropout → Linear(K) → logits (B, T, K); the test protocol averages the
    per-frame predictions (it sums softmax over steps, like the recurrent variants).
    """

    variant = "convnet"
    input_kind = "vectors"

    def __init__(self, input_dim: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.input_dim = input_dim
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(input_dim, num_classes)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        return ModelOutput(self.classifier(self.dropout(x)))


class LSTMClassifier(SequenceModel):
    """LSTM over fc7 vectors: x (B, T, D) → LSTM(Hd) → readout → logits (B, T, K).

    W_x·x_t + b is computed for all steps in one GEMM before the recurrence.
    """

    variant = "lstm"
    input_kind = "vectors"

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "mean",
        gate_execution: str = "auto",
    ):
        super().__init__()
        _check_init_state(init_state)
        self.input_dim = input_dim
        self.cell = LSTMCell(input_dim, hidden_size, gate_execution)
        self.init = VectorInitialState(input_dim, hidden_size) if init_state == "mean" else None
        self.readout = Readout(hidden_size, fc_dim, num_classes, dropout)

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


class _RegionAttentionLSTM(SequenceModel):
    """Shared loop of ALSTM and motion ALSTM: x (B, T, C, H, W) → logits (B, T, K), α (B, T, H, W).

    At step t the attention α_t (B, N) weights the N = H·W regions, the LSTM input is
    Σ_i α_{t,i} x_{t,i} (B, C), then the readout. Subclasses say where α_t comes from.
    """

    has_attention = True

    def __init__(
        self,
        input_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        attention: nn.Module,
        hidden_size: int,
        fc_dim: int,
        dropout: float,
        init_state: str,
        gate_execution: str,
    ):
        super().__init__()
        _check_init_state(init_state)
        self.input_channels = input_channels
        self.spatial_size = (int(spatial_size[0]), int(spatial_size[1]))
        self.cell = LSTMCell(input_channels, hidden_size, gate_execution)
        self.attention = attention
        self.init = VectorInitialState(input_channels, hidden_size) if init_state == "mean" else None
        self.readout = Readout(hidden_size, fc_dim, num_classes, dropout)

    def _flow_terms(self, flow: Tensor | None) -> tuple[Tensor, ...] | None:
        """Per-step precomputed flow terms (motion ALSTM) or None."""
        return None

    def _alpha(self, h: Tensor, flow_term: Tensor | None) -> Tensor:
        """α_t (B, N) from h_{t-1} (B, Hd) and this step's flow term."""
        raise NotImplementedError

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t, c, hh, ww = x.shape
        regions = x.reshape(b, t, c, hh * ww).unbind(1)  # T × (B, C, N)
        given = attention.reshape(b, t, hh * ww).unbind(1) if attention is not None else None
        flow_terms = self._flow_terms(flow) if given is None else None
        state = self.init(x) if self.init is not None else self.cell.init_state(b, like=x)
        kernels = self.cell.kernels(device=x.device)
        hs, alphas = [], []
        for step in range(t):
            if given is not None:
                alpha = given[step]
            else:
                alpha = self._alpha(state[0], flow_terms[step] if flow_terms is not None else None)
            context = attention_pool(alpha, regions[step])  # (B, C)
            state = self.cell.step(context, state, kernels)
            hs.append(state[0])
            alphas.append(alpha)
        maps = torch.stack(alphas, dim=1).view(b, t, hh, ww)
        return ModelOutput(self.readout(torch.stack(hs, dim=1)), maps)


class ALSTMClassifier(_RegionAttentionLSTM):
    """Soft-attention LSTM (Sharma et al. 2015) over the H·W regions of pool5 maps.

    x (B, T, C, H, W). At step t: α_t = softmax_i(W_i·h_{t-1} + b_i) (previous hidden state
    only; :class:`RegionAttention`), the LSTM input is Σ_i α_{t,i} x_{t,i} (C), then the
    readout. Returns logits (B, T, K) and α (B, T, H, W).
    """

    variant = "alstm"

    def __init__(
        self,
        input_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "mean",
        gate_execution: str = "auto",
    ):
        attention = RegionAttention(hidden_size, spatial_size[0] * spatial_size[1])
        super().__init__(
            input_channels, spatial_size, num_classes, attention, hidden_size, fc_dim, dropout, init_state, gate_execution
        )

    def _alpha(self, h: Tensor, flow_term: Tensor | None) -> Tensor:
        return self.attention(h)


class MotionALSTMClassifier(_RegionAttentionLSTM):
    """ALSTM whose attention context comes from the flow stream.

    x (B, T, C, H, W) RGB maps, flow (B, T, C', H, W). e_{t,i} = w·tanh(W_m m_{t,i} + W_h h_{t-1} + b),
    α_t = softmax_i(e_t) (:class:`MotionRegionAttention`), the LSTM input is Σ_i α_{t,i} x_{t,i}
    (RGB regions). W_m m + b is computed for all steps and regions at once. Attention width =
    the LSTM hidden size. Returns logits (B, T, K) and α (B, T, H, W).
    """

    variant = "motion_alstm"
    needs_flow = True

    def __init__(
        self,
        input_channels: int,
        flow_channels: int,
        spatial_size: tuple[int, int],
        num_classes: int,
        hidden_size: int = 512,
        fc_dim: int = 1024,
        dropout: float = 0.7,
        init_state: str = "mean",
        gate_execution: str = "auto",
    ):
        attention = MotionRegionAttention(flow_channels, hidden_size, hidden_size)
        super().__init__(
            input_channels, spatial_size, num_classes, attention, hidden_size, fc_dim, dropout, init_state, gate_execution
        )
        self.flow_channels = flow_channels

    def _flow_terms(self, flow: Tensor | None) -> tuple[Tensor, ...] | None:
        assert flow is not None
        b, t, c = flow.shape[:3]
        m = flow.reshape(b, t, c, -1).transpose(2, 3)  # (B, T, N, C')
        return self.attention.flow_term(m).unbind(1)  # T × (B, N, A)

    def _alpha(self, h: Tensor, flow_term: Tensor | None) -> Tensor:
        assert flow_term is not None
        return self.attention(h, flow_term)


class _ConvRecurrentModel(SequenceModel):
    """Shared body of the convolutional variants: the top ConvLSTM ``cell`` over (attended)
    pool5 maps, its initial state ``init`` and the ``readout`` of the stacked hidden maps.

    Subclasses build their layers in a fixed order (so a seed gives the same initial weights):
    :meth:`_build_cell`, their own layers, then :meth:`_build_init_and_readout`.
    """

    def __init__(self, input_channels: int, spatial_size: tuple[int, int], init_state: str):
        super().__init__()
        _check_init_state(init_state)
        self.input_channels = input_channels
        self.spatial_size = (int(spatial_size[0]), int(spatial_size[1]))

    def _build_cell(self, hidden_channels: int, kernel_size: int, gate_execution: str) -> None:
        self.cell = ConvLSTMCell(self.input_channels, hidden_channels, kernel_size, gate_execution)

    def _build_init_and_readout(self, init_state: str, fc_dim: int, num_classes: int, dropout: float) -> None:
        hidden, kernel = self.cell.hidden_channels, self.cell.kernel_size
        self.init = MapInitialState(self.input_channels, hidden, kernel) if init_state == "mean" else None
        self.readout = Readout(hidden * self.spatial_size[0] * self.spatial_size[1], fc_dim, num_classes, dropout)

    def _initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(H_0, C_0) of the top ConvLSTM for x (B, T, C, H, W): from the mean input, or zeros."""
        return self.init(x) if self.init is not None else self.cell.init_state(x.shape[0], self.spatial_size, like=x)

    def _logits(self, hs: list[Tensor]) -> Tensor:
        """T hidden maps (B, Hd, H, W) → logits (B, T, K)."""
        return self.readout(torch.stack(hs, dim=1).flatten(2))


class ConvLSTMClassifier(_ConvRecurrentModel):
    """ConvLSTM (eqs. 1–6) over pool5 maps: x (B, T, C, H, W) → logits (B, T, K).

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
        init_state: str = "mean",
        gate_execution: str = "auto",
    ):
        super().__init__(input_channels, spatial_size, init_state)
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)

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
    """Convolutional attention LSTM (eqs. 7–9).

    x (B, T, C, H, W). At step t: Z_t = W_z ∗ tanh(W_xa ∗ X_t + W_ha ∗ H_{t-1} + b_a),
    A_t = softmax of Z_t over the H·W positions, X̃_t = A_t ⊙ X_t (per channel, no sum; times
    H·W with ``attention_scale="positions"``) into the ConvLSTM, then the readout. W_xa ∗ X_t + b_a is computed for all frames at once.
    Returns logits (B, T, K) and A (B, T, H, W). Attention width = hidden_channels.
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
        init_state: str = "mean",
        gate_execution: str = "auto",
        attention_scale: str = "none",
    ):
        super().__init__(input_channels, spatial_size, init_state)
        self.attended_scale = attention_scale_factor(attention_scale, self.spatial_size)
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        self.attention = ConvAttention(hidden_channels, hidden_channels, attention_kernel_size, input_channels=input_channels)
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t = x.shape[:2]
        frames = x.unbind(1)
        given = attention.unbind(1) if attention is not None else None
        if given is None:
            input_terms = self.attention.input_term(x.flatten(0, 1)).unflatten(0, (b, t)).unbind(1)
        state = self._initial_state(x)
        kernels = self.cell.kernels(device=x.device)
        hs, maps = [], []
        for step in range(t):
            a = given[step] if given is not None else self.attention(state[0], input_terms[step])
            state = self.cell.step(apply_attention(a, frames[step], self.attended_scale), state, kernels)
            hs.append(state[0])
            maps.append(a)
        return ModelOutput(self._logits(hs), torch.stack(maps, dim=1))


class VideoLSTMClassifier(_ConvRecurrentModel):
    """VideoLSTM: motion-based convolutional attention LSTM (eqs. 10–15).

    x (B, T, C, H, W) RGB maps, flow (B, T, C', H, W) flow maps M.

    * Bottom (motion) ConvLSTM, ``motion_cell``, k_m×k_m kernels (1×1 by default, as in the
      authors' code): gates_m = W^m_x ∗ M_t + W_e ∗ H_{t-1} + W^m_h ∗ H^m_{t-1} + b. It is one
      :class:`ConvLSTMCell` whose input is cat(M_t, H_{t-1}) (input channels C' + Hd, so W_e is
      the weight block on the top layer's H_{t-1}); W^m_x ∗ M_t + b is computed for all frames
      at once and only the H_{t-1} and H^m_{t-1} terms run in the loop.
    * Attention from the bottom's current state: Z_t = W_z ∗ tanh(W_ha ∗ H^m_t + b_a),
      A_t = softmax over positions, X̃_t = A_t ⊙ X_t (RGB).
    * Top ConvLSTM ``cell`` (k×k) over X̃_t, then the readout of H_t. The bottom layer feeds
      nothing else to the classifier.

    Returns logits (B, T, K) and A (B, T, H, W). With ``attention=`` the bottom layer is not
    run and flow is not needed. Bottom hidden width = attention width = hidden_channels.
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
        init_state: str = "mean",
        gate_execution: str = "auto",
        attention_scale: str = "none",
    ):
        super().__init__(input_channels, spatial_size, init_state)
        self.flow_channels = flow_channels
        self.attended_scale = attention_scale_factor(attention_scale, self.spatial_size)
        self.motion_cell = ConvLSTMCell(flow_channels + hidden_channels, hidden_channels, motion_kernel_size, gate_execution)
        self.attention = ConvAttention(hidden_channels, hidden_channels, attention_kernel_size, input_channels=None)
        self._build_cell(hidden_channels, kernel_size, gate_execution)
        self.motion_init = MapInitialState(flow_channels, hidden_channels, motion_kernel_size) if init_state == "mean" else None
        self._build_init_and_readout(init_state, fc_dim, num_classes, dropout)

    def forward(self, x: Tensor, flow: Tensor | None = None, attention: Tensor | None = None) -> ModelOutput:
        self._check_inputs(x, flow, attention)
        b, t = x.shape[:2]
        frames = x.unbind(1)
        given = attention.unbind(1) if attention is not None else None
        state = self._initial_state(x)
        if given is None:
            assert flow is not None
            motion_kernels = self.motion_cell.kernels(x_channels=self.cell.hidden_channels, device=x.device)
            motion_pre = self.motion_cell.input_gates(flow.flatten(0, 1), motion_kernels).unflatten(0, (b, t)).unbind(1)
            if self.motion_init is not None:
                motion_state = self.motion_init(flow)
            else:
                motion_state = self.motion_cell.init_state(b, self.spatial_size, like=x)
        kernels = self.cell.kernels(device=x.device)
        hs, maps = [], []
        for step in range(t):
            if given is None:
                motion_state = self.motion_cell.step(state[0], motion_state, motion_kernels, pre=motion_pre[step])
                a = self.attention(motion_state[0])
            else:
                a = given[step]
            state = self.cell.step(apply_attention(a, frames[step], self.attended_scale), state, kernels)
            hs.append(state[0])
            maps.append(a)
        return ModelOutput(self._logits(hs), torch.stack(maps, dim=1))
