"""The variants: equal to naive references of the equations, trainable, and strict about inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.models import reference
from videolstm.models import VARIANTS, build_model, sequence_loss
from videolstm.models.registry import MODEL_BUILDERS, SIZE_KEYS, model_sizes

SMALL = dict(
    input_channels=5,
    flow_channels=3,
    input_dim=12,
    flow_dim=9,
    spatial_size=(3, 4),  # not square: catches H/W mix-ups
    hidden_channels=4,
    lstm_hidden=6,
    fc_dim=7,
    dropout=0.0,
    vector_dropout=0.0,
)
B, T, K = 2, 4, 3
MOTION = ("motion_alstm", "videolstm")
ATTENTION = ("alstm", "convalstm", "motion_alstm", "videolstm")


def small_model(name: str, dtype=torch.float64, **overrides):
    torch.manual_seed(0)
    return build_model(name, K, **{**SMALL, **overrides}).to(dtype)


def inputs_for(model, batch: int = B, steps: int = T, dtype=torch.float64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    h, w = SMALL["spatial_size"]
    if model.input_kind == "vectors":
        x = torch.randn(batch, steps, SMALL["input_dim"], generator=g, dtype=dtype)
    else:
        x = torch.randn(batch, steps, SMALL["input_channels"], h, w, generator=g, dtype=dtype)
    flow = None
    if model.needs_flow and model.flow_kind == "maps":
        flow = torch.randn(batch, steps, SMALL["flow_channels"], h, w, generator=g, dtype=dtype)
    elif model.needs_flow:
        flow = torch.randn(batch, steps, SMALL["flow_dim"], generator=g, dtype=dtype)
    return x, flow


def test_registry_names_are_the_variants_and_their_metadata() -> None:
    assert tuple(MODEL_BUILDERS) == VARIANTS
    assert VARIANTS == ("convnet", "lstm", "alstm", "convlstm", "convalstm", "motion_alstm", "videolstm")
    expected = {
        "convnet": ("vectors", False, False),
        "lstm": ("vectors", False, False),
        "alstm": ("maps", False, True),
        "convlstm": ("maps", False, False),
        "convalstm": ("maps", False, True),
        "motion_alstm": ("maps", True, True),
        "videolstm": ("maps", True, True),
    }
    for name in VARIANTS:
        model = small_model(name)
        assert (model.input_kind, model.needs_flow, model.has_attention) == expected[name]
        if model.needs_flow:  # the authors': Motion ALSTM reads the flow stream's fc7, VideoLSTM its pool5
            assert model.flow_kind == {"motion_alstm": "vectors", "videolstm": "maps"}[name]
        assert model.variant == name


def test_variants_import_without_torch() -> None:
    code = "import sys, videolstm.models as m; assert m.VARIANTS[-1] == 'videolstm'; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("init_state", ["authors", "mean", "zeros"])
@pytest.mark.parametrize("name", VARIANTS)
def test_variant_equals_the_naive_reference_of_its_equations(name: str, init_state: str) -> None:
    """Outputs and attention maps equal a plain step-by-step computation of the authors' equations."""
    model = small_model(name, init_state=init_state).eval()
    x, flow = inputs_for(model)
    out = model(x, flow)
    want_logits, want_attention = reference.REFERENCES[name](model, x, flow)
    assert out.logits.shape == (B, T, K)
    assert (out.logits - want_logits).abs().max() <= 1e-10
    if name in ATTENTION:
        assert out.attention.shape == (B, T, *SMALL["spatial_size"])
        assert (out.attention - want_attention).abs().max() <= 1e-10
    else:
        assert out.attention is None


