"""UCF101 split parsing and the video index, against the real split files shipped in the package (videolstm/data/datasets/metadata/)."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import fsspec.implementations.local as fsspec_local
import pyarrow.compute as pc
import pytest

from videolstm.data.datasets import INDEX_SCHEMA, load_index, read_index, write_index
from videolstm.data.datasets.shipped import METADATA
from videolstm.data.datasets.ucf101 import parse_class_index

DATA = METADATA  # the real files, shipped in the package (videolstm/data/datasets/metadata/README.md)
REAL_SPLITS = DATA / "ucf101" / "ucfTrainTestlist"
REAL_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
# The official UCF101.rar spells this class folder differently from classInd.txt and the file names.
FOLDER_QUIRK = {"HandStandPushups": "HandstandPushups"}


def all_split_paths() -> set[str]:
    names = set()
    for path in REAL_SPLITS.glob("*list0*.txt"):
        for line in path.read_text().splitlines():
            if line.strip():
                names.add(line.split()[0])
    return names


@pytest.fixture(scope="module")
def full_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in UCF101 root: zero-byte files for all 13,320 videos, real split files."""
    root = tmp_path_factory.mktemp("ucf101_full")
    shutil.copytree(REAL_SPLITS, root / "ucfTrainTestlist")
    for rel in all_split_paths():
        cls, name = rel.split("/")
        folder = root / FOLDER_QUIRK.get(cls, cls)
        folder.mkdir(exist_ok=True)
        (folder / name).touch()
    return root


def make_root(tmp_path: Path, train: str, test: str, classes: str = "1 Alpha\r\n2 Beta\r\n3 Gamma\r\n", files=()) -> Path:
    """A small UCF101-layout root with the given split-file texts (split 1) and video files."""
    root = tmp_path / "root"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text(classes, newline="")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(train, newline="")
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text(test, newline="")
    for rel, data in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_real_split_files_hold_13320_videos_of_101_classes() -> None:
    assert len(all_split_paths()) == 13320
    classes = parse_class_index((REAL_SPLITS / "classInd.txt").read_text(), "classInd.txt")
    assert len(classes) == 101 and classes[0] == "ApplyEyeMakeup" and classes[100] == "YoYo"
    assert classes[36] == "HandStandPushups"  # 1-based 37 in classInd.txt


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_splits_index_every_video_ok_with_official_counts(full_root: Path, split: int) -> None:
    table = load_index("ucf101", str(full_root), split)
    assert table.schema.remove_metadata() == INDEX_SCHEMA
    train, test = REAL_COUNTS[split]
    subsets = collections.Counter(table.column("subset").to_pylist())
    assert subsets == {"train": train, "test": test}
    assert table.column("status").unique().to_pylist() == ["ok"], table.filter(pc.equal(table["status"], "failed"))["reason"][:3]
    assert len(set(table.column("video_id").to_pylist())) == 13320
    labels = table.column("label").to_pylist()
    assert min(labels) == 0 and max(labels) == 100 and len(set(labels)) == 101
    assert table.schema.metadata[b"split"] == str(split).encode()


def test_labels_come_from_classind_zero_based(full_root: Path) -> None:
    rows = load_index("ucf101", str(full_root), 1).to_pylist()
    by_id = {r["video_id"]: r for r in rows}
    assert by_id["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"]["label"] == 0
    assert by_id["YoYo/v_YoYo_g25_c05"]["label"] == 100
    assert all(r["label"] == parse_class_index((REAL_SPLITS / "classInd.txt").read_text(), "c").index(r["class_name"]) for r in rows[:500])


def test_handstandpushups_folder_quirk_resolves_to_the_real_folder(full_root: Path) -> None:
    rows = load_index("ucf101", str(full_root), 1).to_pylist()
    hs = [r for r in rows if r["class_name"] == "HandStandPushups"]
    assert len(hs) > 100 and all(r["status"] == "ok" for r in hs)
    assert hs[0]["video_id"].startswith("HandStandPushups/v_HandStandPushups_g")
    assert all("/HandstandPushups/v_HandStandPushups_" in r["path"] for r in hs)
    assert all(Path(r["path"]).exists() for r in hs)


def test_index_without_file_checks_needs_no_videos() -> None:
    table = load_index("ucf101", str(DATA / "ucf101"), 2, check_files=False)
    assert table.num_rows == sum(REAL_COUNTS[2])
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert set(table.column("size_bytes").to_pylist()) == {-1}


