"""The deployments of prefect.yaml against a real Prefect server and process worker on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.tiny import tiny_config
from tests.servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration


def _prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"prefect {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_prefect_yaml_declares_both_deployments_with_a_nightly_schedule():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert deployments["embedded"]["entrypoint"] == "flows/full_benchmark.py:full_benchmark"
    assert deployments["nightly"]["entrypoint"] == "flows/reevaluate.py:reevaluate"
    assert deployments["nightly"]["schedules"][0]["cron"] == "0 2 * * *"
    for deployment in deployments.values():
        path, func = deployment["entrypoint"].split(":")
        assert f"def {func}(" in (REPO / path).read_text()
        assert deployment["work_pool"]["name"] == "videolstm-process"


def test_full_benchmark_deployment_runs_on_a_real_server_and_worker(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = ServerProcess(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        f"{api}/health",
        env=_prefect_env(home),
        cwd=str(tmp_path),
        log_path=tmp_path / "server.log",
    )
    with server:
        env = _prefect_env(home, api)
        _prefect(env, "work-pool", "create", "videolstm-process", "--type", "process")
        _prefect(env, "--no-prompt", "deploy", "--all")
        listed = _prefect(env, "deployment", "ls").stdout
        assert "full-benchmark/embedded" in listed and "reevaluate/nightly" in listed
        worker_port = free_port()
        worker = ServerProcess(
            [str(BIN / "prefect"), "worker", "start", "--pool", "videolstm-process", "--with-healthcheck"],
            f"http://127.0.0.1:{worker_port}/health",
            env={**env, "PREFECT_WORKER_WEBSERVER_PORT": str(worker_port), "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1"},
            cwd=str(tmp_path),
            log_path=tmp_path / "worker.log",
        )
        try:
            worker.wait_ready()
            root = tmp_path / "run"
            params = json.dumps({"config": tiny_config(str(root))})
            run = subprocess.run(
                [str(BIN / "prefect"), "deployment", "run", "full-benchmark/embedded", "--params", params, "--watch", "--watch-timeout", "600"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=660,
            )
            output = run.stdout + run.stderr
            assert run.returncode == 0 and "Completed" in output, f"{output[-3000:]}\nworker log:\n{worker.log_tail()}"
        finally:
            worker.stop()  # before the server (docs/stack-notes.md)

    # The MLflow store the flow wrote: a parent run and a nested run per model.
    with sqlite3.connect(root / "mlflow.db") as db:
        runs = dict(db.execute("SELECT name, status FROM runs").fetchall())
        parents = {r for (r,) in db.execute("SELECT value FROM tags WHERE key = 'mlflow.parentRunId'")}
    assert {"tiny", "convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0", "convalstm-rgb-s0", "convnet-fused-s0"} <= set(runs), runs
    assert all(status == "FINISHED" for status in runs.values()), runs
    assert len(parents) == 1  # every nested run hangs under the benchmark's parent run
