"""videolstm.inference: the paper's test protocol over feature shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.inference import Predictions, frame_cnn_predictions, predict_video, predict_videos, segment_batch
from videolstm.models import build_model
from videolstm.store import shards

C, H, W, K = 4, 3, 3, 3


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _model(name: str):
    torch.manual_seed(0)
    overrides = {"input_channels": C, "spatial_size": (H, W), "hidden_channels": 4, "fc_dim": 8, "lstm_hidden": 6, "input_dim": 5}
    if name == "videolstm":
        overrides["flow_channels"] = 2
    return build_model(name, K, **overrides).eval()


def test_segment_batch_stacks_segments_and_pads_a_short_video_with_its_last_frame():
    x = np.arange(10)[:, None] * np.ones((1, 2))
    batch = segment_batch(x, [0, 3, 6], 4)
    assert batch.shape == (3, 4, 2)
    np.testing.assert_array_equal(batch[:, :, 0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    short = segment_batch(x[:3], [0], 5)
    np.testing.assert_array_equal(short[0, :, 0], [0, 1, 2, 2, 2])  # the authors' padding


def test_predict_video_equals_the_protocol_computed_segment_by_segment():
    model = _model("convalstm")
    x = np.random.default_rng(0).standard_normal((11, C, H, W)).astype(np.float16)
    probabilities, attention, steps = predict_video(model, x, None, num_segments=3, segment_length=5)
    assert attention is None and steps is None
    assert probabilities.shape == (K,) and probabilities.sum() == pytest.approx(1.0, abs=1e-6)

    starts = [1, 3, 5]  # the authors': avg = (11 − 5 + 1) // 3 = 2, int(1 + 2j)
    per_segment = []
    with torch.no_grad():
        for s in starts:  # one segment at a time: batching must not change anything
            logits = model(torch.from_numpy(x[s : s + 5].astype(np.float32))[None]).logits[0].numpy()
            per_segment.append(_softmax(logits).sum(axis=0))
    hand = np.mean(per_segment, axis=0)
    np.testing.assert_allclose(probabilities, hand / hand.sum(), rtol=1e-5, atol=1e-6)


def test_whole_video_pass_gives_one_attention_map_and_one_distribution_per_frame():
    model = _model("videolstm")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, C, H, W)).astype(np.float32)
    flow = rng.standard_normal((7, 2, H, W)).astype(np.float32)
    probabilities, attention, steps = predict_video(model, x, flow, num_segments=25, segment_length=4, whole_video=True)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert attention.shape == (7, H, W) and attention.dtype == np.float32
    np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert steps.shape == (7, K)
    np.testing.assert_allclose(steps.sum(axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        full = model(torch.from_numpy(x)[None], flow=torch.from_numpy(flow)[None])
    np.testing.assert_allclose(attention, full.attention[0].numpy(), rtol=1e-6)


def test_a_video_shorter_than_a_segment_is_padded_and_counted_once_per_segment():
    """The authors pad a short video with its last frame to the segment length; its S identical
    segments average to one padded segment."""
    model = _model("convlstm")
    x = np.random.default_rng(2).standard_normal((3, C, H, W)).astype(np.float32)
    probabilities, _, _ = predict_video(model, x, None, num_segments=25, segment_length=5)
    padded = np.concatenate([x, x[-1:], x[-1:]])  # 5 frames: 0, 1, 2, 2, 2
    with torch.no_grad():
        logits = model(torch.from_numpy(padded)[None]).logits[0].numpy()
    hand = _softmax(logits).sum(axis=0)
    np.testing.assert_allclose(probabilities, hand / hand.sum(), rtol=1e-5, atol=1e-6)


def test_even_placement_spaces_segments_end_to_end_and_runs_a_short_video_once_over_its_frames():
    """``placement="even"`` (the previous recipe): 11 frames, 3 segments of 5 → starts 0, 3, 6 (span 6);
    a 3-frame video is one 3-step segment, no padding."""
    model = _model("convalstm")
    x = np.random.default_rng(3).standard_normal((11, C, H, W)).astype(np.float32)
    probabilities, _, _ = predict_video(model, x, None, num_segments=3, segment_length=5, placement="even")
    with torch.no_grad():
        per_segment = [_softmax(model(torch.from_numpy(x[s : s + 5])[None]).logits[0].numpy()).sum(axis=0) for s in (0, 3, 6)]
    hand = np.mean(per_segment, axis=0)
    np.testing.assert_allclose(probabilities, hand / hand.sum(), rtol=1e-5, atol=1e-6)
    short = x[:3]
    probabilities, _, _ = predict_video(model, short, None, num_segments=25, segment_length=5, placement="even")
    with torch.no_grad():
        hand = _softmax(model(torch.from_numpy(short)[None]).logits[0].numpy()).sum(axis=0)
    np.testing.assert_allclose(probabilities, hand / hand.sum(), rtol=1e-5, atol=1e-6)


def _write_features(tmp_path, lengths=(9, 12, 4)) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, t in enumerate(lengths):
        uri = str(tmp_path / f"v{i}.parquet")
        shards.write_shard(
            uri,
            {
                "video_id": f"Cls/v{i}",
                "label": i % K,
                "subset": "test",
                "num_frames": t,
                "rgb_pool5": rng.standard_normal((t, C, H, W)).astype(np.float16),
                "flow_pool5": rng.standard_normal((t, 2, H, W)).astype(np.float16),
                "rgb_fc7": rng.standard_normal((t, 5)).astype(np.float16),
            },
        )
        rows.append({"video_id": f"Cls/v{i}", "shard": uri, "label": i % K})
    return rows


@pytest.mark.parametrize(
    ("variant", "x_column", "flow_column"),
    [
        ("videolstm", "rgb_pool5", "flow_pool5"),
        ("lstm", "rgb_fc7", None),
    ],
)
def test_predict_videos_over_feature_shards_gives_a_distribution_per_video(tmp_path, variant, x_column, flow_column):
    rows = _write_features(tmp_path)
    model = _model(variant)
    predictions = predict_videos(model, rows, x_column, flow_column, num_segments=3, segment_length=5, whole_video=model.has_attention)
    assert predictions.video_ids == ["Cls/v0", "Cls/v1", "Cls/v2"]
    np.testing.assert_array_equal(predictions.labels, [0, 1, 2])
    assert predictions.probabilities.shape == (3, K)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (predictions.probabilities >= 0).all()
    if model.has_attention:
        assert {v: a.shape for v, a in predictions.attention.items()} == {"Cls/v0": (9, H, W), "Cls/v1": (12, H, W), "Cls/v2": (4, H, W)}
        assert set(predictions.step_probabilities) == set(predictions.video_ids)
    # the same video alone gives the same answer (no leakage between videos)
    alone = predict_videos(model, rows[1:2], x_column, flow_column, 3, 5)
    np.testing.assert_allclose(alone.probabilities[0], predictions.probabilities[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_frame_cnn_predictions_run_the_checkpoints_model_over_every_frame(tmp_path, stream):
    """The ConvNet variant is the frame CNN: its logits on every frame (or flow stack), then the
    authors' segments — computed here by hand, frame by frame."""
    from videolstm.features.backbones import SmallFrameCNN
    from videolstm.features.inputs import stream_inputs

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    stack = 2
    model = SmallFrameCNN(K, in_channels=3 if stream == "rgb" else 2 * stack, channels=(4, 4, 4), fc_dim=8).eval()
    rows = []
    for i, t in enumerate((9, 4)):
        uri = str(tmp_path / f"ff{i}.parquet")
        shards.write_shard(
            uri,
            {
                "video_id": f"Cls/v{i}",
                "label": i,
                "subset": "test",
                "frames": rng.integers(0, 256, (t, 56, 56, 3), dtype=np.uint8),
                "flow": rng.integers(0, 256, (t - 1, 56, 56, 2), dtype=np.uint8),
            },
        )
        rows.append({"video_id": f"Cls/v{i}", "shard": uri, "label": i})
    predictions = frame_cnn_predictions(model, rows, stream, stack, num_segments=3, segment_length=5)
    assert predictions.video_ids == ["Cls/v0", "Cls/v1"] and predictions.attention == {}
    hand_starts = {9: [0, 1, 3], 4: [0, 0, 0]}  # 9 frames: avg (9 − 5 + 1) // 3 = 1 → int(0.5 + j); 4: padded
    for row, probs in zip(rows, predictions.probabilities):
        arrays = shards.read_shard(row["shard"])
        t = arrays["frames"].shape[0]
        with torch.no_grad():
            logits = np.stack([model(torch.from_numpy(stream_inputs(arrays, stream, np.array([f]), stack))).logits[0].numpy() for f in range(t)])
        sums = [_softmax(logits[np.minimum(np.arange(s, s + 5), t - 1)]).sum(axis=0) for s in hand_starts[t]]
        video = np.mean(sums, axis=0)
        np.testing.assert_allclose(probs, video / video.sum(), rtol=1e-4, atol=1e-6)


