"""Fixtures of the reliability suite: a benchmark on bad input killed midway and re-run (CLI
subprocesses), a restartable moto S3 store, and a local Ray instance started by init_ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.inputs import BadDataset, make_bad_dataset, write_config
from tests.reliability.moto_store import RestartableMoto

REPO = Path(__file__).resolve().parents[2]

#: Secrets the benchmark's environment holds; none may show up in anything it writes or prints.
SENTINELS = {
    "AWS_ACCESS_KEY_ID": "AKIARELIABILITYSENTINEL",
    "AWS_SECRET_ACCESS_KEY": "sentinel-secret-Zq8vR3kP0wLx7Jm2",
    "AWS_SESSION_TOKEN": "sentinel-token-Hh4Tn9Ue1Yc6Bb5",
}


def cli_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m flows.cli`` subprocess: state in tmp, no inherited cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST")}
    env.update({"PREFECT_HOME": str(prefect_home), "PYTHONUNBUFFERED": "1", **extra})
    return env


def spawned_with(prefect_home: Path) -> list[int]:
    """Pids of the live processes whose environment has ``PREFECT_HOME=prefect_home``.

    Every process a CLI run starts (its Prefect server, its Ray instance, Ray's workers) inherits
    that environment, so this finds what a killed run left behind, whatever session it is in.
    """
    import psutil
    import ray  # noqa: F401  (puts Ray's vendored psutil on the path)

    wanted = str(prefect_home)
    pids = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("PREFECT_HOME") == wanted:
                pids.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return pids


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class BadBenchmark:
    """A CLI benchmark over a dataset with bad inputs: killed with SIGKILL midway, then re-run."""

    base: Path
    dataset: BadDataset
    config_path: Path
    store: Path
    prefect_home: Path
    killed_returncode: int
    killed_output: str
    orphans_after_kill: int
    runs_before_rerun: dict[str, str]  # MLflow run name -> run id, as the killed run left them
    flow_shards_before: dict[str, float]  # frames+flow shard -> mtime after the killed run
    rerun_returncode: int
    rerun_output: str
    rerun_seconds: float

    def config(self):
        from videolstm.config import load_config

        return load_config(self.config_path)

    def stage(self, name: str):
        from videolstm.store.lineage import load_stage_result

        return load_stage_result(self.config(), name)


def mlflow_runs(db: Path) -> list[tuple[str, str, str]]:
    """(name, run id, status) of every run in an MLflow SQLite store."""
    import sqlite3

    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, run_uuid, status FROM runs WHERE lifecycle_stage = 'active'").fetchall()


def flow_shards(store: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(store.glob("frames_flow/*/shards/*.parquet"))}


@pytest.fixture(scope="session")
def bad_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadBenchmark]:
    base = tmp_path_factory.mktemp("bad-benchmark")
    dataset = make_bad_dataset(base)
    store = base / "store"
    config_path = write_config(
        base / "config.yaml",
        store,
        dataset,
        train={
            "variants": ["lstm"],
            "streams": ["rgb"],
            "seeds": [0],
            "epochs": 1,
            "batch_size": 4,
            "snippet_length": 6,
            "model": {"hidden_channels": 4, "lstm_hidden": 8, "fc_dim": 8},
        },
    )
    prefect_home = base / "prefect"
    env = cli_env(prefect_home, **SENTINELS)
    command = [sys.executable, "-m", "flows.cli", "benchmark", "--config", str(config_path)]

    # 1. Start the benchmark; once the frame-CNN stage has begun, kill its whole process group.
    first_log = base / "killed-run.log"
    with open(first_log, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while not (store / "frame_cnn").exists():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the benchmark ended ({proc.returncode}) before the frame-CNN stage began:\n{first_log.read_text(errors='replace')[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError("the frame-CNN stage did not begin within 300 s")
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:  # the wait above failed: do not leave the run behind
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    orphans = spawned_with(prefect_home)  # Ray starts its workers in sessions of their own: they survive
    runs_before = {name: run_id for name, run_id, _ in mlflow_runs(store / "mlflow.db")}
    shards_before = flow_shards(store)

    # 2. Re-run the same command while the orphans of the killed run may still be around.
    started = time.monotonic()
    try:
        rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
        output, code = rerun.stdout + rerun.stderr, rerun.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"timed out after 420 s:\n{exc.stdout}\n{exc.stderr}", -1
    seconds = time.monotonic() - started
    (base / "rerun.log").write_text(output)
    try:
        yield BadBenchmark(
            base=base,
            dataset=dataset,
            config_path=config_path,
            store=store,
            prefect_home=prefect_home,
            killed_returncode=proc.returncode,
            killed_output=first_log.read_text(errors="replace"),
            orphans_after_kill=len(orphans),
            runs_before_rerun=runs_before,
            flow_shards_before=shards_before,
            rerun_returncode=code,
            rerun_output=output,
            rerun_seconds=seconds,
        )
    finally:
        kill_pids(spawned_with(prefect_home))  # re-checked now: a pid seen earlier may have been reused


@pytest.fixture
def moto_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableMoto]:
    """A moto S3 server of this test alone (restartable on its port) with the bucket ``reliability``."""
    import s3fs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    store = RestartableMoto(["reliability"])
    store.start()
    try:
        yield store
    finally:
        store.close()
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A fresh local Ray instance started by tasks.runtime.init_ray (shut down afterwards)."""
    import ray

    from tasks.runtime import init_ray
    from videolstm.config import load_config

    if ray.is_initialized():
        ray.shutdown()
    init_ray(load_config({"ray": {"num_cpus": 2}}))
    try:
        yield
    finally:
        ray.shutdown()
