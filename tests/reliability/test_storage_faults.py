"""Storage faults: the S3 store (a moto server) restarted or unreachable during a write, and a
writer killed midway. Writes are retried, then fail clearly; a partial object never reads as
complete (local: temp file + rename; S3: one PUT or a multipart upload completed at the end)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.reliability import ledger
from videolstm.config import StorageConfig
from videolstm.store import storage as st

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
BIG = 110 * 2**20  # above s3fs's 2 x 50 MiB threshold: uploaded as a multipart upload


def _s3(store) -> StorageConfig:
    return StorageConfig(root="s3://reliability", endpoint_url=store.url)


def _uploads_in_progress(store) -> list:
    import boto3

    client = boto3.client("s3", endpoint_url=store.url, region_name="us-east-1")
    return client.list_multipart_uploads(Bucket="reliability").get("Uploads", [])


def _wait_for_upload(store, writer_alive, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _uploads_in_progress(store):
        assert writer_alive(), "the write finished before a multipart upload was seen"
        assert time.monotonic() < deadline, "no multipart upload started"
        time.sleep(0.02)


def test_write_survives_a_store_restart_in_the_middle_of_an_upload(moto_store):
    storage, uri = _s3(moto_store), "s3://reliability/stage/shards/big.parquet"
    data = os.urandom(BIG)
    outcome: dict = {}

    def write() -> None:
        try:
            st.write_bytes(uri, data, storage)
            outcome["ok"] = True
        except Exception as exc:  # reported below
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    _wait_for_upload(moto_store, writer.is_alive)
    moto_store.restart()  # the store vanishes mid-upload (SIGKILL) and comes back on the same port
    writer.join(timeout=120)
    assert outcome.get("ok"), outcome.get("error")
    assert hashlib.sha256(st.read_bytes(uri, storage)).digest() == hashlib.sha256(data).digest()
    ledger.record("S3 store restarted during a multipart upload", faults=1, runs=1, lost=0 if st.exists(uri, storage) else 1)


def test_unreachable_store_fails_after_retries_with_a_message_naming_the_uri(moto_store):
    from videolstm.store.manifest import ItemResult, write_manifest

    storage, uri = _s3(moto_store), "s3://reliability/stage/manifest.parquet"
    moto_store.stop()
    started = time.monotonic()
    with pytest.raises(st.StorageError) as failed:
        write_manifest(uri, [ItemResult(video_id="a/v_a", status="ok", key="k")], storage)
    seconds = time.monotonic() - started
    assert uri in str(failed.value) and "after 4 attempts" in str(failed.value)
    assert 3 < seconds < 90  # it retried with backoff, and gave up in bounded time
    moto_store.start()  # back again: nothing was published
    assert not st.exists(uri, storage)
    ledger.record("S3 store unreachable during a write", faults=1)


def test_upload_killed_midway_leaves_no_object_that_reads_as_complete(moto_store):
    from videolstm.store.manifest import StageDir

    stage = StageDir("s3://reliability/frames_flow/x", _s3(moto_store))
    uri = stage.shard_uri("Class/v_Class_g01_c01", "k" * 16)
    script = textwrap.dedent(f"""
        import os
        from videolstm.store import storage as st
        from videolstm.config import StorageConfig
        st.write_bytes({uri!r}, os.urandom({BIG}), StorageConfig(root="s3://reliability", endpoint_url={moto_store.url!r}))
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE)
    try:
        _wait_for_upload(moto_store, lambda: writer.poll() is None)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert _uploads_in_progress(moto_store)  # the upload was cut midway ...
    assert not st.exists(uri, stage.storage)  # ... and nothing is visible at the object's URI
    todo, reused = stage.plan({"Class/v_Class_g01_c01": "k" * 16})
    assert todo == ["Class/v_Class_g01_c01"] and not reused  # a re-run computes it again
    ledger.record("S3 uploader SIGKILLed mid multipart upload", faults=1)


def test_local_write_killed_midway_leaves_the_previous_file_whole(tmp_path):
    target = tmp_path / "stage" / "manifest.parquet"
    st.write_bytes(str(target), b"version 1 " * 1000)
    script = textwrap.dedent(f"""
        import sys, time
        from videolstm.store import storage as st
        with st.atomic_local_file({str(target)!r}) as tmp:
            with open(tmp, "wb") as fh:
                for _ in range(1000):
                    fh.write(b"version 2 " * 1000); fh.flush()
                    print("wrote", flush=True)
                    time.sleep(0.05)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # the new version is being written
            assert writer.stdout.readline().startswith("wrote")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"version 1 " * 1000
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".parquet")] == ["manifest.parquet"]
    ledger.record("local writer SIGKILLed mid write", faults=1)
