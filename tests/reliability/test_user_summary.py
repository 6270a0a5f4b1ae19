"""What the user sees: a CLI run with failed items ends with a summary listing each failed item
with its reason and the manifests that hold them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reliability.inputs import MISSING, TRUNCATED, UNKNOWN_CLASS, ZERO_BYTE
from videolstm.store.manifest import read_manifest

pytestmark = pytest.mark.reliability


def test_cli_run_with_failed_items_ends_with_each_item_its_reason_and_its_manifest(bad_benchmark):
    b = bad_benchmark
    assert b.rerun_returncode == 0, b.rerun_output[-4000:]
    summary = b.rerun_output[b.rerun_output.rindex("VideoLSTM benchmark finished.") :]
    head = re.search(r"(\d+) item\(s\) failed and were left out", summary)
    assert head, summary
    listed = dict(re.findall(r"^  - \[\w+\] (\S+): (.+)$", summary, flags=re.M))
    assert set(listed) == {TRUNCATED, ZERO_BYTE, MISSING, UNKNOWN_CLASS, "MoveLeft", "annotations"}
    assert int(head[1]) == len(listed)
    manifests = re.search(r"^  manifests: (.+)$", summary, flags=re.M)
    assert manifests, summary
    recorded = {}
    for uri in manifests[1].split(", "):
        assert Path(uri).is_file(), uri
        if uri.endswith("index.parquet"):
            from videolstm.data.datasets import read_index

            table = read_index(uri).to_pylist()
            recorded.update({r["video_id"]: r["reason"] for r in table if r["status"] != "ok"})
        else:
            recorded.update({r.video_id: r.reason for r in read_manifest(uri) if not r.ok})
    for item, reason in listed.items():  # each line is what its manifest records
        assert recorded.get(item) == reason, (item, reason, recorded.get(item))
