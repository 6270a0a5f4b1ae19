"""The benchmark's MLflow parent run and the final report (tables like the paper's, charts).

The report ends with what a user needs next: where the comparison table is, the command that
opens the MLflow UI on this store, and every item that failed anywhere with its reason and the
manifest that records it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow

from tasks import tracking
from videolstm.store import storage as st
from videolstm.config import BenchmarkConfig, stable_digest
from videolstm.store.lineage import StageResult, lineages, stage_uri
from videolstm.evaluation.plots import plot_localization_curves, plot_variant_comparison
from videolstm.evaluation.calibration import calibration_markdown
from videolstm.evaluation.report import comparison_html, comparison_markdown

log = logging.getLogger(__name__)


def benchmark_run_key(config: BenchmarkConfig) -> str:
    return stable_digest(["benchmark", config.name, lineages(config)["report"], config.train.variants, config.train.streams], 16)


FAMILY_TAG = "videolstm.family"
ROWS_ARTIFACT = "report/rows.json"


def family_key(config: BenchmarkConfig) -> str:
    """Digest shared by benchmarks that differ only in ``train.seed`` (their tables are pooled)."""
    unseeded = config.model_copy(update={"train": config.train.model_copy(update={"seed": 0})})
    return benchmark_run_key(unseeded)


def start_benchmark_run(config: BenchmarkConfig) -> str:
    """The parent run of this benchmark (found again on a re-run, else created with the params)."""
    experiment_id = tracking.setup(config)
    run_id, created = tracking.find_or_create_run(
        experiment_id, benchmark_run_key(config), config.name,
        tags={tracking.KIND_TAG: "benchmark", "dataset": config.dataset.kind, "split": str(config.dataset.split),
              FAMILY_TAG: family_key(config), "seed": str(config.train.seed)},
    )
    if created:
        tracking.log_params(run_id, tracking.config_params(config))
    return run_id


def mlflow_ui_command(config: BenchmarkConfig) -> str:
    uri = tracking.tracking_uri(config)
    if uri.startswith(("http://", "https://")):
        return f"open {tracking.redact(uri)}"
    return f"mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri {uri}"


def run_report(config: BenchmarkConfig, stages: list[StageResult], parent_run_id: str) -> dict[str, Any]:
    """Comparison tables (Markdown, HTML) and charts on the parent run; the closing message."""
    evaluated = next((s for s in stages if s.stage == "evaluate"), None)
    own_rows = list(evaluated.extra.get("rows", [])) if evaluated else []
    rows = sibling_rows(config, parent_run_id) + own_rows  # other seeds of the same benchmark first
    seeds = sorted({r.get("seed") for r in rows})
    uri = stage_uri(config, "report")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "rows.json").write_text(json.dumps(own_rows, indent=1, default=float))
        (out / "comparison.md").write_text(comparison_markdown(rows) + "\n" + calibration_markdown(rows))
        (out / "comparison.html").write_text(comparison_html(rows, title=f"VideoLSTM benchmark: {config.name}"))
        if rows:
            plot_variant_comparison(rows, out / "variant_comparison.png", metric="test/accuracy",
                                    title=f"{config.dataset.kind}: video top-1 accuracy (split {config.dataset.split})")
        curves = _localization_curves(config, evaluated)
        if curves:
            plot_localization_curves(curves, out / "localization_comparison.png", title="Per-frame recall vs IoU (LOWESS-smoothed)")
        for path in sorted(out.iterdir()):
            st.write_bytes(st.join(uri, path.name), path.read_bytes(), config.storage)
        client = mlflow.tracking.MlflowClient()
        client.log_artifacts(parent_run_id, tmp, artifact_path="report")
    tracking.log_metrics(parent_run_id, {f"{r['variant']}.{r['stream']}/test/accuracy": r["test/accuracy"] for r in rows if "test/accuracy" in r})
    failures = unique_failures(stages)
    client.set_tag(parent_run_id, "videolstm.failed_items", str(len(failures)))
    tracking.finish_run(parent_run_id)
    message = closing_message(config, uri, rows, failures, stages)
    if len(seeds) > 1:
        message += f"\n(tables pool {len(seeds)} runs of this benchmark that differ only in train.seed: seeds {seeds})"
    return {"message": message, "ok": True, "rows": rows, "failures": len(failures), "report_uri": uri, "parent_run_id": parent_run_id}


def sibling_rows(config: BenchmarkConfig, parent_run_id: str) -> list[dict[str, Any]]:
    """Result rows of the other seeds of this benchmark (their parent runs' ``report/rows.json``)."""
    experiment_id = tracking.setup(config)
    client = mlflow.tracking.MlflowClient()
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{FAMILY_TAG}` = '{family_key(config)}'", max_results=100)
    rows: list[dict[str, Any]] = []
    for run in runs:
        if run.info.run_id == parent_run_id:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=ROWS_ARTIFACT, dst_path=tmp)
            except Exception as exc:  # a sibling still running or from an older version: skipped, and said so
                log.info("not pooling run %s (no %s: %s)", run.info.run_id, ROWS_ARTIFACT, type(exc).__name__)
                continue
            rows += json.loads(Path(path).read_text())
    return rows


def _localization_curves(config: BenchmarkConfig, evaluated: StageResult | None) -> dict[str, Any]:
    curves = {}
    if evaluated is None:
        return curves
    for row in evaluated.extra.get("rows", []):
        name = f"{row['variant']}-{row['stream']}"
        loc = st.join(evaluated.uri, name, "localization.json")
        if st.exists(loc, config.storage):
            data = json.loads(st.read_text(loc, config.storage))["recall_curves"]["smoothed"]
            curves[name] = (data["iou"], data["recall"])
    return curves


def unique_failures(stages: list[StageResult]) -> list[tuple[str, str, str, str]]:
    """(stage, manifest, item, reason) per failed item, at the first stage it failed in.

    Later stages carry upstream failures in their manifests so nothing disappears; the
    summary names each item once.
    """
    seen: dict[str, tuple[str, str, str, str]] = {}
    for s in stages:
        for item, reason in s.failures:
            seen.setdefault(item, (s.stage, s.manifest_uri, item, reason))
    return list(seen.values())


def closing_message(config: BenchmarkConfig, report_uri: str, rows: list[dict], failures: list[tuple], stages: list[StageResult]) -> str:
    lines = ["", "VideoLSTM benchmark finished.", ""]
    if rows:
        lines += [comparison_markdown(rows), calibration_markdown(rows), ""]
    computed = ", ".join(f"{s.stage}: {s.computed} computed / {s.ok} ok" for s in stages)
    lines += [f"Stages: {computed}.", ""]
    lines.append(f"Comparison table: {st.join(report_uri, 'comparison.md')} (and comparison.html, charts beside it)")
    lines.append(f"MLflow: experiment {config.mlflow.experiment!r}; view it with:")
    lines.append(f"  {mlflow_ui_command(config)}")
    if failures:
        lines += ["", f"{len(failures)} item(s) failed and were left out (each is recorded in its stage's manifest):"]
        for stage, manifest, item, reason in failures:
            lines.append(f"  - [{stage}] {item}: {reason}")
        manifests = sorted({m for _, m, _, _ in failures})
        lines.append("  manifests: " + ", ".join(manifests))
    return "\n".join(lines)