def test_each_class_folder_is_listed_once(full_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: collections.Counter[str] = collections.Counter()
    real_ls = fsspec_local.LocalFileSystem.ls

    def counting_ls(self, path, detail=False, **kwargs):
        calls[str(path).rstrip("/")] += 1
        return real_ls(self, path, detail=detail, **kwargs)

    monkeypatch.setattr(fsspec_local.LocalFileSystem, "ls", counting_ls)
    load_index("ucf101", str(full_root), 1)
    assert calls[str(full_root)] == 1
    class_calls = {p: n for p, n in calls.items() if p != str(full_root)}
    assert len(class_calls) == 101 and set(class_calls.values()) == {1}


def test_existence_size_and_fingerprint_from_real_files(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        "Alpha/v_Alpha_g01_c01.avi 1\r\nBeta/v_Beta_g01_c01.avi 2\r\n",
        "Gamma/v_Gamma_g02_c01.avi\nGamma/v_Gamma_g02_c02.avi 3\n",
        files=[("Alpha/v_Alpha_g01_c01.avi", b"x" * 10), ("Beta/v_Beta_g01_c01.avi", b"y" * 20), ("Gamma/v_Gamma_g02_c01.avi", b"z")],
    )
    rows = load_index("ucf101", str(root), 1).to_pylist()
    assert [r["subset"] for r in rows] == ["train", "train", "test", "test"]
    assert [r["label"] for r in rows] == [0, 1, 2, 2]
    assert [r["size_bytes"] for r in rows] == [10, 20, 1, -1]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert rows[3]["reason"] == (
        f"testlist01.txt line 2: 'Gamma/v_Gamma_g02_c02.avi' is listed but missing on storage "
        f"(no file 'v_Gamma_g02_c02.avi' in {root}/Gamma); restore the video or remove the line"
    )
    assert rows[0]["path"] == str(root / "Alpha" / "v_Alpha_g01_c01.avi")
    before = rows[0]["fingerprint"]
    assert before.startswith("size=10;")
    (root / "Alpha" / "v_Alpha_g01_c01.avi").write_bytes(b"x" * 11)
    assert load_index("ucf101", str(root), 1).to_pylist()[0]["fingerprint"] != before


def test_bad_lines_become_failed_rows_naming_file_line_and_fix(tmp_path: Path) -> None:
    train = (
        "Alpha/v_Alpha_g01_c01.avi 1\r\n"
        "Foo/v_Foo_g01_c01.avi 4\r\n"  # unknown class
        "Beta/v_Beta_g01_c01.avi 3\r\n"  # label disagrees with classInd (Beta is 2)
        "this line is broken\r\n"  # malformed
        "\r\n"
        "Alpha/v_Alpha_g01_c01.avi 1\r\n"  # duplicate
        "Alpha/v_Alpha_g01_c02.avi one\r\n"  # label not an integer
    )
    test = "Alpha/v_Alpha_g01_c01.avi\n"  # also in the train list
    files = [("Alpha/v_Alpha_g01_c01.avi", b"a"), ("Beta/v_Beta_g01_c01.avi", b"b"), ("Alpha/v_Alpha_g01_c02.avi", b"c")]
    root = make_root(tmp_path, train, test, files=files)
    rows = load_index("ucf101", str(root), 1).to_pylist()
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed", "failed", "failed", "failed"]
    reasons = [r["reason"] for r in rows]
    assert reasons[1] == ("trainlist01.txt line 2: 'Foo/v_Foo_g01_c01.avi' names class 'Foo' which is not in classInd.txt; fix the line or add the class")
    assert reasons[2].startswith("trainlist01.txt line 3: label 3 disagrees with classInd.txt, where 'Beta' is 2")
    assert reasons[3].startswith("trainlist01.txt line 4: malformed line 'this line is broken'")
    assert reasons[4].startswith("trainlist01.txt line 6: 'Alpha/v_Alpha_g01_c01.avi' is listed twice (first on line 1)")
    assert reasons[5].startswith("trainlist01.txt line 7: label 'one' is not an integer")
    assert reasons[6].startswith("testlist01.txt line 1: 'Alpha/v_Alpha_g01_c01' is also in trainlist01.txt line 1")
    assert rows[1]["label"] == -1 and rows[2]["label"] == 1  # the label is classInd's, never the raw number


def test_broken_class_index_raises_naming_the_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, "", "", classes="1 Alpha\n2 Beta\n2 Gamma\n")
    with pytest.raises(ValueError, match=r"classInd.txt line 3: index 2 already used on line 2"):
        load_index("ucf101", str(root), 1)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Alpha\n3 Gamma\n")
    with pytest.raises(ValueError, match=r"indices must be 1..2 without gaps; missing \[2\]"):
        load_index("ucf101", str(root), 1)


