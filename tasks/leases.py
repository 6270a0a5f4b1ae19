"""Leases in the stages (issue 25): who this run is, one item under a lease, and the console's one note.

The protocol is :mod:`videolstm.store.lease`; this module only gives it the run's identity and
turns its outcome into the stages' vocabulary. An item another run computed comes back marked
with :data:`REUSED_FROM` (that run's id and host), which the driver pops before the row becomes a
manifest row, counts as reused, and reports once per stage (:class:`WaitNotice`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from videolstm.config import StorageConfig
from videolstm.store.lease import LeaseRecord, compute_once

#: Key of a result row (or a training outcome) that another run computed: "<run id> on <host>".
REUSED_FROM = "reused_from"

_PROCESS_RUN = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def run_holder() -> str:
    """This run's id in leases: the Prefect flow run's id inside a flow run, else one id per driver process."""
    from prefect.runtime import flow_run

    return str(flow_run.id or _PROCESS_RUN)


def leased(
    output_uri: str,
    storage: StorageConfig | None,
    holder: str,
    compute: Callable[[], dict[str, Any]],
    reuse: Callable[[], dict[str, Any]],
    done: Callable[[], bool],
) -> dict[str, Any]:
    """``compute()`` the item at ``output_uri`` under a lease, or ``reuse()`` it when it is done or
    another run computes it (then the result carries :data:`REUSED_FROM`)."""
    waited: list[LeaseRecord] = []
    computed: list[bool] = []

    def mine() -> dict[str, Any]:
        computed.append(True)
        return compute()

    result = compute_once(output_uri, done, mine, reuse, holder=holder, storage=storage, on_wait=waited.append)
    if not computed:
        result = {**result, REUSED_FROM: f"run {waited[0].holder} on {waited[0].host}" if waited else "a run that finished it first"}
    return result


class WaitNotice:
    """Says once per stage that items came from another run writing the same root."""

    def __init__(self, stage: str):
        self.stage = stage
        self.told = False
        self.reused = 0  # items another run computed

    def pop(self, row: dict[str, Any]) -> bool:
        """Remove :data:`REUSED_FROM` from ``row``; True (and the note, the first time) when it was there."""
        source = row.pop(REUSED_FROM, None)
        if not source:
            return False
        self.reused += 1
        if not self.told:
            from tasks.console import say

            say(
                f"{self.stage}: another run writes this storage root too — {source} computed items this run "
                f"needed; this run waited for them and reuses them instead of computing them again"
            )
            self.told = True
        return True
