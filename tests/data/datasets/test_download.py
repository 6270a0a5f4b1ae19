"""download(): resumable over HTTP Range (real local server), fsspec sources, verification, S3 (moto)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import RangeServer
from videolstm.data.datasets import OFFICIAL_ARCHIVES, DownloadError, UnverifiedDownloadWarning, download, prepare_dataset

# The package exports the function ``download``, which shadows the submodule attribute of the
# same name: reach the module through importlib.
dl = importlib.import_module("videolstm.data.datasets.download")

pytestmark = pytest.mark.filterwarnings("error::videolstm.data.datasets.download.UnverifiedDownloadWarning")

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def parts(staging: Path) -> list[Path]:
    return sorted(staging.glob("*.part")) if staging.exists() else []


@pytest.mark.integration
def test_http_download_verifies_and_publishes(http_server, tmp_path: Path) -> None:
    http_server.state.files["/a/archive.zip"] = PAYLOAD
    dest = tmp_path / "out" / "archive.zip"
    got = download(http_server.url("/a/archive.zip"), str(dest), sha256=DIGEST, size=len(PAYLOAD), staging_dir=tmp_path / "st", chunk_size=65536)
    assert got == str(dest) and dest.read_bytes() == PAYLOAD
    record = json.loads((tmp_path / "out" / "archive.zip.verified.json").read_text())
    assert record["sha256"] == DIGEST and record["size"] == len(PAYLOAD) and record["source"] == "published"
    assert parts(tmp_path / "st") == []


@pytest.mark.integration
def test_cut_transfer_raises_then_resumes_from_the_partial_with_a_range_request(http_server, tmp_path: Path) -> None:
    http_server.state.files["/UCF101.rar"] = PAYLOAD
    http_server.state.cut_after["/UCF101.rar"] = 100_000
    url, dest, staging = http_server.url("/UCF101.rar"), tmp_path / "UCF101.rar", tmp_path / "st"
    expected = r"failed after 1 attempt\(s\).*closed the connection after 100000 of 300000 bytes.*kept; call download again to resume"
    with pytest.raises(DownloadError, match=expected):
        download(url, str(dest), sha256=DIGEST, staging_dir=staging, attempts=1, chunk_size=8192)
    assert not dest.exists()
    (partial,) = parts(staging)
    assert partial.stat().st_size == 100_000
    download(url, str(dest), sha256=DIGEST, staging_dir=staging, attempts=1, chunk_size=8192)
    first, second = http_server.state.requests
    assert first.range is None
    assert second.range == "bytes=100000-" and second.if_range is not None
    assert dest.read_bytes() == PAYLOAD and parts(staging) == []


@pytest.mark.integration
def test_cut_transfer_is_resumed_within_one_call(http_server, tmp_path: Path) -> None:
    http_server.state.files["/f.bin"] = PAYLOAD
    http_server.state.cut_after["/f.bin"] = 12_345
    download(http_server.url("/f.bin"), str(tmp_path / "f.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=2)
    assert [r.range for r in http_server.state.requests] == [None, "bytes=12345-"]
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


@pytest.mark.integration
def test_second_call_with_verified_destination_does_nothing(http_server, tmp_path: Path) -> None:
    http_server.state.files["/f.bin"] = PAYLOAD
    url, dest = http_server.url("/f.bin"), tmp_path / "f.bin"
    download(url, str(dest), sha256=DIGEST, staging_dir=tmp_path / "st")
    stamp = dest.stat().st_mtime_ns
    http_server.state.requests.clear()
    download(url, str(dest), sha256=DIGEST, staging_dir=tmp_path / "st")
    assert http_server.state.requests == [] and dest.stat().st_mtime_ns == stamp


@pytest.mark.integration
def test_destination_without_record_is_rehashed_not_refetched(http_server, tmp_path: Path) -> None:
    http_server.state.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD)  # e.g. copied in by hand
    download(http_server.url("/f.bin"), str(dest), sha256=DIGEST, staging_dir=tmp_path / "st")
    assert http_server.state.requests == []
    assert json.loads((tmp_path / "f.bin.verified.json").read_text())["source"] == "re-hashed"
    dest.write_bytes(PAYLOAD[:-1] + b"!")  # corrupted in place, record still says "verified": rehash catches it
    download(http_server.url("/f.bin"), str(dest), sha256=DIGEST, staging_dir=tmp_path / "st", rehash=True)
    assert dest.read_bytes() == PAYLOAD and len(http_server.state.requests) == 1


@pytest.mark.integration
def test_sha256_mismatch_is_refused_and_nothing_is_published(http_server, tmp_path: Path) -> None:
    corrupted = PAYLOAD[:1000] + b"\x00" + PAYLOAD[1001:]
    http_server.state.files["/UCF101.rar"] = corrupted
    url, dest = http_server.url("/UCF101.rar"), tmp_path / "UCF101.rar"
    message = (
        rf"{re.escape(url)} did not verify: expected sha256 {DIGEST}, got {hashlib.sha256(corrupted).hexdigest()}\. "
        r"The partial was discarded; nothing was published"
    )
    with pytest.raises(DownloadError, match=message):
        download(url, str(dest), sha256=DIGEST, staging_dir=tmp_path / "st")
    assert not dest.exists() and not (tmp_path / "UCF101.rar.verified.json").exists()
    assert parts(tmp_path / "st") == []


@pytest.mark.integration
def test_size_mismatch_is_refused(http_server, tmp_path: Path) -> None:
    http_server.state.files["/f.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match=r"expected 300001 bytes, got 300000"):
        download(http_server.url("/f.bin"), str(tmp_path / "f.bin"), size=300_001, staging_dir=tmp_path / "st")
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.integration
@pytest.mark.filterwarnings("default::videolstm.data.datasets.download.UnverifiedDownloadWarning")
def test_trust_on_first_use_records_the_digest_and_enforces_it(http_server, tmp_path: Path) -> None:
    http_server.state.files["/UCF101TrainTestSplits-DetectionTask.zip"] = PAYLOAD
    url, dest = http_server.url("/UCF101TrainTestSplits-DetectionTask.zip"), tmp_path / "det.zip"
    with pytest.warns(UnverifiedDownloadWarning, match=r"UCF101TrainTestSplits-DetectionTask.zip: no published sha256"):
        download(url, str(dest), staging_dir=tmp_path / "st")
    record = json.loads((tmp_path / "det.zip.verified.json").read_text())
    assert record["sha256"] == DIGEST and record["source"] == "trust-on-first-use"
    dest.unlink()
    http_server.state.files["/UCF101TrainTestSplits-DetectionTask.zip"] = PAYLOAD[::-1]  # the file changed upstream
    with pytest.raises(DownloadError, match=rf"expected sha256 {DIGEST}.*recorded by an earlier download in .*det.zip.verified.json"):
        download(url, str(dest), staging_dir=tmp_path / "st")
    assert not dest.exists()


@pytest.mark.integration
def test_changed_remote_file_restarts_from_zero_via_if_range(http_server, tmp_path: Path) -> None:
    http_server.state.files["/f.bin"] = PAYLOAD
    http_server.state.cut_after["/f.bin"] = 50_000
    url = http_server.url("/f.bin")
    with pytest.raises(DownloadError):
        download(url, str(tmp_path / "f.bin"), staging_dir=tmp_path / "st", attempts=1, sha256=DIGEST)
    new = os.urandom(200_000)
    http_server.state.files["/f.bin"] = new
    download(url, str(tmp_path / "f.bin"), staging_dir=tmp_path / "st", attempts=1, sha256=hashlib.sha256(new).hexdigest())
    assert http_server.state.requests[-1].range == "bytes=50000-"  # asked to resume, got the whole new file
    assert (tmp_path / "f.bin").read_bytes() == new


@pytest.mark.integration
def test_untrusted_tls_certificate_fails_at_once_with_advice(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = RangeServer(tls=(str(cert), str(key)))
    try:
        server.state.files["/f.bin"] = PAYLOAD
        with pytest.raises(DownloadError, match=r"TLS certificate did not verify .*SSL_CERT_FILE"):
            download(server.url("/f.bin"), str(tmp_path / "f.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=3)
    finally:
        server.stop()
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.integration
def test_http_404_fails_at_once(http_server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404 .*check the URL"):
        download(http_server.url("/missing.zip"), str(tmp_path / "x.zip"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=3)
    assert len(http_server.state.requests) == 1


def test_file_source_resumes_by_seeking_past_the_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    real_copy = dl._copy_stream
    offsets: list[int] = []

    def cut_copy(read, part, offset, hasher, chunk_size):
        offsets.append(offset)
        remaining = [70_000]

        def limited(n: int) -> bytes:
            block = read(min(n, remaining[0]))
            remaining[0] -= len(block)
            return block

        real_copy(limited, part, offset, hasher, chunk_size)
        raise ConnectionResetError("simulated cut")

    monkeypatch.setattr(dl, "_copy_stream", cut_copy)
    with pytest.raises(DownloadError, match=r"simulated cut.*\(70000 bytes\) is kept"):
        download(f"file://{src}", str(tmp_path / "dst.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=1, chunk_size=4096)

    def spy_copy(read, part, offset, hasher, chunk_size):
        offsets.append(offset)
        return real_copy(read, part, offset, hasher, chunk_size)

    monkeypatch.setattr(dl, "_copy_stream", spy_copy)
    download(f"file://{src}", str(tmp_path / "dst.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=1)
    assert offsets == [0, 70_000] and (tmp_path / "dst.bin").read_bytes() == PAYLOAD


def test_partial_with_wrong_bytes_fails_verification_proving_it_was_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    real_copy = dl._copy_stream

    def cut_copy(read, part, offset, hasher, chunk_size):
        real_copy(lambda n: read(min(n, 1000)) if part.stat().st_size < 1000 else b"", part, offset, hasher, chunk_size)
        raise ConnectionResetError("cut")

    monkeypatch.setattr(dl, "_copy_stream", cut_copy)
    with pytest.raises(DownloadError):
        download(str(src), str(tmp_path / "dst.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=1)
    monkeypatch.setattr(dl, "_copy_stream", real_copy)
    (partial,) = parts(tmp_path / "st")
    partial.write_bytes(b"\xff" * partial.stat().st_size)  # same size, wrong bytes
    with pytest.raises(DownloadError, match=r"did not verify: expected sha256"):
        download(str(src), str(tmp_path / "dst.bin"), sha256=DIGEST, staging_dir=tmp_path / "st", attempts=1)
    assert parts(tmp_path / "st") == []  # discarded: the next call starts clean and succeeds
    download(str(src), str(tmp_path / "dst.bin"), sha256=DIGEST, staging_dir=tmp_path / "st")
    assert (tmp_path / "dst.bin").read_bytes() == PAYLOAD


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"nope.bin does not exist; check the URL"):
        download(str(tmp_path / "nope.bin"), str(tmp_path / "x.bin"), sha256=DIGEST, staging_dir=tmp_path / "st")


def test_default_staging_dir_is_under_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOLSTM_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    download(str(src), str(tmp_path / "x.bin"), sha256=DIGEST)
    assert (tmp_path / "cache" / "downloads").is_dir()
    assert dl.cache_dir() == tmp_path / "cache"


def test_official_archive_table_holds_published_values_or_none() -> None:
    assert set(OFFICIAL_ARCHIVES) == {
        "UCF101.rar",
        "UCF101TrainTestSplits-RecognitionTask.zip",
        "UCF101TrainTestSplits-DetectionTask.zip",
        "hmdb51_org.rar",
        "test_train_splits.rar",
    }
    for name, spec in OFFICIAL_ARCHIVES.items():
        assert spec.url.endswith("/" + name)
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.source
    assert OFFICIAL_ARCHIVES["UCF101TrainTestSplits-RecognitionTask.zip"].size == 113943
    assert OFFICIAL_ARCHIVES["UCF101TrainTestSplits-DetectionTask.zip"].sha256 is None


@pytest.mark.integration
def test_download_from_s3_and_to_s3(moto_s3, tmp_path: Path) -> None:
    import s3fs

    storage, bucket = moto_s3
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": storage.endpoint_url})
    fs.pipe(f"{bucket}/mirror/hmdb51_org.rar", PAYLOAD)
    local = tmp_path / "hmdb51_org.rar"
    download(f"s3://{bucket}/mirror/hmdb51_org.rar", str(local), sha256=DIGEST, storage=storage, staging_dir=tmp_path / "st", chunk_size=65536)
    assert local.read_bytes() == PAYLOAD

    dest = f"s3://{bucket}/archives/copy.rar"
    download(str(local), dest, sha256=DIGEST, storage=storage, staging_dir=tmp_path / "st")
    assert fs.cat_file(f"{bucket}/archives/copy.rar") == PAYLOAD
    assert json.loads(fs.cat_file(f"{bucket}/archives/copy.rar.verified.json"))["sha256"] == DIGEST
    local.unlink()  # a second call finds the verified S3 object and does not read the source at all
    download(str(local), dest, sha256=DIGEST, storage=storage, staging_dir=tmp_path / "st")

    with pytest.raises(DownloadError, match=r"did not verify"):
        download(f"s3://{bucket}/mirror/hmdb51_org.rar", f"s3://{bucket}/archives/bad.rar", sha256="0" * 64, storage=storage, staging_dir=tmp_path / "st")
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/archives/bad.rar")


# --------------------------------------------------------------------------------------------
# URL names and secrets (issue 15)


@pytest.mark.parametrize("name", ["..%2F..%2FESCAPED.zip", "..%252F..%252FX.zip", "a%2Fb.zip", "a%5Cb.zip", "%2E%2E"])
def test_a_url_whose_file_name_decodes_to_a_path_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / name).write_bytes(PAYLOAD)
    dest = tmp_path / "deep" / "er" / "archives"
    with pytest.raises(DownloadError, match=r"download .*: file name: .* (path separator|is '\.\.')"):
        download(f"file://{source}/{name}", str(dest / "x.zip"), sha256=DIGEST, staging_dir=tmp_path / "st")
    with pytest.raises(DownloadError, match=r"dataset.download.urls: .*: file name"):
        prepare_dataset("ucf101", str(tmp_path / "ds"), [f"file://{source}/{name}"], archives_uri=str(dest), verify=False)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [name]  # only the source itself


@pytest.mark.integration
def test_presigned_query_never_reaches_the_record_the_partial_or_the_warning(http_server, tmp_path: Path) -> None:
    secret = "SigSentinel0042"
    path = f"/bucket/UCF101TrainTestSplits-DetectionTask.zip?X-Amz-Credential=AKIA%2F{secret}&X-Amz-Signature={secret}"
    http_server.state.files[path] = PAYLOAD
    http_server.state.cut_after[path] = 1000  # an interrupted attempt leaves its partial and its metadata behind
    dest, staging = tmp_path / "det.zip", tmp_path / "st"
    with pytest.raises(DownloadError) as cut:
        download(http_server.url(path), str(dest), staging_dir=staging, attempts=1)
    assert secret not in str(cut.value) and "X-Amz-Signature=***" in str(cut.value)
    assert not [p for p in staging.iterdir() if secret.encode() in p.read_bytes()]
    with pytest.warns(UnverifiedDownloadWarning) as warned:
        download(http_server.url(path), str(dest), staging_dir=staging)
    assert secret not in str(warned[0].message)
    record = (tmp_path / "det.zip.verified.json").read_text()
    assert secret not in record and "X-Amz-Signature=***" in record
