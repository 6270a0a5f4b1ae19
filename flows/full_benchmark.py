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
from tasks.dataset import run_dataset
from tasks.evaluate import run_evaluate
from tasks.features import run_features
from tasks.frames_flow import run_frames_flow
from tasks.report import run_report, start_benchmark_run
from tasks.train import run_finetune, run_frame_cnn, run_train
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


dataset_task = stage_task("index", run_dataset, retries=2)
frames_flow_task = stage_task("frames_flow", run_frames_flow)
frame_cnn_task = stage_task("frame_cnn", run_frame_cnn)
features_task = stage_task("features", run_features)
train_task = stage_task("train", run_train)
finetune_task = stage_task("finetune", run_finetune)
evaluate_task = stage_task("evaluate", run_evaluate)
parent_run_task = task(start_benchmark_run, name="mlflow-parent-run", cache_policy=NO_CACHE)
report_task = task(run_report, name="report", cache_policy=NO_CACHE, retries=1)


@flow(name="full-benchmark", log_prints=True)
def full_benchmark(config: BenchmarkConfig = BenchmarkConfig()) -> dict[str, Any]:
    """Dataset → frames+flow → frame CNNs → features → every variant → VideoLSTM fine-tuning → evaluation → report.

    Every stage from the frame CNNs on runs each seed of ``train.seeds``; VideoLSTM's stage
    depends on the trained flow ConvLSTM and RGB ConvALSTM it is assembled from."""
    logger = get_run_logger()
    parent_run_id = parent_run_task(config)
    # reused_stage: a console line for a stage Prefect answered from its cache (its task did not run)
    index = reused_stage(dataset_task(config))
    frames_flow = reused_stage(frames_flow_task(config, index))
    frame_cnn = reused_stage(frame_cnn_task(config, index, frames_flow, parent_run_id))
    features = reused_stage(features_task(config, frames_flow, frame_cnn))
    trained = reused_stage(train_task(config, features, parent_run_id))
    finetuned = reused_stage(finetune_task(config, features, trained, parent_run_id))
    evaluated = reused_stage(evaluate_task(config, index, frames_flow, features, frame_cnn, trained, finetuned, parent_run_id))
    report = report_task(config, [index, frames_flow, frame_cnn, features, trained, finetuned, evaluated], parent_run_id)
    logger.info(report["message"])
    return report
