"""LSTM cells whose four gates live in one parameter tensor: ConvLSTM (eqs. 1–6) and LSTM.

Both cells share one layout, written down once:

* ``weight``: (4·Hd, C_in + Hd, k, k) for :class:`ConvLSTMCell`, (4·Hd, D_in + Hd) for
  :class:`LSTMCell`. Axis 0 holds the gate blocks in :data:`~videolstm.models.functional.GATE_ORDER`
  (i, f, o, g), each Hd wide; axis 1 holds the input channels first, then the hidden channels
  (the fused product runs over ``cat(x, h)``).
* ``bias``: (4·Hd,), same gate order.

The state (h, c) is passed in and returned as tensors. The same parameter tensor can run as
one product over ``cat(x, h)`` ("fused"), one for x plus one for h ("split_xh"), or one per
gate per input ("per_gate", 8 products); all give the same numbers (tested) and "auto" picks
the measured fastest for the device (:data:`AUTO_EXECUTION`). Independently, a ConvLSTM's
convolutions run as ``F.conv2d`` or as im2col + GEMM (``backend``, :data:`AUTO_BACKEND`).

Sequences: call :meth:`~_GatedCell.kernels` once, then :meth:`~_GatedCell.step` per step.
``kernels`` cuts the weight tensor once per sequence, and — when training with a GEMM
backend — makes the weight gradient *deferred*: each step's backward only stores its
(input columns, output gradient) pair and the gradient of every weight piece is computed by
one large GEMM over all steps at the end of backpropagation through time, instead of one
small GEMM plus a full-size accumulation per step. (Not meant for double backward; a cell
with ``defer_weight_grad=False`` uses plain autograd.)

Input-side precomputation: when x_t is known for all steps before the recurrence (ConvLSTM,
LSTM, the motion ConvLSTM's flow input), :meth:`~_GatedCell.input_gates` computes W_x ∗ x + b
for all B·T frames in one batched call and ``step(None, state, kernels, pre=gates_t)`` adds
only the state-to-state term inside the time loop. A cell may also take its input in two
parts (the VideoLSTM bottom cell: flow maps precomputed, the top layer's H_{t-1} per step):
``pre`` covers the leading ``C_in - x_channels`` input channels and ``x`` the trailing
``x_channels``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videolstm.models.functional import col2map, im2col, lstm_update, split_gates

#: Gate execution modes accepted everywhere (``ModelConfig.gate_execution``).
EXECUTIONS: tuple[str, ...] = ("auto", "fused", "split_xh", "per_gate")

#: What "auto" resolves to, keyed by (cell kind, device type, kernel is 1×1 or a vector cell).
#: Measured on the project's 2-core AVX2 CPU (torch 2.13, MKL sgemm, oneDNN 3.12),
#: forward+backward; the numbers are in the ConvLSTMCell and LSTMCell docstrings, the method in
#: benchmarks/models_throughput.py. Devices not listed (CUDA, MPS, ...) use :data:`AUTO_FALLBACK`:
#: one large product is the usual GPU winner (not measured here: no GPU on this machine).
AUTO_EXECUTION: dict[tuple[str, str, bool], str] = {
    ("conv", "cpu", False): "split_xh",
    ("conv", "cpu", True): "split_xh",
    ("linear", "cpu", True): "fused",
}
AUTO_FALLBACK = "fused"

#: How a ConvLSTMCell runs its convolutions (see :func:`~videolstm.models.functional.conv2d_same`).
BACKENDS: tuple[str, ...] = ("auto", "conv2d", "gemm")
#: What backend "auto" resolves to, by device type; other devices use "conv2d" (cuDNN).
AUTO_BACKEND: dict[str, str] = {"cpu": "gemm"}


def resolve_execution(execution: str, kind: str, device: torch.device | str, pointwise: bool) -> str:
    """The concrete execution mode for ``execution`` ("auto" is looked up in :data:`AUTO_EXECUTION`).

    kind: "conv" or "linear"; device: where the step runs; pointwise: the kernel is 1×1 (or the
    cell is a vector LSTM).
    """
    if execution not in EXECUTIONS:
        raise ValueError(f"gate execution must be one of {EXECUTIONS}, got {execution!r}")
    if execution != "auto":
        return execution
    return AUTO_EXECUTION.get((kind, torch.device(device).type, pointwise), AUTO_FALLBACK)


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The concrete convolution backend for ``backend`` on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"conv backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return AUTO_BACKEND.get(torch.device(device).type, "conv2d")


# ---------------------------------------------------------------------- deferred weight gradients


class _CutWeight(torch.autograd.Function):
    """Cut a (R, K) weight matrix into transposed block views (no copies) for one sequence.

    forward: ``slots`` = ((r0, r1, c0, c1), ...), disjoint blocks tiling the whole matrix;
    returns each block as a
    (c1 − c0, r1 − r0) view ``weight[r0:r1, c0:c1].t()`` — a GEMM operand as it stands.
    backward (run by autograd after every use of every block): one gradient buffer for the
    whole weight; block i gets its incoming gradient plus, if ``buckets[i]`` holds the
    (columns, output gradient) pairs its steps left (deferred weight gradient), one GEMM
    cat(columns)ᵀ @ cat(output gradients) over all steps. No per-step weight-sized
    accumulation, no zero-filled gradient per slice.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, slots: tuple, buckets: tuple) -> tuple[Tensor, ...]:
        ctx.slots, ctx.buckets, ctx.shape = slots, buckets, weight.shape
        ctx.set_materialize_grads(False)
        return tuple(weight[r0:r1, c0:c1].t() for r0, r1, c0, c1 in slots)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, None, None]:
        ref = next((g for g in grads if g is not None), None)
        pairs_any = any(b for b in ctx.buckets if b)
        if ref is None and pairs_any:
            ref = next(b for b in ctx.buckets if b)[0][1]
        if ref is None:  # nothing reached the weight
            return None, None, None
        full = ref.new_empty(ctx.shape)  # the slots tile the whole weight (see kernels)
        for (r0, r1, c0, c1), grad, bucket in zip(ctx.slots, grads, ctx.buckets):
            block = full[r0:r1, c0:c1]  # (R', K') view
            if bucket:
                pairs = list(bucket)
                bucket.clear()
                cols = torch.cat([c for c, _ in pairs]) if len(pairs) > 1 else pairs[0][0]
                outs = torch.cat([g for _, g in pairs]) if len(pairs) > 1 else pairs[0][1]
                torch.mm(outs.t(), cols, out=block)  # (R', K') = (colsᵀ @ outs)ᵀ, straight into place
                if grad is not None:
                    block.add_(grad.t())
            elif grad is not None:
                block.copy_(grad.t())
            else:
                block.zero_()
        return full, None, None


