"""The run's log file: everything the process and its children print goes there, the terminal
keeps the stage lines (:mod:`tasks.console`).

:func:`start_console` (called once by the CLI) redirects file descriptors 1 and 2 to a new log
file — Ray, Prefect, MLflow, Python warnings, native libraries — and points the console at a
copy of the terminal; ``verbose`` echoes the log file live instead (:class:`_Follower`).
:func:`show_log_tail` prints the log's last lines after a failure.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from tasks import console as ui
from tasks.console import Console


class _Follower:
    """``--verbose``: copies what is appended to the log file to the terminal, live."""

    def __init__(self, path: Path, terminal: TextIO, interval: float = 0.2):
        self.path, self.terminal, self.interval = path, terminal, interval
        self._stop = threading.Event()
        self._file = open(path, "rb")  # closed in stop()
        self._thread = threading.Thread(target=self._run, name="videolstm-log-follower", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        data = self._file.read()
        if data:
            self.terminal.buffer.write(data)
            self.terminal.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._copy()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._copy()
        self._file.close()


def default_log_dir(storage_root: str) -> Path:
    """``<storage.root>/logs`` for a local root; a temporary folder for a remote one."""
    from videolstm.store import storage as st

    if st.is_local(storage_root):
        return st.local_path(st.absolute(storage_root)) / "logs"
    import tempfile

    return Path(tempfile.gettempdir()) / "videolstm-logs"


def start_console(log_dir: Path, command: str, verbose: bool = False) -> Console:
    """Send this process's (and its children's) stdout and stderr to a new log file; keep the
    terminal for the stage lines. Returns the console (its ``log_path`` is the file)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding=sys.stdout.encoding or "utf-8", errors="replace")
    terminal_errors = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="replace")
    interactive = terminal.isatty() and os.environ.get("TERM") != "dumb" and not verbose
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)
    if verbose:
        # Lines go to the log only; the follower shows the log (and so them) in order.
        con = Console(sys.stdout, interactive=False, log_path=path)
        con.follower = _Follower(path, terminal)
    else:
        con = Console(terminal, interactive=interactive, log_path=path, log_stream=sys.stdout)
    con.error_stream = terminal_errors
    ui._console = con
    con.line(f"videolstm {command}: Ray, Prefect and MLflow output goes to {path}" + (" (shown live)" if verbose else ""))
    return con


def stop_console() -> None:
    """Flush what ``--verbose`` has not shown yet (the log file stays the process's output)."""
    sys.stdout.flush()
    sys.stderr.flush()
    con = ui.console()
    if con.follower is not None:
        con.follower.stop()
        con.follower = None


def show_log_tail(lines: int = 15) -> None:
    """The last lines of the log file, on the console, after a failure (``--verbose`` showed them already)."""
    con = ui.console()
    if con.log_path is None or con.log_stream is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with open(con.log_path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64_000))
        tail = fh.read().decode("utf-8", errors="replace").splitlines()[-lines:]
    con.line(f"last {len(tail)} lines of {con.log_path}:")
    for text in tail:
        con.line("  " + text[: con.width() - 3])
