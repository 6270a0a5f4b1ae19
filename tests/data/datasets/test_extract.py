"""extract(): zip (zipfile) and rar (libarchive), nested rars, traversal refusal, idempotency."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.data.datasets.rar_writer import rar4_bytes
from videolstm.data.datasets import ExtractError, extract

dl = importlib.import_module("videolstm.data.datasets.download")  # the module (the package exports the function)


def zip_bytes(entries: dict[str, bytes | None], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            if data is None:
                zf.writestr(name.rstrip("/") + "/", b"")
            else:
                zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and dl.MARKER_DIR not in p.parts
    }


SPLITS = {
    "ucfTrainTestlist/": None,
    "ucfTrainTestlist/classInd.txt": b"1 Alpha\r\n",
    "ucfTrainTestlist/trainlist01.txt": b"Alpha/v_Alpha_g01_c01.avi 1\r\n",
}


def test_zip_extracts_files_and_returns_their_uris(tmp_path: Path) -> None:
    archive = tmp_path / "splits.zip"
    archive.write_bytes(zip_bytes(SPLITS))
    dest = tmp_path / "ds"
    got = extract(str(archive), str(dest))
    assert got == [f"{dest}/ucfTrainTestlist/classInd.txt", f"{dest}/ucfTrainTestlist/trainlist01.txt"]
    assert files_under(dest) == {k: v for k, v in SPLITS.items() if v is not None}
    assert (dest / dl.MARKER_DIR / "splits.zip.json").is_file()


def test_second_extract_is_a_no_op_and_a_changed_archive_is_reextracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, dest = tmp_path / "splits.zip", tmp_path / "ds"
    archive.write_bytes(zip_bytes(SPLITS))
    first = extract(str(archive), str(dest))
    target = dest / "ucfTrainTestlist" / "classInd.txt"
    os.utime(target, ns=(1, 1))
    with monkeypatch.context() as m:
        m.setattr(dl, "_extract_local", lambda *a, **k: pytest.fail("the archive was opened again"))
        assert extract(str(archive), str(dest)) == first
    assert target.stat().st_mtime_ns == 1  # not rewritten
    archive.write_bytes(zip_bytes({**SPLITS, "ucfTrainTestlist/classInd.txt": b"1 Omega\r\n"}))  # same size, new bytes
    extract(str(archive), str(dest))
    assert target.read_bytes() == b"1 Omega\r\n"


def test_interrupted_extraction_resumes_and_skips_finished_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {f"d/f{i}.bin": bytes([i]) * 100 for i in range(5)}
    archive, dest = tmp_path / "a.rar", tmp_path / "ds"
    archive.write_bytes(rar4_bytes(entries))
    real = dl.atomic_local_file
    written: list[str] = []

    def failing(uri, storage=None, suffix=""):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(uri)
        return real(uri, storage, suffix)

    monkeypatch.setattr(dl, "atomic_local_file", failing)
    with pytest.raises(ExtractError, match=r"a.rar: extracting entry 'd/f2.bin' failed .*No space left"):
        extract(str(archive), str(dest))
    assert sorted(files_under(dest)) == ["d/f0.bin", "d/f1.bin"]
    written.clear()
    monkeypatch.setattr(dl, "atomic_local_file", lambda uri, storage=None, suffix="": (written.append(uri), real(uri, storage, suffix))[1])
    extract(str(archive), str(dest))
    assert [Path(u).name for u in written] == ["f2.bin", "f3.bin", "f4.bin"]
    assert files_under(dest) == entries


@pytest.mark.parametrize("bad", ["../evil", "/abs/evil", "ok/../../evil", "C:\\evil", "..\\evil"])
def test_zip_entries_escaping_the_destination_are_refused_before_writing(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"fine.txt": b"ok", bad: b"pwned"}))
    dest = tmp_path / "deep" / "ds"
    with pytest.raises(ExtractError, match=rf"evil.zip: refusing entry {bad!r}: it would be written outside the destination".replace("\\", "\\\\")):
        extract(str(archive), str(dest))
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert files_under(tmp_path / "deep") == {}  # nothing at all was written, not even fine.txt


def test_zip_symlink_entries_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    archive.write_bytes(zip_bytes({"fine.txt": b"ok"}, symlink="passwd"))
    with pytest.raises(ExtractError, match=r"refusing entry 'passwd': links and special files are not extracted"):
        extract(str(archive), str(tmp_path / "ds"))


def test_rar_written_by_the_test_writer_is_extracted_by_libarchive(tmp_path: Path) -> None:
    entries = {"UCF-101/": None, "UCF-101/Alpha/": None, "UCF-101/Alpha/v_Alpha_g01_c01.avi": os.urandom(70_000), "UCF-101/Beta/v_Beta_g01_c01.avi": b"b"}
    archive = tmp_path / "UCF101.rar"
    archive.write_bytes(rar4_bytes(entries))
    dest = tmp_path / "ds"
    got = extract(str(archive), str(dest), strip_components=1)
    assert got == [f"{dest}/Alpha/v_Alpha_g01_c01.avi", f"{dest}/Beta/v_Beta_g01_c01.avi"]
    assert files_under(dest) == {k.split("/", 1)[1]: v for k, v in entries.items() if v is not None}
    assert dl.common_root(str(archive)) == "UCF-101"


def test_rar_of_rars_is_extracted_recursively(tmp_path: Path) -> None:
    brush = {"brush_hair/a.avi": b"a" * 10, "brush_hair/b.avi": b"b" * 20}
    wave = {"wave/c.avi": b"c" * 30}
    outer = {"brush_hair.rar": rar4_bytes(brush), "wave.rar": rar4_bytes(wave), "readme.txt": b"hi"}
    archive = tmp_path / "hmdb51_org.rar"
    archive.write_bytes(rar4_bytes(outer))
    dest = tmp_path / "ds"
    got = extract(str(archive), str(dest), recursive=True)
    assert files_under(dest) == {**brush, **wave, "readme.txt": b"hi"}
    assert [Path(u).relative_to(dest).as_posix() for u in got] == ["brush_hair/a.avi", "brush_hair/b.avi", "readme.txt", "wave/c.avi"]
    flat = extract(str(archive), str(tmp_path / "flat"))  # without recursion the inner rars are files
    assert sorted(Path(u).name for u in flat) == ["brush_hair.rar", "readme.txt", "wave.rar"]


def test_rar_traversal_is_refused_also_inside_nested_rars(tmp_path: Path) -> None:
    archive = tmp_path / "evil.rar"
    archive.write_bytes(rar4_bytes({"fine.txt": b"ok", "../evil": b"pwned"}))
    with pytest.raises(ExtractError, match=r"evil.rar: refusing entry '../evil'"):
        extract(str(archive), str(tmp_path / "ds"))
    assert not (tmp_path / "evil").exists() and not (tmp_path / "ds" / "fine.txt").exists()
    nested = tmp_path / "outer.rar"
    nested.write_bytes(rar4_bytes({"inner.rar": rar4_bytes({"../../evil2": b"pwned"})}))
    with pytest.raises(ExtractError, match=r"outer.rar!inner.rar: refusing entry '../../evil2'"):
        extract(str(nested), str(tmp_path / "ds2"), recursive=True)
    assert not (tmp_path / "evil2").exists()


def test_truncated_or_unknown_archives_are_clear_errors(tmp_path: Path) -> None:
    data = rar4_bytes({"a.bin": os.urandom(50_000)})
    (tmp_path / "cut.rar").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExtractError, match=r"cut.rar: cannot read the archive .*Truncated.*delete it and download again"):
        extract(str(tmp_path / "cut.rar"), str(tmp_path / "ds"))
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ExtractError, match=r"junk.zip is not a valid zip"):
        extract(str(tmp_path / "junk.zip"), str(tmp_path / "ds"))
    (tmp_path / "x.7z").write_bytes(b"")
    with pytest.raises(ExtractError, match=r"x.7z: unsupported archive type; expected .zip or .rar"):
        extract(str(tmp_path / "x.7z"), str(tmp_path / "ds"))


def test_missing_libarchive_tells_the_user_what_to_install(tmp_path: Path) -> None:
    archive = tmp_path / "a.rar"
    archive.write_bytes(rar4_bytes({"a.txt": b"a"}))
    code = (
        "import sys\n"
        "from videolstm.data.datasets import extract, ExtractError\n"
        "try:\n"
        f"    extract({str(archive)!r}, {str(tmp_path / 'ds')!r})\n"
        "except ExtractError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    env = {**os.environ, "LIBARCHIVE": str(tmp_path / "no" / "libarchive.so.13")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd="/work/main")
    assert result.returncode == 3, result.stderr
    assert "apt-get install libarchive13" in result.stdout and "libarchive.so.13" in result.stdout


@pytest.mark.integration
def test_extract_into_s3(moto_s3, tmp_path: Path) -> None:
    import s3fs

    storage, bucket = moto_s3
    archive = tmp_path / "hmdb51_org.rar"
    archive.write_bytes(rar4_bytes({"wave.rar": rar4_bytes({"wave/c.avi": b"c" * 30})}))
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": storage.endpoint_url})
    fs.put_file(str(archive), f"{bucket}/archives/hmdb51_org.rar")
    got = extract(f"s3://{bucket}/archives/hmdb51_org.rar", f"s3://{bucket}/hmdb51", storage, recursive=True)
    assert got == [f"s3://{bucket}/hmdb51/wave/c.avi"]
    fs.invalidate_cache()
    assert fs.cat_file(f"{bucket}/hmdb51/wave/c.avi") == b"c" * 30
    assert extract(f"s3://{bucket}/archives/hmdb51_org.rar", f"s3://{bucket}/hmdb51", storage, recursive=True) == got
