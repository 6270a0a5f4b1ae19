"""``videolstm predict``: a trained model from MLflow on new videos (issue 22).

``MODEL`` is an MLflow model URI (``models:/name/version``, ``models:/name@alias``,
``runs:/<run id>/model``) or a run id: of a trained (variant, stream) or of a fused pair (the
nested ``<variant>-fused-s<seed>`` run of the evaluation). The settings come from that run: its
params are the flattened :class:`~videolstm.config.BenchmarkConfig` it trained with; only
``storage`` and ``mlflow`` (where things are) come from the caller's ``--config``/``--set``. The
frame CNNs are the seed's models of the frame-CNN stage, found by that config's lineage.

One JSON line per video (:meth:`videolstm.prediction.VideoPrediction.record`); with ``--output``
a folder with ``predictions.jsonl`` and an overlay per video (GIF and MP4: the frames with the
attention heat map, the predicted box and the top-3 classes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.stage_models import frame_cnn_uris
from videolstm.config import BenchmarkConfig, ConfigError, StorageConfig
from videolstm.prediction import TrainedModel, VideoPrediction, fuse_video, predict_file

log = logging.getLogger(__name__)

#: Config sections that say *where* things are: the caller's, not the training run's.
LOCATION_SECTIONS = ("storage", "mlflow")


class ModelNotFoundError(ValueError):
    """The model reference names no usable MLflow run or model version."""


def unflatten_params(params: dict[str, str]) -> dict[str, Any]:
    """MLflow params written by :func:`videolstm.config.flatten` → a nested mapping for ``BenchmarkConfig``.

    Lists were written as JSON, ``None``/booleans with ``str``; everything else is left to the
    config's validation (pydantic turns ``"12"`` into an int field's 12). Keys outside the config
    (``variant``, ``seed``, …, the run's identity) are skipped.
    """
    from pydantic import BaseModel

    fields = BenchmarkConfig.model_fields
    sections = {k for k, f in fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}
    nested: dict[str, Any] = {}
    for key, text in params.items():
        parts = key.split(".")
        if parts[0] not in fields or (len(parts) == 1 and parts[0] in sections):  # e.g. the run's "dataset": "ucf101" tag-like param
            continue
        value: Any = text
        if text.startswith("["):
            value = json.loads(text)
        elif text in ("None", "True", "False"):
            value = {"None": None, "True": True, "False": False}[text]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def run_config(params: dict[str, str], caller: BenchmarkConfig) -> BenchmarkConfig:
    """The config a run trained with (its params), with the caller's storage and tracking sections."""
    data = unflatten_params(params)
    for section in LOCATION_SECTIONS:
        data[section] = getattr(caller, section).model_dump(mode="json")
    try:
        return BenchmarkConfig.model_validate(data)
    except ValueError as exc:
        raise ModelNotFoundError(f"the run's params do not form a benchmark config: {exc}") from exc


def resolve_run_id(reference: str) -> str:
    """The MLflow run id behind a model URI or a run id."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        if reference.startswith("runs:/"):
            return reference[len("runs:/") :].split("/", 1)[0]
        if reference.startswith("models:/"):
            rest = reference[len("models:/") :]
            if "@" in rest:
                name, alias = rest.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            else:
                name, _, number = rest.rpartition("/")
                if not name or not number.isdigit():
                    raise ModelNotFoundError(f"{reference!r}: expected models:/<name>/<version> or models:/<name>@<alias>")
                version = client.get_model_version(name, number)
            if not version.run_id:
                raise ModelNotFoundError(f"{reference}: the model version names no run")
            return version.run_id
        client.get_run(reference)  # a run id: check that it exists
        return reference
    except MlflowException as exc:
        raise ModelNotFoundError(f"{reference}: {exc.message}") from exc


def _class_names(config: BenchmarkConfig) -> list[str]:
    from videolstm.store.lineage import load_stage_result

    return list(load_stage_result(config, "index").extra["class_names"])


def _frame_cnns(config: BenchmarkConfig, seed: int, streams: Sequence[str]) -> dict[str, Any]:
    from videolstm.models.restore import restore_model
    from videolstm.store.checkpoint import load_checkpoint

    return {s: restore_model(load_checkpoint(u, config.storage))[0] for s, u in frame_cnn_uris(config, seed, streams).items()}


def load_trained(run_id: str, caller: BenchmarkConfig) -> TrainedModel:
    """The trained (variant, stream) of MLflow run ``run_id``, its frame CNNs and settings."""
    import mlflow

    from tasks.evaluate import load_model_checkpoint
    from videolstm.features.inputs import STREAMS
    from videolstm.store.checkpoint import CheckpointError

    run = mlflow.tracking.MlflowClient().get_run(run_id)
    params, name = run.data.params, run.info.run_name
    for key in ("variant", "stream", "seed"):
        if key not in params:
            raise ModelNotFoundError(f"run {run_id} ({name}) has no {key!r} param: not a trained model's run")
    config = run_config(params, caller)
    variant, stream, seed = params["variant"], params["stream"], int(params["seed"])
    try:
        checkpoint = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/artifacts/checkpoint.pt")
    except mlflow.exceptions.MlflowException as exc:
        raise ModelNotFoundError(f"run {run_id} ({name}) has no logged model checkpoint: {exc.message}") from exc
    try:
        model, _ = load_model_checkpoint(checkpoint, variant, None)
    except CheckpointError as exc:
        raise ModelNotFoundError(f"run {run_id} ({name}): {exc}") from exc
    streams = (stream,) if variant == "convnet" else (STREAMS if getattr(model, "needs_flow", False) else (stream,))
    cnns = {} if variant == "convnet" else _frame_cnns(config, seed, streams)
    return TrainedModel(name or run_id, variant, stream, model, cnns, config, _class_names(config), uri=f"runs:/{run_id}/model")


@dataclass
class Predictor:
    """One trained model, or a fused pair (RGB model first), applied to videos."""

    models: list[TrainedModel]
    fusion: str | None = None
    name: str = ""

    @property
    def class_names(self) -> list[str]:
        return list(self.models[0].class_names)

    @property
    def config(self) -> BenchmarkConfig:
        return self.models[0].config

    def predict(self, uri: str, storage: StorageConfig | None = None) -> VideoPrediction:
        results = [predict_file(m, uri, storage) for m in self.models]
        if self.fusion is None:
            return results[0]
        return fuse_video(results[0], results[1], self.fusion)


def load_predictor(reference: str, caller: BenchmarkConfig) -> Predictor:
    """A :class:`Predictor` for a model URI, a trained model's run id or a fused pair's run id."""
    import mlflow

    from tasks import tracking

    tracking.setup(caller)
    run_id = resolve_run_id(reference)
    run = mlflow.tracking.MlflowClient().get_run(run_id)
    params = run.data.params
    if params.get("stream") != "fused":
        trained = load_trained(run_id, caller)
        return Predictor([trained], name=reference)
    parent = run.data.tags.get("mlflow.parentRunId")
    members = [
        run.data.tags.get(f"{stream}_run_id") or _member_run(run.info.experiment_id, params[f"{stream}_model"], parent) for stream in ("rgb", "flow")
    ]  # the members' ids as the evaluation tagged them, else by name
    return Predictor([load_trained(m, caller) for m in members], fusion=params.get("fusion", "product"), name=reference)


def _member_run(experiment_id: str, name: str, parent: str | None) -> str:
    """The run of the model called ``name`` beside a fused run (same parent benchmark run)."""
    from mlflow.tracking import MlflowClient

    query = f"attributes.run_name = '{name}'" + (f" and tags.mlflow.parentRunId = '{parent}'" if parent else "")
    runs = MlflowClient().search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ModelNotFoundError(f"no run of model {name!r} beside the fused run (experiment {experiment_id})")
    return runs[0].info.run_id


# ----------------------------------------------------------------------------------------
# output


def overlay_frames(
    uri: str, prediction: VideoPrediction, class_names: Sequence[str], config: BenchmarkConfig, storage: StorageConfig | None
) -> list[np.ndarray]:
    """The overlay images (BGR): the original frames with the attention heat map, the tube's box and the top-3 classes."""
    import cv2

    from videolstm.data.video import decode_video
    from videolstm.evaluation.plots import _overlay_images

    frames = decode_video(uri, max_frames=config.flow.max_frames, storage=storage)
    t = frames.shape[0] if prediction.attention is None else min(frames.shape[0], prediction.attention.shape[0])
    frames = frames[:t]
    attention = prediction.attention[:t] if prediction.attention is not None else np.full((t, 1, 1), 1.0, dtype=np.float32)
    boxes = None
    if prediction.tube is not None:
        boxes = np.full((t, 4), np.nan)
        for b in prediction.tube:
            if b["frame"] < t:
                boxes[b["frame"]] = [b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]]
    images = _overlay_images(frames, attention, None, boxes, None)
    lines = [f"{c['class']} {c['probability']:.0%}" for c in prediction.top(class_names, 3)]
    for image in images:
        scale = max(0.4, image.shape[0] / 560)
        for i, text in enumerate(lines):
            origin = (6, image.shape[0] - 8 - int(22 * scale / 0.4) * (len(lines) - 1 - i))
            cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 3, cv2.LINE_AA)
            cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return images


