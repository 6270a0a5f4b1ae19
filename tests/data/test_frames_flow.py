"""videolstm.data.frames_flow: one real video → frames + flow shard, or a failed row naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.pipeline_helpers import write_moving_square
from videolstm.config import FlowConfig, SyntheticConfig
from videolstm.data.datasets import load_index
from videolstm.data.datasets.synthetic import generate_synthetic
from videolstm.data.flow import video_flow
from videolstm.data.frames_flow import FRAMES_FLOW_COUNTS, flow_params, frames_flow_key, process_video
from videolstm.data.video import decode_video
from videolstm.store import shards
from videolstm.store import storage as st
from videolstm.store.manifest import StageDir

FLOW = FlowConfig()  # the production defaults: TV-L1, 56 x 56, bound 20


def _row(path: str, video_id: str = "Cls/v_Cls_g01_c01", label: int = 1) -> dict:
    return {"video_id": video_id, "path": path, "label": label, "subset": "train", "fingerprint": "size=1"}


@pytest.fixture(scope="module")
def synthetic_index(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(str(root), SyntheticConfig(num_classes=2, videos_per_class=3, frames=8, height=56, width=56, distractors=1))
    return load_index("synthetic", str(root), 1).to_pylist()


def test_a_synthetic_video_becomes_an_ok_row_with_frame_and_flow_counts(synthetic_index, tmp_path):
    row = synthetic_index[0]
    stage = StageDir(str(tmp_path / "frames_flow"))
    key = frames_flow_key(row, FLOW)
    result = process_video(row, key, stage, FLOW)
    assert result.ok, result.reason
    assert (result.video_id, result.key, result.label, result.subset) == (row["video_id"], key, row["label"], row["subset"])
    assert result.counts == {"num_frames": 8, "num_flow": 7, "height": 56, "width": 56}
    assert result.shard == stage.shard_uri(row["video_id"], key) and result.seconds > 0

    stored = shards.read_shard(result.shard)
    assert stored["frames"].shape == (8, 56, 56, 3) and stored["frames"].dtype == np.uint8
    assert stored["flow"].shape == (7, 56, 56, 2) and stored["flow"].dtype == np.uint8
    decoded = decode_video(row["path"], size=(56, 56))
    flow = video_flow(decoded, FLOW)  # from the decoded frames, before JPEG
    np.testing.assert_array_equal(stored["frames"], _jpeg_round_trip(decoded, FLOW.jpeg_quality, planes=False))
    np.testing.assert_array_equal(stored["flow"], _jpeg_round_trip(flow, FLOW.jpeg_quality, planes=True))
    assert np.abs(stored["frames"].astype(int) - decoded).mean() < 3
    assert stored["content_sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    assert {c: stored[c] for c in FRAMES_FLOW_COUNTS} == result.counts
    assert (stored["video_id"], stored["label"], stored["subset"]) == (row["video_id"], row["label"], row["subset"])


def _jpeg_round_trip(images: np.ndarray, quality: int, planes: bool) -> np.ndarray:
    """OpenCV's JPEG encode → decode of every image (RGB) or every channel (planes)."""

    def one(image):
        if planes:
            return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
        bgr = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        return cv2.cvtColor(cv2.imdecode(bgr, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    if planes:
        return np.stack([np.stack([one(np.ascontiguousarray(im[..., c])) for c in range(im.shape[-1])], -1) for im in images])
    return np.stack([one(im) for im in images])


def test_raw_image_format_stores_the_decoded_frames_and_flow_exactly(synthetic_index, tmp_path):
    row = synthetic_index[1]
    config = FLOW.model_copy(update={"image_format": "raw"})
    result = process_video(row, frames_flow_key(row, config), StageDir(str(tmp_path / "raw")), config)
    stored = shards.read_shard(result.shard, columns=["frames", "flow"])
    decoded = decode_video(row["path"], size=(56, 56))
    np.testing.assert_array_equal(stored["frames"], decoded)
    np.testing.assert_array_equal(stored["flow"], video_flow(decoded, config))
    assert frames_flow_key(row, config) != frames_flow_key(row, FLOW)  # the format is part of the key


def test_a_resized_and_capped_video_records_the_shapes_it_stored(tmp_path):
    path = str(tmp_path / "v.avi")
    write_moving_square(path, frames=6, size=64)
    config = FlowConfig(height=32, width=48, max_frames=4, method="dis")
    result = process_video(_row(path), "k", StageDir(str(tmp_path / "stage")), config)
    assert result.ok, result.reason
    assert result.counts == {"num_frames": 4, "num_flow": 3, "height": 32, "width": 48}
    stored = shards.read_shard(result.shard, columns=["frames", "flow"])
    assert stored["frames"].shape == (4, 32, 48, 3) and stored["flow"].shape == (3, 32, 48, 2)


def _truncated(tmp_path: Path) -> str:
    path = tmp_path / "full.avi"
    write_moving_square(str(path), frames=12)
    data = path.read_bytes()
    out = tmp_path / "truncated.avi"
    out.write_bytes(data[: int(len(data) * 0.6)])
    return str(out)


def _zero_byte(tmp_path: Path) -> str:
    out = tmp_path / "empty.avi"
    out.write_bytes(b"")
    return str(out)


def _garbage(tmp_path: Path) -> str:
    out = tmp_path / "garbage.avi"
    out.write_bytes(np.random.default_rng(0).bytes(4096))
    return str(out)


def _single_frame(tmp_path: Path) -> str:
    out = tmp_path / "single.avi"
    write_moving_square(str(out), frames=1)
    return str(out)


def _missing(tmp_path: Path) -> str:
    return str(tmp_path / "never_downloaded.avi")


@pytest.mark.parametrize(
    "make", [_truncated, _zero_byte, _garbage, _single_frame, _missing], ids=["truncated", "zero-byte", "not-a-video", "one-frame", "missing"]
)
def test_a_bad_video_becomes_a_failed_row_naming_the_file_and_no_shard(tmp_path, make):
    path = make(tmp_path)
    stage = StageDir(str(tmp_path / "stage"))
    result = process_video(_row(path, video_id="Cls/bad", label=3), "k", stage, FLOW)  # must not raise
    assert result.status == "failed" and not result.ok
    assert path in result.reason
    assert (result.video_id, result.key, result.label, result.subset) == ("Cls/bad", "k", 3, "train")
    assert result.shard == "" and result.counts == {}
    assert st.list_files(stage.shards_uri, suffix=".parquet") == []


def test_the_reason_says_what_went_wrong(tmp_path):
    stage = StageDir(str(tmp_path / "stage"))
    assert "truncated: the container declares 12 frames" in process_video(_row(_truncated(tmp_path)), "k", stage, FLOW).reason
    assert "zero-byte" in process_video(_row(_zero_byte(tmp_path)), "k", stage, FLOW).reason
    assert "cannot be opened as a video" in process_video(_row(_garbage(tmp_path)), "k", stage, FLOW).reason
    assert "not found" in process_video(_row(_missing(tmp_path)), "k", stage, FLOW).reason
    assert "at least 2 frames" in process_video(_row(_single_frame(tmp_path)), "k", stage, FLOW).reason


def test_frames_flow_key_follows_content_and_output_parameters_only():
    row = _row("/data/a.avi")
    key = frames_flow_key(row, FLOW)
    assert key == frames_flow_key(dict(row), FlowConfig())
    assert key != frames_flow_key({**row, "fingerprint": "size=2"}, FLOW)
    assert key != frames_flow_key({**row, "path": "/data/b.avi"}, FLOW)
    assert key != frames_flow_key(row, FlowConfig(bound=10))
    assert key != frames_flow_key(row, FlowConfig(method="dis"))
    assert key == frames_flow_key(row, FlowConfig(workers=8, threads_per_worker=4))
    assert "workers" not in flow_params(FLOW) and "threads_per_worker" not in flow_params(FLOW)


@pytest.mark.integration
def test_a_video_on_s3_is_extracted_into_a_shard_on_s3(moto_s3, tmp_path):
    storage, bucket = moto_s3
    video_uri = f"s3://{bucket}/dataset/Cls/v.avi"
    write_moving_square(video_uri, frames=5, storage=storage)
    stage = StageDir(f"s3://{bucket}/frames_flow/abc", storage)
    config = FlowConfig(method="dis")
    result = process_video(_row(video_uri), "k1", stage, config, storage)
    assert result.ok, result.reason
    assert result.shard.startswith(f"s3://{bucket}/frames_flow/abc/shards/")
    stored = shards.read_shard(result.shard, storage=storage)
    assert stored["frames"].shape == (5, 56, 56, 3) and stored["flow"].shape == (4, 56, 56, 2)
    assert stored["content_sha256"] == hashlib.sha256(st.read_bytes(video_uri, storage)).hexdigest()
    missing = process_video(_row(f"s3://{bucket}/dataset/Cls/absent.avi"), "k2", stage, config, storage)
    assert missing.status == "failed" and f"s3://{bucket}/dataset/Cls/absent.avi" in missing.reason
