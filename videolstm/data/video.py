"""Decoding and writing video files, and hashing their bytes.

Frames are always ``uint8`` RGB arrays of shape ``(T, H, W, 3)`` (OpenCV's BGR never leaves
this module). Every path is a URI (a plain path, ``file://``, ``s3://`` …): remote files are
copied to a local temp file for OpenCV and written through a local temp file that is published
atomically (see :mod:`videolstm.store.storage`).

Decoding never returns a partial video silently. Each failure is a :class:`VideoDecodeError`
whose message names the file, the problem and what to do about it:

==========================  =====================================================================
problem                     typical cause / fix in the message
==========================  =====================================================================
missing file                wrong dataset root or an unfinished download
zero-byte file              an interrupted download: re-download
cannot be opened            not a video, or a codec this OpenCV/FFmpeg build lacks: re-encode
zero frames decoded         header without data: re-download or re-encode
truncated                   fewer frames decoded than the container declares: re-download
==========================  =====================================================================

Writing uses OpenCV's FFmpeg backend. On a headless OpenCV build ``MJPG`` in ``.avi`` (the
default), ``mp4v`` in ``.mp4`` and ``XVID`` work; ``avc1`` (H.264) does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from videolstm.config import StorageConfig
from videolstm.store.storage import as_local_file, atomic_local_file, exists, get_fs, with_retries

__all__ = [
    "VideoDecodeError",
    "VideoWriteError",
    "VideoInfo",
    "probe_video",
    "decode_video",
    "write_video",
    "content_sha256",
]


class VideoDecodeError(ValueError):
    """A video that cannot be decoded completely; the message names the file, the problem and the fix."""


class VideoWriteError(ValueError):
    """A video that cannot be written (bad frames, codec unavailable); the message says what to change."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container declares (not verified by decoding).

    ``frame_count`` is the container's own count (0 when it does not say); ``fps`` may be 0.
    """

    frame_count: int
    fps: float
    height: int
    width: int
    fourcc: str


def _fourcc_text(value: float) -> str:
    code = int(value)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00")


@contextlib.contextmanager
def _open_capture(uri: str, storage: StorageConfig | None):
    """Yield ``(local_path, cv2.VideoCapture)`` after the missing / empty / unopenable checks."""
    if not exists(uri, storage):
        raise VideoDecodeError(f"{uri}: file not found; check the dataset root/path, or download the dataset again")
    with as_local_file(uri, storage) as local:
        size = os.path.getsize(local)
        if size == 0:
            raise VideoDecodeError(f"{uri}: zero-byte file (an interrupted download or copy); delete it and re-download it")
        cap = cv2.VideoCapture(local, cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise VideoDecodeError(
                    f"{uri}: cannot be opened as a video ({size} bytes): it is not a video file or its codec "
                    "is not supported by this OpenCV/FFmpeg build; check the file type, or re-encode it, "
                    "e.g. `ffmpeg -i in -c:v mjpeg -q:v 3 out.avi`"
                )
            yield local, cap
        finally:
            cap.release()


def probe_video(uri: str, storage: StorageConfig | None = None) -> VideoInfo:
    """The container's declared frame count, fps, frame size and codec of ``uri``.

    Raises :class:`VideoDecodeError` for a missing, empty or unopenable file.
    """
    with _open_capture(uri, storage) as (_, cap):
        return VideoInfo(
            frame_count=max(int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT))), 0),
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            fourcc=_fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)),
        )


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame
    height, width = size
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    shrinking = height * width < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def decode_video(
    uri: str,
    *,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    storage: StorageConfig | None = None,
    frame_count_tolerance: int = 2,
) -> np.ndarray:
    """Decode ``uri`` into RGB frames.

    Args:
        uri: path or URI of a video file (any container/codec FFmpeg in OpenCV reads).
        size: ``(height, width)`` to resize every frame to (``INTER_AREA`` when shrinking,
            ``INTER_LINEAR`` when enlarging); ``None`` keeps the decoded size.
        max_frames: decode at most this many frames from the start (``None``: all).
        storage: endpoint settings for remote URIs.
        frame_count_tolerance: how many frames fewer than the container declares are accepted
            (some containers miscount by a frame or two). Use a large value to accept any
            truncation.

    Returns:
        ``uint8`` array ``(T, H, W, 3)``, RGB, ``T >= 1``.

    Raises:
        VideoDecodeError: missing, zero-byte or unopenable file, no frame decoded, or a
            truncated file (fewer than ``declared - frame_count_tolerance`` frames decoded,
            where ``declared`` is capped at ``max_frames``).
        ValueError: invalid ``size`` or ``max_frames``.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
    with _open_capture(uri, storage) as (_, cap):
        declared = max(int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT))), 0)
        frames: list[np.ndarray] = []
        try:
            while max_frames is None or len(frames) < max_frames:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                if bgr.ndim == 2:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
                else:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frames.append(_resize(rgb, size))
        except cv2.error as exc:
            raise VideoDecodeError(f"{uri}: decoding failed after {len(frames)} frames ({exc}); re-download or re-encode {uri}") from exc
    if not frames:
        raise VideoDecodeError(
            f"{uri}: zero frames could be decoded (the container declares {declared}); the file holds no "
            "readable video data: re-download it or re-encode it from the source"
        )
    expected = declared if max_frames is None else min(declared, max_frames)
    if declared > 0 and len(frames) < expected - frame_count_tolerance:
        raise VideoDecodeError(
            f"{uri}: truncated: the container declares {declared} frames but only {len(frames)} could be decoded; "
            f"re-download or re-encode {uri} (or raise frame_count_tolerance to accept it)"
        )
    return np.ascontiguousarray(np.stack(frames))


