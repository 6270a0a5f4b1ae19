"""The bound on tries of an item whose worker keeps dying (tasks.attempts)."""

from __future__ import annotations

import pytest

from tasks.attempts import MAX_ATTEMPTS, attempt, clear_attempts, new_attempts_uri


class WorkerDied(BaseException):
    """Stands for the worker process dying mid-item: nothing after the work runs in that process."""


def test_an_item_that_kills_its_worker_every_time_fails_alone_after_the_limit_and_others_run(tmp_path):
    uri = new_attempts_uri(str(tmp_path / "stage"))

    def dies() -> dict:
        raise WorkerDied

    for _ in range(MAX_ATTEMPTS):  # each retry of the task runs the item again
        with pytest.raises(WorkerDied):
            attempt(uri, "Cls/v_poison", dies, lambda reason: {"status": "failed", "reason": reason})
    row = attempt(uri, "Cls/v_poison", dies, lambda reason: {"status": "failed", "reason": reason})
    assert row["status"] == "failed" and f"died on each of {MAX_ATTEMPTS} tries" in row["reason"]
    assert attempt(uri, "Cls/v_fine", lambda: {"status": "ok"}, lambda reason: {}) == {"status": "ok"}


def test_a_worker_killed_once_succeeds_on_the_retry_and_a_new_execution_starts_from_zero(tmp_path):
    stage = str(tmp_path / "stage")
    uri = new_attempts_uri(stage)
    with pytest.raises(WorkerDied):
        attempt(uri, "v", lambda: (_ for _ in ()).throw(WorkerDied), lambda reason: {"status": "failed"})
    assert attempt(uri, "v", lambda: {"status": "ok"}, lambda reason: {"status": "failed"}) == {"status": "ok"}
    assert not list((tmp_path / "stage" / "attempts").rglob("v"))  # a finished item leaves no counter
    other = new_attempts_uri(stage)
    assert other != uri
    clear_attempts(uri)
    assert not (tmp_path / "stage" / "attempts" / uri.rsplit("/", 1)[-1]).exists()
