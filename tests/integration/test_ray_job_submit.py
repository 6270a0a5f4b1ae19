"""`ray job submit --working-dir . -- python -m flows.cli benchmark` against a `ray start --head` cluster."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.tiny import tiny_config
from tests.servers import ServerProcess, free_port, ray_head_command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration


def test_benchmark_submitted_as_a_ray_job_completes_on_a_head_node(tmp_path):
    gcs_port, dashboard_port = free_port(), free_port()
    # Ray's session folder holds AF_UNIX sockets (paths ≤ 107 bytes): keep it short, not under tmp_path
    ray_temp = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }  # keep the head on 127.0.0.1 (see tasks/runtime.py)
    env.pop("RAY_ADDRESS", None)
    head = ServerProcess(
        ray_head_command(BIN / "ray", gcs_port, dashboard_port, ray_temp, num_cpus=2),
        f"http://127.0.0.1:{dashboard_port}/api/version",
        env=env,
        log_path=tmp_path / "head.log",
        timeout=120,
        restart_if="timed out during startup",  # Ray's fixed 30 s wait, missed on a loaded machine
    )
    config_path = tmp_path / "tiny.yaml"
    root = tmp_path / "run"
    config_path.write_text(yaml.safe_dump(tiny_config(str(root), ray={"address": "auto"})))
    try:
        with head:
            deadline = time.monotonic() + 120  # the dashboard answers before its job agent has registered
            while True:  # (it registers seconds later)
                submit = subprocess.run(
                    [
                        str(BIN / "ray"),
                        "job",
                        "submit",
                        "--address",
                        f"http://127.0.0.1:{dashboard_port}",
                        "--working-dir",
                        ".",
                        "--",
                        "python",
                        "-m",
                        "flows.cli",
                        "benchmark",
                        "--config",
                        str(config_path),
                    ],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                if "No available agent to submit job" not in submit.stderr + submit.stdout or time.monotonic() > deadline:
                    break
                time.sleep(2)
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    output = submit.stdout + submit.stderr
    assert submit.returncode == 0, output[-4000:]
    assert "succeeded" in output and "VideoLSTM benchmark finished." in output, output[-4000:]
    # The job ran on the submitted cluster (not a local instance of its own) and filled MLflow.
    assert "connecting to the Ray cluster at auto" in output, output[-4000:]
    with sqlite3.connect(root / "mlflow.db") as db:
        names = {n for (n,) in db.execute("SELECT name FROM runs")}
    assert {"tiny", "lstm-rgb-s0", "convalstm-rgb-s0"} <= names
