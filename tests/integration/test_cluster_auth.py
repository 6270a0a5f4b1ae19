"""The cluster services with authentication on, as infra/ starts them, on loopback (issue 27).

- A Ray head with token authentication refuses ``ray job submit`` without the token (and with a
  wrong one) and runs the job with it; the pipeline's own connection (``tasks.runtime.init_ray``)
  joins with the token from the environment and fails with a clear hint without it.
- An ``mlflow server --app-name basic-auth`` configured by ``infra/mlflow/basic_auth.ini`` refuses
  an anonymous run creation; the pipeline's client logs a run with credentials from the
  environment, and the password reaches no log, param, tag or message.
- A Prefect server with ``PREFECT_SERVER_API_AUTH_STRING`` refuses an anonymous deployment run and
  accepts one from a client with ``PREFECT_API_AUTH_STRING``.

Every credential is generated here; every server listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import base64
import configparser
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.tiny import tiny_config
from tests.servers import ServerProcess, free_port, ray_head_command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration


def _http(method: str, url: str, body: dict | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of one request; an HTTP error status is returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without any credential or service address of the caller, plus ``extra``."""
    drop = (
        "RAY_AUTH_TOKEN",
        "RAY_AUTH_TOKEN_PATH",
        "RAY_AUTH_MODE",
        "RAY_ADDRESS",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_URI",
    )
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PREFECT_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "NO_PROXY": "127.0.0.1,localhost",
            "RAY_USAGE_STATS_ENABLED": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            **extra,
        }
    )
    return env


# ----------------------------------------------------------------------------- Ray


_DRIVER = """
import sys
import ray
from tasks.runtime import init_ray
from videolstm.config import load_config

init_ray(load_config({"ray": {"address": sys.argv[1]}}))
print("remote task:", ray.get(ray.remote(lambda: 6 * 7).remote()))
"""


