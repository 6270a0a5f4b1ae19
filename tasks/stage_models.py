"""Where the pipeline's trained models are: their names in manifests, folders and MLflow runs,
and the frame-CNN stage's exported models of a seed.

Shared by the training stage (:mod:`tasks.train`), model logging (:mod:`tasks.mlflow_model`) and
prediction (:mod:`tasks.predict`); it reads the store only, so none of them imports another to
find a model.
"""

from __future__ import annotations

from collections.abc import Sequence

from videolstm.config import BenchmarkConfig
from videolstm.store import storage as st
from videolstm.store.lineage import MissingStageError, stage_uri
from videolstm.store.manifest import read_manifest


def model_name(variant: str, stream: str, seed: int) -> str:
    """``convalstm-rgb-s1``: the name of a model in manifests, folders and MLflow runs."""
    return f"{variant}-{stream}-s{seed}"


def parse_model_name(name: str) -> tuple[str, str, int]:
    """(variant, stream, seed) of :func:`model_name`'s output."""
    rest, _, seed = name.rpartition("-s")
    variant, _, stream = rest.rpartition("-")
    if not (variant and stream and seed.isdigit()):
        raise ValueError(f"{name!r} is not a model name of the form <variant>-<stream>-s<seed>")
    return variant, stream, int(seed)


def frame_cnn_uris(config: BenchmarkConfig, seed: int, streams: Sequence[str]) -> dict[str, str]:
    """The seed's frame CNNs (the frame-CNN stage's exported models, found by ``config``'s lineage), by stream."""
    if not streams:
        return {}
    manifest = st.join(stage_uri(config, "frame_cnn"), "manifest.parquet")
    if not st.exists(manifest, config.storage):
        raise MissingStageError(
            f"the frame CNNs the model was trained on are not in storage ({manifest} is missing); "
            "predict needs the storage of the run that trained the model (--config/--set storage.root=...)"
        )
    items = {r.video_id: r for r in read_manifest(manifest, config.storage)}
    uris = {}
    for stream in streams:
        item = items.get(model_name("convnet", stream, seed))
        if item is None or not item.ok:
            raise MissingStageError(f"the {stream} frame CNN of seed {seed} is not in {manifest}")
        uris[stream] = item.shard
    return uris
