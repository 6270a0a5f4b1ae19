"""videolstm.store.manifest: manifest round trip, item keys and resume planning."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videolstm.store import shards
from videolstm.store import storage as st
from videolstm.store.manifest import ItemResult, StageDir, failure_summary, item_key, read_manifest, safe_name, write_manifest

COUNTS = ("num_frames", "num_flow")


def _write_item_shard(stage: StageDir, video_id: str, key: str, label: int, frames: int) -> ItemResult:
    """A real shard as a stage worker writes it, and the manifest row it would report."""
    uri = stage.shard_uri(video_id, key)
    shards.write_shard(
        uri,
        {
            "video_id": video_id,
            "label": label,
            "subset": "train",
            "num_frames": frames,
            "num_flow": frames - 1,
            "frames": np.zeros((frames, 4, 4, 3), np.uint8),
        },
        stage.storage,
    )
    return ItemResult(video_id, "ok", key, label=label, subset="train", shard=uri, seconds=0.5, counts={"num_frames": frames, "num_flow": frames - 1})


def test_item_key_is_stable_and_changes_with_every_part():
    key = item_key("frames_flow/v1", "/data/a.avi", "sha1", {"bound": 20})
    assert key == item_key("frames_flow/v1", "/data/a.avi", "sha1", {"bound": 20})
    assert len(key) == 16 and int(key, 16) >= 0
    assert key != item_key("frames_flow/v1", "/data/a.avi", "sha2", {"bound": 20})
    assert key != item_key("frames_flow/v1", "/data/a.avi", "sha1", {"bound": 15})
    assert key != item_key("frames_flow/v1", "/data/b.avi", "sha1", {"bound": 20})


def test_safe_name_turns_a_video_id_into_one_file_name():
    assert safe_name("Class/v_Class_g01_c01") == "Class__v_Class_g01_c01"
    assert safe_name("a b/c:d") == "a_b__c_d"
    assert "/" not in safe_name("x/y/z")


def test_stage_dir_makes_relative_paths_absolute_and_names_shards_by_id_and_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stage = StageDir("runs/frames_flow/abc")
    assert stage.uri == str(tmp_path.resolve() / "runs/frames_flow/abc")
    assert stage.manifest_uri == stage.uri + "/manifest.parquet"
    assert stage.shard_uri("C/v_1", "k123") == stage.uri + "/shards/C__v_1.k123.parquet"


def test_manifest_round_trip_keeps_every_field_sorted_by_video_id(tmp_path):
    results = [
        ItemResult("b", "ok", "k2", label=1, subset="test", shard="/s/b.parquet", seconds=1.5, counts={"num_frames": 9, "num_flow": 8}),
        ItemResult("a", "failed", "k1", label=0, subset="train", reason="a.avi: zero-byte file", seconds=0.1),
        ItemResult("c", "ok", "k3", label=2, subset="train", shard="/s/c.parquet", counts={"num_frames": 4, "num_flow": 3}),
    ]
    uri = str(tmp_path / "manifest.parquet")
    assert write_manifest(uri, results) == uri
    back = read_manifest(uri)
    assert [r.video_id for r in back] == ["a", "b", "c"]
    assert back == sorted(results, key=lambda r: r.video_id)  # failed rows get no counts back
    schema = pq.read_schema(uri)
    assert schema.field("label").type == pa.int32()
    assert schema.field("num_frames").type == pa.int64()
    assert schema.field("seconds").type == pa.float64()


def test_empty_manifest_round_trip(tmp_path):
    uri = str(tmp_path / "manifest.parquet")
    write_manifest(uri, [])
    assert read_manifest(uri) == []


def test_read_manifest_of_a_stage_that_never_finished_is_empty(tmp_path):
    assert StageDir(str(tmp_path / "stage")).read_manifest() == []


def test_plan_without_manifest_or_shards_computes_everything(tmp_path):
    todo, reuse = StageDir(str(tmp_path / "stage")).plan({"a": "k1", "b": "k2"}, COUNTS)
    assert todo == ["a", "b"] and reuse == {}


def test_plan_reuses_ok_rows_with_same_key_and_recomputes_changed_failed_and_lost_ones(tmp_path):
    stage = StageDir(str(tmp_path / "stage"))
    same = _write_item_shard(stage, "C/same", "k1", label=0, frames=5)
    changed = _write_item_shard(stage, "C/changed", "old", label=1, frames=5)
    lost = _write_item_shard(stage, "C/lost", "k3", label=1, frames=5)
    st.remove(lost.shard)  # the manifest says ok but the shard is gone
    failed = ItemResult("C/failed", "failed", "k4", label=2, subset="train", reason="C/failed.avi: truncated")
    stage.write_manifest([same, changed, lost, failed])

    keys = {"C/same": "k1", "C/changed": "new", "C/lost": "k3", "C/failed": "k4", "C/added": "k5"}
    todo, reuse = stage.plan(keys, COUNTS)
    assert sorted(todo) == ["C/added", "C/changed", "C/failed", "C/lost"]
    assert reuse == {"C/same": same}  # the manifest row itself, seconds and counts included


def test_plan_recovers_shards_of_a_run_killed_before_its_manifest_with_counts_read_back(tmp_path):
    stage = StageDir(str(tmp_path / "stage"))
    _write_item_shard(stage, "C/a", "k1", label=4, frames=7)
    _write_item_shard(stage, "C/b", "stale-key", label=1, frames=3)  # written for other parameters
    assert not st.exists(stage.manifest_uri)

    todo, reuse = stage.plan({"C/a": "k1", "C/b": "k2"}, COUNTS)
    assert todo == ["C/b"]
    recovered = reuse["C/a"]
    assert recovered.ok and recovered.key == "k1" and recovered.shard == stage.shard_uri("C/a", "k1")
    assert recovered.label == 4 and recovered.subset == "train"
    assert recovered.counts == {"num_frames": 7, "num_flow": 6}


def test_plan_recovers_a_shard_whose_manifest_row_is_failed_from_an_older_run(tmp_path):
    """A manifest row says failed, but a later (killed) run produced the shard: reuse it."""
    stage = StageDir(str(tmp_path / "stage"))
    stage.write_manifest([ItemResult("C/a", "failed", "k1", reason="C/a.avi: cannot be opened")])
    _write_item_shard(stage, "C/a", "k1", label=0, frames=4)
    todo, reuse = stage.plan({"C/a": "k1"}, COUNTS)
    assert todo == [] and reuse["C/a"].ok and reuse["C/a"].counts["num_frames"] == 4


def test_failure_summary_lists_each_failed_item_with_its_reason_and_the_manifest():
    results = [
        ItemResult("b", "failed", "k", reason="b.avi: zero-byte file; re-download it"),
        ItemResult("ok", "ok", "k"),
        ItemResult("a", "failed", "k", reason="a.avi: truncated"),
    ]
    text = failure_summary(results, "/runs/frames_flow/x/manifest.parquet", "frames+flow")
    lines = text.splitlines()
    assert lines[0] == "frames+flow: 2 item(s) failed (recorded in /runs/frames_flow/x/manifest.parquet):"
    assert lines[1:] == ["  - a: a.avi: truncated", "  - b: b.avi: zero-byte file; re-download it"]
    assert failure_summary(results[1:2], "/m", "x") == ""


@pytest.mark.integration
def test_plan_on_s3_reuses_manifest_rows_and_recovers_unlisted_shards(moto_s3):
    storage, bucket = moto_s3
    stage = StageDir(f"s3://{bucket}/frames_flow/abc", storage)
    assert stage.uri == f"s3://{bucket}/frames_flow/abc"
    done = _write_item_shard(stage, "C/done", "k1", label=0, frames=5)
    stage.write_manifest([done])
    _write_item_shard(stage, "C/killed", "k2", label=1, frames=6)  # after the manifest: unlisted
    todo, reuse = stage.plan({"C/done": "k1", "C/killed": "k2", "C/new": "k3"}, COUNTS)
    assert todo == ["C/new"]
    assert reuse["C/done"] == done
    assert reuse["C/killed"].counts == {"num_frames": 6, "num_flow": 5}
    assert read_manifest(stage.manifest_uri, storage) == [done]