def test_ray_head_with_token_auth_refuses_a_job_without_the_token_and_runs_it_with_it(tmp_path):
    token = secrets.token_hex(24)
    gcs_port, dashboard_port = free_port(), free_port()
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    ray_temp = tempfile.mkdtemp(prefix="rayauth-", dir="/tmp")  # AF_UNIX paths must stay short
    head_env = _clean_env(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, HOME=str(tmp_path / "home"), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"
    )  # keep the head on 127.0.0.1 (tasks/runtime.py)
    head = ServerProcess(
        ray_head_command(BIN / "ray", gcs_port, dashboard_port, ray_temp, num_cpus=1),
        f"{dashboard}/api/gcs_healthz",  # public: the healthchecks of infra/ need no token
        env=head_env,
        log_path=tmp_path / "head.log",
        timeout=120,
    )

    def submit(env: dict[str, str]) -> subprocess.CompletedProcess:
        deadline = time.monotonic() + 90  # the job agent registers seconds after the dashboard answers
        while True:
            result = subprocess.run(
                [str(BIN / "ray"), "job", "submit", "--address", dashboard, "--", "python", "-c", _DRIVER, "auto"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if "No available agent to submit job" not in result.stdout + result.stderr or time.monotonic() > deadline:
                return result
            time.sleep(2)

    def driver(env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _DRIVER, f"127.0.0.1:{gcs_port}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)

    client_home = tmp_path / "client-home"  # no ~/.ray/auth_token of the machine's user is read
    try:
        with head:
            # the jobs API itself: no token 401, a wrong token 403
            assert _http("GET", f"{dashboard}/api/jobs/")[0] == 401
            assert _http("GET", f"{dashboard}/api/jobs/", headers={"Authorization": "Bearer wrong"})[0] == 403

            anonymous = submit(_clean_env(HOME=str(client_home), RAY_AUTH_MODE="disabled"))
            assert anonymous.returncode != 0
            assert "Unauthorized" in anonymous.stderr + anonymous.stdout, anonymous.stderr[-2000:]
            wrong = submit(_clean_env(HOME=str(client_home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(24)))
            assert wrong.returncode != 0 and "Invalid authentication token" in wrong.stderr + wrong.stdout

            # the README's submission: RAY_AUTH_MODE=token and the token in the environment. The job's
            # driver (init_ray with address auto) inherits the head's token and joins.
            accepted = submit(_clean_env(HOME=str(client_home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token))
            output = accepted.stdout + accepted.stderr
            assert accepted.returncode == 0 and "remote task: 42" in output and "succeeded" in output, output[-3000:]
            assert token not in output

            # the Prefect flow's connection: a driver outside the cluster, the token in its environment,
            # RAY_AUTH_MODE as the Makefile leaves it (disabled): init_ray turns token mode on
            joined = driver(_clean_env(HOME=str(client_home), RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN=token))
            assert joined.returncode == 0 and "remote task: 42" in joined.stdout, joined.stderr[-3000:]
            assert token not in joined.stdout + joined.stderr

            refused = driver(_clean_env(HOME=str(client_home)))
            assert refused.returncode != 0
            assert "sent no Ray token" in refused.stderr and "RAY_AUTH_TOKEN" in refused.stderr, refused.stderr[-3000:]
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert not (client_home / ".ray" / "auth_token").exists()  # no token file written for the client
    assert token not in (tmp_path / "head.log").read_text(errors="replace")


# ----------------------------------------------------------------------------- MLflow


def _auth_ini(tmp_path: Path) -> Path:
    """infra/mlflow/basic_auth.ini with its user database moved from the container's volume to tmp_path."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "infra" / "mlflow" / "basic_auth.ini")
    assert "admin_password" not in parser["mlflow"] and "admin_username" not in parser["mlflow"]  # from the environment
    parser["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'mlflow-auth.db'}"
    path = tmp_path / "basic_auth.ini"
    with open(path, "w") as fh:
        parser.write(fh)
    return path


def test_mlflow_server_with_basic_auth_refuses_anonymous_runs_and_the_pipeline_logs_with_env_credentials(tmp_path, monkeypatch, caplog):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from tasks import tracking
    from tasks.report import start_benchmark_run
    from videolstm.config import load_config
    from videolstm.messages import redact

    user, password = "videolstm-admin", secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _clean_env(
        MLFLOW_AUTH_CONFIG_PATH=str(_auth_ini(tmp_path)),
        MLFLOW_AUTH_ADMIN_USERNAME=user,
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    server = ServerProcess(
        [
            str(BIN / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        f"{url}/health",  # unprotected: compose's healthcheck needs no credential
        env=env,
        cwd=str(tmp_path),
        log_path=tmp_path / "server.log",
        timeout=180,
    )
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(tiny_config(str(tmp_path / "run"), mlflow={"tracking_uri": url, "experiment": "auth"}))
    try:
        with server:
            # anonymous: no experiment, no run, no search
            assert _http("POST", f"{url}/api/2.0/mlflow/experiments/create", {"name": "x"})[0] == 401
            assert _http("POST", f"{url}/api/2.0/mlflow/runs/create", {"experiment_id": "0"})[0] == 401
            assert _http("POST", f"{url}/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"]})[0] == 401
            assert _http("POST", f"{url}/api/2.0/mlflow/runs/create", {"experiment_id": "0"}, _basic(user, "not-" + password))[0] == 401
            with pytest.raises(MlflowException) as refused:  # the pipeline's client without credentials
                start_benchmark_run(config)
            assert "401" in str(refused.value) or "Unauthorized" in str(refused.value)

            # with the credentials in the environment, as compose / the Secrets give them
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
            with caplog.at_level(logging.DEBUG):
                run_id = start_benchmark_run(config)
                tracking.log_metrics(run_id, {"test/accuracy": 0.5})
                tracking.finish_run(run_id)
                message = redact(f"tracking at {url} as {user} with {password}")
            run = MlflowClient().get_run(run_id)
            assert run.info.status == "FINISHED" and run.data.metrics["test/accuracy"] == 0.5
            assert run.data.params  # the config's params were logged
            experiment = MlflowClient().get_experiment(run.info.experiment_id)
            assert experiment.name == "auth"
            # what the pipeline wrote is readable with the credentials only
            get = f"{url}/api/2.0/mlflow/runs/get?run_id={run_id}"
            assert _http("GET", get)[0] == 401 and _http("GET", get, headers=_basic(user, password))[0] == 200

            # rotation as infra/README.md says: the auth API, then the clients' environment
            from mlflow.server import get_app_client

            rotated = secrets.token_urlsafe(24)
            get_app_client("basic-auth", tracking_uri=url).update_user_password(user, rotated, current_password=password)
            assert _http("GET", get, headers=_basic(user, password))[0] == 401
            assert _http("GET", get, headers=_basic(user, rotated))[0] == 200
    finally:
        mlflow.set_tracking_uri(None)
    recorded = json.dumps({"params": run.data.params, "tags": run.data.tags, "experiment_tags": experiment.tags})
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    for secret in (password, rotated):
        assert secret not in recorded and secret not in caplog.text and secret not in server_log
    assert password not in message and "***" in message


# ----------------------------------------------------------------------------- Prefect


def _prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    env = _clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        RAY_AUTH_MODE="disabled",
        **extra,
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _prefect(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    if check:
        assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_prefect_server_with_api_auth_refuses_an_anonymous_deployment_run(tmp_path):
    auth = f"videolstm:{secrets.token_urlsafe(24)}"
    home = tmp_path / "prefect-home"
    home.mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = ServerProcess(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        f"{api}/health",  # unprotected: compose's healthcheck needs no credential
        env=_prefect_env(home, PREFECT_SERVER_API_AUTH_STRING=auth),
        cwd=str(tmp_path),
        log_path=tmp_path / "server.log",
        timeout=240,
    )
    anonymous = _prefect_env(home, api)
    client = _prefect_env(home, api, PREFECT_API_AUTH_STRING=auth)
    with server:
        assert _http("POST", f"{api}/deployments/filter", {})[0] == 401
        assert _http("POST", f"{api}/deployments/filter", {}, _basic("videolstm", "wrong"))[0] == 401
        assert _http("POST", f"{api}/deployments/filter", {}, {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()})[0] == 200

        _prefect(client, "work-pool", "create", "videolstm-process", "--type", "process")
        _prefect(client, "--no-prompt", "deploy", "--all")
        params = json.dumps({"config": tiny_config(str(tmp_path / "run"))})

        refused = _prefect(anonymous, "deployment", "run", "full-benchmark/embedded", "--params", params, check=False)
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr, refused.stdout[-2000:]
        status, body = _http("POST", f"{api}/flow_runs/filter", {}, _basic(*auth.split(":", 1)))
        assert status == 200 and json.loads(body) == []  # nothing was scheduled

        accepted = _prefect(client, "deployment", "run", "full-benchmark/embedded", "--params", params)
        assert "Created flow run" in accepted.stdout
        status, body = _http("POST", f"{api}/flow_runs/filter", {}, _basic(*auth.split(":", 1)))
        assert status == 200 and len(json.loads(body)) == 1  # scheduled for the pool's workers
        for result in (refused, accepted):
            assert auth.split(":", 1)[1] not in result.stdout + result.stderr
    assert auth.split(":", 1)[1] not in (tmp_path / "server.log").read_text(errors="replace")