def test_predictions_subset_keeps_rows_aligned():
    p = Predictions(["a", "b", "c"], np.array([0, 1, 2]), np.eye(3), {"b": np.ones((2, 1, 1))}, {"c": np.ones((2, 3))})
    sub = p.subset(["c", "b"])
    assert sub.video_ids == ["c", "b"]
    np.testing.assert_array_equal(sub.labels, [2, 1])
    np.testing.assert_array_equal(sub.probabilities, [[0, 0, 1], [0, 1, 0]])
    assert set(sub.attention) == {"b"} and set(sub.step_probabilities) == {"c"}


@pytest.mark.parametrize("variant", ["convalstm", "videolstm"])
def test_given_attention_replaces_the_models_in_every_segment_and_the_whole_video_pass(variant):
    """The train-time oracle at test time: (T, h, w) maps go through the same segments as x."""
    model = _model(variant)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((11, C, H, W)).astype(np.float32)
    flow = rng.standard_normal((11, 2, H, W)).astype(np.float32) if variant == "videolstm" else None
    maps = rng.random((11, H, W)).astype(np.float32)
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    probabilities, attention, _ = predict_video(model, x, flow, num_segments=3, segment_length=5, whole_video=True, attention=maps)
    np.testing.assert_allclose(attention, maps, rtol=1e-6)  # the whole-video pass attends with the given maps
    per_segment = []
    with torch.no_grad():
        for s in (1, 3, 5):  # the authors' starts for 11 frames, 3 segments of 5
            f = None if flow is None else torch.from_numpy(flow[s : s + 5])[None]
            out = model(torch.from_numpy(x[s : s + 5])[None], flow=f, attention=torch.from_numpy(maps[s : s + 5])[None])
            per_segment.append(_softmax(out.logits[0].numpy()).sum(axis=0))
    hand = np.mean(per_segment, axis=0)
    np.testing.assert_allclose(probabilities, hand / hand.sum(), rtol=1e-5, atol=1e-6)
    learned, _, _ = predict_video(model, x, flow, num_segments=3, segment_length=5)
    assert not np.allclose(learned, probabilities)
