"""A sweep's MLflow run and outputs: one sweep run, each arm's benchmark parent nested under it.

The statistics and the files' content are :mod:`videolstm.evaluation.sweep`; this module logs
them and writes them to ``<storage.root>/sweeps/<name>/`` (``sweep.md``, ``sweep.html``,
``sweep.json``).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from tasks import tracking
from tasks.console import console, format_duration, say
from videolstm.config import BenchmarkConfig, stable_digest
from videolstm.evaluation.sweep import SweepSpec, sweep_html, sweep_markdown, sweep_metrics, sweep_results
from videolstm.messages import redact
from videolstm.store import storage as st

SWEEP_TAG, ARM_TAG = "sweep", "arm"


def sweep_uri(config: BenchmarkConfig, sweep: SweepSpec) -> str:
    """``<storage.root>/sweeps/<name>`` (the name is validated by :class:`SweepSpec`)."""
    return st.join(st.absolute(config.storage.root), "sweeps", sweep.name)


def start_sweep_run(config: BenchmarkConfig, sweep: SweepSpec) -> str:
    """The sweep's MLflow run (found again on a re-run of the same sweep on the same config)."""
    experiment_id = tracking.setup(config)
    key = stable_digest(["sweep", sweep.model_dump(mode="json"), config.model_dump(mode="json")], 16)
    run_id, created = tracking.find_or_create_run(experiment_id, key, f"sweep-{sweep.name}", tags={tracking.KIND_TAG: "sweep", SWEEP_TAG: sweep.name})
    if created:
        tracking.log_params(
            run_id,
            {
                "sweep.name": sweep.name,
                "sweep.baseline": sweep.baseline,
                "sweep.seeds": json.dumps(sweep.seeds),
                "sweep.arms": json.dumps(sweep.arm_names()),
                **{f"arm.{arm}": redact(json.dumps({**sweep.base, **sweep.arms[arm]}, sort_keys=True))[:6000] for arm in sweep.arm_names()},
            },
        )
    return run_id


def nest_arm_run(parent_run_id: str, sweep_run_id: str, sweep: SweepSpec, arm: str) -> None:
    """Nest an arm's benchmark parent run under the sweep run and tag it ``sweep``, ``arm``."""
    tracking.set_tags(parent_run_id, {"mlflow.parentRunId": sweep_run_id, SWEEP_TAG: sweep.name, ARM_TAG: arm})


def arm_started(sweep: SweepSpec, arm: str, index: int) -> float:
    shown = ", ".join(f"{k}={v}" for k, v in sweep.arms[arm].items()) or "no overrides"
    role = " (baseline)" if arm == sweep.baseline else ""
    console().started.clear()  # each arm shows its own stage lines, the reused ones included
    say(f"▸ arm {index}/{len(sweep.arms)} {arm}{role}: {redact(shown)}")
    return time.perf_counter()


def arm_finished(arm: str, started: float, error: str | None = None) -> None:
    took = format_duration(time.perf_counter() - started)
    say(f"{'✗' if error else '✓'} arm {arm} in {took}" + (f": failed: {redact(error)}" if error else ""))


def missing_seeds(arm: str, missing: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """``{"arm", "seed", "model", "reason"}`` per model of ``arm`` without a result.

    ``missing``: the report's ``(model name, reason)`` pairs; model names end in ``-s<seed>``."""
    out = []
    for name, reason in missing:
        head, _, tail = str(name).rpartition("-s")
        seed = int(tail) if head and tail.isdigit() else None
        out.append({"arm": arm, "seed": seed, "model": str(name), "reason": redact(str(reason))})
    return out


def finish_sweep(
    config: BenchmarkConfig,
    sweep: SweepSpec,
    sweep_run_id: str,
    rows_by_arm: Mapping[str, Sequence[Mapping[str, Any]]],
    failed: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Write ``sweep.md``, ``sweep.html``, ``sweep.json`` to storage and the sweep run; log the metrics."""
    results = sweep_results(sweep, rows_by_arm, failed)
    uri = sweep_uri(config, sweep)
    files = {
        "sweep.json": json.dumps(json_safe(results), indent=1, allow_nan=False),
        "sweep.md": sweep_markdown(results),
        "sweep.html": sweep_html(results),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            st.write_text(st.join(uri, name), text, config.storage)
            (Path(tmp) / name).write_text(text)
        MlflowClient().log_artifacts(sweep_run_id, tmp, artifact_path="sweep")
    tracking.log_metrics(sweep_run_id, sweep_metrics(results))
    tracking.set_tags(
        sweep_run_id, {"videolstm.failed_arms": str(len({f["arm"] for f in failed if f.get("seed") is None})), "videolstm.failed_items": str(len(failed))}
    )
    tracking.finish_run(sweep_run_id, failed=not any(rows_by_arm.values()))
    return {"results": results, "uri": uri, "markdown": files["sweep.md"], "sweep_run_id": sweep_run_id}


def json_safe(value: Any) -> Any:
    """NaN → None recursively (``sweep.json`` is strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
