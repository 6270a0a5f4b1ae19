"""Stage manifests: a recovered shard names its video, a refused shard name names it (issue 26).

``StageDir.plan``'s promise: shards present without a manifest row are reused as the results of
*their* videos; ``shard_uri`` builds a shard's name only through the safe-path gate, whose
message names what was being written (the shard of which video).
"""

from __future__ import annotations

import pytest

from tests.store.test_manifest import COUNTS, _write_item_shard
from videolstm.store.manifest import ItemResult, StageDir
from videolstm.store.safepath import UnsafeNameError


def test_a_recovered_shard_is_the_result_of_its_own_video(tmp_path):
    stage = StageDir(str(tmp_path / "stage"))
    _write_item_shard(stage, "C/a", "k1", label=4, frames=7)
    _write_item_shard(stage, "C/b", "k2", label=2, frames=5)
    todo, reuse = stage.plan({"C/a": "k1", "C/b": "k2"}, COUNTS)
    assert todo == []
    assert {vid: r.video_id for vid, r in reuse.items()} == {"C/a": "C/a", "C/b": "C/b"}
    assert (reuse["C/a"].label, reuse["C/b"].label) == (4, 2)
    assert isinstance(reuse["C/a"], ItemResult)


def test_a_key_that_is_no_file_name_is_refused_naming_the_video(tmp_path):
    stage = StageDir(str(tmp_path / "stage"))
    with pytest.raises(UnsafeNameError, match=r"^shard of video 'C/a': "):
        stage.shard_uri("C/a", "k/../../x")