@pytest.mark.parametrize("execution", ["auto", "fused", "split_xh", "per_gate"])
@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_gradients_equal_the_naive_references(name: str, execution: str) -> None:
    """Backpropagation through time (deferred weight gradients, weight cuts, precomputed
    input gates) gives the gradients autograd computes through the naive reference."""
    model = small_model(name, gate_execution=execution).eval()
    x, flow = inputs_for(model)
    labels = torch.tensor([1, 2])
    sequence_loss(model(x, flow).logits, labels).backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    sequence_loss(reference.REFERENCES[name](model, x, flow)[0], labels).backward()
    for n, p in model.named_parameters():
        assert (fast[n] - p.grad).abs().max() <= 1e-10, n


@pytest.mark.parametrize("execution", ["fused", "split_xh", "per_gate"])
@pytest.mark.parametrize("name", ["convlstm", "convalstm", "videolstm", "alstm"])
def test_every_gate_execution_computes_the_same_model(name: str, execution: str) -> None:
    model = small_model(name, dtype=torch.float32, gate_execution=execution, kernel_size=3, motion_kernel_size=3)
    x, flow = inputs_for(model, dtype=torch.float32)
    want, _ = reference.REFERENCES[name](model, x, flow)
    assert (model(x, flow).logits - want).abs().max() <= 1e-5


def test_init_state_mean_starts_from_tanh_of_the_clip_mean() -> None:
    """'mean' and 'zeros' differ, and 'zeros' has no init parameters."""
    zeros = small_model("convlstm", init_state="zeros")
    assert not any("init" in n for n, _ in zeros.named_parameters())
    mean = small_model("convlstm", init_state="mean")
    assert {n for n, _ in mean.named_parameters() if "init" in n} == {"init.conv_h.weight", "init.conv_h.bias", "init.conv_c.weight", "init.conv_c.bias"}
    video = small_model("videolstm", init_state="mean")
    assert video.motion_init.conv_h.weight.shape[1] == SMALL["flow_channels"]  # from the mean of M
    assert video.init.conv_h.weight.shape[1] == SMALL["input_channels"]
    motion = small_model("motion_alstm", init_state="mean")
    assert motion.motion_init.linear_h.weight.shape[1] == SMALL["flow_dim"]  # from the mean flow vector


def test_authors_initial_states_are_zeros_without_attention_and_the_clip_mean_with_it() -> None:
    """rgb_convLSTM / rgb_LSTM pass no initial state; the attention scripts build it from the mean."""
    for name in ("convlstm", "lstm"):
        assert small_model(name).init is None, name
    for name in ATTENTION:
        assert small_model(name).init is not None, name
    for name in MOTION:
        assert small_model(name).motion_init is not None, name


