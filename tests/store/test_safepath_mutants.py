"""The safe-path gate's messages, flags and edges (issue 26: tests that fail when the code is wrong).

The promise (``videolstm/store/safepath.py``): a refused name raises :class:`UnsafeNameError`, a
``ValueError`` *naming the input, the name and the rule*; ``problem`` is the rule as shown to a
user summary, ``escapes`` tells a name that would lead out of the destination (``.``, ``..``,
absolute, drive letter) from one that is merely not a name. The messages are written out here in
full: they are what a user reads, so a changed word is a changed promise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from videolstm.messages import short_repr
from videolstm.store.safepath import UnsafeNameError, check_name, check_relative, check_under, is_under, under_root

TAIL = "; it cannot be a file or folder name, so nothing was written (the input is corrupt or malicious: fix or replace it)"
OUTSIDE = ": it would be written outside the destination; the input is corrupt or malicious"


def _refusal(call, *args) -> UnsafeNameError:
    with pytest.raises(UnsafeNameError) as info:
        call(*args)
    return info.value


@pytest.mark.parametrize(
    ("name", "problem", "escapes"),
    [
        ("", "'' is empty", False),
        (".", "'.' is '.'", True),
        ("..", "'..' is '..'", True),
        ("a/b", "'a/b' holds a path separator '/'", False),
        ("a\\b", "'a\\\\b' holds a path separator '\\\\'", False),
        ("a\x00b", "'a\\x00b' holds a NUL byte", False),
        ("a\u2028b", "'a\\u2028b' holds the control character U+2028", False),  # line separator (Zl)
        ("a\u2029b", "'a\\u2029b' holds the control character U+2029", False),  # paragraph separator (Zp)
        ("..%2F", "'..%2F' (decoded: '../') holds a path separator '/'", False),
    ],
)
def test_a_refused_name_names_the_input_the_name_and_the_rule(name, problem, escapes):
    error = _refusal(check_name, name, "split file 'x' line 3: video name")
    assert str(error) == f"split file 'x' line 3: video name: {problem}{TAIL}"
    assert error.problem == problem
    assert error.escapes is escapes
    assert isinstance(error, ValueError)


def test_a_non_string_is_refused_naming_it():
    error = _refusal(check_name, 123, "w")
    assert str(error) == error.problem == "w: 123 is not a name (a string)"


def test_an_over_encoded_name_is_refused_naming_it():
    name = "%2525252525252525252F"  # 9 rounds of percent-decoding before it settles
    error = _refusal(check_name, name, "w")
    assert str(error) == f"w: {name!r} is percent-encoded more than 8 times over; it cannot be a file or folder name"


def test_a_too_long_name_is_refused_with_its_size_in_bytes():
    error = _refusal(check_name, "é" * 128, "w")  # 256 bytes in UTF-8
    assert str(error).startswith("w: 'ééé")
    assert str(error).endswith(" is 256 bytes long; names are limited to 255 bytes (the filesystem's limit)")
    assert error.problem.startswith("'ééé") and error.problem.endswith(" is 256 bytes long (names: at most 255)")


def test_a_name_whose_percent_escapes_are_not_utf8_is_judged_on_its_raw_bytes():
    """``%E9`` (Latin-1 é) is no UTF-8: the byte is kept as is (surrogate escape), not replaced."""
    assert check_name("caf%E9", "w") == "caf%E9"
    error = _refusal(check_name, "%ff%2F", "w")
    assert error.problem == "'%ff%2F' (decoded: '\\udcff/') holds a path separator '/'"


@pytest.mark.parametrize("name", ["Xylophone", "XX", "zp", "Zl", "v_X_g01_c01.avi"])
def test_names_with_letters_the_rules_use_are_ordinary(name):
    assert check_name(name, "w") == name


def test_an_error_without_a_separate_problem_uses_its_message():
    assert UnsafeNameError("the message").problem == "the message"
    assert UnsafeNameError("the message").escapes is False


@pytest.mark.parametrize(
    ("path", "message", "problem"),
    [
        ("/a", f"w: '/a' is absolute (or has a drive letter){OUTSIDE}", "absolute path or drive letter"),
        ("C:", f"w: 'C:' is absolute (or has a drive letter){OUTSIDE}", "absolute path or drive letter"),
        ("c:x", f"w: 'c:x' is absolute (or has a drive letter){OUTSIDE}", "absolute path or drive letter"),
        ("a/../b", f"w: 'a/../b' has a '..' component{OUTSIDE}", "a '..' component"),
        ("..", f"w: '..' has a '..' component{OUTSIDE}", "a '..' component"),
    ],
)
def test_a_relative_path_that_leads_out_is_refused_as_escaping(path, message, problem):
    error = _refusal(check_relative, path, "w")
    assert (str(error), error.problem, error.escapes) == (message, problem, True)


def test_a_relative_path_with_a_bad_component_names_the_path_and_the_component():
    error = _refusal(check_relative, "a/b\x00", "w")
    assert str(error) == f"w 'a/b\\x00': component: 'b\\x00' holds a NUL byte{TAIL}"


@pytest.mark.parametrize(("path", "message"), [(5, "w: 5 is not a path (a string)"), ("./", "w: './' names no file")])
def test_a_relative_path_that_is_no_path_is_refused_naming_it(path, message):
    error = _refusal(check_relative, path, "w")
    assert str(error) == message and error.escapes is False


def test_a_relative_path_splits_on_its_separators_only():
    assert check_relative("Xa/bX\\cX", "w") == ["Xa", "bX", "cX"]
    assert check_relative("Xa/b", "w", separators="/") == ["Xa", "b"]


def test_a_remote_uri_is_never_under_a_local_folder():
    assert not is_under(".", "s3://bucket/key")
    assert not is_under("s3://bucket", ".")


def test_file_uris_and_plain_paths_name_the_same_files(tmp_path: Path):
    assert is_under(f"file://{tmp_path}", str(tmp_path / "a"))
    assert is_under(str(tmp_path), f"file://{tmp_path}/a")


def test_a_folder_whose_name_ends_in_a_space_or_an_x_keeps_it(tmp_path: Path):
    for folder in ("data ", "dataX"):
        root = str(tmp_path / folder)
        assert is_under(root, f"{root}/a")
        assert under_root(root, ["a", "b"], "w") == f"{root}/a/b"
    assert not is_under(str(tmp_path / "dataX"), str(tmp_path / "data" / "a"))


def test_remote_roots_compare_keys_holding_the_scheme_separator():
    assert is_under("s3://bucket/a", "s3://bucket/a/x://y")
    assert is_under("s3://bucket/a://b", "s3://bucket/a://b/c")
    assert is_under("s3://", "s3://bucket/x")  # the whole store
    assert not is_under("s3://bucket/rootX", "s3://bucket/root/secret")


def test_under_root_names_what_was_being_written(tmp_path: Path):
    error = _refusal(under_root, str(tmp_path), ["ok", "a/b"], "the frames of video 3")
    assert str(error).startswith("the frames of video 3: 'a/b' holds a path separator")


def test_a_path_outside_its_root_is_refused_naming_both(tmp_path: Path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    error = _refusal(under_root, str(tmp_path / "root"), ["link"], "w")
    out, root = str(tmp_path / "root" / "link"), str(tmp_path / "root")
    shown = f"{short_repr(out)} resolves outside {short_repr(root)}"  # bounded reprs (videolstm.messages)
    assert str(error) == f"w: {shown} (a symlink on the way?); nothing was written there"
    error = _refusal(check_under, "/r", "/x", "w")
    assert str(error) == "w: '/x' is outside '/r'; nothing was written there"
