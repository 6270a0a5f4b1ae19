"""Progress from Ray workers: a picklable handle whose ``advance`` reaches the driver's stage bar
(:class:`tasks.console.StageProgress`) through a Ray queue, drained on a driver thread.

    handle = progress.remote()          # on the driver, Ray initialised
    ray.get(task.remote(handle))        # in the task: handle.advance(item="lstm-rgb")
"""

from __future__ import annotations

import threading
from typing import Any


class RemoteProgress:
    """Picklable: ``advance`` from any Ray task, actor or Ray Train worker reaches the driver's bar."""

    def __init__(self, queue: Any, statuses: tuple[str, ...]):
        self._queue = queue
        self._statuses = statuses

    def advance(self, n: int = 1, status: str = "computed", item: str | None = None) -> None:
        if status not in self._statuses:
            raise ValueError(f"progress status must be one of {self._statuses}, got {status!r}")
        self._queue.put((n, status, item))


def remote_handle(progress: Any, statuses: tuple[str, ...]) -> RemoteProgress:
    """A handle for ``progress`` (a StageProgress): what workers put on its Ray queue is drained into
    ``progress.advance`` every 0.5 s until ``progress.close_remote()``."""
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    stop = threading.Event()

    def drain() -> None:
        while True:
            stopping = stop.wait(0.5)
            for n, status, item in queue.get_nowait_batch(queue.qsize()) if queue.qsize() else []:
                progress.advance(n, status, item)
            if stopping:
                queue.shutdown()
                return

    thread = threading.Thread(target=drain, name="videolstm-remote-progress", daemon=True)
    thread.start()
    progress._remote_stops.append((stop, thread))
    return RemoteProgress(queue, statuses)
