"""videolstm.store.storage: URIs, atomic writes, retries — on a local folder and on S3 (moto)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import s3fs

from videolstm.config import StorageConfig
from videolstm.store import storage as st

# ----------------------------------------------------------------------------------------
# URIs


def test_join_adds_single_slashes_and_keeps_the_scheme():
    assert st.join("s3://bucket/", "/a/", "b.parquet") == "s3://bucket/a/b.parquet"
    assert st.join("/tmp/x", "y") == "/tmp/x/y"
    assert st.join("file:///tmp/x/", "y") == "file:///tmp/x/y"


def test_local_uris_map_to_paths_and_remote_ones_are_refused():
    assert st.is_local("relative/dir") and st.is_local("/abs") and st.is_local("file:///abs/x")
    assert not st.is_local("s3://bucket/x")
    assert st.local_path("file:///abs/x") == Path("/abs/x")
    with pytest.raises(ValueError, match="s3://bucket/x"):
        st.local_path("s3://bucket/x")


def test_absolute_resolves_relative_paths_and_leaves_remote_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert st.absolute("runs/a") == str(tmp_path.resolve() / "runs" / "a")
    assert st.absolute("s3://bucket/runs") == "s3://bucket/runs"


def test_storage_options_carry_endpoint_and_region_only_for_s3_and_no_credentials():
    storage = StorageConfig(endpoint_url="http://127.0.0.1:9000", region="eu-west-1")
    options = st.storage_options("s3://b/x", storage)
    assert options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}
    assert st.storage_options("/local/x", storage) == {}
    assert "client_kwargs" not in st.storage_options("s3://b/x", None)
    assert "client_kwargs" not in st.storage_options("s3://b/x", StorageConfig())
    # short botocore timeouts so an unreachable store fails fast; never a key or secret
    assert options["config_kwargs"]["connect_timeout"] <= 10
    assert not any(k in str(options).lower() for k in ("secret", "key=", "token"))


# ----------------------------------------------------------------------------------------
# retries


class Flaky:
    """A callable failing with ``error`` the first ``failures`` calls, then returning "done"."""

    def __init__(self, error: BaseException, failures: int):
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


@pytest.mark.parametrize("error", [ConnectionResetError("reset"), TimeoutError("slow"), OSError("503 slow down")])
def test_with_retries_retries_transient_errors_until_success(error):
    action = Flaky(error, failures=2)
    assert st.with_retries(action, "reading s3://b/k", attempts=3, base_delay=0) == "done"
    assert action.calls == 3


def test_with_retries_treats_botocore_connection_failures_as_transient():
    """s3fs raises these as they are when the endpoint is down or drops the connection."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    action = Flaky(EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k"), failures=1)
    assert st.with_retries(action, "reading s3://b/k", attempts=2, base_delay=0) == "done"
    dropped = Flaky(ConnectionClosedError(endpoint_url="http://127.0.0.1:9/b/k"), failures=5)
    with pytest.raises(st.StorageError, match="reading s3://b/k failed after 2 attempts"):
        st.with_retries(dropped, "reading s3://b/k", attempts=2, base_delay=0)


def test_with_retries_raises_storage_error_naming_the_uri_after_the_last_attempt():
    action = Flaky(ConnectionResetError("connection reset by peer"), failures=10)
    with pytest.raises(st.StorageError, match=r"reading s3://bucket/key failed after 4 attempts.*connection reset") as info:
        st.with_retries(action, "reading s3://bucket/key", attempts=4, base_delay=0)
    assert action.calls == 4
    assert isinstance(info.value.__cause__, ConnectionResetError)


@pytest.mark.parametrize("error", [FileNotFoundError("gone"), PermissionError("denied"), IsADirectoryError("dir")])
def test_with_retries_does_not_retry_permanent_errors(error):
    action = Flaky(error, failures=10)
    with pytest.raises(type(error)):
        st.with_retries(action, "reading x", attempts=4, base_delay=0)
    assert action.calls == 1


def test_with_retries_does_not_retry_programming_errors():
    action = Flaky(ValueError("bad"), failures=10)
    with pytest.raises(ValueError):
        st.with_retries(action, "x", attempts=4, base_delay=0)
    assert action.calls == 1


def test_read_of_a_missing_local_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        st.read_bytes(str(tmp_path / "absent.bin"))


# ----------------------------------------------------------------------------------------
# atomic local writes


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_failing_midway_leaves_no_target_and_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(RuntimeError, match="killed"):
        with st.atomic_local_file(str(target)) as tmp:
            Path(tmp).write_bytes(b"partial")
            assert Path(tmp).parent == target.parent  # beside the target: the rename is atomic
            assert not target.exists()  # nothing visible while writing
            raise RuntimeError("killed")
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_atomic_write_failing_midway_keeps_the_previous_content(tmp_path):
    target = tmp_path / "out.bin"
    st.write_bytes(str(target), b"old complete content")
    with pytest.raises(KeyboardInterrupt):
        with st.atomic_local_file(str(target)) as tmp:
            Path(tmp).write_bytes(b"new partial")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old complete content"
    assert _leftovers(tmp_path) == ["out.bin"]


def test_atomic_write_publishes_whole_content_and_replaces_old(tmp_path):
    target = tmp_path / "out.txt"
    st.write_text(str(target), "first")
    st.write_text(f"file://{target}", "second, longer")
    assert st.read_text(str(target)) == "second, longer"
    assert _leftovers(tmp_path) == ["out.txt"]


