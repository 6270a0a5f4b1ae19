"""extract(): zip (zipfile) and rar (libarchive), nested rars, traversal refusal, idempotency."""

from __future__ import annotations

import hashlib
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

dl = importlib.import_module("videolstm.data.datasets.extraction")  # the module (the package exports the function extract)


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
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and dl.MARKER_DIR not in p.parts}


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
    marker = dl.marker_uri(str(dest), "splits.zip")
    assert Path(marker).is_file() and Path(marker).parent == dest / dl.MARKER_DIR
    assert Path(marker).name == hashlib.sha256(b"splits.zip").hexdigest()[:32] + ".json"  # no outside name in the path


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
    with pytest.raises(ExtractError, match=r"x.7z: unsupported archive type; expected .zip, .rar or .tar"):
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
    repository = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=repository)
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


# --------------------------------------------------------------------------------------------
# limits, pinned formats, duplicates, markers (issue 15)

from tests.reliability import hostile  # noqa: E402
from videolstm.config import InputLimits  # noqa: E402


def _refused(tmp_path: Path, name: str, data: bytes, pattern: str, **kwargs) -> None:
    archive = tmp_path / name
    archive.write_bytes(data)
    dest = tmp_path / "ds"
    with pytest.raises(ExtractError, match=pattern):
        extract(str(archive), str(dest), **kwargs)
    assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*")), "written before the refusal"


def test_tar_archives_extract_with_the_filter_their_name_says(tmp_path: Path) -> None:
    import tarfile

    for name, mode in (("a.tar", "w"), ("a.tar.gz", "w:gz"), ("a.tgz", "w:gz"), ("a.tar.xz", "w:xz")):
        path = tmp_path / name
        with tarfile.open(path, mode) as tf:
            info = tarfile.TarInfo("d/f.txt")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
        assert extract(str(path), str(tmp_path / name.replace(".", "_"))) == [f"{tmp_path / name.replace('.', '_')}/d/f.txt"]


def test_format_is_pinned_to_the_extension(tmp_path: Path) -> None:
    _refused(tmp_path, "zip-as.rar", zip_bytes({"a.txt": b"a"}), r"zip-as.rar: cannot read the archive .*not a RAR archive")
    _refused(tmp_path, "rar-as.tar", rar4_bytes({"a.txt": b"a"}), r"rar-as.tar: cannot read the archive .*not a tar archive")
    _refused(tmp_path, "plain-as.tar.gz", hostile.tar_bytes([("a.txt", b"a")]), r"plain-as.tar.gz: .*not gzip-compressed")


def test_sparse_entries_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "holes.tar", hostile.sparse_tar(real_size=1 << 20), r"refusing entry 'holes.bin': it is a sparse file")


@pytest.mark.parametrize(
    "limits, pattern",
    [
        (InputLimits(archive_entry_bytes=99), r"'d/big.bin': it unpacks to more than 99 bytes \(dataset.limits.archive_entry_bytes\)"),
        (InputLimits(archive_total_bytes=150), r"more than 150 bytes in all \(dataset.limits.archive_total_bytes\)"),
        (InputLimits(archive_entries=2), r"more than 2 entries \(dataset.limits.archive_entries\)"),
    ],
)
def test_each_size_limit_refuses_before_writing_and_names_its_setting(tmp_path: Path, limits, pattern) -> None:
    data = zip_bytes({"d/small.bin": b"s" * 60, "d/big.bin": b"b" * 100, "d/third.bin": b"t"})
    _refused(tmp_path, "a.zip", data, pattern + r".*raise dataset.limits", limits=limits)


def test_ratio_limit_refuses_a_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "RATIO_FREE_BYTES", 0)  # the real threshold is 16 MiB; the rule is the same
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(200_000))
    _refused(tmp_path, "bomb.zip", buffer.getvalue(), r"'zeros.bin': .* a ratio above 100 \(dataset.limits.archive_ratio\)")
    extract(str(tmp_path / "bomb.zip"), str(tmp_path / "ok"), limits=InputLimits(archive_ratio=1000))  # raised: accepted


