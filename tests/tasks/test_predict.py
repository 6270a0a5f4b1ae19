"""The pieces of ``videolstm predict`` that need no trained model: the training run's config read
back from its MLflow params, the served model's input rule, the output records."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from tasks.mlflow_model import video_model_name, video_model_requirements, video_model_settings
from tasks.mlflow_video_pyfunc import video_bytes_or_uri
from tasks.predict import ModelNotFoundError, run_config, unflatten_params
from videolstm.config import BenchmarkConfig, flatten, load_config
from videolstm.prediction import VideoPrediction, tube_records
from videolstm.store.lineage import lineages


def _run_params(config: BenchmarkConfig) -> dict[str, str]:
    """What training logs: the flattened config plus the run's identity (``dataset`` collides with a section)."""
    return {**flatten(config), "variant": "convalstm", "stream": "rgb", "seed": "0", "dataset": config.dataset.kind, "split": "1"}


def test_the_config_read_back_from_a_runs_params_has_the_runs_lineages():
    trained = load_config(
        {
            "storage": {"root": "/elsewhere/run"},
            "flow": {"method": "dis", "height": 28, "width": 28},
            "train": {"variants": ["lstm", "convalstm"], "epochs": 3, "lr": 0.0005, "val_fraction": 0.0},
            "evaluate": {"num_segments": 2, "segment_length": 6},
            "features": {"dtype": "float32"},
        }
    )
    caller = load_config({"storage": {"root": "/mine"}, "mlflow": {"experiment": "mine"}})
    recovered = run_config(_run_params(trained), caller)
    # every result-determining section is the run's, so every stage folder is the run's ...
    assert lineages(recovered) == lineages(trained)
    for section in ("dataset", "flow", "frame_cnn", "features", "train", "evaluate"):
        assert getattr(recovered, section) == getattr(trained, section), section
    # ... found where the caller says the files and the tracking store are
    assert recovered.storage == caller.storage and recovered.mlflow == caller.mlflow


def test_params_lists_none_and_booleans_are_parsed_and_run_identity_params_are_skipped():
    nested = unflatten_params(
        {
            "train.variants": '["lstm", "alstm"]',
            "flow.max_frames": "None",
            "train.use_gpu": "True",
            "train.epochs": "7",
            "variant": "lstm",
            "dataset": "synthetic",
        }
    )
    assert nested == {"train": {"variants": ["lstm", "alstm"], "use_gpu": True, "epochs": "7"}, "flow": {"max_frames": None}}


def test_params_that_are_not_a_config_are_refused_with_the_reason():
    with pytest.raises(ModelNotFoundError, match="epochs"):
        run_config({"train.epochs": "many"}, BenchmarkConfig())


def test_the_served_models_input_is_bytes_base64_or_an_absolute_uri():
    content = b"\x00\x01video bytes"
    assert video_bytes_or_uri(content) == (content, None)
    assert video_bytes_or_uri(base64.b64encode(content).decode()) == (content, None)
    assert video_bytes_or_uri("s3://bucket/clip.avi") == (None, "s3://bucket/clip.avi")
    assert video_bytes_or_uri("/data/clip.avi") == (None, "/data/clip.avi")
    for bad in ("clip.avi?", "", 3):
        with pytest.raises(MlflowException) as info:
            video_bytes_or_uri(bad)
        assert info.value.get_http_status_code() == 400


def test_the_end_to_end_model_names_no_videolstm_package_and_carries_no_storage():
    requirements = video_model_requirements()
    assert requirements and all("==" in r for r in requirements)
    assert not any(r.split("==")[0] == "videolstm" for r in requirements)
    assert video_model_name("videolstm-ucf101-convalstm-rgb") == "videolstm-ucf101-convalstm-rgb-video"
    config = load_config({"storage": {"root": "s3://private-bucket/run", "endpoint_url": "http://10.0.0.7:9000"}})
    settings = video_model_settings(config, "convalstm-rgb-s0", "convalstm", "rgb", ["a", "b"])
    assert "storage" not in settings["config"] and "mlflow" not in settings["config"]
    assert "private-bucket" not in str(settings) and "10.0.0.7" not in str(settings)
    assert BenchmarkConfig.model_validate(settings["config"]).train == config.train


def test_records_give_the_top_classes_in_order_and_tube_boxes_as_x_y_w_h():
    prediction = VideoPrediction("v.avi", np.array([0.1, 0.6, 0.05, 0.25]), (48, 64), seconds={"decode": 0.123456})
    record = prediction.record(["a", "b", "c", "d"], "m")
    assert [c["class"] for c in record["top5"]] == ["b", "d", "a", "c"]
    assert record["top5"][0]["probability"] == pytest.approx(0.6)
    assert record["tube"] is None and record["seconds"] == {"decode": 0.1235} and record["model"] == "m"
    boxes = np.array([[1.0, 2.0, 11.0, 22.0], [np.nan] * 4, [3.0, 4.0, 5.0, 8.0]])
    assert tube_records(np.array([0, 1, 2]), boxes) == [
        {"frame": 0, "x": 1.0, "y": 2.0, "w": 10.0, "h": 20.0},
        {"frame": 2, "x": 3.0, "y": 4.0, "w": 2.0, "h": 4.0},
    ]


def test_batch_input_lists_every_file_under_a_folder_recursively_and_keys_change_with_model_video_and_size(tmp_path):
    from tasks.predict import batch_key, list_videos

    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("b.avi", "a.mp4", "sub/c.avi", "notes.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    listed = list_videos(str(tmp_path / "in"), None)
    assert [Path(v).relative_to(tmp_path / "in").as_posix() for v in listed] == ["a.mp4", "b.avi", "notes.txt", "sub/c.avi"]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_videos(str(tmp_path / "missing"), None)
    key = batch_key("run1", "/v/a.avi", 10)
    assert key == batch_key("run1", "/v/a.avi", 10)
    assert len({key, batch_key("run2", "/v/a.avi", 10), batch_key("run1", "/v/b.avi", 10), batch_key("run1", "/v/a.avi", 11)}) == 4


def test_the_code_shipped_with_the_end_to_end_model_is_the_librarys_python_files_only(tmp_path):
    from tasks.mlflow_model import LIBRARY_DIR, library_code

    shipped = Path(library_code(tmp_path))
    files = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()}
    expected = {p.relative_to(LIBRARY_DIR).as_posix() for p in LIBRARY_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert files == expected and "prediction.py" in files and "inference.py" in files
    assert not any(f.endswith((".pkl", ".txt", ".pyc")) for f in files)
