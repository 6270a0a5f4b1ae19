"""The one path gate: a name from outside becomes a path component only when safe after every decoding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from videolstm.store.safepath import (
    MAX_NAME_BYTES,
    UnsafeNameError,
    check_name,
    check_relative,
    check_under,
    is_under,
    under_root,
)


@pytest.mark.parametrize(
    "name",
    [
        "v_ApplyEyeMakeup_g08_c01.avi",
        "HandstandPushups",
        "brush_hair",
        "100%.txt",
        "a%zz.zip",
        "...",
        "a..b",
        ".hidden",
        "naïve café.avi",
        "日本語.avi",
        "x" * MAX_NAME_BYTES,
    ],
)
def test_ordinary_names_pass_unchanged(name):
    assert check_name(name, "test") == name


@pytest.mark.parametrize(
    "name, rule",
    [
        ("", "is empty"),
        (".", "is '.'"),
        ("..", "is '..'"),
        ("a/b", "path separator '/'"),
        ("a\\b", "path separator '\\\\'"),
        ("a\x00b", "NUL"),
        ("a\nb", "U+000A"),
        ("a\x1bb", "U+001B"),
        ("a\u202eb", "U+202E"),  # right-to-left override: a listing would show another name
        ("a\u2028b", "U+2028"),
        ("..%2F..%2Fx.zip", "decoded: '../../x.zip'"),
        ("..%252F..%252Fx.zip", "decoded: '../../x.zip'"),  # two decoding steps
        ("%2E%2E", "decoded: '..'"),
        ("a%5Cb", "decoded: 'a\\\\b'"),
        ("a%00b", "decoded: 'a\\x00b'"),
        ("\uff0e\uff0e", "decoded: '..'"),  # fullwidth dots: NFKC gives '..'
        ("a\uff0fb", "decoded: 'a/b'"),  # fullwidth solidus
        ("x" * (MAX_NAME_BYTES + 1), f"at most {MAX_NAME_BYTES}"),
        ("é" * 128, "256 bytes long"),
    ],
)
def test_unsafe_names_are_refused_naming_the_input_and_the_rule(name, rule):
    with pytest.raises(UnsafeNameError) as refused:
        check_name(name, "trainlist01.txt line 3: video name")
    assert str(refused.value).startswith("trainlist01.txt line 3: video name: ")
    assert rule in str(refused.value) or rule in refused.value.problem, str(refused.value)


def test_names_encoded_beyond_the_decoding_bound_are_refused():
    name = "x"
    for _ in range(10):
        name = name.replace("%", "%25") + "%2541"  # keeps changing under each decoding
    with pytest.raises(UnsafeNameError, match="percent-encoded more than"):
        check_name(name, "archive")


def test_non_strings_are_refused():
    with pytest.raises(UnsafeNameError, match="is not a name"):
        check_name(b"bytes", "entry")  # type: ignore[arg-type]


def test_messages_are_bounded_and_redacted():
    with pytest.raises(UnsafeNameError) as refused:
        check_name("https://user:Secret-77@host/" + "x/" * 10_000, "url")
    assert len(str(refused.value)) < 1000 and "Secret-77" not in str(refused.value)


@pytest.mark.parametrize(
    "path, parts",
    [
        ("UCF-101/Alpha/v.avi", ["UCF-101", "Alpha", "v.avi"]),
        ("a//b/./c", ["a", "b", "c"]),
        ("win\\style\\file.txt", ["win", "style", "file.txt"]),
        ("dir/", ["dir"]),
    ],
)
def test_relative_paths_split_into_checked_components(path, parts):
    assert check_relative(path, "entry") == parts


@pytest.mark.parametrize(
    "path, escapes",
    [
        ("../evil", True),
        ("/abs/evil", True),
        ("ok/../../evil", True),
        ("C:\\evil", True),
        ("..\\evil", True),
        ("a/%2e%2e/b", True),
        ("a/b\x00c", False),
        ("", False),
        ("./", False),
    ],
)
def test_relative_paths_that_escape_or_hold_bad_names_are_refused(path, escapes):
    with pytest.raises(UnsafeNameError) as refused:
        check_relative(path, "entry")
    assert refused.value.escapes is escapes


def test_under_root_builds_the_path_and_proves_it_stays_under(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    assert under_root(str(root), ["a", "b.txt"], "file") == f"{root}/a/b.txt"
    assert under_root(f"file://{root}", ["x"], "file") == f"file://{root}/x"
    assert under_root("s3://bucket/prefix", ["a", "b"], "object") == "s3://bucket/prefix/a/b"
    with pytest.raises(UnsafeNameError):
        under_root(str(root), ["..", "x"], "file")


def test_under_root_refuses_a_path_that_a_symlink_on_disk_leads_out(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(UnsafeNameError, match="resolves outside"):
        under_root(str(root), ["link", "x.txt"], "extracted file")


def test_is_under_compares_normalised_paths_and_schemes(tmp_path: Path):
    assert is_under(str(tmp_path), str(tmp_path / "a" / ".." / "b"))
    assert not is_under(str(tmp_path / "a"), str(tmp_path / "ab"))  # a prefix of the name is not a parent
    assert not is_under(str(tmp_path / "a"), str(tmp_path / "a" / ".." / ".." / "x"))
    assert is_under("s3://b/root", "s3://b/root/x/../y")
    assert not is_under("s3://b/root", "s3://b/root/../x")
    assert not is_under("s3://b/root", "gs://b/root/x")
    assert not is_under(str(tmp_path), "s3://b/x")
    with pytest.raises(UnsafeNameError, match="is outside"):
        check_under("s3://b/root", "s3://b/other", "shard")