class _StepMatmul(torch.autograd.Function):
    """cols (M, K) @ weight (K, N) (+ bias (N,)) whose weight gradient is left to :class:`_CutWeight`:
    backward returns the gradients of cols and bias and stores (cols, output gradient)."""

    @staticmethod
    def forward(ctx, cols: Tensor, weight: Tensor, bias: Tensor | None, bucket: list) -> Tensor:
        ctx.save_for_backward(cols, weight)
        ctx.bucket = bucket
        ctx.has_bias = bias is not None
        return torch.mm(cols, weight) if bias is None else torch.addmm(bias, cols, weight)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
        cols, weight = ctx.saved_tensors
        if grad_out.dtype != weight.dtype or cols.dtype != weight.dtype:  # under autocast (bf16/fp16): one dtype per GEMM
            grad_out = grad_out.to(weight.dtype)
            cols = cols.to(weight.dtype)
        if ctx.needs_input_grad[1]:
            ctx.bucket.append((cols, grad_out))
        grad_cols = torch.mm(grad_out, weight.t()) if ctx.needs_input_grad[0] else None
        grad_bias = grad_out.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_cols, None, grad_bias, None


@dataclass(frozen=True)
class Operand:
    """One weight piece prepared for the per-step products.

    tensor: (O, C, k, k) for the "conv2d" backend; the (C·k², O) matrix for GEMM products
    (the vector cell and the "gemm" backend; a transposed view of the parameter, not a copy).
    bucket: where the steps leave their (columns, output gradient) pairs when the weight
    gradient is deferred; None otherwise.
    """

    tensor: Tensor
    bucket: list | None = None


