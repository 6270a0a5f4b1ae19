"""The ``sweep`` flow: every arm of a sweep file runs the full benchmark DAG, then the comparison. Wiring only.

Arms share the storage root, so what an arm does not change is a cache hit (the stages'
lineage keys): an arm that changes only ``train.*`` recomputes no flow, frame CNN or features.
The baseline arm runs first; the others follow one after another (on one machine they would
only compete for the same cores). A failed arm is recorded with its reason and the rest
completes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from flows.full_benchmark import full_benchmark
from tasks.sweep import arm_finished, arm_started, finish_sweep, missing_seeds, nest_arm_run, start_sweep_run
from videolstm.config import BenchmarkConfig, ConfigError
from videolstm.evaluation.sweep import SweepSpec, arm_config, load_sweep
from videolstm.messages import redact, shorten
from videolstm.store.safepath import check_relative

start_sweep_task = task(start_sweep_run, name="mlflow-sweep-run", cache_policy=NO_CACHE)
finish_sweep_task = task(finish_sweep, name="sweep-report", cache_policy=NO_CACHE, retries=1)


def resolve_spec(spec: SweepSpec | None, sweep_file: str | None) -> SweepSpec:
    """``spec``, or the sweep file at ``sweep_file`` — a relative path inside the working directory
    (a deployment's parameter: an absolute path or ``..`` is refused)."""
    if (spec is None) == (sweep_file is None):
        raise ConfigError("give exactly one of spec (the sweep itself) and sweep_file (a sweep YAML file)")
    if spec is not None:
        return spec
    parts = check_relative(sweep_file, "sweep_file")
    return load_sweep(Path.cwd().joinpath(*parts))


@flow(name="sweep", log_prints=True)
def sweep(config: BenchmarkConfig = BenchmarkConfig(), spec: SweepSpec | None = None, sweep_file: str | None = None) -> dict[str, Any]:
    """Run every arm of the sweep (the baseline first) on ``config``; write and log the comparison.

    The sweep is ``spec`` or the YAML file ``sweep_file`` (relative to the working directory,
    e.g. ``configs/sweeps/recipe_ablation.yaml``)."""
    logger = get_run_logger()
    spec = resolve_spec(spec, sweep_file)
    sweep_run_id = start_sweep_task(config, spec)
    rows_by_arm: dict[str, list[dict[str, Any]]] = {}
    failed: list[dict[str, Any]] = []
    for index, arm in enumerate(spec.arm_names(), start=1):
        started = arm_started(spec, arm, index)
        try:
            arm_cfg = arm_config(config, spec, arm)
        except ConfigError as exc:
            failed.append({"arm": arm, "seed": None, "reason": shorten(redact(str(exc)), 2000)})
            arm_finished(arm, started, str(exc))
            continue
        state = full_benchmark(arm_cfg, return_state=True)
        if state.is_failed() or state.is_crashed():
            reason = shorten(redact(state.message or "the arm's benchmark failed (see its flow run's logs)"), 2000)
            failed.append({"arm": arm, "seed": None, "reason": reason})
            arm_finished(arm, started, reason)
            continue
        report = state.result()
        rows_by_arm[arm] = list(report.get("rows", []))
        failed += missing_seeds(arm, report.get("missing", []))
        nest_arm_run(report["parent_run_id"], sweep_run_id, spec, arm)
        arm_finished(arm, started)
    outcome = finish_sweep_task(config, spec, sweep_run_id, rows_by_arm, failed)
    logger.info("sweep %s written to %s", spec.name, outcome["uri"])
    return outcome
