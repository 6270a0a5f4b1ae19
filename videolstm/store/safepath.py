"""The one gate between an untrusted name and a path: every writer goes through it.

Names that come from outside the project — archive entries, the file name at the end of a
download URL, class and video names in split files and annotation files — only become path
components through :func:`check_name` / :func:`check_relative`, and every write target built
from them goes through :func:`under_root`, which also proves the result resolves under its root.

A name is refused (:class:`UnsafeNameError`, a ``ValueError`` naming the input, the name and the
rule) when, **after every decoding step** — as given, percent-decoded repeatedly until it no
longer changes (``..%252F`` → ``..%2F`` → ``../``), and NFKC-normalised (fullwidth ``．．／`` →
``../``) — it:

- is empty, ``.`` or ``..``;
- holds ``/`` or ``\\`` (a separator: one name must be one component), NUL, a control character
  (Unicode category Cc), a line/paragraph separator or a bidirectional-override character
  (which make a listing show another name than the real one);
- is longer than :data:`MAX_NAME_BYTES` bytes in UTF-8 (the filesystem limit: ``ENAMETOOLONG``).

:func:`under_root` then joins the checked components onto the root and checks that the result
lies under the root: for a local root with :func:`os.path.realpath` (so a symlink already on
disk cannot lead out either), for an object store by normalising the key.
"""

from __future__ import annotations

import os
import posixpath
import unicodedata
import urllib.parse
from collections.abc import Iterable

from videolstm.messages import short_repr

#: Longest accepted name in UTF-8 bytes (ext4, xfs, APFS, S3 key segments in practice).
MAX_NAME_BYTES = 255
#: Percent-decoding rounds tried before a name that keeps changing is refused as obfuscated.
MAX_DECODE_ROUNDS = 8

_BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class UnsafeNameError(ValueError):
    """A name from an archive, URL, split or annotation file that must not become a path.

    ``problem`` is the rule it breaks (``"has a '..' component"``), ``escapes`` whether it
    would lead out of the destination (absolute, drive letter, ``..``) rather than merely not
    being a name.
    """

    def __init__(self, message: str, problem: str = "", escapes: bool = False) -> None:
        super().__init__(message)
        self.problem = problem or message
        self.escapes = escapes


def _decodings(name: str) -> list[str]:
    """``name``, its repeated percent-decodings, and the NFKC form of each."""
    forms = [name]
    current = name
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = urllib.parse.unquote(current, errors="surrogateescape")
        if decoded == current:
            break
        forms.append(decoded)
        current = decoded
    else:
        raise UnsafeNameError(f"is percent-encoded more than {MAX_DECODE_ROUNDS} times over")
    return forms + [unicodedata.normalize("NFKC", f) for f in forms]


def _problem(form: str) -> str | None:
    if form in ("", ".", ".."):
        return f"is {form!r}" if form else "is empty"
    for ch in form:
        if ch in "/\\":
            return f"holds a path separator {ch!r}"
        if ch == "\x00":
            return "holds a NUL byte"
        category = unicodedata.category(ch)
        if category == "Cc" or category in ("Zl", "Zp") or ch in _BIDI:
            return f"holds the control character U+{ord(ch):04X}"
    return None


