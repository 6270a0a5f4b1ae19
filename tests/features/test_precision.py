"""Mixed precision (issue 24): bf16 autocast on this CPU against fp32, a bf16 training run, lineage
and keys at the default, and the fp16/CUDA paths under the ``gpu`` mark (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videolstm.config import BenchmarkConfig, FeatureConfig, FrameCNNConfig, TrainConfig
from videolstm.features.backbones import build_frame_cnn
from videolstm.features.extraction import extract_stream, features_key
from videolstm.features.precision import autocast, autocast_dtype, grad_scaler, prepare_for_device, to_device
from videolstm.models.registry import build_model
from videolstm.store.lineage import lineages
from videolstm.store.manifest import item_key
from videolstm.training import evaluate_epoch, frame_forward, sequence_forward, train_epoch

# bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2 %); through a few layers of
# accumulated rounding the outputs stay within a few percent of their fp32 scale. Stated tolerance:
# max |bf16 - fp32| <= 5 % of max |fp32| for every output compared below.
BF16_RELATIVE_TOLERANCE = 0.05


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def test_fp32_leaves_every_lineage_and_key_as_before():
    default = BenchmarkConfig()
    spelled = BenchmarkConfig(frame_cnn=FrameCNNConfig(precision="fp32"), features=FeatureConfig(precision="fp32"), train=TrainConfig(precision="fp32"))
    assert lineages(spelled) == lineages(default)
    assert "precision" not in default.model_dump()["train"] and "precision" not in default.frame_cnn.model_dump()
    # the features item key: the formula from before the option
    assert features_key("ff", {"rgb": "a"}, FeatureConfig(), 5) == item_key("features/v2", "ff", {"rgb": "a"}, "float16", 5)
    assert features_key("ff", {"rgb": "a"}, FeatureConfig(precision="bf16"), 5) != features_key("ff", {"rgb": "a"}, FeatureConfig(), 5)


@pytest.mark.parametrize(
    ("section", "moved"),
    [("frame_cnn", "frame_cnn"), ("features", "features"), ("train", "train")],
)
def test_a_set_precision_moves_its_stage_and_downstream_only(section, moved):
    default = lineages(BenchmarkConfig())
    changed = lineages(BenchmarkConfig.model_validate({section: {"precision": "bf16"}}))
    stages = list(default)
    first = stages.index(moved)
    assert all(changed[s] == default[s] for s in stages[:first])
    assert all(changed[s] != default[s] for s in stages[first:] if s not in ("dataset", "index"))
    assert BenchmarkConfig.model_validate({section: {"precision": "bf16"}}).model_dump()[section]["precision"] == "bf16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        autocast_dtype("int8")


def test_autocast_runs_convolutions_in_bf16_and_fp32_is_untouched():
    conv = torch.nn.Conv2d(4, 4, 3)
    x = torch.randn(2, 4, 8, 8)
    with autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert conv(x).dtype == torch.float32
    assert not grad_scaler("cpu", "bf16").is_enabled() and not grad_scaler("cpu", "fp32").is_enabled()


def test_frame_cnn_features_in_bf16_within_tolerance_of_fp32_and_stored_as_float16():
    torch.manual_seed(0)
    model = build_frame_cnn("small", num_classes=5, in_channels=3, channels=(16, 32, 64), fc_dim=64)
    inputs = np.random.default_rng(0).standard_normal((6, 3, 56, 56)).astype(np.float32)
    fp32 = extract_stream(model, inputs, 4, "float16", "fp32")
    bf16 = extract_stream(model, inputs, 4, "float16", "bf16")
    for name in ("pool5", "fc7", "logits"):
        assert bf16[name].shape == fp32[name].shape
        assert relative_error(torch.from_numpy(bf16[name]), torch.from_numpy(fp32[name])) <= BF16_RELATIVE_TOLERANCE, name
    assert bf16["pool5"].dtype == np.float16 and bf16["logits"].dtype == np.float32


@pytest.mark.parametrize("variant", ["convlstm", "convalstm", "videolstm", "alstm"])
def test_sequence_models_in_bf16_within_tolerance_of_fp32(variant):
    torch.manual_seed(0)
    model = build_model(variant, 7, input_channels=32, hidden_channels=16, lstm_hidden=16, input_dim=32).eval()
    x = torch.randn(2, 4, 32, 7, 7)
    flow = torch.randn(2, 4, 32, 7, 7)
    batch = {"x": x.numpy(), "label": np.array([1, 3])}
    if model.needs_flow:
        batch["flow"] = flow.numpy()
    with torch.no_grad():
        flow_in = to_device(batch["flow"], "cpu") if "flow" in batch else None
        reference = model(to_device(batch["x"], "cpu"), flow=flow_in).logits
        with autocast("cpu", "bf16"):
            mixed = model(to_device(batch["x"], "cpu"), flow=flow_in).logits
    assert relative_error(mixed, reference) <= BF16_RELATIVE_TOLERANCE
    loss32 = evaluate_epoch(model, [batch], sequence_forward).loss
    loss16 = evaluate_epoch(model, [batch], sequence_forward, precision="bf16").loss
    assert loss16 == pytest.approx(loss32, rel=BF16_RELATIVE_TOLERANCE)


def _separable_frames(n: int = 48, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Two classes told apart by the sign of the mean brightness of the left half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32) * 0.5
    x[:, :, :, :16] += np.where(labels == 1, 1.0, -1.0)[:, None, None, None]
    return [{"x": x[i : i + 16], "label": labels[i : i + 16]} for i in range(0, n, 16)]


@pytest.mark.parametrize("variant", ["frame_cnn", "convlstm"])
def test_a_short_bf16_training_run_lowers_the_loss(variant):
    torch.manual_seed(0)
    if variant == "frame_cnn":
        model = build_frame_cnn("small", num_classes=2, in_channels=3, channels=(8, 16), fc_dim=32, dropout=0.0)
        batches, forward = _separable_frames(), frame_forward
    else:
        model = build_model("convlstm", 2, input_channels=8, hidden_channels=8)
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, 32)
        x = rng.standard_normal((32, 3, 8, 7, 7)).astype(np.float32) * 0.5 + np.where(labels == 1, 0.7, -0.7)[:, None, None, None, None]
        batches = [{"x": x[i : i + 8], "label": labels[i : i + 8]} for i in range(0, 32, 8)]
        forward = sequence_forward
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = evaluate_epoch(model, batches, forward, precision="bf16").loss
    for _ in range(6):
        stats = train_epoch(model, batches, optimizer, forward, precision="bf16", max_grad_norm=5.0)
        assert np.isfinite(stats.loss)
    last = evaluate_epoch(model, batches, forward, precision="bf16").loss
    assert last < 0.7 * first, f"bf16 training did not lower the loss: {first:.3f} → {last:.3f}"
    assert all(p.dtype == torch.float32 for p in model.parameters()), "parameters stay float32 under autocast"


def test_to_device_on_cpu_keeps_values_and_casts():
    array = np.arange(6, dtype=np.float16).reshape(2, 3)
    tensor = to_device(array, "cpu", torch.float32)
    assert tensor.dtype == torch.float32 and tensor.tolist() == [[0, 1, 2], [3, 4, 5]]
    model = prepare_for_device(torch.nn.Conv2d(3, 4, 3), "cpu", channels_last=True)
    assert model.weight.is_contiguous()  # channels_last applies on CUDA only


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_training_step_with_scaler(precision):
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = prepare_for_device(build_frame_cnn("small", num_classes=2, in_channels=3, channels=(8, 16), fc_dim=32, dropout=0.0), device, True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = grad_scaler(device, precision)
    assert scaler.is_enabled() == (precision == "fp16")
    batches = _separable_frames()
    first = evaluate_epoch(model, batches, frame_forward, device, precision).loss
    for _ in range(6):
        train_epoch(model, batches, optimizer, frame_forward, device, precision=precision, scaler=scaler)
    assert evaluate_epoch(model, batches, frame_forward, device, precision).loss < 0.7 * first


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extraction_channels_last_matches_cpu_fp32():
    torch.manual_seed(0)
    model = build_frame_cnn("vgg16", num_classes=5, in_channels=3)
    inputs = np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32)
    cpu = extract_stream(model, inputs, 2, "float32", "fp32")
    cuda = extract_stream(prepare_for_device(model, "cuda", channels_last=True), inputs, 2, "float32", "fp16")
    assert relative_error(torch.from_numpy(cuda["fc7"]), torch.from_numpy(cpu["fc7"])) <= BF16_RELATIVE_TOLERANCE
    pinned = to_device(inputs[:1], "cuda")
    assert pinned.device.type == "cuda"
