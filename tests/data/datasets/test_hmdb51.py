"""HMDB51 split parsing (official 70/30 split-file format) and the video index."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from videolstm.data.datasets import load_index

CLASSES = ["wave", "brush_hair", "cartwheel"]  # sorted: brush_hair=0, cartwheel=1, wave=2


def make_hmdb_root(tmp_path: Path, videos_per_class: int = 10) -> Path:
    """A small HMDB51 root: per class 10 videos; split N marks 7 train / 3 test, rotating."""
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in CLASSES:
        (root / cls).mkdir()
        names = [f"{cls}_video_{i}_u_nm_np1_fr_goo_{i}.avi" for i in range(videos_per_class)]
        for name in names:
            (root / cls / name).write_bytes(b"v" * 3)
        for split in (1, 2, 3):
            lines = []
            for i, name in enumerate(names):
                tag = 2 if (i + split) % videos_per_class < 3 else 1
                lines.append(f"{name} {tag} \r\n")  # official files end with a space
            lines.append(f"{cls}_unused.avi 0 \r\n")
            (splits / f"{cls}_test_split{split}.txt").write_text("".join(lines), newline="")
    return root


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_index_labels_from_sorted_classes_and_70_30_subsets(tmp_path: Path, split: int) -> None:
    root = make_hmdb_root(tmp_path)
    rows = load_index("hmdb51", str(root), split).to_pylist()
    assert collections.Counter(r["subset"] for r in rows) == {"train": 21, "test": 9}
    assert {r["class_name"]: r["label"] for r in rows} == {"brush_hair": 0, "cartwheel": 1, "wave": 2}
    assert all(r["status"] == "ok" for r in rows)
    assert rows[0]["video_id"] == "brush_hair/" + Path(rows[0]["path"]).stem
    assert all(r["size_bytes"] == 3 for r in rows)
    assert not any("unused" in r["video_id"] for r in rows)  # tag 0: not in this split
    subsets = [r["subset"] for r in rows]
    assert subsets == sorted(subsets, key=["train", "test"].index)


def test_hmdb51_bad_lines_and_missing_videos_fail_with_reasons(tmp_path: Path) -> None:
    root = make_hmdb_root(tmp_path)
    path = root / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    path.write_text(
        "cartwheel_video_0_u_nm_np1_fr_goo_0.avi 1 \n"
        "cartwheel_video_0_u_nm_np1_fr_goo_0.avi 1 \n"
        "cartwheel_video_1_u_nm_np1_fr_goo_1.avi 7 \n"
        "justonetoken\n"
        "cartwheel_missing.avi 2 \n"
    )
    rows = [r for r in load_index("hmdb51", str(root), 1).to_pylist() if r["class_name"] == "cartwheel"]
    by_reason = {r["reason"].split(":")[0]: r for r in rows if r["status"] == "failed"}
    assert set(by_reason) == {
        "cartwheel_test_split1.txt line 2",
        "cartwheel_test_split1.txt line 3",
        "cartwheel_test_split1.txt line 4",
        "cartwheel_test_split1.txt line 5",
    }
    assert "listed twice (first on line 1)" in by_reason["cartwheel_test_split1.txt line 2"]["reason"]
    assert "tag '7' is not 0 (unused), 1 (train) or 2 (test)" in by_reason["cartwheel_test_split1.txt line 3"]["reason"]
    assert "malformed line 'justonetoken'" in by_reason["cartwheel_test_split1.txt line 4"]["reason"]
    missing = by_reason["cartwheel_test_split1.txt line 5"]
    assert "'cartwheel_missing.avi' is listed but missing on storage" in missing["reason"]
    assert missing["subset"] == "test" and missing["size_bytes"] == -1


def test_hmdb51_class_missing_a_split_file_raises(tmp_path: Path) -> None:
    root = make_hmdb_root(tmp_path)
    (root / "testTrainMulti_7030_splits" / "wave_test_split2.txt").unlink()
    with pytest.raises(ValueError, match=r"lacks wave_test_split2.txt although other splits of 'wave' exist"):
        load_index("hmdb51", str(root), 1)


def test_hmdb51_missing_split_folder_says_what_to_extract(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"testTrainMulti_7030_splits does not exist; extract test_train_splits.rar"):
        load_index("hmdb51", str(tmp_path), 1)


def test_hmdb51_names_that_are_paths_are_refused(tmp_path: Path) -> None:
    root = make_hmdb_root(tmp_path, videos_per_class=4)
    split = root / "testTrainMulti_7030_splits" / "wave_test_split1.txt"
    split.write_text(split.read_text() + ".. 1\r\n..%2Fescape.avi 2\r\n")
    rows = load_index("hmdb51", str(root), 1, check_files=False).to_pylist()
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 2 and all("wave_test_split1.txt line" in r["reason"] and r["path"] == "" for r in bad)
    assert all(r["path"].startswith(f"{root}/") for r in rows if r["status"] == "ok")
    for n in (1, 2, 3):
        (root / "testTrainMulti_7030_splits" / f".._test_split{n}.txt").write_text("a.avi 1\r\n")
    with pytest.raises(ValueError, match=r"split file '\.\._test_split1\.txt' names a class: '\.\.' is '\.\.'"):
        load_index("hmdb51", str(root), 1, check_files=False)