def check_name(name: str, what: str) -> str:
    """Return ``name`` unchanged if it is safe as one path component, else raise.

    Args:
        name: the untrusted name (one component: no separators allowed).
        what: what the name is, for the message (``"hmdb51 split file 'x' line 3: video name"``).

    Raises:
        UnsafeNameError: naming ``what``, the name (bounded, secrets redacted) and the rule.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what}: {short_repr(name)} is not a name (a string)")
    try:
        forms = _decodings(name)
    except UnsafeNameError as exc:
        raise UnsafeNameError(f"{what}: {short_repr(name)} {exc}; it cannot be a file or folder name") from None
    for form in forms:
        problem = _problem(form)
        if problem:
            shown = short_repr(name) if form == name else f"{short_repr(name)} (decoded: {short_repr(form)})"
            raise UnsafeNameError(
                f"{what}: {shown} {problem}; it cannot be a file or folder name, so nothing was written (the input is corrupt or malicious: fix or replace it)",
                f"{shown} {problem}",
                escapes=form in (".", ".."),
            )
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        size = len(name.encode("utf-8", "surrogateescape"))
        raise UnsafeNameError(
            f"{what}: {short_repr(name)} is {size} bytes long; names are limited to {MAX_NAME_BYTES} bytes (the filesystem's limit)",
            f"{short_repr(name)} is {size} bytes long (names: at most {MAX_NAME_BYTES})",
        )
    return name


def check_relative(path: str, what: str, separators: str = "/\\") -> list[str]:
    """The components of a relative path (``a/b/c``), each checked with :func:`check_name`.

    Empty components and ``.`` between separators (``a//b``, ``./a``) are dropped, as archive
    tools do; an absolute path, a drive letter or a ``..`` component is refused.
    """
    if not isinstance(path, str):
        raise UnsafeNameError(f"{what}: {short_repr(path)} is not a path (a string)")
    normal = path
    for sep in separators[1:]:
        normal = normal.replace(sep, separators[0])
    if normal.startswith(separators[0]) or (len(normal) >= 2 and normal[1] == ":" and normal[0].isalpha()):
        raise UnsafeNameError(
            f"{what}: {short_repr(path)} is absolute (or has a drive letter): it would be written outside the destination; the input is corrupt or malicious",
            "absolute path or drive letter",
            escapes=True,
        )
    parts = [p for p in normal.split(separators[0]) if p not in ("", ".")]
    if not parts:
        raise UnsafeNameError(f"{what}: {short_repr(path)} names no file")
    for part in parts:
        if part == "..":
            raise UnsafeNameError(
                f"{what}: {short_repr(path)} has a '..' component: it would be written outside the destination; the input is corrupt or malicious",
                "a '..' component",
                escapes=True,
            )
        check_name(part, f"{what} {short_repr(path)}: component")
    return parts


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def is_under(root: str, uri: str) -> bool:
    """True if ``uri`` is ``root`` or lies under it (local: symlinks resolved; remote: normalised)."""
    if _is_local(root) != _is_local(uri):
        return False
    if _is_local(root):
        base = os.path.realpath(_local(root))
        target = os.path.realpath(_local(uri))
        return target == base or target.startswith(base.rstrip(os.sep) + os.sep)
    scheme, _, rest = root.partition("://")
    other_scheme, _, other = uri.partition("://")
    if scheme != other_scheme:
        return False
    base = posixpath.normpath("/" + rest).rstrip("/")
    target = posixpath.normpath("/" + other)
    return target == base or target.startswith(base + "/")


def under_root(root: str, parts: Iterable[str], what: str) -> str:
    """``root/<part>/<part>...`` for checked ``parts``, proven to resolve under ``root``.

    Args:
        root: the folder every write of this kind must stay in (a path or URI).
        parts: path components (each checked with :func:`check_name`).
        what: what is being written, for the message.

    Raises:
        UnsafeNameError: a bad component, or a result outside ``root`` (e.g. through a symlink
            already on disk).
    """
    out = root.rstrip("/")
    for part in parts:
        out = f"{out}/{check_name(part, what)}"
    if not is_under(root, out):
        raise UnsafeNameError(f"{what}: {short_repr(out)} resolves outside {short_repr(root)} (a symlink on the way?); nothing was written there")
    return out


def check_under(root: str, uri: str, what: str) -> str:
    """Return ``uri`` if it lies under ``root`` (see :func:`is_under`), else raise UnsafeNameError."""
    if not is_under(root, uri):
        raise UnsafeNameError(f"{what}: {short_repr(uri)} is outside {short_repr(root)}; nothing was written there")
    return uri
