"""videolstm.features: frame-CNN inputs of both streams and per-video feature shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread, write_moving_square  # noqa: F401 (autouse fixture)
from videolstm.config import FeatureConfig, FlowConfig
from videolstm.data.frames_flow import process_video
from videolstm.features.backbones import RGB_MEAN, RGB_STD, SmallFrameCNN
from videolstm.features.extraction import extract_stream, features_key, process_video_features
from videolstm.features.inputs import FLOW_INPUT_GAIN, flow_inputs, flow_stack_indices, rgb_inputs, stream_in_channels, stream_inputs
from videolstm.store import shards
from videolstm.store.manifest import StageDir

STACK = 3


def test_flow_stack_indices_start_at_the_frame_and_clamp_at_the_last_field():
    idx = flow_stack_indices(np.array([0, 3, 4, 5]), num_flow=5, stack=3)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [3, 4, 4], [4, 4, 4], [4, 4, 4]])
    with pytest.raises(ValueError, match="at least one flow field"):
        flow_stack_indices(np.array([0]), num_flow=0, stack=3)


def test_flow_inputs_interleave_x_and_y_per_field_and_dequantise():
    fields, h, w = 5, 2, 3
    flow = np.zeros((fields, h, w, 2), np.uint8)
    for f in range(fields):
        flow[f, ..., 0] = 10 * f  # x of field f
        flow[f, ..., 1] = 10 * f + 1  # y of field f
    frames = np.array([1, 4])
    x = flow_inputs(flow, frames, STACK)
    assert x.shape == (2, 2 * STACK, h, w) and x.dtype == np.float32
    for n, t in enumerate(frames):
        for l in range(STACK):  # noqa: E741
            field = min(t + l, fields - 1)
            for c in range(2):  # channel 2l is x_l, 2l+1 is y_l
                np.testing.assert_allclose(x[n, 2 * l + c], (10 * field + c - 127.5) / 127.5 * FLOW_INPUT_GAIN, rtol=0, atol=1e-5)


def test_flow_inputs_map_the_quantisation_bounds_to_pixels_at_the_default_bound():
    flow = np.zeros((2, 1, 2, 2), np.uint8)
    flow[:, 0, 1] = 255
    x = flow_inputs(flow, np.array([0]), 2)
    assert FLOW_INPUT_GAIN == 20.0  # = FlowConfig.bound's default: inputs are displacements in pixels
    assert x.min() == -FLOW_INPUT_GAIN and x.max() == FLOW_INPUT_GAIN


def test_rgb_inputs_are_channel_first_and_imagenet_normalised():
    frames = np.zeros((2, 4, 5, 3), np.uint8)
    frames[1, 2, 3] = (255, 128, 0)
    x = rgb_inputs(frames)
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32
    for c, value in enumerate((255, 128, 0)):
        assert x[1, c, 2, 3] == pytest.approx((value / 255 - RGB_MEAN[c]) / RGB_STD[c], abs=1e-6)
        assert x[0, c, 0, 0] == pytest.approx(-RGB_MEAN[c] / RGB_STD[c], abs=1e-6)


def test_stream_inputs_and_channels_of_each_stream():
    arrays = {"frames": np.zeros((4, 8, 8, 3), np.uint8), "flow": np.zeros((3, 8, 8, 2), np.uint8)}
    assert stream_inputs(arrays, "rgb", np.arange(4), STACK).shape == (4, stream_in_channels("rgb", STACK), 8, 8)
    assert stream_inputs(arrays, "flow", np.arange(4), STACK).shape == (4, stream_in_channels("flow", STACK), 8, 8)
    assert stream_in_channels("flow", STACK) == 2 * STACK
    with pytest.raises(ValueError, match="unknown stream 'depth'"):
        stream_inputs(arrays, "depth", np.arange(4), STACK)


def _cnn(in_channels: int, seed: int) -> SmallFrameCNN:
    torch.manual_seed(seed)
    return SmallFrameCNN(num_classes=3, in_channels=in_channels, channels=(4, 8, 8), fc_dim=16)


def test_extract_stream_is_independent_of_batching_and_runs_in_eval_mode():
    model = _cnn(3, 0).train()
    inputs = np.random.default_rng(0).standard_normal((5, 3, 56, 56)).astype(np.float32)
    one_pass = extract_stream(model, inputs, batch_frames=64, dtype="float32")
    assert not model.training  # dropout and batch statistics off
    batched = extract_stream(model, inputs, batch_frames=2, dtype="float32")
    for name in ("pool5", "fc7", "logits"):
        np.testing.assert_allclose(batched[name], one_pass[name], rtol=1e-5, atol=1e-5)
    halves = extract_stream(model, inputs, batch_frames=2, dtype="float16")
    assert halves["pool5"].dtype == np.float16 and halves["fc7"].dtype == np.float16
    assert halves["logits"].dtype == np.float32
    assert one_pass["pool5"].shape == (5, 8, 7, 7) and one_pass["fc7"].shape == (5, 16) and one_pass["logits"].shape == (5, 3)


def test_features_key_changes_with_upstream_weights_and_settings():
    config = FeatureConfig()
    key = features_key("ff1", {"rgb": "a", "flow": "b"}, config, 5)
    assert key == features_key("ff1", {"flow": "b", "rgb": "a"}, FeatureConfig(), 5)
    assert key != features_key("ff2", {"rgb": "a", "flow": "b"}, config, 5)
    assert key != features_key("ff1", {"rgb": "a", "flow": "c"}, config, 5)
    assert key != features_key("ff1", {"rgb": "a", "flow": "b"}, FeatureConfig(dtype="float32"), 5)
    assert key != features_key("ff1", {"rgb": "a", "flow": "b"}, config, 3)
    assert key == features_key("ff1", {"rgb": "a", "flow": "b"}, FeatureConfig(workers=4, batch_frames=2), 5)


@pytest.fixture(scope="module")
def frames_flow_row(tmp_path_factory) -> dict:
    """A frames+flow manifest row of a real 6-frame video (decoded, TV-L1 flow)."""
    folder = tmp_path_factory.mktemp("ff")
    path = str(folder / "v.avi")
    write_moving_square(path, frames=6)
    row = {"video_id": "Cls/v", "path": path, "label": 2, "subset": "test", "fingerprint": "x"}
    result = process_video(row, "ffkey", StageDir(str(folder / "frames_flow")), FlowConfig())
    assert result.ok, result.reason
    return {"video_id": result.video_id, "label": result.label, "subset": result.subset, "shard": result.shard}


def test_process_video_features_writes_both_streams_with_t_steps(frames_flow_row, tmp_path):
    models = {"rgb": _cnn(3, 0), "flow": _cnn(2 * STACK, 1)}
    stage = StageDir(str(tmp_path / "features"))
    result = process_video_features(frames_flow_row, "fkey", stage, models, FeatureConfig(batch_frames=4), STACK)
    assert result.ok, result.reason
    assert result.counts == {"num_frames": 6} and result.shard == stage.shard_uri("Cls/v", "fkey")
    assert (result.video_id, result.label, result.subset, result.key) == ("Cls/v", 2, "test", "fkey")

    stored = shards.read_shard(result.shard)
    assert (stored["video_id"], stored["label"], stored["subset"], stored["num_frames"]) == ("Cls/v", 2, "test", 6)
    assert "key" not in stored
    for stream in ("rgb", "flow"):
        assert stored[f"{stream}_pool5"].shape == (6, 8, 7, 7) and stored[f"{stream}_pool5"].dtype == np.float16
        assert stored[f"{stream}_fc7"].shape == (6, 16) and stored[f"{stream}_fc7"].dtype == np.float16
        assert stored[f"{stream}_logits"].shape == (6, 3) and stored[f"{stream}_logits"].dtype == np.float32

    # step t of each stream is the frame CNN on frame t (flow: the stack starting at field t)
    source = shards.read_shard(frames_flow_row["shard"], columns=["frames", "flow"])
    with torch.no_grad():
        rgb = models["rgb"](torch.from_numpy(rgb_inputs(source["frames"])))
        flow = models["flow"](torch.from_numpy(flow_inputs(source["flow"], np.arange(6), STACK)))
    np.testing.assert_allclose(stored["rgb_logits"], rgb.logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stored["flow_logits"], flow.logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stored["flow_pool5"], flow.pool5.numpy().astype(np.float16), rtol=2e-3, atol=2e-3)


def test_an_unreadable_frames_shard_becomes_a_failed_row_naming_it(tmp_path):
    missing = str(tmp_path / "gone.parquet")
    row = {"video_id": "Cls/v", "label": 1, "subset": "train", "shard": missing}
    stage = StageDir(str(tmp_path / "features"))
    result = process_video_features(row, "k", stage, {"rgb": _cnn(3, 0), "flow": _cnn(2 * STACK, 1)}, FeatureConfig(), STACK)
    assert result.status == "failed"
    assert missing in result.reason and "re-run the flow stage" in result.reason
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    result = process_video_features({**row, "shard": str(corrupt)}, "k", stage, {}, FeatureConfig(), STACK)
    assert result.status == "failed" and str(corrupt) in result.reason
