"""What a researcher sees in the MLflow UI after a benchmark, checked in a real browser.

A tiny pipeline run's store is served by ``mlflow server`` on 127.0.0.1 and opened in headless
Chromium; every assertion reads the rendered page (never the REST API). Screenshots are saved
beside the test's store (``<store>/ui-screenshots/``, the path is printed) to look at.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.mlflow_ui import (
    INSTALL_HINT,
    browser_page,
    chromium_path,
    close_assistant,
    expand_parent_runs,
    metric_cell,
    mlflow_server,
    run_link,
    show_metric_column,
)
from tests.servers import free_port

# The module fixture takes a tiny benchmark to its end (2–3 min quiet, 10 min on a loaded 2-core
# machine): that counts against the first test's timeout, so the module gets more than the default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

#: Every run nested under the tiny benchmark's parent: both frame CNNs (the ConvNet variant), the
#: tiny config's two recurrent variants (RGB) and the fused ConvNet.
NESTED = ("convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0", "convalstm-rgb-s0", "convnet-fused-s0")
NUMBER = re.compile(r"^-?\d+(\.\d+)?(e-?\d+)?$")


@pytest.fixture(scope="module")
def benchmark_store(tiny_pipeline):
    """The tiny benchmark taken to its end (train, evaluate, report) in an experiment of its own."""
    from tasks import tracking
    from tasks.evaluate import run_evaluate
    from tasks.report import mlflow_ui_url, run_report, start_benchmark_run
    from tasks.train import run_finetune, run_train

    p = tiny_pipeline
    config = p.config(mlflow={"experiment": "tiny-ui"})
    parent = start_benchmark_run(config)
    trained = run_train(config, p.features, parent)
    finetuned = run_finetune(config, p.features, trained, parent)
    evaluated = run_evaluate(config, p.index, p.frames_flow, p.features, p.frame_cnn, trained, finetuned, parent)
    report = run_report(config, [p.index, p.frames_flow, p.frame_cnn, p.features, trained, finetuned, evaluated], parent)
    experiment_id = tracking.setup(config)
    return {
        "root": Path(p.root),
        "backend": tracking.tracking_uri(config),
        "experiment_id": experiment_id,
        "parent": parent,
        "rows": {r["name"]: r for r in report["rows"]},
        "printed_url": mlflow_ui_url(config),
    }


@pytest.fixture(scope="module")
def ui(benchmark_store):
    executable = chromium_path()
    if executable is None:
        pytest.fail(f"the MLflow UI test needs Debian's Chromium; run: {INSTALL_HINT}")
    shots = benchmark_store["root"] / "ui-screenshots"
    shots.mkdir(exist_ok=True)
    print(f"\nMLflow UI screenshots: {shots}")
    with mlflow_server(benchmark_store["backend"], free_port(), shots / "mlflow-server.log") as url:
        with browser_page(executable) as page:
            yield {"url": url, "page": page, "shots": shots, **benchmark_store}


def test_the_printed_link_opens_the_experiment_on_its_runs_with_every_variant_and_its_test_accuracy(ui):
    page = ui["page"]
    assert ui["printed_url"].startswith("http://127.0.0.1:5000/#/experiments/")
    page.goto(ui["printed_url"].replace("http://127.0.0.1:5000", ui["url"]))
    page.get_by_role("heading", name="Runs").wait_for()
    close_assistant(page)
    assert "/runs" in page.url and "overview" not in page.url
    assert page.get_by_text("Token Usage").count() == 0  # not the GenAI overview
    run_link(page, "tiny").wait_for()
    page.screenshot(path=str(ui["shots"] / "01-runs-collapsed.png"))

    # The parent's copy of a model's accuracy (what the collapsed list compares) and every run's own.
    show_metric_column(page, "lstm.rgb/test/accuracy")
    show_metric_column(page, "test/accuracy")
    parent_value = metric_cell(page, "tiny", "lstm.rgb/test/accuracy")
    assert float(parent_value) == pytest.approx(ui["rows"]["lstm-rgb-s0"]["test/accuracy"], abs=1e-3)  # at a glance, collapsed
    expand_parent_runs(page)
    for name in NESTED:
        run_link(page, name).wait_for()
    page.screenshot(path=str(ui["shots"] / "02-runs-nested-with-test-accuracy.png"))
    for name in NESTED:
        text = metric_cell(page, name, "test/accuracy")
        assert NUMBER.match(text), (name, text)
        assert float(text) == pytest.approx(ui["rows"][name]["test/accuracy"], abs=1e-3), (name, text)


def test_the_compare_view_of_the_variant_runs_shows_their_metrics(ui):
    page = ui["page"]
    run_ids = [ui["rows"][name]["run_id"] for name in NESTED if name in ui["rows"]]
    assert len(run_ids) == len(NESTED)
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([ui["experiment_id"]]), "workflowType": "machine_learning"})
    page.goto(f"{ui['url']}/#/compare-runs?{query}")
    page.get_by_role("heading", name=re.compile(f"Comparing {len(run_ids)} Runs")).wait_for()
    close_assistant(page)
    for name in NESTED:
        assert page.get_by_text(name, exact=True).count(), name  # the "Run details" header names every run
    # The Metrics section: metric names in one virtualised grid, one value column per run in another,
    # a metric's values at the same height as its name. Scroll the names until test/accuracy shows.
    names = page.locator('[aria-label="grid"]', has=page.locator('a[title="Plot chart"]')).first
    values_grid = page.locator('[aria-label="grid"]', has_not=page.locator('a[title="Plot chart"]')).first
    link = names.locator('a[title="Plot chart"]').filter(has_text=re.compile(r"^test/accuracy$"))
    values_grid.scroll_into_view_if_needed()
    page.screenshot(path=str(ui["shots"] / "03-compare-variants.png"))
    for _ in range(50):
        if link.count():
            break
        page.locator('[aria-label="grid"]').evaluate_all("grids => grids.forEach(grid => { grid.scrollTop += 135; })")
        page.wait_for_timeout(250)
    top = link.evaluate("a => a.parentElement.style.top")
    values = [v.strip() for v in page.locator(f'[aria-label="grid"] div[style*="top: {top};"]').all_inner_texts() if v.strip() != "test/accuracy"]
    expected = {round(ui["rows"][name]["test/accuracy"], 3) for name in NESTED}
    assert values and all(NUMBER.match(v) and round(float(v), 3) in expected for v in values), (values, expected)


def test_the_parent_run_shows_the_comparison_html_with_the_three_tables_and_the_claims(ui):
    page = ui["page"]
    page.goto(f"{ui['url']}/#/experiments/{ui['experiment_id']}/runs/{ui['parent']}/artifacts/report/comparison.html?workflowType=machine_learning")
    close_assistant(page)
    frame = page.frame_locator("iframe").first
    captions = (
        "Table 1. LSTM architectures",
        "Table 2. Appearance vs motion-based attention",
        "Table 5. Localization",
        "Claims of the paper, paired over seeds",
    )
    for caption in captions:
        frame.get_by_text(caption).wait_for()
    shown = frame.locator("table caption").all_inner_texts()
    assert [next(c for c in captions if text.startswith(c)) for text in shown] == list(captions), shown
    page.screenshot(path=str(ui["shots"] / "04-comparison-html.png"))


def test_an_attention_overlay_plays_inline_as_an_animated_gif(ui):
    page = ui["page"]
    run_id = ui["rows"]["convalstm-rgb-s0"]["run_id"]
    page.goto(f"{ui['url']}/#/experiments/{ui['experiment_id']}/runs/{run_id}/artifacts/evaluation/overlays?workflowType=machine_learning")
    close_assistant(page)
    gif = page.get_by_text(re.compile(r"\.gif$")).first
    gif.click()
    image = page.locator("img.rc-image-img").first  # the artifact viewer's image preview
    image.wait_for(state="attached")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") >= 224  # the decoded GIF (frames upscaled to ≥ 224 px)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ui["shots"] / "05-overlay-gif.png"))
