"""ConvLSTMCell / LSTMCell: the maths against torch.nn.LSTMCell and across execution paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from videolstm.models.cells import (
    AUTO_BACKEND,
    AUTO_EXECUTION,
    EXECUTIONS,
    ConvLSTMCell,
    LSTMCell,
    resolve_backend,
    resolve_execution,
)
from videolstm.models.functional import GATE_ORDER, gate_permutation, lstm_update

CONCRETE = ("fused", "split_xh", "per_gate")


def _torch_lstm_with_weights_of(cell_weight: torch.Tensor, bias: torch.Tensor, input_size: int, hidden: int) -> nn.LSTMCell:
    """An nn.LSTMCell holding our (4·Hd, D + Hd) weights, gate blocks mapped i,f,o,g → i,f,g,o."""
    perm = gate_permutation(GATE_ORDER, ("i", "f", "g", "o"))
    assert perm == [0, 1, 3, 2]
    w = cell_weight.detach().reshape(4, hidden, input_size + hidden)[perm].reshape(4 * hidden, input_size + hidden)
    b = bias.detach().view(4, hidden)[perm].reshape(4 * hidden)
    ref = nn.LSTMCell(input_size, hidden).double()
    with torch.no_grad():
        ref.weight_ih.copy_(w[:, :input_size])
        ref.weight_hh.copy_(w[:, input_size:])
        ref.bias_ih.copy_(b)
        ref.bias_hh.zero_()
    return ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("execution", CONCRETE)
def test_convlstm_on_1x1_maps_equals_torch_lstmcell(execution: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    d, hd, b, steps = 5, 7, 3, 6
    cell = ConvLSTMCell(d, hd, kernel_size=1, execution=execution).to(dtype)
    with torch.no_grad():
        cell.bias.normal_()  # make every gate's bias matter
    ref = _torch_lstm_with_weights_of(cell.weight.view(4 * hd, d + hd), cell.bias, d, hd).to(dtype)
    xs = torch.randn(steps, b, d, dtype=dtype)
    h = torch.randn(b, hd, dtype=dtype)
    c = torch.randn(b, hd, dtype=dtype)
    h_ref, c_ref = h.clone(), c.clone()
    h_map, c_map = h[:, :, None, None], c[:, :, None, None]
    for t in range(steps):
        h_map, c_map = cell(xs[t][:, :, None, None], (h_map, c_map))
        h_ref, c_ref = ref(xs[t], (h_ref, c_ref))
        assert (h_map[:, :, 0, 0] - h_ref).abs().max() <= 1e-5
        assert (c_map[:, :, 0, 0] - c_ref).abs().max() <= 1e-5
    # and the states actually moved (a frozen cell would also "match" a frozen reference)
    assert (h_ref - h).abs().max() > 1e-2


def test_vector_lstmcell_equals_torch_lstmcell() -> None:
    torch.manual_seed(1)
    d, hd, b = 6, 4, 2
    cell = LSTMCell(d, hd).double()
    with torch.no_grad():
        cell.bias.normal_()
    ref = _torch_lstm_with_weights_of(cell.weight, cell.bias, d, hd)
    state = (torch.zeros(b, hd, dtype=torch.double), torch.zeros(b, hd, dtype=torch.double))
    state_ref = state
    for _ in range(4):
        x = torch.randn(b, d, dtype=torch.double)
        state = cell(x, state)
        state_ref = ref(x, state_ref)
        assert torch.allclose(state[0], state_ref[0], atol=1e-10)
        assert torch.allclose(state[1], state_ref[1], atol=1e-10)


def test_cell_keeps_all_four_gates_in_one_parameter_tensor() -> None:
    cell = ConvLSTMCell(3, 5, kernel_size=3)
    shapes = {name: tuple(p.shape) for name, p in cell.named_parameters()}
    assert shapes == {"weight": (20, 8, 3, 3), "bias": (20,)}
    assert ConvLSTMCell(3, 5, kernel_size=(3, 3)).kernel_size == 3
    # forget-gate bias (second block in i, f, o, g) starts at 1, the others at 0
    assert torch.equal(cell.bias.detach(), torch.tensor([0.0] * 5 + [1.0] * 5 + [0.0] * 10))


@pytest.mark.parametrize("bad", [0, 2, (3, 5), -1])
def test_cell_rejects_even_or_non_square_kernels(bad) -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLSTMCell(3, 4, kernel_size=bad)


def test_cell_rejects_unknown_execution() -> None:
    with pytest.raises(ValueError, match="per_gate"):
        ConvLSTMCell(3, 4, execution="fast")


def _run_sequence(cell: ConvLSTMCell, xs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    kernels = cell.kernels()
    state, outs = (h0, c0), []
    for x in xs.unbind(1):
        state = cell.step(x, state, kernels)
        outs.append(state[0] + 0.5 * state[1])
    return torch.stack(outs, 1)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_execution_paths_give_the_same_outputs_and_gradients(kernel_size: int) -> None:
    """float32, as trained: every execution × backend × deferred-or-not weight gradient gives
    outputs and gradients within 1e-5 of the fused F.conv2d path with plain autograd."""
    torch.manual_seed(2)
    cin, hd, b, steps = 4, 6, 2, 3
    base = ConvLSTMCell(cin, hd, kernel_size)
    with torch.no_grad():
        base.bias.normal_()
    xs = torch.randn(b, steps, cin, 5, 5)
    h0 = torch.randn(b, hd, 5, 5)
    c0 = torch.randn(b, hd, 5, 5)
    target = torch.randn(b, steps, hd, 5, 5) / 10
    results = {}
    for execution in CONCRETE:
        for backend in ("conv2d", "gemm"):
            for defer in (False, True):
                cell = ConvLSTMCell(cin, hd, kernel_size, execution=execution, backend=backend, defer_weight_grad=defer)
                cell.load_state_dict(base.state_dict())
                x_leaf, h_leaf = xs.clone().requires_grad_(), h0.clone().requires_grad_()
                out = _run_sequence(cell, x_leaf, h_leaf, c0)
                (out * target).sum().backward()
                results[(execution, backend, defer)] = (out.detach(), cell.weight.grad, cell.bias.grad, x_leaf.grad, h_leaf.grad)
    ref = results[("fused", "conv2d", False)]
    assert all(r.abs().sum() > 0 for r in ref)
    assert len(results) == 12
    for key, got in results.items():
        for g, want in zip(got, ref):
            assert (g - want).abs().max() <= 1e-5, key


@pytest.mark.parametrize("execution", CONCRETE)
def test_vector_cell_paths_and_deferred_gradients_agree(execution: str) -> None:
    torch.manual_seed(6)
    d, hd, b, steps = 5, 4, 3, 4
    base = LSTMCell(d, hd, execution="fused", defer_weight_grad=False)
    xs = torch.randn(steps, b, d)
    grads = []
    for cell in (base, LSTMCell(d, hd, execution=execution, defer_weight_grad=True)):
        cell.load_state_dict(base.state_dict())
        kernels = cell.kernels()
        state = cell.init_state(b, like=xs)
        total = 0
        for x in xs:
            state = cell.step(x, state, kernels)
            total = total + (state[0] * torch.arange(hd)).sum()
        total.backward()
        grads.append((total.detach(), cell.weight.grad.clone(), cell.bias.grad.clone()))
    for got, want in zip(grads[1], grads[0]):
        assert (got - want).abs().max() <= 1e-5


def test_deferred_weight_gradient_adds_other_uses_of_the_cut_weights() -> None:
    """A block used both by the steps (deferred) and directly gets both gradients; unused blocks get 0."""
    torch.manual_seed(8)
    x = torch.randn(2, 3, 4, 4)
    grads = []
    for defer in (False, True):
        cell = ConvLSTMCell(3, 2, 3, execution="split_xh", backend="gemm", defer_weight_grad=defer)
        torch.manual_seed(9)
        cell.reset_parameters()
        kernels = cell.kernels()
        h, _ = cell.step(x, cell.init_state(2, (4, 4)), kernels)
        extra = (kernels.weights[1].tensor ** 2).sum()  # W_h used outside the steps too
        (h.sum() + extra).backward()
        grads.append(cell.weight.grad.clone())
    assert (grads[0] - grads[1]).abs().max() <= 1e-6
    cell = ConvLSTMCell(3, 2, 3, backend="gemm")
    cell(x, cell.init_state(2, (4, 4)))[0].sum().backward()
    unused = cell.kernels(x_channels=0)  # pre block never used: its gradient is zero, not garbage
    assert unused.pre_weight is not None
    cell.zero_grad()
    h, _ = cell.step(None, (torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)), unused, pre=torch.zeros(2, 8, 4, 4))
    h.sum().backward()
    assert torch.equal(cell.weight.grad[:, :3], torch.zeros_like(cell.weight.grad[:, :3]))
    assert cell.weight.grad[:, 3:].abs().sum() > 0


def test_deferred_weight_gradient_survives_a_second_backward_and_no_grad() -> None:
    """retain_graph twice gives twice the gradient; kernels under no_grad defer nothing."""
    torch.manual_seed(7)
    cell = ConvLSTMCell(2, 3, 3, backend="gemm")
    x = torch.randn(1, 2, 4, 4)
    out = cell(x, cell.init_state(1, (4, 4)))[0].sum()
    out.backward(retain_graph=True)
    once = cell.weight.grad.clone()
    out.backward()
    assert torch.allclose(cell.weight.grad, 2 * once, atol=1e-6)
    with torch.no_grad():
        kernels = cell.kernels()
    assert all(op is None or op.bucket is None for op in kernels.weights)


@pytest.mark.parametrize("execution", CONCRETE)
def test_precomputed_input_gates_equal_the_full_step(execution: str) -> None:
    """input_gates for all frames + step(None/pre) == the plain step, incl. a two-part input."""
    torch.manual_seed(3)
    c_pre, c_step, hd, b = 3, 2, 4, 2
    cell = ConvLSTMCell(c_pre + c_step, hd, 3, execution=execution).double()
    x = torch.randn(b, c_pre + c_step, 4, 4, dtype=torch.double)
    state = (torch.randn(b, hd, 4, 4, dtype=torch.double), torch.randn(b, hd, 4, 4, dtype=torch.double))
    want = cell(x, state)
    # all input channels precomputed
    kernels = cell.kernels(x_channels=0)
    got = cell.step(None, state, kernels, pre=cell.input_gates(x, kernels))
    # leading channels precomputed, trailing ones given per step
    kernels = cell.kernels(x_channels=c_step)
    got_part = cell.step(x[:, c_pre:], state, kernels, pre=cell.input_gates(x[:, :c_pre], kernels))
    # the standalone form (no kernels) computes the same
    standalone = cell.step(x[:, c_pre:], state, kernels, pre=cell.input_gates(x[:, :c_pre], start=0))
    for g in (got, got_part, standalone):
        assert torch.allclose(g[0], want[0], atol=1e-12) and torch.allclose(g[1], want[1], atol=1e-12)


def test_lstm_update_matches_the_equations() -> None:
    i, f, o, g, c = (torch.tensor([v]) for v in (0.3, -1.2, 2.0, 0.7, 0.5))
    h_new, c_new = lstm_update(i, f, o, g, c)
    sig = lambda v: 1 / (1 + torch.exp(-v))  # noqa: E731
    c_want = sig(f) * c + sig(i) * torch.tanh(g)
    assert torch.allclose(c_new, c_want) and torch.allclose(h_new, sig(o) * torch.tanh(c_want))


def test_auto_resolves_per_device_from_the_measured_table() -> None:
    assert set(AUTO_EXECUTION.values()) <= set(CONCRETE)
    for (kind, device, pointwise), mode in AUTO_EXECUTION.items():
        assert resolve_execution("auto", kind, device, pointwise) == mode
    assert resolve_execution("auto", "conv", "meta", False) == "fused"  # devices not measured
    assert resolve_backend("auto", "cpu") == AUTO_BACKEND["cpu"] and resolve_backend("auto", "meta") == "conv2d"
    assert resolve_execution("split_xh", "conv", "cpu", False) == "split_xh"
    assert "auto" in EXECUTIONS
    assert ConvLSTMCell(2, 2, 3).resolved_execution("cpu") == AUTO_EXECUTION[("conv", "cpu", False)]


def test_gate_permutation_rejects_non_permutations() -> None:
    with pytest.raises(ValueError):
        gate_permutation(("i", "f", "o", "o"))


def test_conv_cell_uses_same_padding_and_a_real_3x3_neighbourhood() -> None:
    """A 3×3 cell's h at a pixel depends on the neighbour's x, a 1×1 cell's does not."""
    torch.manual_seed(4)
    for k, expect_dependence in ((3, True), (1, False)):
        cell = ConvLSTMCell(2, 3, k).double()
        x = torch.randn(1, 2, 5, 5, dtype=torch.double, requires_grad=True)
        h, _ = cell(x, cell.init_state(1, (5, 5), like=x))
        assert h.shape == (1, 3, 5, 5)
        (grad,) = torch.autograd.grad(h[0, :, 2, 2].sum(), x)
        assert (grad[0, :, 2, 3].abs().sum() > 0) == expect_dependence


def test_conv_cell_weight_layout_is_x_then_h() -> None:
    """Zeroing the h block of the weight makes h_{t-1} irrelevant (layout: input channels first)."""
    torch.manual_seed(5)
    cell = ConvLSTMCell(2, 3, 3).double()
    with torch.no_grad():
        cell.weight[:, 2:] = 0
    x = torch.randn(1, 2, 4, 4, dtype=torch.double)
    c = torch.zeros(1, 3, 4, 4, dtype=torch.double)
    h1, _ = cell(x, (torch.randn(1, 3, 4, 4, dtype=torch.double), c))
    h2, _ = cell(x, (torch.randn(1, 3, 4, 4, dtype=torch.double), c))
    assert torch.equal(h1, h2)
    gates = F.conv2d(x, cell.weight[:, :2], cell.bias, padding=1)
    i, f, o, g = gates.chunk(4, 1)
    assert torch.allclose(h1, torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g)))