def write_overlays(images: list[np.ndarray], stem: Path, fps: float = 8.0) -> list[Path]:
    """``<stem>.gif`` and ``<stem>.mp4`` (mp4v) of BGR images."""
    from videolstm.data.video import write_video
    from videolstm.evaluation.plots import _write_gif

    stem.parent.mkdir(parents=True, exist_ok=True)
    gif, mp4 = stem.with_suffix(".gif"), stem.with_suffix(".mp4")
    _write_gif(images, gif, fps)
    write_video(str(mp4), np.stack([image[..., ::-1] for image in images]), fps, codec="mp4v")
    return [gif, mp4]


def predict_videos(
    predictor: Predictor,
    videos: Sequence[str],
    output: str | None,
    storage: StorageConfig | None,
) -> Iterator[dict[str, Any]]:
    """One record per video (see the module docstring); a video that cannot be read gives a record
    with ``error`` (its reason) and the others go on. With ``output``: predictions.jsonl and overlays."""
    from videolstm.data.video import VideoDecodeError
    from videolstm.store.manifest import safe_name

    out = Path(output) if output else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictions.jsonl").write_text("")
    for uri in videos:
        try:
            prediction = predictor.predict(uri, storage)
        except (VideoDecodeError, ValueError, OSError) as exc:
            record = {"video": uri, "top5": None, "tube": None, "model": predictor.name, "error": f"{type(exc).__name__}: {exc}"}
        else:
            record = prediction.record(predictor.class_names, predictor.name)
            if out is not None:
                images = overlay_frames(uri, prediction, predictor.class_names, predictor.config, storage)
                paths = write_overlays(images, out / "overlays" / safe_name(Path(uri).stem))
                record["overlays"] = [str(p) for p in paths]
        if out is not None:
            with open(out / "predictions.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        yield record


def run_predict(config: BenchmarkConfig, model: str, videos: Sequence[str], output: str | None) -> list[dict[str, Any]]:
    """The ``predict`` command: load the model once, then one record per video."""
    if not videos:
        raise ConfigError("predict needs at least one video path or URI")
    predictor = load_predictor(model, config)
    return list(predict_videos(predictor, videos, output, config.storage))


# ----------------------------------------------------------------------------------------
# batch scoring on Ray Data: a folder or bucket prefix of videos → predictions.parquet

#: predictions.parquet's columns (one row per video).
BATCH_COLUMNS = ("video", "status", "reason", "top5", "tube", "model", "seconds", "key")


def list_videos(input_uri: str, storage: StorageConfig | None) -> list[str]:
    """Every file under ``input_uri`` (a folder or an ``s3://`` prefix, recursively), sorted; each is tried as a video."""
    from videolstm.store import storage as st

    fs, path = st.get_fs(input_uri, storage)
    if not st.with_retries(lambda: fs.exists(path), f"checking {input_uri}"):
        raise FileNotFoundError(f"{input_uri} does not exist")
    files = st.with_retries(lambda: fs.find(path), f"listing {input_uri}")
    base = input_uri.rstrip("/")
    root = path.rstrip("/")
    return sorted(st.join(base, *f[len(root) :].lstrip("/").split("/")) for f in files if f.startswith(root))


def batch_key(model: str, video: str, size: int | None) -> str:
    """A finished video's key: the model reference, the video's URI and its size."""
    from videolstm.config import stable_digest

    return stable_digest(["predict/v1", model, video, size], 16)


class BatchPredictor:
    """Ray Data actor: the model loaded once, then one row per video (bad videos as ``failed`` rows with their reason)."""

    def __init__(self, model: str, config_json: dict[str, Any], output_uri: str, threads: int = 1):
        import torch

        torch.set_num_threads(threads)
        self.config = BenchmarkConfig.model_validate(config_json)
        self.predictor = load_predictor(model, self.config)
        self.model, self.output_uri = model, output_uri

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        return _as_columns([self.score(row) for row in rows])

    def score(self, row: dict[str, Any]) -> dict[str, Any]:
        from videolstm.data.video import VideoDecodeError
        from videolstm.store import storage as st

        video, key = str(row["video"]), str(row["key"])
        limit = self.config.dataset.limits.archive_entry_bytes
        record: dict[str, Any] = {"video": video, "model": self.model, "key": key, "top5": None, "tube": None, "seconds": None}
        try:
            if int(row["size"]) > limit:
                raise ValueError(f"{video}: {int(row['size'])} bytes, more than dataset.limits.archive_entry_bytes ({limit})")
            prediction = self.predictor.predict(video, self.config.storage)
        except (VideoDecodeError, ValueError, OSError) as exc:
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        else:
            result = prediction.record(self.predictor.class_names, self.model)
            record.update(status="ok", reason="", top5=json.dumps(result["top5"]), tube=json.dumps(result["tube"]), seconds=json.dumps(result["seconds"]))
        st.write_text(st.join(self.output_uri, "parts", f"{key}.json"), json.dumps(record), self.config.storage)
        return record


def _as_columns(records: list[dict[str, Any]]) -> dict[str, list]:
    return {name: [r.get(name) for r in records] for name in BATCH_COLUMNS}


def run_batch(config: BenchmarkConfig, model: str, input_uri: str, output_uri: str, workers: int = 1) -> dict[str, Any]:
    """Score every file under ``input_uri`` with ``model`` on Ray Data (``workers`` actors) into
    ``<output_uri>/predictions.parquet``. A video finished before (its part file under
    ``<output_uri>/parts/``, same model, same URI and size) is not computed again; every video
    that cannot be read is a ``failed`` row with its reason. Returns counts and the parquet's URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from tasks.runtime import init_ray, worker_config
    from videolstm.store import storage as st

    load_predictor(model, config)  # a bad model reference fails here, before any video is tried
    fs, _ = st.get_fs(input_uri, config.storage)
    videos = list_videos(input_uri, config.storage)
    sizes = {v: st.with_retries(lambda v=v: fs.size(st.get_fs(v, config.storage)[1]), f"sizing {v}") for v in videos}
    keys = {v: batch_key(model, v, sizes[v]) for v in videos}
    done = {}
    for video, key in keys.items():
        part = st.join(output_uri, "parts", f"{key}.json")
        if st.exists(part, config.storage):
            done[video] = json.loads(st.read_text(part, config.storage))
    todo = [{"video": v, "key": keys[v], "size": int(sizes[v] or 0)} for v in videos if v not in done]
    log.info("predict: %d videos to score, %d done before", len(todo), len(done))
    computed: list[dict[str, Any]] = []
    if todo:
        init_ray(config)
        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            BatchPredictor,
            fn_constructor_kwargs={"model": model, "config_json": worker_config(config), "output_uri": output_uri},
            batch_size=1,
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(todo)))),
        )
        computed = [dict(row) for row in ds.iter_rows()]
    records = sorted([*done.values(), *computed], key=lambda r: r["video"])
    table = pa.Table.from_pylist(
        [{name: r.get(name) for name in BATCH_COLUMNS} for r in records], schema=pa.schema([(name, pa.string()) for name in BATCH_COLUMNS])
    )
    parquet = st.join(output_uri, "predictions.parquet")
    with st.atomic_local_file(parquet, config.storage, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    failed = [r for r in records if r["status"] != "ok"]
    return {
        "predictions": parquet,
        "videos": len(records),
        "ok": len(records) - len(failed),
        "failed": len(failed),
        "computed": len(computed),
        "reused": len(done),
        "failures": [(r["video"], r["reason"]) for r in failed],
    }
