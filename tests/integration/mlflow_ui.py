"""A real MLflow UI in a real browser: ``mlflow server`` on 127.0.0.1 over a run's store, and
headless Chromium (Debian's ``chromium``) driven by Playwright — no browser download.

``python -m tests.integration.mlflow_ui STORE EXPERIMENT OUT.png [METRIC ...]`` takes the runs-view
screenshot of any local store the same way (the README's screenshot comes from it).
"""

from __future__ import annotations

import contextlib
import os
import re
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
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--backend-store-uri", backend_uri]
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


def close_assistant(page) -> None:
    """MLflow 3.17 opens an "Assistant" side panel that covers a third of the page."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def show_metric_column(page, metric: str) -> None:
    """Columns → search → tick the metric (MLflow 3.17 shows no metric column until asked)."""
    page.get_by_role("button", name="Columns", exact=True).click()
    page.get_by_placeholder("Search columns").fill(metric)
    title = page.get_by_test_id("column-selector-tree").locator(".du-bois-light-tree-title")
    title.filter(has_text=re.compile(f"^{re.escape(metric)}$")).click()
    page.keyboard.press("Escape")


def run_link(page, run_name: str):
    """The run's name in the runs table (not a breadcrumb of the same name)."""
    return page.locator(".ag-row").get_by_role("link", name=run_name, exact=True)


def metric_cell(page, run_name: str, metric: str) -> str:
    """The text of ``metric``'s cell in the row of ``run_name`` (the grid splits a row over a pinned and a centre part)."""
    index = page.locator(".ag-row", has=page.get_by_role("link", name=run_name, exact=True)).first.get_attribute("row-index")
    return page.locator(f'.ag-row[row-index="{index}"] [col-id="metrics.`{metric}`"]').first.inner_text().strip()


def expand_parent_runs(page) -> None:
    """Click the first parent run's expander (its nested runs appear below it)."""
    page.locator('.ag-row [data-component-id$="runnamecellrenderer.tsx_46"]').first.click()


def runs_screenshot(url: str, experiment_id: str, path: Path, metrics: tuple[str, ...] = ("test/accuracy",)) -> Path:
    """The experiment's runs, the first parent expanded, ``metrics`` as columns: a PNG at ``path``."""
    executable = chromium_path()
    if executable is None:
        raise SystemExit(f"needs Chromium; run: {INSTALL_HINT}")
    with browser_page(executable) as page:
        page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        page.get_by_role("heading", name="Runs").wait_for()
        close_assistant(page)
        for metric in metrics:
            show_metric_column(page, metric)
        expand_parent_runs(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(path))
    return path


def main(argv: list[str]) -> int:
    """``python -m tests.integration.mlflow_ui STORE EXPERIMENT OUT.png [METRIC ...]``: a runs-view screenshot of a local store."""
    import mlflow

    from tests.servers import free_port

    store, experiment, out, *metrics = argv
    backend = f"sqlite:///{Path(store).resolve() / 'mlflow.db'}"
    found = mlflow.MlflowClient(tracking_uri=backend).get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {backend}")
    with mlflow_server(backend, free_port(), Path(out).with_suffix(".server.log")) as url:
        print(runs_screenshot(url, found.experiment_id, Path(out), tuple(metrics) or ("test/accuracy",)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
