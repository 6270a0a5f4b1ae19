"""Per-video work of the decode+flow stage (the Ray Data part lives in ``tasks/``).

For each video of the index: decode, resize to ``FlowConfig.height × width``, compute the
optical flow between consecutive frames (T frames → T−1 flow fields, flow t from frame t to
t+1), quantise it with the denseflow convention and write one shard with columns
``video_id``, ``label``, ``subset``, ``content_sha256``, ``num_frames``, ``num_flow``,
``height``, ``width``, ``frames`` (T, H, W, 3) uint8 RGB and ``flow`` (T−1, H, W, 2) uint8 —
stored as one JPEG per frame and per flow component (``FlowConfig.image_format``, the field's
convention; the flow is computed from the decoded frames before they are compressed).

A video that cannot be decoded becomes a "failed" manifest row whose reason names the file and
the fix; every other video goes on. Storage errors are not per-video problems and propagate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from videolstm.config import FlowConfig, StorageConfig
from videolstm.store import shards
from videolstm.store.manifest import ItemResult, StageDir, item_key
from videolstm.store.storage import StorageError

FRAMES_FLOW_COUNTS = ("num_frames", "num_flow", "height", "width")

#: FlowConfig fields that change how fast the stage runs, not what it produces.
_EXECUTION_ONLY = {"workers", "threads_per_worker"}


def flow_params(config: FlowConfig) -> dict[str, Any]:
    """The FlowConfig values that determine the output (execution settings removed)."""
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in _EXECUTION_ONLY}


def frames_flow_key(index_row: Mapping[str, Any], config: FlowConfig) -> str:
    """Key of one video's frames+flow: its path and content fingerprint plus the flow parameters."""
    return item_key("frames_flow/v2", index_row["path"], index_row["fingerprint"], flow_params(config))


def stored_images(frames: np.ndarray, flow: np.ndarray, config: FlowConfig) -> dict[str, Any]:
    """The shard columns of the frames and the quantised flow in ``config.image_format``: JPEGs
    (RGB frames; each flow component its own grayscale JPEG, as denseflow writes them) or raw."""
    if config.image_format == "raw":
        return {"frames": frames, "flow": flow}
    return {"frames": shards.Jpeg(frames, config.jpeg_quality), "flow": shards.Jpeg(flow, config.jpeg_quality, planes=True)}


def process_video(index_row: Mapping[str, Any], key: str, stage: StageDir, config: FlowConfig, storage: StorageConfig | None = None) -> ItemResult:
    """Decode one video, compute its flow and write its shard; never raises for bad input."""
    from videolstm.data.flow import video_flow
    from videolstm.data.video import VideoDecodeError, content_sha256, decode_video

    started = time.perf_counter()
    video_id = index_row["video_id"]
    base = {"video_id": video_id, "key": key, "label": int(index_row["label"]), "subset": index_row["subset"]}
    try:
        frames = decode_video(index_row["path"], size=(config.height, config.width), max_frames=config.max_frames, storage=storage)
        if frames.shape[0] < 2:
            raise VideoDecodeError(f"{index_row['path']}: only {frames.shape[0]} frame decoded; optical flow needs at least 2 frames")
        flow = video_flow(frames, config)
        digest = content_sha256(index_row["path"], storage=storage)
    except StorageError:
        raise
    except Exception as exc:  # recorded with its reason in the manifest, never dropped
        reason = str(exc) if isinstance(exc, VideoDecodeError) else f"{index_row['path']}: {type(exc).__name__}: {exc}"
        return ItemResult(**base, status="failed", reason=reason, seconds=time.perf_counter() - started)
    counts = {
        "num_frames": int(frames.shape[0]),
        "num_flow": int(flow.shape[0]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
    }
    shard = stage.shard_uri(video_id, key)
    shards.write_shard(
        shard,
        {**{k: base[k] for k in ("video_id", "label", "subset")}, "content_sha256": digest, **counts, **stored_images(frames, flow, config)},
        storage,
    )
    return ItemResult(**base, status="ok", shard=shard, counts=counts, seconds=time.perf_counter() - started)
