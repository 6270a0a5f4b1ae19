"""The tracking store is created once: two first starts never race, a half-migrated store is repaired.

docs/stack-notes.md: two processes opening a fresh SQLite store at once both run alembic's migrations; one
or both fail and the database can stay half-migrated (``_alembic_tmp_<table>`` left behind), so
every later start fails. These tests start real processes on a real SQLite file.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tasks.tracking import TrackingError, prepare_store

#: One process opening the store the way the pipeline does (``prepare=True``) or the way a bare
#: MLflow client does; it starts at the given wall-clock time so that both processes race.
OPEN_STORE = textwrap.dedent("""
    import os, sys, time
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.tracking import MlflowClient
    from tasks.tracking import prepare_store
    uri, start, prepare = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    while time.time() < start:
        time.sleep(0.002)
    if prepare:
        prepare_store(uri)
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()
""")


def _race(db: Path, prepare: bool) -> list[subprocess.CompletedProcess]:
    start = time.time() + 6.0  # both interpreters have imported MLflow by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, f"sqlite:///{db}", str(start), "1" if prepare else "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}


def _revision(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("select version_num from alembic_version").fetchone()[0]


def _head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


@pytest.mark.integration
def test_two_bare_mlflow_clients_on_a_fresh_store_race(tmp_path):
    """The fault exists: without the lock, two first starts break (within three tries)."""
    failures = []
    for attempt in range(3):
        db = tmp_path / f"try{attempt}" / "mlflow.db"
        db.parent.mkdir()
        failures += [r.stderr.strip().splitlines()[-1] for r in _race(db, prepare=False) if r.returncode != 0]
        if failures:
            break
    assert failures, "two unlocked first starts did not collide in three tries"


@pytest.mark.integration
def test_two_first_starts_through_prepare_store_both_succeed(tmp_path):
    db = tmp_path / "mlflow.db"
    results = _race(db, prepare=True)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    assert _revision(db) == _head()


def _half_migrated(db: Path, orphan: bool = False) -> None:
    """A store stopped in the middle of a migration: at an older revision, with alembic's copy of
    ``experiments`` left behind (and, with ``orphan``, the original already dropped), holding one
    experiment."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.base_sql_model import Base  # noqa: F401  (registers the ORM tables)
    from mlflow.store.db.db_types import SQLITE  # noqa: F401
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "c8d9e0f1a2b3")  # the revision before one that rebuilds `experiments`
    engine.dispose()
    with sqlite3.connect(db) as con:
        con.execute("insert into experiments (experiment_id, name, artifact_location, lifecycle_stage) values (7, 'kept', '/a', 'active')")
        con.execute("create table _alembic_tmp_experiments as select * from experiments")
        if orphan:
            con.execute("drop table experiments")


@pytest.mark.integration
def test_a_half_migrated_store_fails_a_bare_client(tmp_path):
    """The fixture is the fault of the issue: MLflow alone cannot open it."""
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    _half_migrated(db)
    with pytest.raises(Exception, match="_alembic_tmp_experiments already exists"):
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()


@pytest.mark.integration
def test_a_half_migrated_store_is_repaired_and_keeps_its_rows(tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    _half_migrated(db)
    prepare_store(f"sqlite:///{db}")
    assert _revision(db) == _head()
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert client.get_experiment("7").name == "kept"
    client.create_experiment("new")


@pytest.mark.integration
def test_a_store_whose_table_only_survives_in_the_copy_is_refused_with_the_fix(tmp_path):
    db = tmp_path / "mlflow.db"
    _half_migrated(db, orphan=True)
    with pytest.raises(TrackingError) as info:
        prepare_store(f"sqlite:///{db}")
    message = str(info.value)
    assert "ALTER TABLE _alembic_tmp_experiments RENAME TO experiments" in message and str(db) in message
    assert "_alembic_tmp_experiments" in _tables(db)  # nothing was dropped
    with sqlite3.connect(db) as con:  # the command it names is the fix
        con.execute("ALTER TABLE _alembic_tmp_experiments RENAME TO experiments")
    prepare_store(f"sqlite:///{db}")
    assert _revision(db) == _head()


def test_a_store_behind_a_server_is_left_to_the_server():
    prepare_store("http://127.0.0.1:1")  # nothing to open, nothing raised


def test_runs_created_at_once_for_one_run_key_end_as_one_run(tmp_path):
    """Two runs of one benchmark share its parent run: created at once by both, one is kept."""
    import threading

    import mlflow
    from mlflow.tracking import MlflowClient

    from tasks.tracking import find_or_create_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient().create_experiment("x")
    barrier = threading.Barrier(4)
    got: list[str] = []

    def start() -> None:
        barrier.wait()
        got.append(find_or_create_run(experiment, "key-1", "bench")[0])

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    active = MlflowClient().search_runs([experiment])
    assert len(active) == 1 and set(got) == {active[0].info.run_id}
