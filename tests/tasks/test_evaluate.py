"""The evaluation stage's wiring: which models are fused with which, and fusion aligned by video id."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluate import FUSION_PARTNER, fuse_predictions, fused_pairs, load_model_checkpoint
from videolstm.inference import Predictions


def test_each_rgb_model_is_fused_with_the_flow_model_the_paper_pairs_it_with_of_the_same_seed():
    names = {
        "lstm-rgb-s0",
        "lstm-flow-s0",
        "lstm-rgb-s1",
        "lstm-flow-s2",  # lstm seed 1 lacks its flow partner
        "convalstm-rgb-s0",
        "convalstm-flow-s0",
        "videolstm-rgb-s0",
        "videolstm-rgb-s1",
        "motion_alstm-rgb-s0",
        "alstm-flow-s0",
        "convnet-rgb-s0",
        "convnet-flow-s0",
    }
    assert FUSION_PARTNER == {"videolstm": "convalstm", "motion_alstm": "alstm"}
    assert fused_pairs(names) == [
        ("convalstm", 0, "convalstm-rgb-s0", "convalstm-flow-s0"),
        ("convnet", 0, "convnet-rgb-s0", "convnet-flow-s0"),
        ("lstm", 0, "lstm-rgb-s0", "lstm-flow-s0"),
        ("motion_alstm", 0, "motion_alstm-rgb-s0", "alstm-flow-s0"),
        ("videolstm", 0, "videolstm-rgb-s0", "convalstm-flow-s0"),  # VideoLSTM (RGB) + ConvALSTM (flow)
    ]


def test_fusion_is_the_renormalised_product_aligned_by_video_id_not_by_row():
    rgb = Predictions(["a", "b", "c"], np.array([0, 1, 1]), np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]))
    flow = Predictions(
        ["c", "a", "b"],
        np.array([1, 0, 1]),  # another order
        np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]]),
    )
    fused = fuse_predictions(rgb, flow, "product")
    assert fused.video_ids == ["a", "b", "c"]
    hand = {"a": np.array([0.6 * 0.8, 0.4 * 0.2]), "b": np.array([0.3 * 0.4, 0.7 * 0.6]), "c": np.array([0.5 * 0.1, 0.5 * 0.9])}
    for i, video in enumerate(fused.video_ids):
        np.testing.assert_allclose(fused.probabilities[i], hand[video] / hand[video].sum(), rtol=1e-12)
    np.testing.assert_array_equal(fused.labels, [0, 1, 1])


def test_fusion_refuses_videos_missing_from_the_flow_model_or_disagreeing_labels():
    rgb = Predictions(["a", "b"], np.array([0, 1]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="no prediction for 1 video"):
        fuse_predictions(rgb, Predictions(["a"], np.array([0]), np.full((1, 2), 0.5)), "product")
    with pytest.raises(ValueError, match="disagree on the labels"):
        fuse_predictions(rgb, Predictions(["b", "a"], np.array([0, 1]), np.full((2, 2), 0.5)), "product")


def test_evaluating_a_missing_or_other_checkpoint_is_an_error_naming_it(tmp_path):
    """The ConvNet is evaluated from the checkpoint it is given, like every variant."""
    import torch

    from videolstm.features.backbones import SmallFrameCNN
    from videolstm.store.checkpoint import CheckpointError, ModelSpec, checkpoint_state, save_checkpoint

    with pytest.raises(CheckpointError, match="/definitely/not/a/checkpoint.pt does not exist"):
        load_model_checkpoint("/definitely/not/a/checkpoint.pt", "convnet", None)
    spec = ModelSpec("small", 2, {"in_channels": 3, "channels": [4, 4, 4], "fc_dim": 8}, kind="frame_cnn")
    torch.manual_seed(0)
    path = str(tmp_path / "cnn.pt")
    save_checkpoint(path, checkpoint_state(1, SmallFrameCNN(2, 3, (4, 4, 4), 8), spec))
    model, loaded = load_model_checkpoint(path, "convnet", None)
    assert loaded.kind == "frame_cnn"
    with pytest.raises(CheckpointError, match="holds a small frame CNN, not the lstm model"):
        load_model_checkpoint(path, "lstm", None)
