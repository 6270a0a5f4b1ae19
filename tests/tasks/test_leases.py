"""The stages' side of the leases (tasks.leases) and the deployments' concurrency limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from tasks.leases import REUSED_FROM, WaitNotice, leased, run_holder
from videolstm.store import storage as st
from videolstm.store.lease import try_acquire

REPO = Path(__file__).resolve().parents[2]


def test_an_item_computed_here_carries_no_mark_and_one_from_another_run_names_it(tmp_path):
    out = str(tmp_path / "shards" / "v.parquet")
    mine = leased(out, None, "run-a", lambda: {"video_id": "v", "by": "a"}, lambda: {"video_id": "v", "by": "shard"}, lambda: Path(out).exists())
    assert mine == {"video_id": "v", "by": "a"}
    held = try_acquire(out, "run-other", ttl=30)

    def finish() -> None:
        time.sleep(0.3)
        Path(out).write_bytes(b"done")
        held.release()

    threading.Thread(target=finish).start()
    theirs = leased(out, None, "run-b", lambda: {"video_id": "v", "by": "b"}, lambda: {"video_id": "v", "by": "shard"}, lambda: Path(out).exists())
    assert theirs["by"] == "shard" and theirs[REUSED_FROM].startswith("run run-other on ")


def test_an_item_done_before_this_run_looked_is_reused_and_marked(tmp_path):
    out = tmp_path / "v.parquet"
    out.write_bytes(b"done")
    got = leased(str(out), None, "run-b", lambda: {"by": "b"}, lambda: {"by": "shard"}, out.exists)
    assert got["by"] == "shard" and REUSED_FROM in got


def test_the_wait_notice_is_said_once_per_stage_and_counts_every_reused_item(capsys):
    notice = WaitNotice("flow")
    rows = [
        {"video_id": "a", REUSED_FROM: "run r1 on host-x"},
        {"video_id": "b", REUSED_FROM: None},
        {"video_id": "c", REUSED_FROM: "run r1 on host-x"},
        {"video_id": "d"},
    ]
    flags = [notice.pop(row) for row in rows]
    assert flags == [True, False, True, False]
    assert all(REUSED_FROM not in row for row in rows)  # never reaches a manifest row
    assert notice.reused == 2
    said = capsys.readouterr()
    text = said.out + said.err
    assert text.count("another run writes this storage root") == 1 and "run r1 on host-x" in text


def test_the_run_holder_is_one_id_per_driver_process_outside_a_flow_run():
    assert run_holder() == run_holder() and run_holder()


def test_the_deployments_queue_a_second_trigger_instead_of_racing():
    """prefect.yaml: one run at a time per deployment, a second trigger enqueued (Prefect's own schema)."""
    from prefect.cli.deploy._models import ConcurrencyLimitSpec
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"embedded", "sweep", "nightly"}
    for name in deployments:
        raw = deployments[name]["concurrency_limit"]
        ConcurrencyLimitSpec.model_validate(raw)  # what `prefect deploy` reads
        limit = ConcurrencyLimitConfig.model_validate(raw)  # what the server stores
        assert limit.limit == 1 and limit.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE


def test_leases_live_next_to_the_output_and_are_gone_after_it(tmp_path):
    out = str(tmp_path / "shards" / "v.parquet")
    leased(out, None, "run-a", lambda: st.write_bytes(out, b"x") or {"ok": 1}, lambda: {"ok": 0}, lambda: Path(out).exists())
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["v.parquet"]
