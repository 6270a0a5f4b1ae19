"""A bound on how often one item is tried when its worker process keeps dying.

Ray retries a task whose worker died (SIGKILL, out of memory, a crash in a native library such
as a video decoder) and Ray Data does so without limit by default. A limit set through Ray's
remote arguments (``max_task_retries=3``) has two faults: the keyword is deprecated in Ray Data,
and when the limit is reached the whole dataset fails, so one poisonous video would cost the
stage every other video. Instead each item carries a small attempt counter on storage for the
current execution of the stage: before the work the counter is raised, after it the counter is
removed; an item found at the limit is recorded as failed, with the reason, without running
again. A killed worker's video therefore succeeds on its retry, and a video that kills its
worker every time fails alone after ``max_attempts`` tries while the stage finishes.

The counters live under ``<stage>/attempts/<execution id>/`` (a new id per execution, removed
when the stage ends), so a re-run of the stage gives every item its full budget again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from videolstm.config import StorageConfig
from videolstm.store import storage as st
from videolstm.store.manifest import safe_name

#: Tries of one item within one execution of a stage (the first try included).
MAX_ATTEMPTS = 3


def new_attempts_uri(stage_uri: str) -> str:
    """A fresh counter folder for one execution of the stage at ``stage_uri``."""
    return st.join(stage_uri, "attempts", uuid.uuid4().hex[:12])


def attempt(
    attempts_uri: str,
    item: str,
    work: Callable[[], dict],
    failed: Callable[[str], dict],
    storage: StorageConfig | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict:
    """``work()`` unless ``item`` already died ``max_attempts`` times in this execution, then ``failed(reason)``."""
    marker = st.join(attempts_uri, safe_name(item))
    tried = int(st.read_text(marker, storage)) if st.exists(marker, storage) else 0
    if tried >= max_attempts:
        return failed(
            f"its worker process died on each of {tried} tries (killed, out of memory, or a crash in a "
            f"native library such as the video decoder); not tried again in this run. Re-run to retry it."
        )
    st.write_text(marker, str(tried + 1), storage)
    result = work()
    st.remove(marker, storage)
    return result


def clear_attempts(attempts_uri: str, storage: StorageConfig | None = None) -> None:
    if st.exists(attempts_uri, storage):
        st.remove(attempts_uri, storage, recursive=True)
