"""Real local servers for integration tests (loaded by ``pytest_plugins`` in tests/conftest.py).

- ``http_server``: an HTTP server on 127.0.0.1 (free port) serving in-memory files, with
  ``Range`` / ``If-Range`` support, a log of every request, and a switch that cuts a transfer
  after N bytes (to test resumable downloads). ``RangeServer(tls=(cert, key))`` serves HTTPS.
- ``moto_endpoint`` (session) starts the ``moto_server`` console script of this venv on a free
  port, as s3fs's own tests do; ``moto_s3`` (per test) sets dummy AWS credentials in the
  environment, creates a fresh bucket and yields ``(StorageConfig, bucket)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from videolstm.config import StorageConfig


@dataclass
class ServedRequest:
    method: str
    path: str
    range: str | None
    if_range: str | None


@dataclass
class RangeServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[ServedRequest] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before closing (once)
    honour_range: bool = True


class _Handler(http.server.BaseHTTPRequestHandler):
    state: RangeServerState  # set on the subclass per server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        state = self.state
        state.requests.append(ServedRequest(self.command, self.path, self.headers.get("Range"), self.headers.get("If-Range")))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "not found")
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and state.honour_range and self.headers.get("If-Range") in (None, etag):
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        payload = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        cut = state.cut_after.pop(self.path, None)
        if cut is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)  # the transfer stops midway


class RangeServer:
    """A running server: ``url(path)``, ``state.files[path] = bytes``, ``state.requests``."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate file, key file) to serve HTTPS instead of HTTP."""
        self.state = RangeServerState()
        self.scheme = "https" if tls else "http"
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RangeServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = RangeServer()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto S3 server started for this test session (killed at the end)."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: install the dev extras (`pip install -e '.[dev]'`, moto[server])")
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server on {url} did not answer within 20 s") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def moto_s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StorageConfig, str]]:
    """``(StorageConfig(endpoint_url=moto), bucket)`` with dummy credentials and a fresh bucket."""
    import s3fs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_endpoint})
    fs.mkdir(bucket)
    try:
        yield StorageConfig(root=f"s3://{bucket}", endpoint_url=moto_endpoint), bucket
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def ray_head_command(ray: Path, gcs_port: int, dashboard_port: int, temp_dir: str, num_cpus: int) -> list[str]:
    """``ray start --head --block`` on 127.0.0.1 with its dashboard, every other port chosen free.

    The job agent's ports default to fixed numbers (HTTP 52365): a Ray instance of an earlier test
    still holding one left a head without an agent ("No available agent to submit job")."""
    return [
        str(ray), "start", "--head", "--block", "--port", str(gcs_port), "--node-ip-address", "127.0.0.1",
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port), "--num-cpus", str(num_cpus),
        "--temp-dir", temp_dir, "--include-dashboard", "true",
        "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
        "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
    ]  # fmt: skip


class ServerProcess:
    """A server started as a subprocess, ready once ``health_url`` answers 200; stopped on exit.

    Output goes to a log file whose tail is shown when the server fails to start.
    """

    def __init__(
        self,
        args: list[str],
        health_url: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 90.0,
        log_path: Path | None = None,
        restart_if: str | None = None,
        restarts: int = 1,
    ):
        """``restart_if``: a start-up failure that is the machine's, not the code's (e.g. Ray's fixed
        30 s "timed out during startup" on a loaded machine): when the server exits with this text in
        its log, its process group is killed and it is started again, up to ``restarts`` times."""
        self.args, self.health_url, self.timeout = args, health_url, timeout
        self.env, self.cwd, self.restart_if, self.restarts_left = env, cwd, restart_if, restarts if restart_if else 0
        self.log_path = log_path or Path(tempfile.mkstemp(suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _restart(self) -> bool:
        """Start the server again after an exit whose log holds ``restart_if``; False when it may not."""
        if not self.restarts_left or self.restart_if not in self.log_path.read_text(errors="replace"):
            return False
        import os
        import signal

        self.restarts_left -= 1
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # what the failed start left behind (Ray: its GCS server)
        self._log.write(f"\n--- restarted after: {self.restart_if} ---\n".encode())
        self._log.flush()
        self.proc = self._start()
        return True

    def wait_ready(self) -> ServerProcess:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                if self._restart():
                    deadline = time.monotonic() + self.timeout
                    continue
                raise RuntimeError(f"{self.args[0]} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.args} did not answer {self.health_url} within {self.timeout} s:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = 20.0) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mlflow_server(store: Path, log_path: Path | None = None) -> ServerProcess:
    """A real ``mlflow server`` on 127.0.0.1 (free port): SQLite backend, artifacts served from
    ``store/artifacts`` through the server; one worker and no job runner (docs/stack-notes.md: 488 MB, ~6 s).
    Use as a context manager; ``.url`` is its tracking URI."""
    import os

    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    exe = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = ServerProcess(
        [
            str(exe),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
        ],
        health_url=f"http://127.0.0.1:{port}/health",
        env=env,
        timeout=180,
        log_path=log_path,
    )
    server.url = f"http://127.0.0.1:{port}"
    return server
