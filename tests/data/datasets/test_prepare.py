"""prepare_dataset(): archives served over HTTP → the official layout → load_index finds every video."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.data.datasets.rar_writer import rar4_bytes
from videolstm.data.datasets import DownloadError, ExtractError, UnverifiedDownloadWarning, load_index, prepare_dataset

UCF_CLASSES = ["Alpha", "HandStandPushups", "Omega"]


def ucf_archives() -> tuple[bytes, bytes]:
    """(UCF101.rar with the UCF-101/ top folder and the HandstandPushups quirk, the split zip)."""
    videos: dict[str, bytes | None] = {"UCF-101/": None}
    train, test = [], []
    for cls in UCF_CLASSES:
        folder = "HandstandPushups" if cls == "HandStandPushups" else cls
        for group in (1, 2):
            name = f"v_{cls}_g0{group}_c01.avi"
            videos[f"UCF-101/{folder}/{name}"] = f"{cls}{group}".encode() * 50
            (train if group == 1 else test).append(f"{cls}/{name}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ucfTrainTestlist/classInd.txt", "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)))
        for n in (1, 2, 3):
            zf.writestr(f"ucfTrainTestlist/trainlist0{n}.txt", "".join(f"{p} {UCF_CLASSES.index(p.split('/')[0]) + 1}\r\n" for p in train))
            zf.writestr(f"ucfTrainTestlist/testlist0{n}.txt", "".join(f"{p}\r\n" for p in test))
    return rar4_bytes(videos), buffer.getvalue()


def hmdb_archives() -> tuple[bytes, bytes]:
    """(hmdb51_org.rar holding one rar per class, test_train_splits.rar)."""
    inner, splits = {}, {"testTrainMulti_7030_splits/": None}
    for cls in ("wave", "brush_hair"):
        videos = {f"{cls}/{cls}_{i}.avi": bytes([i]) * 40 for i in range(3)}
        inner[f"{cls}.rar"] = rar4_bytes(videos)
        for n in (1, 2, 3):
            lines = "".join(f"{cls}_{i}.avi {1 if i < 2 else 2} \r\n" for i in range(3))
            splits[f"testTrainMulti_7030_splits/{cls}_test_split{n}.txt"] = lines.encode()
    return rar4_bytes(inner), rar4_bytes(splits)


@pytest.mark.integration
def test_prepare_ucf101_from_http_gives_a_root_where_every_video_is_found(http_server, tmp_path: Path) -> None:
    rar, zip_ = ucf_archives()
    http_server.state.files.update({"/d/UCF101.rar": rar, "/d/UCF101TrainTestSplits-RecognitionTask.zip": zip_})
    urls = [http_server.url("/d/UCF101.rar"), http_server.url("/d/UCF101TrainTestSplits-RecognitionTask.zip")]
    dest = tmp_path / "ucf101"
    kwargs = dict(staging_dir=tmp_path / "st", archives_uri=str(tmp_path / "archives"), verify=False)
    with pytest.warns(UnverifiedDownloadWarning) as caught:
        assert prepare_dataset("ucf101", str(dest), urls, **kwargs) == str(dest)
    assert sorted(str(w.message).split(":")[0] for w in caught) == ["UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"]
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == ["Alpha", "HandstandPushups", "Omega", "ucfTrainTestlist"]
    for split in (1, 2, 3):
        rows = load_index("ucf101", str(dest), split).to_pylist()
        assert [r["status"] for r in rows] == ["ok"] * 6, [r["reason"] for r in rows]
        assert [r["label"] for r in rows] == [0, 1, 2, 0, 1, 2]
    http_server.state.requests.clear()
    prepare_dataset("ucf101", str(dest), urls, **kwargs)  # second run: nothing fetched, nothing warned
    assert http_server.state.requests == []


@pytest.mark.integration
def test_prepare_hmdb51_extracts_the_nested_rars(http_server, tmp_path: Path) -> None:
    org, splits = hmdb_archives()
    http_server.state.files.update({"/hmdb51_org.rar": org, "/test_train_splits.rar": splits})
    dest = tmp_path / "hmdb51"
    with pytest.warns(UnverifiedDownloadWarning):
        prepare_dataset(
            "hmdb51",
            str(dest),
            [http_server.url("/hmdb51_org.rar"), http_server.url("/test_train_splits.rar")],
            staging_dir=tmp_path / "st",
            archives_uri=str(tmp_path / "archives"),
            verify=False,
        )
    assert not list(dest.rglob("*.rar"))
    rows = load_index("hmdb51", str(dest), 2).to_pylist()
    assert [(r["class_name"], r["label"], r["subset"], r["status"]) for r in rows] == [
        ("brush_hair", 0, "train", "ok"),
        ("brush_hair", 0, "train", "ok"),
        ("wave", 1, "train", "ok"),
        ("wave", 1, "train", "ok"),
        ("brush_hair", 0, "test", "ok"),
        ("wave", 1, "test", "ok"),
    ]


@pytest.mark.integration
def test_prepare_checks_official_archives_against_published_checksums(http_server, tmp_path: Path) -> None:
    _, zip_ = ucf_archives()
    http_server.state.files["/UCF101TrainTestSplits-RecognitionTask.zip"] = zip_
    with pytest.raises(DownloadError, match=r"expected 113943 bytes, got \d+; expected sha256 5c0d1a53b8ed364a"):
        prepare_dataset(
            "ucf101",
            str(tmp_path / "ucf101"),
            [http_server.url("/UCF101TrainTestSplits-RecognitionTask.zip")],
            staging_dir=tmp_path / "st",
            archives_uri=str(tmp_path / "archives"),
        )
    assert not (tmp_path / "archives" / "UCF101TrainTestSplits-RecognitionTask.zip").exists()


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::videolstm.data.datasets.download.UnverifiedDownloadWarning")
def test_prepare_refuses_archives_without_the_split_folder(http_server, tmp_path: Path) -> None:
    rar, _ = ucf_archives()
    http_server.state.files["/UCF101.rar"] = rar
    with pytest.raises(ExtractError, match=r"there is no ucfTrainTestlist/classInd.txt; the archives do not hold the official ucf101 layout"):
        prepare_dataset(
            "ucf101",
            str(tmp_path / "ucf101"),
            [http_server.url("/UCF101.rar")],
            staging_dir=tmp_path / "st",
            archives_uri=str(tmp_path / "archives"),
            verify=False,
        )
    with pytest.raises(ValueError, match=r"kind must be one of \['hmdb51', 'ucf101'\]"):
        prepare_dataset("synthetic", str(tmp_path / "x"))


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::videolstm.data.datasets.download.UnverifiedDownloadWarning")
def test_prepare_hmdb51_into_s3_and_index_it_there(http_server, moto_s3, tmp_path: Path) -> None:
    storage, bucket = moto_s3
    org, splits = hmdb_archives()
    http_server.state.files.update({"/hmdb51_org.rar": org, "/test_train_splits.rar": splits})
    root = f"s3://{bucket}/datasets/hmdb51"
    prepare_dataset(
        "hmdb51",
        root,
        [http_server.url("/hmdb51_org.rar"), http_server.url("/test_train_splits.rar")],
        storage=storage,
        staging_dir=tmp_path / "st",
        archives_uri=f"s3://{bucket}/archives",
        verify=False,
    )
    rows = load_index("hmdb51", root, 1, storage).to_pylist()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert rows[0]["path"] == f"{root}/brush_hair/brush_hair_0.avi" and rows[0]["size_bytes"] == 40