def test_header_that_understates_an_entry_is_caught_while_writing(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"a.txt": b"0123456789"}))
    # local and central headers both say 10 bytes; make both say 4 (zipfile then reads 4 and fails the CRC)
    data = bytes(data).replace(b"\x0a\x00\x00\x00\x0a\x00\x00\x00", b"\x0a\x00\x00\x00\x04\x00\x00\x00")
    archive = tmp_path / "liar.zip"
    archive.write_bytes(data)
    with pytest.raises(ExtractError, match=r"liar.zip: extracting entry 'a.txt' failed"):
        extract(str(archive), str(tmp_path / "ds"))


def test_nesting_deeper_than_the_limit_is_refused_and_depth_zero_keeps_no_nesting(tmp_path: Path) -> None:
    inner = rar4_bytes({"wave/c.avi": b"c"})
    archive = tmp_path / "hmdb51_org.rar"
    archive.write_bytes(rar4_bytes({"wave.rar": inner}))
    with pytest.raises(ExtractError, match=r"'wave.rar': it is an archive nested deeper than 0 level"):
        extract(str(archive), str(tmp_path / "d0"), recursive=True, limits=InputLimits(archive_depth=0))
    deeper = tmp_path / "deeper.rar"
    deeper.write_bytes(rar4_bytes({"outer.rar": rar4_bytes({"inner.rar": inner})}))
    with pytest.raises(ExtractError, match=r"deeper.rar!outer.rar: refusing entry 'inner.rar': it is an archive nested deeper than 1"):
        extract(str(deeper), str(tmp_path / "d1"), recursive=True)
    assert extract(str(deeper), str(tmp_path / "d2"), recursive=True, limits=InputLimits(archive_depth=2)) == [f"{tmp_path / 'd2'}/wave/c.avi"]


def test_duplicates_within_and_across_nested_archives_and_file_folder_clashes_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "dup.zip", hostile.duplicate_zip(), r"'a/v.avi': it names 'a/v.avi' twice")
    _refused(tmp_path, "clash.zip", zip_bytes({"a": b"file", "a/b": b"under a file"}), r"a file and a folder of the same name")
    outer = rar4_bytes({"one.rar": rar4_bytes({"w/c.avi": b"1"}), "two.rar": rar4_bytes({"w/c.avi": b"2"})})
    archive = tmp_path / "across.rar"
    archive.write_bytes(outer)
    with pytest.raises(ExtractError, match=r"across.rar!two.rar: refusing entry 'w/c.avi': it names 'w/c.avi' twice \(first in .*one.rar\)"):
        extract(str(archive), str(tmp_path / "nested"), recursive=True)


def test_marker_folder_entries_are_refused_and_a_refused_archive_writes_no_marker(tmp_path: Path) -> None:
    _refused(tmp_path, "forge.zip", zip_bytes({f"{dl.MARKER_DIR}/x.json": b"{}"}), r"\.videolstm-extracted/ is reserved")
    _refused(tmp_path, "forge2.zip", zip_bytes({f"top/{dl.MARKER_DIR.upper()}/x.json": b"{}"}), r"is reserved")
    _refused(tmp_path, "late.zip", zip_bytes({"fine.txt": b"ok", "../evil": b"x"}), r"refusing entry '../evil'")
    assert not (tmp_path / "ds" / dl.MARKER_DIR).exists()


@pytest.mark.parametrize("name", ["..%2F..%2Fx.zip", "a%2Fb.zip", "a%255Cb.zip", "..%5C..%5Cx.zip"])
def test_archive_names_that_decode_to_paths_are_refused(tmp_path: Path, name: str) -> None:
    _refused(tmp_path, name, zip_bytes({"a.txt": b"a"}), r"archive .*: file name: .* (path separator|is '\.\.')")


def test_unsafe_entry_names_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "ctl.zip", zip_bytes({"a\x1bb.txt": b"a"}), r"refusing entry 'a\\x1bb.txt': it is not a safe file name")
    _refused(tmp_path, "pct.zip", zip_bytes({"..%2Fevil": b"a"}), r"refusing entry '..%2Fevil': it is not a safe file name")
