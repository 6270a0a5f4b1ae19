"""Training on Ray Train: the matrix and VideoLSTM's fine-tuning, nested MLflow runs, registered
models, worker-kill recovery, 2 nodes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from tasks import tracking
from tests.reliability import ledger
from videolstm.store import storage as st
from videolstm.store.checkpoint import load_checkpoint
from videolstm.store.lineage import stage_uri
from videolstm.store.manifest import read_manifest

pytestmark = pytest.mark.integration


def _runs_by_key(config, keys: dict[str, str]) -> dict[str, mlflow.entities.Run]:
    """{model name: its run in the config's experiment} for ``keys`` ({model name: run key}); other
    tests of the session log runs of the same names (other settings) into the same experiment."""
    experiment = tracking.setup(config)
    runs = {}
    for name, key in keys.items():
        found = MlflowClient().search_runs([experiment], filter_string=f"tags.`{tracking.RUN_KEY_TAG}` = '{key}'")
        assert len(found) == 1, (name, key, [r.info.run_id for r in found])
        runs[name] = found[0]
    return runs


def test_the_matrix_then_videolstm_assembled_from_the_trained_sources(tiny_pipeline):
    from tasks.train import run_finetune, run_train, sequence_job
    from tasks.train_loop import build_model

    config = tiny_pipeline.config(train={"variants": ["lstm", "videolstm"], "streams": ["rgb", "flow"], "epochs": 2, "val_fraction": 0.5})
    trained = run_train(config, tiny_pipeline.features, tiny_pipeline.parent_run_id)
    done = {r.video_id: r for r in read_manifest(trained.manifest_uri)}
    # the matrix (motion variants excluded: VideoLSTM is the next stage) plus VideoLSTM's two sources:
    # the RGB ConvALSTM and a flow ConvLSTM with the bottom layer's 1×1 kernels
    assert set(done) == {"lstm-rgb-s0", "lstm-flow-s0", "convalstm-rgb-s0", "convlstm_motion-flow-s0"}
    assert all(r.ok for r in done.values()), [r.reason for r in done.values()]
    assert trained.extra["timing"]["trainers"] == 2 and trained.extra["timing"]["job_seconds"] > 0

    finetuned = run_finetune(config, tiny_pipeline.features, trained, tiny_pipeline.parent_run_id)
    [item] = read_manifest(finetuned.manifest_uri)
    assert item.video_id == "videolstm-rgb-s0" and item.ok, item.reason

    # The fine-tuning job starts from the trained weights (the authors' model_assemble.py)
    job = sequence_job(
        config,
        "videolstm",
        "rgb",
        0,
        tiny_pipeline.features,
        None,
        stage="finetune",
        init_from={"flow_convlstm": done["convlstm_motion-flow-s0"], "rgb_convalstm": done["convalstm-rgb-s0"]},
    )
    start = build_model(job, config, resuming=False)
    flow_state = load_checkpoint(done["convlstm_motion-flow-s0"].shard)["model"]
    rgb_state = load_checkpoint(done["convalstm-rgb-s0"].shard)["model"]
    c_flow = start.flow_channels
    assert torch.equal(start.motion_cell.weight[:, :c_flow], flow_state["cell.weight"][:, :c_flow])
    assert torch.equal(start.motion_cell.weight[:, c_flow + start.cell.hidden_channels :], flow_state["cell.weight"][:, c_flow:])
    for name, tensor in start.state_dict().items():
        if name.split(".")[0] in ("cell", "attention", "readout", "init"):
            assert torch.equal(tensor, rgb_state[name]), name
    # ... and fine-tuning moved them
    tuned = load_checkpoint(item.shard)["model"]
    assert not torch.equal(tuned["cell.weight"], rgb_state["cell.weight"])

    runs = _runs_by_key(config, {**{n: r.key for n, r in done.items()}, item.video_id: item.key})
    client = MlflowClient()
    for name in ("lstm-rgb-s0", "lstm-flow-s0", "convalstm-rgb-s0", "videolstm-rgb-s0"):
        run = runs[name]
        assert run.data.tags["mlflow.parentRunId"] == tiny_pipeline.parent_run_id
        variant = name.split("-")[0]
        assert run.data.params["variant"] == variant and run.data.params["seed"] == "0"
        assert run.data.params["train.epochs"] == "2" and run.data.params["train.optimizer"] == "rmsprop"
        history = {
            k: [m.step for m in client.get_metric_history(run.info.run_id, k)]
            for k in ("train/loss", "train/accuracy", "val/accuracy", "train/data_wait_fraction", "train/epoch_seconds")
        }
        assert all(steps == [1, 2] for steps in history.values()), history
        waits = [m.value for m in client.get_metric_history(run.info.run_id, "train/data_wait_fraction")]
        assert all(0 <= w < 1 for w in waits), waits  # issue 14: time waiting for batches / the epoch's time
        assert run.info.status == "FINISHED" and run.info.start_time < run.info.end_time
        registered = f"videolstm-synthetic-{variant}-{name.split('-')[1]}"
        version = max(client.search_model_versions(f"name = '{registered}'"), key=lambda v: int(v.version))
        assert version.tags["seed"] == "0"
        model = mlflow.models.get_model_info(f"models:/{registered}/{version.version}")
        assert model.signature is not None and "x" in str(model.signature.inputs)
        assert ("flow" in str(model.signature.inputs)) == (variant == "videolstm")
    assert runs["videolstm-rgb-s0"].data.params["init_from.rgb_convalstm"] == "convalstm-rgb-s0"
    assert "convlstm_motion-flow-s0" in runs and not client.search_model_versions("name = 'videolstm-synthetic-convlstm_motion-flow'")
    # the exported model is the best by validation accuracy and loads with weights_only
    state = load_checkpoint(done["lstm-rgb-s0"].shard)
    assert state["epoch"] in (1, 2) and "val/accuracy" in state["metrics"] and len(state["history"]) == 2


def test_a_model_another_experiment_trained_on_this_root_gets_a_complete_run_here(tiny_pipeline, monkeypatch):
    """Two experiments (or tracking servers) on one storage root: the second benchmark reuses the
    first one's trained model, and its own experiment still holds that model's run — params,
    training curves, parent, the logged model that ``videolstm predict`` loads — once.

    The first names the root relatively, as the embedded default does (``runs/embedded``): the
    trainers run in Ray's working folder, where a relative root named another folder, and the
    end-to-end model of every registered model was "not logged" (found in `make benchmark`'s runs)."""
    from tasks.predict import load_trained
    from tasks.report import start_benchmark_run
    from tasks.train import run_train

    root = Path(tiny_pipeline.root)
    monkeypatch.chdir(root.parent)
    train = {"variants": ["lstm"], "streams": ["flow"], "epochs": 2, "batch_size": 2}  # a model no other test trains
    first = tiny_pipeline.config(train=train, mlflow={"experiment": "first-on-root"}, storage={"root": root.name})
    second = tiny_pipeline.config(train=train, mlflow={"experiment": "second-on-root"})
    assert not Path(first.storage.root).is_absolute() and Path(second.storage.root).is_absolute()
    trained = run_train(first, tiny_pipeline.features, start_benchmark_run(first))
    [item] = read_manifest(trained.manifest_uri)
    assert item.ok and trained.computed == 1, item.reason
    trained_run = _runs_by_key(first, {item.video_id: item.key})[item.video_id]
    assert "videolstm.video_model" not in trained_run.data.tags, trained_run.data.tags.get("videolstm.video_model")
    videos = MlflowClient().search_model_versions("name = 'videolstm-synthetic-lstm-flow-video'")
    assert any(v.run_id == trained_run.info.run_id for v in videos), [v.run_id for v in videos]

    parent = start_benchmark_run(second)
    for _ in range(2):  # a re-run of the second benchmark finds the run it made
        again = run_train(second, tiny_pipeline.features, parent)
        assert again.computed == 0 and [r.key for r in read_manifest(again.manifest_uri)] == [item.key]
        run = _runs_by_key(second, {item.video_id: item.key})[item.video_id]
    assert run.info.run_id != trained_run.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["variant"] == "lstm"
    assert {k: run.data.params[k] for k in ("variant", "stream", "seed", "train.epochs", "train.batch_size")} == {
        "variant": "lstm",
        "stream": "flow",
        "seed": "0",
        "train.epochs": "2",
        "train.batch_size": "2",
    }
    client = MlflowClient()
    for metric in ("train/loss", "val/accuracy"):
        here = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]
        there = [(m.step, m.value) for m in client.get_metric_history(trained_run.info.run_id, metric)]
        assert sorted(here) == sorted(there) and [s for s, _ in sorted(here)] == [1, 2], (metric, here, there)
    assert run.data.tags["videolstm.exported_epoch"] == trained_run.data.tags["videolstm.exported_epoch"]
    assert "trained by an earlier run" in run.data.tags["videolstm.reused"]
    model = load_trained(run.info.run_id, second)  # what predict loads: the same weights as the trained file
    exported = load_checkpoint(item.shard)["model"]
    assert all(torch.equal(t, exported[k]) for k, t in model.model.state_dict().items())


def test_registered_pyfunc_predicts_probabilities_from_real_frames(tiny_pipeline):
    import numpy as np

    from videolstm.features.inputs import stream_inputs
    from videolstm.store import shards

    config = tiny_pipeline.config()
    tracking.setup(config)
    model = mlflow.pyfunc.load_model("models:/videolstm-synthetic-convnet-flow/latest")
    row = next(r for r in read_manifest(tiny_pipeline.frames_flow.manifest_uri) if r.ok)
    arrays = shards.read_shard(row.shard, columns=["frames", "flow"])
    x = stream_inputs(arrays, "flow", np.arange(3), config.frame_cnn.flow_stack)[None]
    probabilities = model.predict({"x": x.astype(np.float32)})
    assert probabilities.shape == (1, 2) and abs(float(probabilities.sum()) - 1) < 1e-5


def _kill_worker_mid_run(config, job_name: str, job_dir: Path, killed: list[int], timeout: float = 240) -> None:
    """SIGKILL rank 0 once it has logged epoch 3 (so the job holds at least one checkpoint)."""
    deadline = time.monotonic() + timeout
    record = job_dir / "workers" / "rank-0.json"
    client = MlflowClient(tracking_uri=tracking.tracking_uri(config))
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    while time.monotonic() < deadline:
        runs = client.search_runs([experiment], filter_string=f"attributes.run_name = '{job_name}'")
        steps = [m.step for r in runs for m in client.get_metric_history(r.info.run_id, "train/loss")]
        if record.exists() and steps and max(steps) >= 3:
            pid = json.loads(record.read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.1)


def test_killed_training_worker_resumes_the_job_from_its_checkpoint(tiny_pipeline):
    from tasks.train import run_train

    config = tiny_pipeline.config(train={"variants": ["convlstm"], "streams": ["flow"], "epochs": 25, "max_failures": 2})
    job_dir = st.local_path(st.join(stage_uri(config, "train"), "convlstm-flow-s0"))
    killed: list[int] = []
    tracking.setup(config)
    killer = threading.Thread(target=_kill_worker_mid_run, args=(config, "convlstm-flow-s0", job_dir, killed), daemon=True)
    killer.start()
    result = run_train(config, tiny_pipeline.features, tiny_pipeline.parent_run_id)
    killer.join(timeout=5)
    assert killed, "the test did not manage to kill the training worker"
    item = next(r for r in read_manifest(result.manifest_uri) if r.video_id == "convlstm-flow-s0")
    assert item.ok, item.reason
    new_pid = json.loads((job_dir / "workers" / "rank-0.json").read_text())["pid"]
    assert new_pid != killed[0]  # a new worker process finished the run
    run = _runs_by_key(config, {item.video_id: item.key})[item.video_id]
    client = MlflowClient()
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert max(m.step for m in losses) == 25  # every epoch ran, in the same MLflow run
    # The exported model is the best epoch by validation accuracy. An epoch re-run after the kill
    # is logged twice; its last value is the one whose checkpoint survives.
    val = {m.step: m.value for m in sorted(client.get_metric_history(run.info.run_id, "val/accuracy"), key=lambda m: m.timestamp)}
    exported = load_checkpoint(item.shard)
    assert exported["metrics"]["val/accuracy"] == pytest.approx(max(val.values()))
    assert val[exported["epoch"]] == pytest.approx(max(val.values()))
    resumed = MlflowClient().get_metric_history(run.info.run_id, "resumed_from_epoch")
    assert resumed and 1 <= resumed[-1].value < 25  # it continued from a checkpoint, not from scratch
    kept = sorted(p.name for p in (job_dir / "checkpoints").glob("*.pt"))
    assert len(kept) <= config.train.keep_checkpoints + 1 and "checkpoint_epoch_00025.pt" in kept  # pruned, latest kept
    ledger.record("Ray Train worker SIGKILLed, the job resumed from its checkpoint", faults=1, runs=1)


@pytest.mark.timeout(600)
def test_training_spreads_workers_over_two_nodes(tiny_pipeline, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from tasks.runtime import _loopback_node, init_ray
    from tasks.train import run_train

    ray.shutdown()
    with _loopback_node():  # both nodes on 127.0.0.1, nothing listening outward
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        cluster.wait_for_nodes()
        config = tiny_pipeline.config(train={"variants": ["lstm"], "streams": ["rgb"], "epochs": 3, "workers": 2}, ray={"address": cluster.address})
        init_ray(config)  # the pipeline's own way of joining a cluster at a loopback address
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        result = run_train(config, tiny_pipeline.features, tiny_pipeline.parent_run_id)
        assert result.ok == 1, result.failures
        records = [json.loads(p.read_text()) for p in (st.local_path(st.join(stage_uri(config, "train"), "lstm-rgb-s0")) / "workers").glob("rank-*.json")]
        assert sorted(r["rank"] for r in records) == [0, 1]
        assert len({r["node_id"] for r in records}) == 2  # DDP workers ran on both nodes
        assert {r["node_id"] for r in records} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
        cluster.shutdown()
