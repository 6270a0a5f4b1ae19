"""MLflow: one experiment, a parent run per benchmark, a nested run per (variant, stream).

Runs are found again by a ``videolstm.run_key`` tag (a digest of what produced them), so a
re-run — or a run resumed after a crash — continues the same MLflow run instead of creating a
duplicate. The default tracking store is SQLite under ``storage.root`` with artifacts beside it;
on a cluster set ``mlflow.tracking_uri`` to a tracking server every node can reach.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from videolstm.config import BenchmarkConfig, flatten
from videolstm.messages import redact
from videolstm.store import storage as st

RUN_KEY_TAG = "videolstm.run_key"
KIND_TAG = "videolstm.kind"
#: The experiment tag MLflow's UI (3.x) reads to choose its landing page: without it an experiment
#: opens on the GenAI overview (traces, tokens); with this value it opens on the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: What alembic's SQLite batch migrations name the copy of a table they rebuild; a migration killed
#: (or raced) halfway leaves it behind, and every later migration of that table then fails.
ALEMBIC_TMP_PREFIX = "_alembic_tmp_"

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    pass


def tracking_uri(config: BenchmarkConfig) -> str:
    """The configured tracking URI, or SQLite under a local ``storage.root``."""
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    if not st.is_local(config.storage.root):
        raise TrackingError(
            f"storage.root is {config.storage.root}; set mlflow.tracking_uri to a tracking server (the SQLite default only works with a local storage root)"
        )
    root = st.local_path(st.absolute(config.storage.root))
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_location(config: BenchmarkConfig) -> str | None:
    """Artifact root for a new experiment: beside the SQLite store, else the server's default."""
    if config.mlflow.tracking_uri:
        return None
    return (st.local_path(st.absolute(config.storage.root)) / "mlartifacts").as_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<path>`` tracking URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


