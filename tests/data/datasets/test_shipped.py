"""The real UCF101 / UCF101-24 metadata ships in the package, is the file its README names, is
installed as package data, and the index reads it when a UCF101 root has no split folder."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

from videolstm.data.datasets import load_index, load_ucf101_24
from videolstm.data.datasets.shipped import METADATA, UCF101_24_ANNOTATIONS, UCF101_24_TESTLIST, UCF101_SPLITS

REPO = Path(__file__).resolve().parents[3]
PACKAGE_DIR = REPO / "videolstm" / "data" / "datasets"


def readme_digests() -> dict[str, str]:
    text = (METADATA / "README.md").read_text()
    return dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", text, re.M))


def test_every_shipped_file_has_the_sha256_its_readme_records():
    digests = readme_digests()
    shipped = sorted(str(p.relative_to(METADATA)) for p in METADATA.rglob("*") if p.is_file() and p.name != "README.md")
    assert sorted(digests) == shipped, "the README's table and the shipped files differ"
    for name, digest in digests.items():
        assert hashlib.sha256((METADATA / name).read_bytes()).hexdigest() == digest, name


def test_shipped_split_files_hold_the_official_counts():
    def videos(name: str) -> int:
        return sum(1 for line in (UCF101_SPLITS / name).read_text().splitlines() if line.strip())

    assert videos("classInd.txt") == 101
    assert [(videos(f"trainlist0{s}.txt"), videos(f"testlist0{s}.txt")) for s in (1, 2, 3)] == [(9537, 3783), (9586, 3734), (9624, 3696)]
    assert all(videos(f"trainlist0{s}.txt") + videos(f"testlist0{s}.txt") == 13320 for s in (1, 2, 3))


def test_shipped_ucf101_24_annotations_cover_its_test_list():
    tubes = load_ucf101_24(str(UCF101_24_ANNOTATIONS))
    assert len(tubes) == 3194
    test_ids = [line.strip() for line in UCF101_24_TESTLIST.read_text().splitlines() if line.strip()]
    assert len(test_ids) == 910 and set(test_ids) <= set(tubes)


def test_package_data_declared_in_pyproject_covers_every_shipped_file():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["videolstm.data.datasets"]
    files = [str(p.relative_to(PACKAGE_DIR)) for p in METADATA.rglob("*") if p.is_file()]
    uncovered = [f for f in files if not any(fnmatch.fnmatchcase(f, pattern) and f.count("/") == pattern.count("/") for pattern in patterns)]
    assert files and not uncovered, f"not installed with the package: {uncovered}"


def test_a_ucf101_root_without_split_folder_is_indexed_with_the_shipped_splits(tmp_path: Path):
    root = tmp_path / "ucf101"
    (root / "ApplyEyeMakeup").mkdir(parents=True)
    table = load_index("ucf101", str(root), 1, check_files=False)
    assert table.num_rows == 9537 + 3783
    subsets = table.column("subset").to_pylist()
    assert subsets.count("train") == 9537 and subsets.count("test") == 3783
    assert table.schema.metadata[b"split_dir"] == str(UCF101_SPLITS).encode()
    assert table.schema.metadata[b"root"] == str(root).encode()


def test_a_root_with_its_own_split_folder_is_read_with_it_not_the_shipped_one(tmp_path: Path):
    root = tmp_path / "ucf101"
    splits = root / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text("1 Alpha\n2 Beta\n")
    (splits / "trainlist01.txt").write_text("Alpha/v_Alpha_g01_c01.avi 1\n")
    (splits / "testlist01.txt").write_text("Beta/v_Beta_g02_c01.avi\n")
    table = load_index("ucf101", str(root), 1, check_files=False)
    assert table.column("video_id").to_pylist() == ["Alpha/v_Alpha_g01_c01", "Beta/v_Beta_g02_c01"]
    assert table.schema.metadata[b"split_dir"] == str(splits).encode()


def test_a_synthetic_root_without_split_folder_is_an_error_not_ucf101(tmp_path: Path):
    (tmp_path / "Alpha").mkdir()
    with pytest.raises(FileNotFoundError, match="classInd.txt does not exist"):
        load_index("synthetic", str(tmp_path), 1, check_files=False)


def test_paper_scale_counts_split_1_from_the_shipped_files(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("benchmarks.paper_scale", None)
    from benchmarks.paper_scale import split_counts

    assert split_counts() == (9537, 3783)


def test_a_root_that_does_not_exist_is_an_error_not_the_shipped_splits(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_index("ucf101", str(tmp_path / "nowhere"), 1, check_files=False)
