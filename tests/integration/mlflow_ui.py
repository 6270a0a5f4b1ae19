"""A real MLflow UI in a real browser: ``mlflow server`` on 127.0.0.1 over a run's store, and
headless Chromium (Debian's ``chromium``) driven by Playwright — no browser download.

``python -m tests.integration.mlflow_ui STORE OUT_DIR [EXPERIMENT]`` takes the same screenshots of
any local store (the README's screenshot comes from it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install -y chromium"
#: Chromium flags for a container without a GPU or a user namespace sandbox.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1600, "height": 1000}


def chromium_path() -> str | None:
    """Debian's Chromium, or one named by ``VIDEOLSTM_CHROMIUM``; None when there is none."""
    candidate = os.environ.get("VIDEOLSTM_CHROMIUM") or shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    return candidate


@contextlib.contextmanager
def mlflow_server(backend_uri: str, port: int, log_path: Path, timeout: float = 180) -> Iterator[str]:
    """``mlflow server`` (one worker, no job runner: 0.5 GB instead of 3 GB) on 127.0.0.1:port; yields its URL."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", backend_uri]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s:\n{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@contextlib.contextmanager
def browser_page(executable: str) -> Iterator:
    """A Playwright page of headless Chromium at ``executable``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()
