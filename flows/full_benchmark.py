"""The ``full-benchmark`` flow: raw videos → MLflow comparison of every variant and seed. Wiring only.

Each stage is a Prefect task around one ``tasks.*.run_*`` function. Caching across runs: a
task's cache key is its stage's lineage (its own and upstream parameters) plus the content
digest of its upstream results, and only while its output is still on storage (an absent output
gets a key no cached result can match), so a re-run skips finished stages and a changed
parameter re-runs only the stages that depend on it. Results
are persisted as JSON (never pickles).
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from tasks.console import reused_stage
from tasks.report import start_benchmark_run
from tasks.stages import PIPELINE
from videolstm.config import BenchmarkConfig, stable_digest
from videolstm.store import storage as st
from videolstm.store.lineage import STAGE_FILE, StageResult, lineages, stage_uri

OUTPUT_FILE = {"index": "index.parquet"}


def stage_cache_key(stage: str):
    """Cache key function for ``stage``: lineage + upstream contents + the output's own content.

    The output's content is the digest its ``stage.json`` records: a result cached by an earlier
    run can only be reused while the output on storage is the one that run wrote. (With mere
    presence, an output deleted and then rebuilt by other code — e.g. a new shard format — hit
    the old run's cached result and its stale content.)
    """

    def key(context: Any, parameters: dict[str, Any]) -> str:
        config: BenchmarkConfig = parameters["config"]
        upstream = sorted(v.content for v in parameters.values() if isinstance(v, StageResult))
        folder = stage_uri(config, stage)
        output = st.join(folder, OUTPUT_FILE.get(stage, "manifest.parquet"))
        record = st.join(folder, STAGE_FILE)
        if not (st.exists(output, config.storage) and st.exists(record, config.storage)):
            # Nothing to reuse: a key of its own, so that no result cached by an earlier run (one
            # whose output has since been deleted, or the first run of this stage) can match.
            return f"videolstm-{stage}-absent-{uuid.uuid4().hex}"
        content = StageResult.model_validate_json(st.read_text(record, config.storage)).content
        # what the run asks for beyond the lineage (which models and seeds): a run asking for a
        # variant or seed the cached result lacks must run the stage, which then reuses every item
        t = config.train
        wanted = [t.variants, t.streams, t.seeds]
        return f"videolstm-{stage}-" + stable_digest([lineages(config)[stage], upstream, content, wanted], 24)

    return key


def stage_task(stage: str, fn, retries: int = 1):
    return task(
        fn,
        name=stage,
        cache_key_fn=stage_cache_key(stage),
        persist_result=True,
        result_serializer="json",
        retries=retries,
        retry_delay_seconds=10,
    )


#: One Prefect task per stage of the graph (:data:`tasks.stages.PIPELINE`); the report is never cached.
STAGE_TASKS = {
    s.name: task(s.run, name=s.name, cache_policy=NO_CACHE, retries=s.retries) if s.collects else stage_task(s.name, s.run, s.retries) for s in PIPELINE
}
parent_run_task = task(start_benchmark_run, name="mlflow-parent-run", cache_policy=NO_CACHE)


@flow(name="full-benchmark", log_prints=True)
def full_benchmark(config: BenchmarkConfig = BenchmarkConfig()) -> dict[str, Any]:
    """Dataset → frames+flow → frame CNNs → features → every variant → VideoLSTM fine-tuning → evaluation → report.

    Every stage from the frame CNNs on runs each seed of ``train.seeds``; VideoLSTM's stage
    depends on the trained flow ConvLSTM and RGB ConvALSTM it is assembled from. The stages and
    what each reads are :data:`tasks.stages.PIPELINE`."""
    logger = get_run_logger()
    parent_run_id = parent_run_task(config)
    results: dict[str, Any] = {}
    for s in PIPELINE:
        outcome = STAGE_TASKS[s.name](*s.arguments(config, results, parent_run_id))
        # reused_stage: a console line for a stage Prefect answered from its cache (its task did not run)
        results[s.name] = outcome if s.collects else reused_stage(outcome)
    report = results[PIPELINE[-1].name]
    logger.info(report["message"])
    return report