def write_video(
    uri: str,
    frames: np.ndarray,
    fps: float = 25,
    codec: str = "MJPG",
    storage: StorageConfig | None = None,
) -> None:
    """Write ``frames`` (``uint8`` ``(T, H, W, 3)`` RGB) to ``uri`` as a real video file.

    The container comes from ``uri``'s extension (``.avi`` for ``MJPG``/``XVID``, ``.mp4`` for
    ``mp4v``). The file is encoded into a local temp file and published atomically, so readers
    never see a half-written video.

    Raises:
        VideoWriteError: wrong frame shape/dtype, an empty video, no extension, or a codec the
            OpenCV build cannot write (the message suggests ``MJPG``).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoWriteError(f"{uri}: frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise VideoWriteError(f"{uri}: refusing to write a video with zero frames")
    if len(codec) != 4:
        raise VideoWriteError(f"{uri}: codec must be a four-character code such as 'MJPG', got {codec!r}")
    extension = Path(uri.rsplit("/", 1)[-1]).suffix
    if not extension:
        raise VideoWriteError(f"{uri}: the name needs an extension that selects the container, e.g. '.avi'")
    height, width = frames.shape[1:3]
    with atomic_local_file(uri, storage, suffix=extension) as tmp:
        # OpenCV picks the container from the extension, and the atomic temp name ends in ".tmp".
        encoded = f"{tmp}{extension}"
        try:
            fourcc = cv2.VideoWriter_fourcc(*codec)  # type: ignore[attr-defined]  # missing from OpenCV's stubs
            writer = cv2.VideoWriter(encoded, fourcc, float(fps), (width, height), True)
            try:
                if not writer.isOpened():
                    raise VideoWriteError(
                        f"{uri}: OpenCV cannot write codec {codec!r} into a {extension!r} file on this build; "
                        "use codec='MJPG' with '.avi' (works headless) or 'mp4v' with '.mp4'"
                    )
                for frame in frames:
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            if not os.path.exists(encoded) or os.path.getsize(encoded) == 0:
                raise VideoWriteError(f"{uri}: the encoder produced an empty file (codec {codec!r}); use codec='MJPG'")
            os.replace(encoded, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(encoded)


def content_sha256(uri: str, storage: StorageConfig | None = None, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of ``uri``, read in ``chunk_size`` chunks (never whole in memory).

    Raises ``FileNotFoundError`` naming ``uri`` when it does not exist.
    """
    fs, path = get_fs(uri, storage)

    def digest() -> str:
        hasher = hashlib.sha256()
        with fs.open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                hasher.update(chunk)
        return hasher.hexdigest()

    try:
        return with_retries(digest, f"hashing {uri}")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{uri}: cannot hash a file that does not exist") from exc
