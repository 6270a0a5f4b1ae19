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
from tasks.console import stage_progress
from videolstm.config import BenchmarkConfig, stable_digest
from videolstm.evaluation.calibration import calibration_markdown
from videolstm.evaluation.plots import plot_localization_curves, plot_variant_comparison
from videolstm.evaluation.report import comparison_html, comparison_markdown
from videolstm.store import storage as st
from videolstm.store.lineage import StageResult, lineages, stage_uri

log = logging.getLogger(__name__)


def benchmark_run_key(config: BenchmarkConfig) -> str:
    return stable_digest(["benchmark", config.name, lineages(config)["report"], config.train.variants, config.train.streams, config.train.seeds], 16)


def start_benchmark_run(config: BenchmarkConfig) -> str:
    """The parent run of this benchmark (found again on a re-run, else created with the params)."""
    experiment_id = tracking.setup(config)
    run_id, created = tracking.find_or_create_run(
        experiment_id,
        benchmark_run_key(config),
        config.name,
        tags={
            tracking.KIND_TAG: "benchmark",
            "dataset": config.dataset.kind,
            "split": str(config.dataset.split),
            "seeds": ",".join(str(s) for s in config.train.seeds),
        },
    )
    if created:
        tracking.log_params(run_id, tracking.config_params(config))
    return run_id


def mlflow_ui_command(config: BenchmarkConfig) -> str:
    uri = tracking.tracking_uri(config)
    if uri.startswith(("http://", "https://")):
        return f"open {tracking.redact(uri)}"
    return f"mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri {uri}"


def expected_models(config: BenchmarkConfig) -> list[str]:
    """Every model (and fused pair) the run should evaluate: the matrix × seeds."""
    from tasks.evaluate import FUSION_PARTNER
    from tasks.train import model_name, variant_streams

    names = []
    for seed in config.train.seeds:
        names += [model_name("convnet", s, seed) for s in ("rgb", "flow")]
        matrix = variant_streams(config)
        names += [model_name(v, s, seed) for v, s in matrix]
        for variant, stream in matrix:
            if stream == "rgb" and (FUSION_PARTNER.get(variant, variant), "flow") in matrix:
                names.append(f"{variant}-fused-s{seed}")
        names.append(f"convnet-fused-s{seed}")
    return sorted(set(names))


def missing_models(config: BenchmarkConfig, rows: list[dict[str, Any]], stages: list[StageResult]) -> list[tuple[str, str]]:
    """(model, reason) of every expected model without a result row: its recorded failure, or why it is absent."""
    have = {r["name"] for r in rows if "name" in r}
    reasons = {item: reason for s in stages for item, reason in s.failures}
    out = []
    for name in expected_models(config):
        if name not in have:
            out.append((name, reasons.get(name, "no result (a model it depends on failed, or its stage did not run)")))
    return out


def parent_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per (variant, stream): the mean over seeds of test accuracy and mAP@0.2, for the parent run."""
    values: dict[str, list[float]] = {}
    for row in rows:
        for metric in ("test/accuracy", "loc/mAP_0.2"):
            if row.get(metric) is not None:
                values.setdefault(f"{row['variant']}.{row['stream']}/{metric}", []).append(float(row[metric]))
    return {k: sum(v) / len(v) for k, v in values.items()}


def mlflow_ui_url(config: BenchmarkConfig) -> str:
    """The experiment's runs page on the server :func:`mlflow_ui_command` starts (or the tracking server)."""
    uri = tracking.tracking_uri(config)
    base = tracking.redact(uri) if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return tracking.experiment_url(base, tracking.setup(config))


def run_report(config: BenchmarkConfig, stages: list[StageResult], parent_run_id: str) -> dict[str, Any]:
    """Comparison tables (Markdown, HTML) and charts on the parent run; the closing message."""
    with stage_progress("report", detail="comparison tables and charts on the MLflow parent run"):
        return _run_report(config, stages, parent_run_id)


def _run_report(config: BenchmarkConfig, stages: list[StageResult], parent_run_id: str) -> dict[str, Any]:
    evaluated = next((s for s in stages if s.stage == "evaluate"), None)
    rows = list(evaluated.extra.get("rows", [])) if evaluated else []
    missing = missing_models(config, rows, stages)
    seeds = len(config.train.seeds)
    uri = stage_uri(config, "report")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "rows.json").write_text(json.dumps(rows, indent=1, default=float))
        (out / "comparison.md").write_text(comparison_markdown(rows, expected_seeds=seeds, missing=missing) + "\n" + calibration_markdown(rows))
        (out / "comparison.html").write_text(comparison_html(rows, title=f"VideoLSTM benchmark: {config.name}", expected_seeds=seeds, missing=missing))
        if rows:
            plot_variant_comparison(
                rows,
                out / "variant_comparison.png",
                metric="test/accuracy",
                title=f"{config.dataset.kind}: video top-1 accuracy (split {config.dataset.split})",
            )
        curves = _localization_curves(config, evaluated)
        if curves:
            plot_localization_curves(curves, out / "localization_comparison.png", title="Per-frame recall vs IoU (LOWESS-smoothed)")
        for path in sorted(out.iterdir()):
            st.write_bytes(st.join(uri, path.name), path.read_bytes(), config.storage)
        client = mlflow.tracking.MlflowClient()
        client.log_artifacts(parent_run_id, tmp, artifact_path="report")
    tracking.log_metrics(parent_run_id, parent_metrics(rows))
    failures = unique_failures(stages)
    client.set_tag(parent_run_id, "videolstm.failed_items", str(len(failures)))
    tracking.finish_run(parent_run_id)
    message = closing_message(config, uri, rows, failures, stages, missing)
    return {
        "message": message,
        "ok": True,
        "rows": rows,
        "failures": len(failures),
        "report_uri": uri,
        "parent_run_id": parent_run_id,
        "missing": [list(m) for m in missing],
    }


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


def closing_message(
    config: BenchmarkConfig, report_uri: str, rows: list[dict], failures: list[tuple], stages: list[StageResult], missing: list[tuple[str, str]] = ()
) -> str:
    lines = ["", "VideoLSTM benchmark finished.", ""]
    if rows:
        lines += [comparison_markdown(rows, expected_seeds=len(config.train.seeds), missing=missing), calibration_markdown(rows), ""]
    computed = ", ".join(f"{s.stage}: {s.computed} computed / {s.ok} ok" for s in stages)
    lines += [f"Stages: {computed}.", ""]
    lines.append(f"Comparison table: {st.join(report_uri, 'comparison.md')} (and comparison.html, charts beside it)")
    lines.append(f"MLflow: experiment {config.mlflow.experiment!r}; view it with:")
    lines.append(f"  {mlflow_ui_command(config)}")
    lines.append(f"  then open {mlflow_ui_url(config)}")
    if failures:
        lines += ["", f"{len(failures)} item(s) failed and were left out (each is recorded in its stage's manifest):"]
        for stage, _manifest, item, reason in failures:
            lines.append(f"  - [{stage}] {item}: {reason}")
        manifests = sorted({m for _, m, _, _ in failures})
        lines.append("  manifests: " + ", ".join(manifests))
    return "\n".join(lines)
