"""MLflow models-from-code entry: a trained model end to end, from a video file to top-5 and tube (issue 22).

Input: a DataFrame with a column ``video``, each value either the video's bytes (``bytes``, or a
base64 string — what a JSON request carries) or a URI/absolute path the server can read (a
string starting with ``scheme://`` or ``/``). Output: one row per video with ``top5``
([{"class", "probability"}]), ``tube`` ([{"frame", "x", "y", "w", "h"}] or None) and ``seconds``.

The model carries everything as artifacts — the model's checkpoint, the frame CNNs its features
came from (``frame_cnn_<stream>``), ``settings.json`` (the training run's config and the class
names) — and the project's ``videolstm`` package through ``code_paths``, so loading it needs no
package index to hold ``videolstm``. Checkpoints are read with ``torch.load(weights_only=True)``.
A video that cannot be decoded is a 400 (``INVALID_PARAMETER_VALUE``) naming the reason; the
server goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: A request's video larger than this is refused (base64 of a few minutes of UCF101 is ~10 MB).
MAX_VIDEO_BYTES = 256 * 1024 * 1024


def video_bytes_or_uri(value: object) -> tuple[bytes | None, str | None]:
    """(bytes, None) for video content (bytes or base64 text), (None, uri) for a URI or absolute path."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str) and (_URI.match(value) or value.startswith("/")):
        return None, value
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MlflowException(f"video: neither a URI, an absolute path nor base64 content ({exc})", error_code=INVALID_PARAMETER_VALUE) from exc
    else:
        raise MlflowException(f"video: expected a URI, a path or the video's bytes, got {type(value).__name__}", error_code=INVALID_PARAMETER_VALUE)
    if not data:
        raise MlflowException("video: empty content", error_code=INVALID_PARAMETER_VALUE)
    if len(data) > MAX_VIDEO_BYTES:
        raise MlflowException(f"video: {len(data)} bytes, more than the {MAX_VIDEO_BYTES} accepted", error_code=INVALID_PARAMETER_VALUE)
    return data, None


class VideoModelPyfunc(PythonModel):
    def load_context(self, context):
        from videolstm.config import BenchmarkConfig
        from videolstm.models.restore import restore_model
        from videolstm.prediction import TrainedModel
        from videolstm.store.checkpoint import load_checkpoint

        settings = json.loads(Path(context.artifacts["settings"]).read_text())
        config = BenchmarkConfig.model_validate(settings["config"])
        model, _ = restore_model(load_checkpoint(context.artifacts["checkpoint"]))
        cnns = {k.removeprefix("frame_cnn_"): restore_model(load_checkpoint(v))[0] for k, v in context.artifacts.items() if k.startswith("frame_cnn_")}
        self.trained = TrainedModel(
            settings["name"], settings["variant"], settings["stream"], model, cnns, config, settings["class_names"], uri=settings["name"]
        )

    def predict(self, context, model_input, params=None):
        from videolstm.data.video import VideoDecodeError
        from videolstm.prediction import predict_file

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "video" not in frame.columns:
            raise MlflowException(f"the input needs a column 'video', got {list(frame.columns)}", error_code=INVALID_PARAMETER_VALUE)
        rows = []
        for position, value in enumerate(frame["video"]):
            data, uri = video_bytes_or_uri(value)
            with tempfile.TemporaryDirectory() as tmp:
                if data is not None:
                    uri = str(Path(tmp) / "video")
                    Path(uri).write_bytes(data)
                try:
                    prediction = predict_file(self.trained, uri)
                except (VideoDecodeError, ValueError) as exc:
                    raise MlflowException(f"video {position}: {exc}".replace(str(tmp), "<upload>"), error_code=INVALID_PARAMETER_VALUE) from exc
            record = prediction.record(self.trained.class_names, self.trained.name)
            rows.append({"top5": record["top5"], "tube": record["tube"], "seconds": record["seconds"]})
        return pd.DataFrame(rows, columns=["top5", "tube", "seconds"])


mlflow.models.set_model(VideoModelPyfunc())