def test_missing_split_file_and_root_raise_with_the_fix(tmp_path: Path) -> None:
    root = make_root(tmp_path, "", "")
    (root / "ucfTrainTestlist" / "testlist01.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"testlist01.txt does not exist; restore it from UCF101TrainTestSplits"):
        load_index("ucf101", str(root), 1)
    with pytest.raises(FileNotFoundError, match=r"classInd.txt does not exist"):
        load_index("ucf101", str(tmp_path / "nowhere"), 1)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        load_index("ucf101", str(root), 4)
    with pytest.raises(ValueError, match="unknown dataset kind 'kinetics'"):
        load_index("kinetics", str(root), 1)


def test_synthetic_kind_uses_the_ucf101_reader(tmp_path: Path) -> None:
    root = make_root(
        tmp_path, "Alpha/v_Alpha_g01_c01.avi 1\n", "Beta/v_Beta_g01_c01.avi 2\n", files=[("Alpha/v_Alpha_g01_c01.avi", b"a"), ("Beta/v_Beta_g01_c01.avi", b"b")]
    )
    table = load_index("synthetic", f"file://{root}", 1)
    assert table.column("status").to_pylist() == ["ok", "ok"]
    assert table.schema.metadata[b"kind"] == b"synthetic"


def test_index_manifest_round_trip(tmp_path: Path, full_root: Path) -> None:
    table = load_index("ucf101", str(full_root), 3)
    write_index(table, str(tmp_path / "index.parquet"))
    back = read_index(str(tmp_path / "index.parquet"))
    assert back.equals(table)
    assert back.schema.metadata[b"kind"] == b"ucf101"
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"bad.parquet is not a Parquet index manifest"):
        read_index(str(tmp_path / "bad.parquet"))
    with pytest.raises(ValueError, match=r"missing column 'status'"):
        write_index(table.drop(["status"]), str(tmp_path / "x.parquet"))
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.integration
def test_index_and_manifest_on_s3(moto_s3, tmp_path: Path) -> None:
    import s3fs

    storage, bucket = moto_s3
    root = make_root(
        tmp_path,
        "Alpha/v_Alpha_g01_c01.avi 1\r\n",
        "Beta/v_Beta_g01_c01.avi 2\nBeta/v_Beta_g01_c09.avi 2\n",
        files=[("Alpha/v_Alpha_g01_c01.avi", b"a" * 5), ("Beta/v_Beta_g01_c01.avi", b"b" * 7)],
    )
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": storage.endpoint_url})
    fs.put(str(root) + "/", f"{bucket}/ucf/", recursive=True)
    table = load_index("ucf101", f"s3://{bucket}/ucf", 1, storage)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert rows[0]["path"] == f"s3://{bucket}/ucf/Alpha/v_Alpha_g01_c01.avi"
    assert rows[1]["size_bytes"] == 7 and "etag=" in rows[1]["fingerprint"]
    assert "testlist01.txt line 2" in rows[2]["reason"]
    write_index(table, f"s3://{bucket}/manifests/index.parquet", storage)
    assert read_index(f"s3://{bucket}/manifests/index.parquet", storage).equals(table)


# --------------------------------------------------------------------------------------------
# names that are paths, files without bounds (issue 15)

from videolstm.config import InputLimits  # noqa: E402
from videolstm.store.safepath import UnsafeNameError  # noqa: E402


@pytest.mark.parametrize("line", ["Alpha/.. 1", "Alpha/..%2F..%2Fx.avi 1", "Alpha/a\\b.avi 1", "Alpha/a\x1bb.avi 1", "../v_x.avi 1"])
def test_split_lines_naming_paths_fail_their_row_and_never_give_a_path_outside_the_root(tmp_path: Path, line: str) -> None:
    root = make_root(tmp_path, f"Alpha/v_Alpha_g01_c01.avi 1\r\n{line}\r\n", "Beta/v_Beta_g01_c01.avi\r\n")
    table = load_index("ucf101", str(root), 1, check_files=False)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert "trainlist01.txt line 2" in rows[1]["reason"] and rows[1]["path"] == ""
    assert all(r["path"].startswith(f"{root}/") for r in rows if r["status"] == "ok")


def test_class_index_naming_a_path_raises_naming_the_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, "Alpha/v_Alpha_g01_c01.avi 1\r\n", "", classes="1 Alpha\r\n2 ..\r\n")
    with pytest.raises(UnsafeNameError, match=r"classInd.txt line 2: class name: '\.\.' is '\.\.'"):
        load_index("ucf101", str(root), 1, check_files=False)


def test_split_files_over_the_byte_or_line_limit_are_refused_naming_the_setting(tmp_path: Path) -> None:
    root = make_root(tmp_path, "Alpha/v_Alpha_g01_c01.avi 1\r\n" * 50, "")
    with pytest.raises(ValueError, match=r"trainlist01.txt is larger than 1000 bytes.*dataset.limits.split_file_bytes"):
        load_index("ucf101", str(root), 1, check_files=False, limits=InputLimits(split_file_bytes=1000))
    with pytest.raises(ValueError, match=r"trainlist01.txt has 50 lines, more than the 10 .*dataset.limits.split_file_lines"):
        load_index("ucf101", str(root), 1, check_files=False, limits=InputLimits(split_file_lines=10))
    assert load_index("ucf101", str(root), 1, check_files=False).num_rows == 50
