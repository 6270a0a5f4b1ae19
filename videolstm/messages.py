"""What an untrusted value may look like when it appears in a message, a log, a param or a record.

Two rules, applied wherever the pipeline echoes something it did not write itself:

- **Bounded.** :func:`short_repr` is :mod:`reprlib` with limits (strings, lists, dicts and nesting
  cut, ``...`` marking the cut), so a 32-million-character string, a list shared a billion
  times through the pickle memo or a list nested 100,000 deep prints in microseconds as a line
  of at most :data:`MAX_REPR` characters. :func:`shorten` cuts any finished text to a length.
- **No secret.** :func:`redact` replaces the credentials a URI can carry, found anywhere in a
  text: the userinfo before ``@`` in any form (``user:password@``, a token alone ``TOKEN@``,
  ``:password@``, a password holding spaces or ``@``) and the values of query parameters that
  authorise a request (presigned S3 / GCS / Azure URLs: ``X-Amz-Signature``,
  ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``Signature``, ``sig``, ``token``, ...).
  :func:`redact_uri` does the same for one URI with :mod:`urllib.parse`. It also replaces the
  credential of an HTTP ``Authorization`` header (``Bearer``/``Basic``/``Token`` …) and the value of
  every credential the process was given through its environment (:func:`secret_env_values`:
  ``RAY_AUTH_TOKEN``, ``MLFLOW_TRACKING_PASSWORD``/``_TOKEN``, ``PREFECT_API_AUTH_STRING``,
  ``AWS_SECRET_ACCESS_KEY``, … — any variable named like a password, secret, token or key),
  wherever such a value appears in the text.

This module imports nothing from the project, so every layer (``config`` included) can use it.
"""

from __future__ import annotations

import logging
import os
import re
import reprlib
import urllib.parse
from typing import Any

#: Longest :func:`short_repr` result (characters).
MAX_REPR = 200

#: Query parameters whose values authorise a request (matched case-insensitively, whole name).
SECRET_QUERY_KEYS = re.compile(
    r"(x-amz-(signature|credential|security-token)|x-goog-(signature|credential)|googleaccessid|"
    r"awsaccesskeyid|signature|sig|token|access_token|id_token|auth|authorization|password|passwd|"
    r"pwd|secret|client_secret|api[_-]?key|key)",
    re.IGNORECASE,
)

REDACTED = "***"

#: Environment variables whose values are credentials (whole name, case-insensitive): the
#: suffixes of ``RAY_AUTH_TOKEN``, ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
#: ``MLFLOW_AUTH_ADMIN_PASSWORD``, ``PREFECT_API_AUTH_STRING``, ``PREFECT_SERVER_API_AUTH_STRING``,
#: ``PREFECT_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``MINIO_ROOT_PASSWORD``.
#: A ``..._PATH`` / ``..._FILE`` variable names where a secret is, not the secret.
SECRET_ENV_NAME = re.compile(r".*(PASSWORD|PASSWD|SECRET|SECRET_ACCESS_KEY|SECRET_KEY|TOKEN|AUTH_STRING|API_KEY|CREDENTIALS?)", re.IGNORECASE)
#: Shorter values are not looked for in texts (they would match ordinary words and numbers).
MIN_SECRET_LENGTH = 4

_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlong = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxarray = 6
_REPR.maxdict = 6


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    """A ``repr`` of ``value`` of at most ``limit`` characters, whatever its size or depth.

    Never raises: an object whose ``repr`` fails (or an int too long to print) is described by
    its type. Secrets in URIs inside the value are redacted.
    """
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError, MemoryError, TypeError, AttributeError) as exc:
        text = f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"
    return shorten(redact(text), limit)


def shorten(text: str, limit: int = 2000) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 0)
    return f"{text[:keep]}... [{len(text) - keep} more characters]"


# --------------------------------------------------------------------------------------------
# Redaction

#: ``scheme://`` then the authority up to the last ``@`` before the path (the userinfo may hold
#: spaces, ``:`` and ``@``; it ends at ``/``, ``?``, ``#``, a quote or a line break).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\"'\r\n]*)@")
#: ``?key=value`` / ``&key=value`` / ``;key=value`` pairs in a text.
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<key>[^=&#\s\"'<>]+)=(?P<value>[^&#\s\"'<>]*)")


#: An HTTP authorisation header as a client library may print it: the scheme is kept, the
#: credential after it replaced (``Authorization: Basic dXNlcjpwdw==``, ``'authorization': 'Bearer x'``).
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:x-ray-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:Bearer|Basic|Token|Digest)\s+)?)(?P<credential>[^\s\"',;}]+)",
    re.IGNORECASE,
)


def _secret_key(key: str) -> bool:
    return bool(SECRET_QUERY_KEYS.fullmatch(urllib.parse.unquote(key)))


def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """The credential values of ``environ`` (default: this process's environment), longest first.

    A variable counts when its whole name matches :data:`SECRET_ENV_NAME` and its value has at
    least :data:`MIN_SECRET_LENGTH` characters. Read at each call: a token set after start-up counts.
    """
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if v and len(v) >= MIN_SECRET_LENGTH and SECRET_ENV_NAME.fullmatch(k)}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``***`` (see the module docstring)."""
    for value in secret_env_values():
        if value in text:
            text = text.replace(value, REDACTED)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTH_HEADER.sub(lambda m: f"{m['head']}{REDACTED}", text)
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _QUERY_PAIR.sub(lambda m: f"{m['sep']}{m['key']}={REDACTED}" if _secret_key(m["key"]) else m.group(0), text)


def redact_uri(uri: str) -> str:
    """One URI without its credentials, parsed with :func:`urllib.parse.urlsplit`.

    The userinfo (anything before the last ``@`` of the authority) becomes ``***``; the values of
    authorising query parameters become ``***``; everything else is kept as written. A value
    that does not parse as a URI is redacted as text (:func:`redact`).
    """
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return redact(uri)
    if not parts.scheme or not parts.netloc and not parts.query:
        return redact(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(_secret_key(k) for k, _ in pairs):
            query = "&".join(f"{urllib.parse.quote(k, safe='')}={REDACTED if _secret_key(k) else urllib.parse.quote(v, safe='')}" for k, v in pairs)
    # the path and fragment are kept; a credential-like pattern in them is still caught as text
    return redact(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def userinfo(uri: str) -> str | None:
    """The userinfo of a ``scheme://userinfo@host/...`` URI (``urllib.parse``), or None.

    Any form counts: ``user``, ``user:password``, ``:password``, a token alone, a password
    holding spaces. A value that is not a URI gives None.
    """
    if "://" not in uri or "@" not in uri:
        return None
    try:
        netloc = urllib.parse.urlsplit(uri.strip()).netloc
    except ValueError:
        return uri.split("://", 1)[1].rsplit("@", 1)[0]  # unparsable authority: treat as userinfo
    return netloc.rsplit("@", 1)[0] if "@" in netloc else None


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through :func:`redact` (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
