"""videolstm.inference: the paper's test protocol over feature shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.store import shards
from videolstm.inference import Predictions, convnet_predictions, predict_video, predict_videos, segment_batch
from videolstm.models import build_model

C, H, W, K = 4, 3, 3, 3


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _model(name: str):
    torch.manual_seed(0)
    overrides = {"input_channels": C, "spatial_size": (H, W), "hidden_channels": 4, "fc_dim": 8, "lstm_hidden": 6, "input_dim": 5}
    if name in ("videolstm", "motion_alstm"):
        overrides["flow_channels"] = 2
    return build_model(name, K, **overrides).eval()


def test_segment_batch_stacks_segments_and_shortens_them_for_a_short_video():
    x = np.arange(10)[:, None] * np.ones((1, 2))
    batch = segment_batch(x, [0, 3, 6], 4)
    assert batch.shape == (3, 4, 2)
    np.testing.assert_array_equal(batch[:, :, 0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    assert segment_batch(x[:3], [0], 5).shape == (1, 3, 2)


def test_predict_video_equals_the_protocol_computed_segment_by_segment():
    model = _model("convalstm")
    x = np.random.default_rng(0).standard_normal((11, C, H, W)).astype(np.float16)
    probabilities, attention, steps = predict_video(model, x, None, num_segments=3, segment_length=5)
    assert attention is None and steps is None
    assert probabilities.shape == (K,) and probabilities.sum() == pytest.approx(1.0, abs=1e-6)

    starts = [0, 3, 6]  # round(i · (11 − 5) / 2) for i = 0, 1, 2: first and last segments at the ends
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


def _write_features(tmp_path, lengths=(9, 12, 4)) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, t in enumerate(lengths):
        uri = str(tmp_path / f"v{i}.parquet")
        shards.write_shard(uri, {
            "video_id": f"Cls/v{i}", "label": i % K, "subset": "test", "num_frames": t,
            "rgb_pool5": rng.standard_normal((t, C, H, W)).astype(np.float16),
            "flow_pool5": rng.standard_normal((t, 2, H, W)).astype(np.float16),
            "rgb_fc7": rng.standard_normal((t, 5)).astype(np.float16),
            "flow_logits": (3 * rng.standard_normal((t, K))).astype(np.float32),
        })
        rows.append({"video_id": f"Cls/v{i}", "shard": uri, "label": i % K})
    return rows


@pytest.mark.parametrize(("variant", "x_column", "flow_column"), [
    ("videolstm", "rgb_pool5", "flow_pool5"),
    ("lstm", "rgb_fc7", None),
])
def test_predict_videos_over_feature_shards_gives_a_distribution_per_video(tmp_path, variant, x_column, flow_column):
    rows = _write_features(tmp_path)
    model = _model(variant)
    predictions = predict_videos(model, rows, x_column, flow_column, num_segments=3, segment_length=5,
                                 whole_video=model.has_attention)
    assert predictions.video_ids == ["Cls/v0", "Cls/v1", "Cls/v2"]
    np.testing.assert_array_equal(predictions.labels, [0, 1, 2])
    assert predictions.probabilities.shape == (3, K)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (predictions.probabilities >= 0).all()
    if model.has_attention:
        assert {v: a.shape for v, a in predictions.attention.items()} == {
            "Cls/v0": (9, H, W), "Cls/v1": (12, H, W), "Cls/v2": (4, H, W)}
        assert set(predictions.step_probabilities) == set(predictions.video_ids)
    # the same video alone gives the same answer (no leakage between videos)
    alone = predict_videos(model, rows[1:2], x_column, flow_column, 3, 5)
    np.testing.assert_allclose(alone.probabilities[0], predictions.probabilities[1], rtol=1e-5, atol=1e-6)


def test_convnet_predictions_equal_a_hand_computation_of_the_protocol(tmp_path):
    rows = _write_features(tmp_path)
    predictions = convnet_predictions(rows, "flow", num_segments=3, segment_length=5)
    assert predictions.attention == {} and predictions.step_probabilities == {}
    # hand: starts of 3 segments of 5 steps spread end to end; a 4-step video is one short segment
    hand_starts = {9: [0, 2, 4], 12: [0, 4, 7], 4: [0]}  # round(i·(T−5)/2), halves up: (12−5)/2 = 3.5 → 4
    for row, probs in zip(rows, predictions.probabilities):
        logits = shards.read_shard(row["shard"])["flow_logits"].astype(np.float64)
        t = logits.shape[0]
        sums = [_softmax(logits[s : s + min(5, t)]).sum(axis=0) for s in hand_starts[t]]
        video = np.mean(sums, axis=0)
        np.testing.assert_allclose(probs, video / video.sum(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(predictions.labels, [0, 1, 2])


def test_predictions_subset_keeps_rows_aligned():
    p = Predictions(["a", "b", "c"], np.array([0, 1, 2]), np.eye(3), {"b": np.ones((2, 1, 1))}, {"c": np.ones((2, 3))})
    sub = p.subset(["c", "b"])
    assert sub.video_ids == ["c", "b"]
    np.testing.assert_array_equal(sub.labels, [2, 1])
    np.testing.assert_array_equal(sub.probabilities, [[0, 0, 1], [0, 1, 0]])
    assert set(sub.attention) == {"b"} and set(sub.step_probabilities) == {"c"}