def test_published_file_has_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp makes 0600 temp files; the published file must follow the umask like open() does."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    published = tmp_path / "published.bin"
    st.write_bytes(str(published), b"x")
    assert stat.S_IMODE(published.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_list_files_lists_only_finished_files_with_the_suffix(tmp_path):
    folder = tmp_path / "shards"
    st.write_bytes(str(folder / "b.parquet"), b"1")
    st.write_bytes(str(folder / "a.parquet"), b"2")
    st.write_bytes(str(folder / "notes.txt"), b"3")
    (folder / "nested.parquet").mkdir()  # a folder is not a file
    with st.atomic_local_file(str(folder / "c.parquet")) as tmp:
        Path(tmp).write_bytes(b"in progress")
        listed = st.list_files(str(folder), suffix=".parquet")
    assert listed == [str(folder / "a.parquet"), str(folder / "b.parquet")]
    assert st.list_files(f"file://{folder}", suffix=".parquet")[0] == f"file://{folder}/a.parquet"
    assert st.list_files(str(folder)) == [str(folder / n) for n in ("a.parquet", "b.parquet", "c.parquet", "notes.txt")]


def test_list_files_of_a_missing_folder_is_empty(tmp_path):
    assert st.list_files(str(tmp_path / "nothing"), suffix=".pt") == []


def test_exists_and_remove_on_local_files(tmp_path):
    uri = str(tmp_path / "x.bin")
    assert not st.exists(uri)
    st.write_bytes(uri, b"1")
    assert st.exists(uri)
    st.remove(uri)
    assert not st.exists(uri)
    st.remove(uri)  # removing what is absent is fine


def test_as_local_file_of_a_local_uri_is_the_file_itself(tmp_path):
    uri = str(tmp_path / "v.avi")
    st.write_bytes(uri, b"video")
    with st.as_local_file(uri) as local:
        assert local == uri
    assert Path(uri).exists()


# ----------------------------------------------------------------------------------------
# S3 (moto server)


@pytest.mark.integration
def test_s3_write_read_exists_list_remove_round_trip(moto_s3):
    storage, bucket = moto_s3
    folder = f"s3://{bucket}/stage/shards"
    assert st.list_files(folder, storage, suffix=".parquet") == []
    st.write_bytes(f"{folder}/b.parquet", b"bbb", storage)
    st.write_text(f"{folder}/a.parquet", "aaa", storage)
    st.write_text(f"{folder}/readme.txt", "r", storage)
    assert st.exists(f"{folder}/a.parquet", storage)
    assert not st.exists(f"{folder}/zzz.parquet", storage)
    assert st.read_bytes(f"{folder}/b.parquet", storage) == b"bbb"
    assert st.read_text(f"{folder}/a.parquet", storage) == "aaa"
    assert st.list_files(folder, storage, suffix=".parquet") == [f"{folder}/a.parquet", f"{folder}/b.parquet"]
    with st.open_for_read(f"{folder}/b.parquet", storage) as fh:
        assert fh.read() == b"bbb"
    st.remove(f"{folder}/a.parquet", storage)
    assert not st.exists(f"{folder}/a.parquet", storage)
    with pytest.raises(FileNotFoundError):
        st.read_bytes(f"{folder}/a.parquet", storage)


@pytest.mark.integration
def test_s3_upload_failing_midway_publishes_nothing_and_removes_the_temp_file(moto_s3):
    storage, bucket = moto_s3
    uri = f"s3://{bucket}/out/model.pt"
    with pytest.raises(RuntimeError):
        with st.atomic_local_file(uri, storage, suffix=".pt") as tmp:
            Path(tmp).write_bytes(b"partial")
            raise RuntimeError("worker killed")
    assert not os.path.exists(tmp)
    assert not st.exists(uri, storage)


@pytest.mark.integration
def test_s3_listing_sees_objects_written_and_deleted_by_another_process(moto_s3):
    """s3fs caches listings per shared instance: a shard written by a Ray worker (another client)
    must be seen by the driver's next plan, and a deleted one must disappear."""
    storage, bucket = moto_s3
    folder = f"s3://{bucket}/stage/shards"
    st.write_bytes(f"{folder}/a.parquet", b"a", storage)
    assert st.list_files(folder, storage, suffix=".parquet") == [f"{folder}/a.parquet"]  # listing now cached
    other = s3fs.S3FileSystem(client_kwargs={"endpoint_url": storage.endpoint_url}, skip_instance_cache=True)
    other.pipe(f"{bucket}/stage/shards/c.parquet", b"c")
    other.rm(f"{bucket}/stage/shards/a.parquet")
    assert st.list_files(folder, storage, suffix=".parquet") == [f"{folder}/c.parquet"]
    assert st.exists(f"{folder}/c.parquet", storage)
    assert not st.exists(f"{folder}/a.parquet", storage)


@pytest.mark.integration
def test_s3_as_local_file_gives_a_temp_copy_that_is_removed_afterwards(moto_s3):
    storage, bucket = moto_s3
    uri = f"s3://{bucket}/videos/v.avi"
    st.write_bytes(uri, b"\x00video-bytes", storage)
    with st.as_local_file(uri, storage) as local:
        assert local.endswith(".avi")
        assert Path(local).read_bytes() == b"\x00video-bytes"
    assert not Path(local).exists()