@pytest.mark.parametrize("init_state", ["authors", "mean", "zeros"])
@pytest.mark.parametrize("name", VARIANTS)
def test_every_parameter_receives_a_nonzero_gradient(name: str, init_state: str) -> None:
    model = small_model(name, init_state=init_state)
    x, flow = inputs_for(model)
    loss = sequence_loss(model(x, flow).logits, torch.tensor([0, 2]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_fits_eight_random_clips(name: str) -> None:
    """Summed-over-steps cross-entropy on 8 random clips below 0.05 within 300 Adam steps."""
    torch.manual_seed(0)
    sizes = {**SMALL, "input_dim": 32}  # 24 random frames are separable in 32 dimensions
    model = build_model(name, 4, **sizes)
    model.train()
    g = torch.Generator().manual_seed(3)
    h, w = sizes["spatial_size"]
    steps = 3
    if model.input_kind == "vectors":
        x = torch.randn(8, steps, sizes["input_dim"], generator=g)
    else:
        x = torch.randn(8, steps, sizes["input_channels"], h, w, generator=g)
    flow = None
    if model.needs_flow:
        shape = (sizes["flow_channels"], h, w) if model.flow_kind == "maps" else (sizes["flow_dim"],)
        flow = torch.randn(8, steps, *shape, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        loss = sequence_loss(model(x, flow).logits, labels)
        first = loss.item() if first is None else first
        if loss.item() < 0.05:
            break
        loss.backward()
        optimizer.step()
    assert first > 1.0  # it had something to learn (≈ 3 · ln 4 at the start)
    assert loss.item() < 0.05


@pytest.mark.parametrize("name", MOTION)
def test_flow_changes_the_attention_and_the_logits(name: str) -> None:
    model = small_model(name).eval()
    x, flow = inputs_for(model)
    other = torch.randn_like(flow)
    a, b = model(x, flow), model(x, other)
    assert (a.attention - b.attention).abs().max() > 1e-10  # float64: far above rounding
    assert (a.logits - b.logits).abs().max() > 1e-10


@pytest.mark.parametrize("name", MOTION)
def test_flow_reaches_the_logits_only_through_the_attention(name: str) -> None:
    model = small_model(name).eval()
    x, flow = inputs_for(model)
    recorded = model(x, flow)
    # the injected-attention path is the same computation as the normal one ...
    replay = model(x, flow, attention=recorded.attention)
    assert (replay.logits - recorded.logits).abs().max() <= 1e-12
    # ... and with the attention fixed, the flow no longer matters (and is not needed)
    other = torch.randn_like(flow).requires_grad_()
    fixed = model(x, other, attention=recorded.attention.detach())
    assert (fixed.logits - recorded.logits).abs().max() <= 1e-12
    assert (model(x, attention=recorded.attention).logits - recorded.logits).abs().max() <= 1e-12
    (grad,) = torch.autograd.grad(fixed.logits.sum(), other, allow_unused=True)
    assert grad is None or grad.abs().max() == 0
    # while without the override the logits have a non-zero gradient w.r.t. the flow
    free_flow = flow.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x, free_flow).logits.sum(), free_flow)
    assert grad.abs().max() > 0


def test_videolstm_bottom_layer_receives_the_top_hidden_state() -> None:
    """W_e: the motion cell's weight block on H_{t-1} is live (bottom input is cat(M_t, H_{t-1}))."""
    model = small_model("videolstm")
    c_flow, hd = SMALL["flow_channels"], SMALL["hidden_channels"]
    assert model.motion_cell.input_channels == c_flow + hd
    x, flow = inputs_for(model)
    model(x, flow).logits.sum().backward()
    w_e_grad = model.motion_cell.weight.grad[:, c_flow : c_flow + hd]
    assert w_e_grad.abs().sum() > 0
    with torch.no_grad():  # cutting W_e changes the attention from step 2 on
        base = model(x, flow).attention
        model.motion_cell.weight[:, c_flow : c_flow + hd] = 0
        cut = model(x, flow).attention
    assert (base[:, 1:] - cut[:, 1:]).abs().max() > 1e-8


def test_convalstm_with_given_attention_is_a_convlstm_over_a_times_x() -> None:
    """X̃_t = A_t ⊙ X_t into the ConvLSTM: equal to the ConvLSTM variant run on A ⊙ X."""
    att_model = small_model("convalstm", init_state="mean").eval()
    plain = small_model("convlstm", init_state="mean").eval()
    plain.load_state_dict({k: v for k, v in att_model.state_dict().items() if not k.startswith("attention.")})
    x, _ = inputs_for(att_model)
    a = torch.softmax(torch.randn(B, T, 12, dtype=torch.float64), dim=-1).view(B, T, 3, 4)
    attended = x * a[:, :, None]  # (B, T, C, H, W)
    # attended by hand for one entry
    assert attended[1, 2, 3, 2, 1] == x[1, 2, 3, 2, 1] * a[1, 2, 2, 1]
    # the init state comes from the unattended X in ConvALSTM: compare with zeros-init to isolate
    att_zero = small_model("convalstm", init_state="zeros").eval()
    plain_zero = small_model("convlstm", init_state="zeros").eval()
    plain_zero.load_state_dict({k: v for k, v in att_zero.state_dict().items() if not k.startswith("attention.")})
    got = att_zero(x, attention=a)
    assert torch.equal(got.attention, a)
    assert (got.logits - plain_zero(attended).logits).abs().max() <= 1e-12


def test_alstm_with_given_attention_is_an_lstm_over_the_weighted_sum() -> None:
    """ALSTM's LSTM input is Σ_i α_i x_i: equal to the LSTM variant run on those contexts."""
    att = small_model("alstm", init_state="zeros").eval()
    plain = small_model("lstm", init_state="zeros", input_dim=SMALL["input_channels"], lstm_hidden=SMALL["lstm_hidden"]).eval()
    plain.load_state_dict({k: v for k, v in att.state_dict().items() if not k.startswith("attention.")})
    x, _ = inputs_for(att)
    alpha = torch.softmax(torch.randn(B, T, 12, dtype=torch.float64), dim=-1)
    context = torch.einsum("btn,btcn->btc", alpha, x.flatten(3))
    assert torch.allclose(context[0, 1, 2], (alpha[0, 1] * x[0, 1, 2].flatten()).sum())
    got = att(x, attention=alpha.view(B, T, 3, 4))
    assert (got.logits - plain(context).logits).abs().max() <= 1e-12


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_maps_are_distributions_over_positions(name: str) -> None:
    model = small_model(name).eval()
    x, flow = inputs_for(model, batch=3, steps=5)
    att = model(x, flow).attention
    assert att.shape == (3, 5, 3, 4)
    assert att.min() >= 0
    assert torch.allclose(att.sum(dim=(2, 3)), torch.ones(3, 5, dtype=att.dtype))
    assert att.std() > 0  # not a constant map


@pytest.mark.parametrize("name", ATTENTION)
def test_changing_only_the_last_frame_changes_the_last_attention_map(name: str) -> None:
    """Every attention reads X_t (the authors' W_c x_t term): with zero initial states, changing
    only frame T changes A_T and leaves A_1 … A_{T-1} as they were."""
    model = small_model(name, init_state="zeros").eval()
    x, flow = inputs_for(model)
    base = model(x, flow).attention
    x2 = x.clone()
    x2[:, -1] = torch.randn_like(x2[:, -1])
    changed = model(x2, flow).attention
    assert torch.equal(changed[:, :-1], base[:, :-1])
    assert (changed[:, -1] - base[:, -1]).abs().max() > 1e-6


@pytest.mark.parametrize("name", MOTION)
def test_changing_only_the_flow_of_one_frame_changes_that_attention_map(name: str) -> None:
    """The motion state of step t enters A_t (the authors attend with h^m_t, not h^m_{t-1})."""
    model = small_model(name, init_state="zeros").eval()
    x, flow = inputs_for(model)
    base = model(x, flow).attention
    flow2 = flow.clone()
    flow2[:, -1] = torch.randn_like(flow2[:, -1])
    changed = model(x, flow2).attention
    assert torch.equal(changed[:, :-1], base[:, :-1])
    assert (changed[:, -1] - base[:, -1]).abs().max() > 1e-6


def test_vector_variants_drop_out_h_and_the_fc_output_by_half_the_convolutional_ones_the_fc_output_by_0_7() -> None:
    """rgb_LSTM / rgb_ALSTM: dropout 0.5 on h_t and after the FC; rgb_convALSTM: 0.7 after the FC only."""
    for name in ("lstm", "alstm", "motion_alstm"):
        readout = build_model(name, 3).readout
        assert (readout.input_dropout.p, readout.dropout.p) == (0.5, 0.5), name
    for name in ("convlstm", "convalstm", "videolstm"):
        readout = build_model(name, 3, hidden_channels=4, input_channels=4, fc_dim=8).readout
        assert (readout.input_dropout.p, readout.dropout.p) == (0.0, 0.7), name


def test_readout_is_per_step_and_causal() -> None:
    # the mean init reads the whole clip, so causality holds with the zero init
    model = small_model("convlstm", init_state="zeros").eval()
    x, _ = inputs_for(model)
    base = model(x).logits
    x2 = x.clone()
    x2[:, -1] += 1.0
    changed = model(x2).logits
    assert torch.equal(base[:, :-1], changed[:, :-1])
    assert (base[:, -1] - changed[:, -1]).abs().max() > 0


# ---------------------------------------------------------------- errors and configuration


def test_unknown_variant_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid names.*videolstm"):
        build_model("convlstm2", 5)


def test_unknown_override_names_the_valid_keys() -> None:
    with pytest.raises(ValueError, match="unknown model override.*hidden_size.*valid keys"):
        build_model("lstm", 5, hidden_size=3)


@pytest.mark.parametrize(
    "override",
    [
        {"kernel_size": 2},
        {"init_state": "random"},
        {"gate_execution": "fast"},
        {"dropout": 1.0},
        {"hidden_channels": 0},
        {"spatial_size": (7,)},
        {"input_channels": 2.5},
    ],
)
def test_bad_override_values_are_value_errors(override: dict) -> None:
    key = next(iter(override))
    with pytest.raises(ValueError, match=key):
        build_model("videolstm", 5, **{**SMALL, **override})


def test_bad_num_classes_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model("lstm", 0)


@pytest.mark.parametrize("name", MOTION)
def test_missing_flow_is_a_value_error(name: str) -> None:
    model = small_model(name)
    x, _ = inputs_for(model)
    shape = r"\(B, T, C', H, W\)" if model.flow_kind == "maps" else r"\(B, T, D'\)"
    with pytest.raises(ValueError, match=rf"{name} needs the flow stream of shape {shape}"):
        model(x)


def test_wrong_rank_names_the_expected_shape() -> None:
    model = small_model("videolstm")
    x, flow = inputs_for(model)
    with pytest.raises(ValueError, match=r"videolstm expects x of shape \(B, T, C, H, W\).*got \(2, 4, 5\)"):
        model(x[..., 0, 0], flow)
    lstm = small_model("lstm")
    with pytest.raises(ValueError, match=r"lstm expects x of shape \(B, T, D\) with D=12.*got \(2, 4, 5, 3, 4\)"):
        lstm(x)
    with pytest.raises(ValueError, match=r"convlstm expects x of shape \(B, T, C, H, W\) with C=5, H=3, W=4"):
        small_model("convlstm")(x[:, :, :, :2])


@pytest.mark.parametrize("bad", ["batch", "time", "height", "channels", "rank"])
def test_flow_not_matching_x_is_a_value_error(bad: str) -> None:
    model = small_model("videolstm")
    x, flow = inputs_for(model)
    wrong = {
        "batch": flow[:1],
        "time": flow[:, :2],
        "height": flow[:, :, :, :2],
        "channels": flow[:, :, :2],
        "rank": flow[:, 0],
    }[bad]
    with pytest.raises(ValueError, match=r"videolstm expects flow of shape \(B, T, C', H, W\) with C'=3 = \(2, 4, 3, 3, 4\)"):
        model(x, wrong)


def test_flow_or_attention_where_not_taken_is_a_value_error() -> None:
    model = small_model("convlstm")
    x, _ = inputs_for(model)
    with pytest.raises(ValueError, match="takes no flow"):
        model(x, torch.zeros(B, T, 3, 3, 4, dtype=x.dtype))
    with pytest.raises(ValueError, match="has no attention"):
        model(x, attention=torch.zeros(B, T, 3, 4, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"expects attention of shape \(B, T, H, W\) = \(2, 4, 3, 4\)"):
        small_model("convalstm")(x, attention=torch.zeros(B, T, 4, 3, dtype=x.dtype))


def test_defaults_are_the_papers() -> None:
    sizes = model_sizes()
    assert (sizes.input_channels, sizes.flow_channels, sizes.input_dim, sizes.spatial_size) == (512, 512, 4096, (7, 7))
    assert (sizes.hidden_channels, sizes.lstm_hidden, sizes.kernel_size) == (512, 512, 3)
    assert (sizes.attention_kernel_size, sizes.motion_kernel_size, sizes.fc_dim, sizes.dropout) == (1, 1, 1024, 0.7)
    assert (sizes.init_state, sizes.init, sizes.gate_execution) == ("authors", "authors", "auto")
    assert (sizes.vector_dropout, sizes.attention_inverse_temperature, sizes.attention_scale) == (0.5, 1.0, "none")
    assert sizes.flow_dim == 4096 and sizes.attention_channels == 512
    assert model_sizes(input_channels=64).flow_channels == 64  # C' defaults to C
    assert model_sizes(spatial_size=5).spatial_size == (5, 5)
    import numpy as np  # feature metadata may carry numpy ints and lists

    sizes = model_sizes(input_channels=np.int64(64), spatial_size=[np.int64(7), 7])
    assert sizes.input_channels == 64 and type(sizes.input_channels) is int and sizes.spatial_size == (7, 7)
    model = build_model("videolstm", 101)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["cell.weight"] == (2048, 1024, 3, 3)
    assert shapes["motion_cell.weight"] == (2048, 512 + 512 + 512, 1, 1)  # [M | H_{t-1} | H^m]
    assert shapes["attention.w_ha.weight"] == (512, 512, 1, 1) and shapes["attention.w_z.weight"] == (1, 512, 1, 1)
    assert shapes["attention.w_xa.weight"] == (512, 512, 1, 1)  # VideoLSTM's attention reads X_t too
    motion = {n: tuple(p.shape) for n, p in build_model("motion_alstm", 101).named_parameters()}
    assert motion["motion_cell.weight"] == (2048, 4096 + 512 + 512)  # [flow fc7 | h_{t-1} | h^m]
    assert motion["attention.w_c.weight"] == (512, 512) and motion["attention.w_d.weight"] == (512, 512)
    assert shapes["readout.fc.weight"] == (1024, 512 * 49) and shapes["readout.classifier.weight"] == (101, 1024)
    assert model.readout.dropout.p == 0.7


def test_model_config_sizes_are_accepted_by_every_variant() -> None:
    from videolstm.config import ModelConfig

    config = ModelConfig().model_dump()
    assert set(config) <= set(SIZE_KEYS)
    for name in VARIANTS:
        model = build_model(name, 4, input_channels=8, input_dim=16, spatial_size=3, **config)
        x = torch.randn(2, 3, 16) if model.input_kind == "vectors" else torch.randn(2, 3, 8, 3, 3)
        flow = None
        if model.needs_flow:
            flow = torch.randn(2, 3, 8, 3, 3) if model.flow_kind == "maps" else torch.randn(2, 3, 16)
        assert model(x, flow).logits.shape == (2, 3, 4)


def test_sequence_loss_sums_over_steps_and_averages_over_the_batch() -> None:
    logits = torch.randn(3, 4, 5)
    labels = torch.tensor([0, 4, 2])
    want = sum(-torch.log_softmax(logits[b, t], dim=0)[labels[b]] for b in range(3) for t in range(4)) / 3
    assert torch.allclose(sequence_loss(logits, labels), want)
    per_step = labels[:, None].expand(3, 4)
    assert torch.allclose(sequence_loss(logits, per_step), want)
    with pytest.raises(ValueError, match=r"\(B, T, K\)"):
        sequence_loss(logits[0], labels)


def test_attention_scale_positions_multiplies_the_attended_input_by_the_number_of_positions():
    import torch

    from videolstm.models import build_model
    from videolstm.models.functional import apply_attention, attention_scale_factor

    assert attention_scale_factor("none", (7, 7)) == 1.0 and attention_scale_factor("positions", (7, 5)) == 35.0
    x, a = torch.randn(2, 3, 7, 5), torch.softmax(torch.randn(2, 35), 1).view(2, 7, 5)
    torch.testing.assert_close(apply_attention(a, x, 35.0), 35.0 * a.unsqueeze(1) * x)
    uniform = torch.full((2, 7, 5), 1 / 35)
    torch.testing.assert_close(apply_attention(uniform, x, 35.0), x)  # uniform attention passes X unchanged
    sizes = dict(input_channels=3, flow_channels=3, spatial_size=(7, 5), hidden_channels=4, fc_dim=8, dropout=0.0, init_state="zeros")
    for variant in ("convalstm", "videolstm"):
        torch.manual_seed(0)
        plain = build_model(variant, 2, **sizes)
        torch.manual_seed(0)
        scaled = build_model(variant, 2, attention_scale="positions", **sizes)
        xs = torch.randn(1, 4, 3, 7, 5)
        att = torch.softmax(torch.randn(1, 4, 35), -1).view(1, 4, 7, 5)
        # with the attention given (and zero initial states), X enters only through s·A⊙X:
        # the scaled model on X equals the plain model on 35·X, and differs from the plain one on X
        torch.testing.assert_close(scaled(xs, attention=att).logits, plain(35.0 * xs, attention=att).logits, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(scaled(xs, attention=att).logits, plain(xs, attention=att).logits)
    try:
        build_model("convalstm", 2, attention_scale="bogus", **sizes)
    except ValueError as exc:
        assert "attention_scale" in str(exc)
    else:
        raise AssertionError("an unknown attention_scale must be refused")


# ----------------------------------------------------------------------------------------
# VideoLSTM's attention from the motion state alone (videolstm_attention: motion, an option)


def test_videolstm_motion_only_attention_equals_the_naive_reference() -> None:
    """Z_t = W_z ∗ tanh(W_ha ∗ H^m_t + b_a): outputs, maps and gradients equal the step-by-step reference."""
    model = small_model("videolstm", videolstm_attention="motion").eval()
    assert not hasattr(model.attention.w_xa, "weight")  # no RGB term at all
    with torch.no_grad():
        model.attention.b_a.normal_()  # zero at initialisation: make it count
    x, flow = inputs_for(model)
    out = model(x, flow)
    want_logits, want_attention = reference.REFERENCES["videolstm"](model, x, flow)
    assert (out.logits - want_logits).abs().max() <= 1e-10
    assert (out.attention - want_attention).abs().max() <= 1e-10
    labels = torch.tensor([1, 2])
    sequence_loss(out.logits, labels).backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    sequence_loss(reference.REFERENCES["videolstm"](model, x, flow)[0], labels).backward()
    for n, p in model.named_parameters():
        assert (fast[n] - p.grad).abs().max() <= 1e-10, n
    assert fast["attention.b_a"].abs().max() > 0


@pytest.mark.parametrize("option, reads_rgb", [("rgb_and_motion", True), ("motion", False)])
def test_videolstm_attention_reads_the_rgb_frame_of_its_step_only_in_the_authors_form(option: str, reads_rgb: bool) -> None:
    """A_t depends on X_t (same step) through W_xa ∗ X_t in the authors' form; from the motion
    state alone it does not (X_t reaches A only from step t+1 on, through H_t → H^m_{t+1})."""
    model = small_model("videolstm", init_state="zeros", videolstm_attention=option).eval()
    x, flow = inputs_for(model)
    changed = x.clone()
    changed[:, 2] = torch.randn(changed[:, 2].shape, dtype=changed.dtype, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        base, other = model(x, flow).attention, model(changed, flow).attention
    assert torch.equal(base[:, :2], other[:, :2])
    assert bool((base[:, 2] - other[:, 2]).abs().max() > 1e-8) == reads_rgb
    assert (base[:, 3] - other[:, 3]).abs().max() > 1e-8  # through the top state, in both forms


def test_an_unknown_videolstm_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="videolstm_attention must be one of"):
        small_model("videolstm", videolstm_attention="rgb")