@contextlib.contextmanager
def store_lock(db: Path) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` beside the database, held by one process at a time
    (``flock``: released by the kernel when the holder dies, so a crash never leaves it taken)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def prepare_store(uri: str) -> None:
    """Create or migrate the SQLite tracking store once, under :func:`store_lock`.

    MLflow creates and migrates a SQLite store whenever a client first opens it, without a lock:
    two processes starting on a fresh database race through alembic's migrations and can leave it
    half-migrated (a ``_alembic_tmp_<table>`` copy left behind, the schema at an old revision), and
    every later start then fails (docs/stack-notes.md). Here the first process creates or migrates it while
    the others wait; a store found half-migrated is repaired — the leftover copy dropped (its
    table is still there: alembic drops the original only after the copy is complete) and the
    migration run again. A copy whose original is gone holds the only rows: that store is refused
    with the command that puts it back. Other stores (a tracking server, which migrates its own
    database) are left alone.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    import sqlalchemy
    from mlflow.store.db import utils as db_utils

    with store_lock(db):
        engine = sqlalchemy.create_engine(uri)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
            leftovers = sorted(t for t in tables if t.startswith(ALEMBIC_TMP_PREFIX))
            orphans = [t for t in leftovers if t[len(ALEMBIC_TMP_PREFIX) :] not in tables]
            if orphans:
                original = orphans[0][len(ALEMBIC_TMP_PREFIX) :]
                raise TrackingError(
                    f"the MLflow database {db} was left half-migrated: table {original!r} is missing and its "
                    f"migrated copy {orphans[0]!r} holds its rows; back the file up, then put it back with "
                    f"`sqlite3 {db} 'ALTER TABLE {orphans[0]} RENAME TO {original}'` and start again "
                    "(the migration then completes)"
                )
            if leftovers:
                log.warning("the MLflow database %s was left half-migrated (leftover %s); repairing it", db, ", ".join(leftovers))
                with engine.begin() as connection:
                    for table in leftovers:
                        connection.exec_driver_sql(f'DROP TABLE "{table}"')
            if not db_utils._all_tables_exist(engine):
                db_utils._initialize_tables(engine)  # creates the missing tables, then migrates to the head
            elif db_utils._get_schema_version(engine) != db_utils._get_latest_schema_revision():
                db_utils._upgrade_db(engine)
        finally:
            engine.dispose()


def setup(config: BenchmarkConfig) -> str:
    """Point MLflow at the configured store; return the experiment id (created if needed)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri(config)
    prepare_store(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # created by an older version: opens on the runs too
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    try:
        return client.create_experiment(config.mlflow.experiment, artifact_location=artifact_location(config), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except mlflow.exceptions.MlflowException:
        # another process created it in between
        experiment = client.get_experiment_by_name(config.mlflow.experiment)
        if experiment is None:
            raise
        return experiment.experiment_id


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's training runs.

    MLflow 3.17's UI has a GenAI | Model training switch that decides the landing page and
    defaults to GenAI (the Overview of traces and tokens) whatever the experiment's kind tag
    says; ``workflowType=machine_learning`` selects Model training, which opens on the runs.
    """
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def find_run(experiment_id: str, run_key: str) -> str | None:
    """The id of the run tagged with ``run_key`` (the newest when several), or None."""
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0].info.run_id if runs else None


def run_status(run_id: str) -> str:
    """``RUNNING``, ``FINISHED``, ``FAILED``, ... of the run."""
    return MlflowClient().get_run(run_id).info.status


def find_or_create_run(
    experiment_id: str, run_key: str, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
) -> tuple[str, bool]:
    """(run id, created) for ``run_key``: an existing run is reused and marked running again."""
    client = MlflowClient()
    existing = find_run(experiment_id, run_key)
    all_tags = {RUN_KEY_TAG: run_key, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    if existing is not None:
        client.update_run(existing, status="RUNNING")
        for key, value in all_tags.items():
            client.set_tag(existing, key, value)
        return existing, False
    db = sqlite_path(mlflow.get_tracking_uri())
    with store_lock(db) if db is not None else contextlib.nullcontext():  # one creator per run key at a time
        existing = find_run(experiment_id, run_key)
        if existing is None:
            run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    if existing is None:
        first = _first_run(client, experiment_id, run_key)
        if first == run.info.run_id:
            return run.info.run_id, True
        # a tracking server, and another process created the same run at the same moment: keep the first
        client.delete_run(run.info.run_id)
        existing = first
    client.update_run(existing, status="RUNNING")
    for key, value in all_tags.items():
        client.set_tag(existing, key, value)
    return existing, False


def _first_run(client: MlflowClient, experiment_id: str, run_key: str) -> str:
    """The earliest created run tagged ``run_key`` (ties by id): the one kept when two processes
    created it at once, each after finding none (best effort: the SQLite store is locked instead)."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=100)
    return min(runs, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id


def finish_run(run_id: str, failed: bool = False) -> None:
    """End the run now (FINISHED, or FAILED); a run continued later is ended again, moving its end time."""
    MlflowClient().set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    MlflowClient().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def config_params(config: BenchmarkConfig) -> dict[str, str]:
    """The flattened config as MLflow params (values redacted, truncated to MLflow's limit)."""
    return {k: redact(v)[:6000] for k, v in flatten(config).items()}


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in batches of 100; values already logged with the same value are skipped."""
    client = MlflowClient()
    existing = client.get_run(run_id).data.params
    items = [(k, str(v)) for k, v in params.items() if existing.get(k) != str(v)]
    conflicting = [k for k, v in items if k in existing]
    if conflicting:
        raise TrackingError(f"run {run_id} already has different values for params {conflicting[:5]}; this run key should have identified a different run")
    from mlflow.entities import Param

    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=[Param(k, v) for k, v in items[start : start + 100]])


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log ``metrics`` in batches of 1000, every name made valid for MLflow (:func:`metric_names`).

    MLflow refuses a whole ``log_batch`` when one name is invalid, so one odd class name (``..``)
    would otherwise drop every metric of the model.
    """
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client = MlflowClient()
    names = metric_names(metrics)
    batch = [Metric(names[k], float(v), now, step or 0) for k, v in metrics.items()]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start : start + 1000])


#: MLflow's limit on a metric name (``MAX_ENTITY_KEY_LENGTH``).
MAX_METRIC_NAME = 250
_METRIC_SEGMENT = re.compile(r"[^A-Za-z0-9_\-. :]")


def _metric_name(name: str) -> str:
    """``name`` as a valid MLflow metric name; unchanged when it already is one.

    MLflow allows alphanumerics, ``_ - . space : /`` (no ``@``) and refuses a name that is not
    its own normal path (``a/../b``, ``a//b``, ``./a``, a trailing ``/``, ``..``). Each ``/``
    segment is sanitised: other characters become ``_``; an empty, ``.`` or ``..`` segment
    becomes underscores. A changed or over-long name gets ``_<8 hex of its sha256>`` appended so
    two different names never collapse into one.
    """
    segments = name.split("/")
    clean = []
    for segment in segments:
        segment = _METRIC_SEGMENT.sub("_", segment)
        if segment.strip(" .") == "":
            segment = "_" * max(len(segment), 1)
        clean.append(segment)
    out = "/".join(clean)
    if out != name or len(out) > MAX_METRIC_NAME:
        tag = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        out = f"{out[: MAX_METRIC_NAME - 9]}_{tag}"
    return out


def metric_names(metrics: Mapping[str, Any]) -> dict[str, str]:
    """``{name: valid MLflow name}`` for every key of ``metrics`` (see :func:`_metric_name`)."""
    return {name: _metric_name(str(name)) for name in metrics}