@dataclass(frozen=True)
class GateKernels:
    """The cell's one weight tensor cut for one execution mode, prepared once per sequence.

    execution: "fused" | "split_xh" | "per_gate"; backend: "conv2d" | "gemm".
    x_channels: input channels the per-step ``x`` carries (the trailing ones; 0: none).
    weights: fused → (W over [x | h],); split_xh → (W_x or None, W_h);
      per_gate → (W_x_i, W_x_f, W_x_o, W_x_g, W_h_i, W_h_f, W_h_o, W_h_g) (W_x_* None if no x).
    biases: fused / split_xh → (b,); per_gate → (b_i, b_f, b_o, b_g).
    pre_weight: the leading C_in − x_channels input channels (all gates), for
      :meth:`_GatedCell.input_gates` of all frames at once; None when x_channels == C_in.
    """

    execution: str
    x_channels: int
    weights: tuple[Operand | None, ...]
    biases: tuple[Tensor, ...]
    backend: str
    pre_weight: Operand | None = None


class _GatedCell(nn.Module):
    """Shared machinery of :class:`ConvLSTMCell` and :class:`LSTMCell` (see the module docstring)."""

    kind = "linear"

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_tail: tuple[int, ...],
        execution: str,
        backend: str,
        defer_weight_grad: bool,
    ):
        super().__init__()
        if input_channels < 0 or hidden_channels < 1:
            raise ValueError(f"need input_channels >= 0 and hidden_channels >= 1, got {input_channels}, {hidden_channels}")
        if execution not in EXECUTIONS:
            raise ValueError(f"gate execution must be one of {EXECUTIONS}, got {execution!r}")
        if backend not in BACKENDS:
            raise ValueError(f"conv backend must be one of {BACKENDS}, got {backend!r}")
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        #: channel counts of the parts of the input (for per-block initialisation); one block by default
        self.input_blocks: tuple[int, ...] = (input_channels,)
        self.execution = execution
        self.backend = backend
        self.defer_weight_grad = defer_weight_grad
        self.weight = nn.Parameter(torch.empty(4 * hidden_channels, input_channels + hidden_channels, *kernel_tail))
        self.bias = nn.Parameter(torch.empty(4 * hidden_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(±1/√fan_in) weights (fan_in = (C_in + Hd)·k·k), zero biases, forget-gate bias 1."""
        fan_in = self.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.zero_()
            hd = self.hidden_channels
            self.bias[hd : 2 * hd].fill_(1.0)  # f is the second gate block

    # -- the products: subclasses say how an input becomes GEMM columns ---------------------------
    @property
    def pointwise(self) -> bool:
        return True

    def _cols(self, inp: Tensor) -> Tensor:
        """(B, C, ...) → (M, K) GEMM columns."""
        return inp

    def _uncols(self, out: Tensor, like: Tensor) -> Tensor:
        """(M, O) → (B, O, ...) shaped like ``like``."""
        return out

    def _conv2d(self, inp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise AssertionError("vector cells have no conv2d backend")

    def _backend(self, device: torch.device | str) -> str:
        return "gemm"

    def _product(self, inp: Tensor, operand: Operand, bias: Tensor | None, backend: str) -> Tensor:
        if backend == "conv2d":
            return self._conv2d(inp, operand.tensor, bias)
        cols = self._cols(inp)
        if operand.bucket is not None:
            out = _StepMatmul.apply(cols, operand.tensor, bias, operand.bucket)
        else:
            out = torch.mm(cols, operand.tensor) if bias is None else torch.addmm(bias, cols, operand.tensor)
        return self._uncols(out, inp)

    # -- public API ------------------------------------------------------------------------------
    def resolved_execution(self, device: torch.device | str) -> str:
        """The concrete execution this cell uses on ``device``."""
        return resolve_execution(self.execution, self.kind, device, self.pointwise)

    def kernels(self, x_channels: int | None = None, device: torch.device | str | None = None) -> GateKernels:
        """Cut the weight tensor for one sequence (call once per sequence, then :meth:`step`).

        x_channels: channels of the per-step ``x`` (the trailing input channels); None: all of
        them; 0: the step gets no x (all input-side gates precomputed with :meth:`input_gates`).
        """
        cin, hd = self.input_channels, self.hidden_channels
        x_channels = cin if x_channels is None else x_channels
        if not 0 <= x_channels <= cin:
            raise ValueError(f"x_channels must be in [0, {cin}], got {x_channels}")
        device = device if device is not None else self.weight.device
        execution = self.resolved_execution(device)
        backend = self._backend(device)
        x_start = cin - x_channels
        # blocks as (rows, input-channel range); None marks an absent x block
        x_rng, h_rng = (x_start, cin), (cin, cin + hd)
        if execution == "fused":
            blocks: list = [((0, 4 * hd), (x_start, cin + hd))]
        elif execution == "split_xh":
            blocks = [((0, 4 * hd), x_rng) if x_channels else None, ((0, 4 * hd), h_rng)]
        elif execution == "per_gate":
            gates = [(g * hd, (g + 1) * hd) for g in range(4)]
            blocks = [(r, x_rng) if x_channels else None for r in gates] + [(r, h_rng) for r in gates]
        else:
            raise AssertionError(execution)
        pre_block = ((0, 4 * hd), (0, x_start)) if x_start else None
        if execution == "per_gate":
            biases: tuple[Tensor, ...] = self.bias.view(4, hd).unbind(0)
        else:
            biases = (self.bias,)

        if backend == "conv2d":  # F.conv2d wants contiguous 4-d pieces

            def piece(block) -> Operand | None:
                if block is None:
                    return None
                (r0, r1), (c0, c1) = block
                return Operand(self.weight[r0:r1, c0:c1].contiguous())

            return GateKernels(execution, x_channels, tuple(piece(b) for b in blocks), biases, backend, piece(pre_block))

        defer = self.defer_weight_grad and torch.is_grad_enabled() and self.weight.requires_grad
        kk = self.weight[0, 0].numel()  # k·k (1 for vectors): columns per input channel
        present = [b for b in blocks if b is not None] + ([pre_block] if pre_block else [])
        slots = tuple((r0, r1, c0 * kk, c1 * kk) for (r0, r1), (c0, c1) in present)
        buckets: tuple[list | None, ...] = tuple([] if defer else None for _ in present)
        assert sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in slots) == self.weight.numel()
        mats = _CutWeight.apply(self.weight.reshape(4 * hd, -1), slots, buckets)  # a view unless re-laid out
        operands = [Operand(m, b) for m, b in zip(mats, buckets)]
        pre_operand = operands.pop() if pre_block else None
        it = iter(operands)
        weights = tuple(None if b is None else next(it) for b in blocks)
        return GateKernels(execution, x_channels, weights, biases, backend, pre_operand)

    def input_gates(self, x: Tensor, kernels: GateKernels | None = None, start: int = 0) -> Tensor:
        """Input-side pre-activations W_x ∗ x + b for many frames at once (before the recurrence).

        x: (N, C_x, H, W) for the ConvLSTM, (N, C_x) for the LSTM, where N is any batch (e.g. B·T).
        With ``kernels`` (prepared with ``x_channels`` = C_in − C_x) x carries the leading C_x
        input channels and the product shares the sequence's weight cut; without, x carries
        input channels ``start .. start + C_x``.
        Returns (N, 4·Hd, H, W) / (N, 4·Hd), gate order i, f, o, g, bias included. One product
        whatever the execution mode (the frames of all steps make a large GEMM).
        """
        cx = x.shape[1]
        if kernels is not None:
            if kernels.pre_weight is None or cx != self.input_channels - kernels.x_channels:
                raise ValueError(f"input_gates: kernels cover {self.input_channels - kernels.x_channels} leading input channels, x has {cx}")
            return self._product(x, kernels.pre_weight, self.bias, kernels.backend)
        if start < 0 or start + cx > self.input_channels:
            raise ValueError(f"input_gates: channels {start}..{start + cx} exceed the cell's {self.input_channels} input channels")
        backend = self._backend(x.device)
        piece = self.weight.narrow(1, start, cx)
        if backend == "conv2d":
            return self._conv2d(x, piece, self.bias)
        operand = Operand(piece.reshape(piece.shape[0], -1).t())
        return self._product(x, operand, self.bias, backend)

    def step(
        self,
        x: Tensor | None,
        state: tuple[Tensor, Tensor],
        kernels: GateKernels,
        pre: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One time step.

        x: (B, x_channels, H, W) / (B, x_channels) or None when ``kernels.x_channels == 0``;
        state: (h, c), each (B, Hd, H, W) / (B, Hd); kernels: from :meth:`kernels`;
        pre: (B, 4·Hd, ...) precomputed gates of the leading input channels (bias included) or
        None (then the bias is added here; ``x`` must carry every input channel).
        Returns (h, c), the new state.
        """
        h, c = state
        if (x is None) != (kernels.x_channels == 0):
            got = None if x is None else tuple(x.shape)
            raise ValueError(f"step: kernels expect x with {kernels.x_channels} channels, got {got}")
        if pre is None and kernels.x_channels != self.input_channels:
            raise ValueError("step: without pre, x must carry every input channel (prepare kernels with x_channels=None)")
        bias_here = pre is None
        backend = kernels.backend

        def op(inp: Tensor, operand: Operand | None, bias: Tensor | None) -> Tensor:
            assert operand is not None
            return self._product(inp, operand, bias, backend)

        if kernels.execution == "fused":
            inp = h if x is None else torch.cat([x, h], dim=1)
            gates = op(inp, kernels.weights[0], kernels.biases[0] if bias_here else None)
            if pre is not None:
                gates = gates + pre
            i, f, o, g = split_gates(gates)
        elif kernels.execution == "split_xh":
            wx, wh = kernels.weights
            gates = op(h, wh, kernels.biases[0] if bias_here else None)
            if x is not None:
                gates = gates + op(x, wx, None)
            if pre is not None:
                gates = gates + pre
            i, f, o, g = split_gates(gates)
        else:  # per_gate
            wxs, whs = kernels.weights[:4], kernels.weights[4:]
            pres = split_gates(pre) if pre is not None else (None,) * 4
            acts = []
            for k in range(4):
                a = op(h, whs[k], kernels.biases[k] if bias_here else None)
                if x is not None:
                    a = a + op(x, wxs[k], None)
                pre_k = pres[k]
                if pre_k is not None:
                    a = a + pre_k
                acts.append(a)
            i, f, o, g = acts
        return lstm_update(i, f, o, g, c)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step from the full input: x (B, C_in, ...) and state (h, c) → (h, c).

        For a sequence, prefer :meth:`kernels` once plus :meth:`step` per step (cheaper).
        """
        return self.step(x, state, self.kernels(device=x.device))

    def init_state(self, batch: int, spatial: tuple[int, ...] = (), like: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Zero state (h, c), each (batch, Hd, *spatial)."""
        ref = self.weight if like is None else like
        z = ref.new_zeros((batch, self.hidden_channels, *spatial))
        return z, z.clone()

    def extra_repr(self) -> str:
        return f"{self.input_channels}, {self.hidden_channels}, execution={self.execution!r}"


class LSTMCell(_GatedCell):
    """Vector LSTM cell (no peepholes) with the gate layout of :class:`ConvLSTMCell`.

    Parameters: ``weight`` (4·Hd, D + Hd), ``bias`` (4·Hd,), gates i, f, o, g.
    ``forward(x, (h, c))``: x (B, D), h and c (B, Hd) → (h, c).

    Products are plain GEMMs (x (B, D) @ W_x^T) with deferred weight gradients. Execution,
    measured on this CPU with the variants at the paper's sizes (B=8, 30 steps, 512 hidden,
    forward+backward, median of 7, s/batch) — fused / split_xh / per_gate: LSTM 0.116 / 0.119 /
    0.128, ALSTM 0.099 / 0.103 / 0.114, motion ALSTM 0.227 / 0.236 / 0.241 — so "auto" is
    "fused" (one product over cat(x, h)) on every device. With 8 rows per product the step is
    bound by reading the weights, not by arithmetic.
    """

    kind = "linear"

    def __init__(self, input_size: int, hidden_size: int, execution: str = "auto", defer_weight_grad: bool = True):
        super().__init__(input_size, hidden_size, (), execution, "gemm", defer_weight_grad)


class ConvLSTMCell(_GatedCell):
    """ConvLSTM cell (eqs. 1–6 of the paper, no peepholes): all four gates in one tensor.

    Args:
        input_channels: C_in of x.
        hidden_channels: Hd of h and c.
        kernel_size: int k (or an (k, k) pair), odd; the same k×k kernel for the
            input-to-state and the state-to-state convolutions ("same" padding).
        execution: "auto" | "fused" | "split_xh" | "per_gate" (see below).
        backend: "auto" | "conv2d" (``F.conv2d``) | "gemm" (im2col + GEMM); "auto" is "gemm"
            on CPU and "conv2d" elsewhere.
        defer_weight_grad: compute the weight gradient once per sequence (GEMM backend only;
            see the module docstring).

    Parameters: ``weight`` (4·Hd, C_in + Hd, k, k), ``bias`` (4·Hd,), gate order i, f, o, g,
    input channels before hidden channels.

    ``forward(x, (h, c))``: x (B, C_in, H, W), h and c (B, Hd, H, W) → (h, c), the same shapes.
    For sequences call :meth:`kernels` once and :meth:`step` per step.

    Execution, all from the same ``weight``:

    * "fused": one convolution over cat(x, h), (C_in + Hd) → 4·Hd.
    * "split_xh": one convolution for x and one for h, summed.
    * "per_gate": one convolution per gate per input (8), each C → Hd.
    * "auto": per device, from :data:`AUTO_EXECUTION`.

    Measured on this machine's CPU (2-core AMD EPYC VM, AVX2; torch 2.13: MKL sgemm, oneDNN
    3.12) with ``benchmarks/models_throughput.py``: 512 → 512 hidden, 7×7 maps, 4-step
    sequences forward+backward with the weights cut once (deferred weight gradients on the
    GEMM backend), median GFLOP/s of 5 interleaved runs, beside a forward sgemm of the fused
    product's shape in the same runs (the machine is shared; treat ±10 % as noise):

    ======================== ===== ===== ====== ======== ======== ====== ======== ========
    cell                     batch sgemm fused  split_xh per_gate fused  split_xh per_gate
                                         conv2d conv2d   conv2d   gemm   gemm     gemm
    ======================== ===== ===== ====== ======== ======== ====== ======== ========
    3×3, x and h per step        8   169    125      131      140    148      181      136
    3×3, x and h per step       32   179    134      155      165    160      193      138
    3×3, x precomputed           8   156    121      121      126    148      147      117
    3×3, x precomputed          32   182    130      132      150    158      154      105
    1×1 (motion), x and h        8   171    149      183      169    162      195      184
    1×1 (motion), x and h       32   186    159      196      191    168      204      191
    ======================== ===== ===== ====== ======== ======== ====== ======== ========

    With ``F.conv2d`` the issue's observation holds (eight 512 → 512 convolutions beat one
    1024 → 2048 convolution, 1.12× at batch 8 and 1.23× at 32 here), but im2col + GEMM is
    faster still, and with it two products (x and h) beat both one product over cat(x, h) and
    eight per gate (the cat and the larger im2col cost more than one extra GEMM call). So on
    CPU "auto" is "split_xh" with the "gemm" backend, for 3×3 and 1×1 kernels (with x
    precomputed, split_xh and fused are the same single product). Rates above the forward
    sgemm come from the deferred weight gradient: one GEMM over all steps. On CUDA and other
    devices "auto" is "fused" with ``F.conv2d`` (cuDNN; the usual GPU winner, not measured here).
    """

    kind = "conv"

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        execution: str = "auto",
        backend: str = "auto",
        defer_weight_grad: bool = True,
    ):
        k = _odd_kernel(kernel_size)
        self.kernel_size = k
        super().__init__(input_channels, hidden_channels, (k, k), execution, backend, defer_weight_grad)

    @property
    def pointwise(self) -> bool:
        return self.kernel_size == 1

    def _backend(self, device: torch.device | str) -> str:
        return resolve_backend(self.backend, device)

    def _cols(self, inp: Tensor) -> Tensor:
        return im2col(inp, self.kernel_size)

    def _uncols(self, out: Tensor, like: Tensor) -> Tensor:
        return col2map(out, like.shape[0], like.shape[2], like.shape[3])

    def _conv2d(self, inp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(inp, weight, bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return f"{self.input_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, execution={self.execution!r}, backend={self.backend!r}"


def _odd_kernel(kernel_size: int | tuple[int, int]) -> int:
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1]:
            raise ValueError(f"kernel_size must be an int or a square (k, k) pair, got {kernel_size!r}")
        kernel_size = kernel_size[0]
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (same padding), got {kernel_size!r}")
    return kernel_size
