"""What a person running a command sees: per stage one start line, one live progress bar of the
stage's own items (videos, models, evaluations) and one end line; everything else in a log file.

    with stage_progress("flow", total=144, unit="video") as p:
        p.advance(24, status="reused")          # counted, but not in the rate
        for row in results:
            p.advance(status="computed" if row.ok else "failed", item=row.video_id)

On a terminal the bar is a ``rich.progress`` live display redrawn in place (rate and ETA over the
items computed in this run, the elapsed time moving once a second) and erased when the stage
ends; on any other output (CI, ``ray job submit`` logs, a file) each progress step is one line:
every item when a stage has at most :data:`LINE_PER_ITEM_UP_TO` items, else every 10 %.

:func:`tasks.console_log.start_console` (called once by the CLI) sends everything the process and its children
print — Ray, Prefect, MLflow, Python warnings, native libraries — to a log file by redirecting
file descriptors 1 and 2, and keeps the terminal for these lines. ``verbose`` echoes the log
file live instead. Without :func:`start_console` (a Prefect worker running the flow, tests)
the lines are plain ``print`` calls, which Prefect's ``log_prints`` turns into flow-run logs.

A stage whose items finish inside Ray workers (e.g. several models per Ray Train trainer)
passes ``progress.remote()`` to them: a small picklable handle whose ``advance`` reaches the
driver's bar through a Ray queue (:mod:`tasks.remote_progress`).

This module is the progress UI; the log file behind it is :mod:`tasks.console_log`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console as RichConsole
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from videolstm.store.lineage import STAGE_COMMANDS

if TYPE_CHECKING:  # annotations only
    from tasks.remote_progress import RemoteProgress

#: Display name of each stage (the CLI command that runs it alone).
STAGE_NAMES = {stage: command for stage, command in STAGE_COMMANDS.items() if stage != "dataset"}
#: What a stage counts.
STAGE_UNITS = {"dataset": "video", "flow": "video", "frame-cnn": "model", "features": "video", "train": "model", "finetune": "model", "evaluate": "evaluation"}
STATUSES = ("computed", "reused", "failed")
LINE_PER_ITEM_UP_TO = 20
NAME_WIDTH = 9


def _plural(n: int | None, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}" if n is not None else f"{unit}s"


def format_duration(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Console:
    """Where the lines go: a terminal (bars redrawn in place) or a line-per-step stream."""

    def __init__(self, stream: TextIO | None = None, interactive: bool = False, log_path: Path | None = None, log_stream: TextIO | None = None):
        self.stream = stream  # None: builtin print (captured by Prefect's log_prints inside a flow)
        self.interactive = interactive
        self.log_path = log_path
        self.log_stream = log_stream  # permanent lines are copied here (the log file), when it is not `stream`
        self.started: set[str] = set()
        self.lock = threading.RLock()
        self.live: Progress | None = None  # the stage bar being drawn (terminals only)
        self.follower: Any = None  # --verbose: the log follower (tasks.console_log), stopped at the end
        self.error_stream: TextIO | None = None  # the terminal's stderr, for error lines
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
        self.unicode = encoding in ("utf8", "utf_8")

    def width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns if self.stream is not None else 100
        except (OSError, ValueError, AttributeError):
            return 100

    def line(self, text: str) -> None:
        """A permanent line (above a bar being drawn, which rich redraws below it)."""
        with self.lock:
            if self.stream is None:
                print(text, flush=True)
                return
            if self.live is not None:
                self.live.console.print(Text(text), soft_wrap=True)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()
            if self.log_stream is not None:
                self.log_stream.write(f"[videolstm] {text}\n")
                self.log_stream.flush()

    def start_bar(self, progress: StageProgress) -> None:
        """Draw ``progress`` as a live bar until :meth:`stop_bar`; terminals only."""
        with self.lock:
            if not self.interactive or self.stream is None or self.live is not None:
                return
            rich = RichConsole(file=self.stream, force_terminal=True, width=self.width(), highlight=False, legacy_windows=False, no_color=not self.unicode)
            self.live = Progress(
                TextColumn(f"  {progress.stage:<{NAME_WIDTH}}"),
                BarColumn(bar_width=24),
                _StatusColumn(progress),
                console=rich,
                transient=True,
                refresh_per_second=1,
                redirect_stdout=False,
                redirect_stderr=False,  # what Python prints belongs to the log file
            )
            self.live.add_task(progress.stage, total=progress.total)
            self.live.start()

    def update_bar(self, progress: StageProgress) -> None:
        """Bring the bar to ``progress``'s counts (rich redraws it every second, too)."""
        with self.lock:
            if self.live is not None:
                self.live.update(self.live.task_ids[0], completed=progress.done, total=progress.total)
                self.live.refresh()

    def stop_bar(self) -> None:
        """Erase the bar (the stage's end line replaces it)."""
        with self.lock:
            if self.live is not None:
                self.live.stop()
                self.live = None

    def symbol(self, kind: str) -> str:
        symbols = {"start": ("▸", ">"), "ok": ("✓", "+"), "fail": ("✗", "x")}
        return symbols[kind][0 if self.unicode else 1]


_console = Console()


def console() -> Console:
    return _console


def say(text: str) -> None:
    """One line on the console (e.g. where Ray runs); the log file has it too."""
    _console.line(text)


def say_error(text: str) -> None:
    """An error line on the terminal's stderr (and in the log file)."""
    con = _console
    if con.error_stream is None:
        print(text, file=sys.stderr, flush=True)
        return
    with con.lock:
        con.stop_bar()
        con.error_stream.write(text + "\n")
        con.error_stream.flush()
    if con.log_stream is not None:
        con.log_stream.write(f"[videolstm] {text}\n")


class StageProgress:
    """Counts of one stage's items by status; drawn as a bar or as lines (see the module doc)."""

    def __init__(self, con: Console, stage: str, total: int | None, unit: str):
        self.console = con
        self.stage = stage
        self.total = total
        self.unit = unit
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self.computed = 0  # items computed or failed in this run: the rate counts these
        self._rate_origin: tuple[float, int] | None = None  # (time, computed) at the first computed item
        self.last_item = ""
        self._last_step = -1
        self._lock = threading.Lock()
        self._remote_stops: list[tuple[threading.Event, threading.Thread]] = []

    # -- the API a stage calls -------------------------------------------------------------

    def advance(self, n: int = 1, status: str = "computed", item: str | None = None) -> None:
        """``n`` more items finished with ``status`` (computed | reused | failed)."""
        if status not in STATUSES:
            raise ValueError(f"progress status must be one of {STATUSES}, got {status!r}")
        if n <= 0:
            return
        with self._lock:
            self.counts[status] += n
            if status != "reused":
                self.computed += n
                if self._rate_origin is None:
                    self._rate_origin = (time.monotonic(), self.computed)
            if item:
                self.last_item = f"{item} {status}"
        self._show(step=True)

    def set_total(self, total: int) -> None:
        self.total = total
        self._show(step=False)

    def note(self, text: str) -> None:
        """A short note shown at the end of the bar (terminals only), e.g. what is running."""
        self.last_item = text
        self._show(step=False)

    def remote(self) -> RemoteProgress:
        """A handle Ray workers can call ``advance`` on (needs Ray initialised); see
        :class:`tasks.remote_progress.RemoteProgress`."""
        from tasks.remote_progress import remote_handle

        return remote_handle(self, STATUSES)

    def close_remote(self) -> None:
        """Deliver what workers reported and stop the drain threads (at the end of the stage)."""
        for stop, thread in self._remote_stops:
            stop.set()
            thread.join(timeout=10)
        self._remote_stops.clear()

    # -- rendering -----------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float | None:
        """Items per second since the first item this run computed: start-up (Ray, actor pools) and
        reused items are left out, so the ETA is the time the remaining items take."""
        if self._rate_origin is None:
            return None
        origin, count = self._rate_origin
        elapsed = time.monotonic() - origin
        return (self.computed - count) / elapsed if self.computed > count and elapsed > 0 else None

    def eta(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def status_text(self) -> str:
        rate, eta = self.rate(), self.eta()
        parts = [f"{self.done}/{self.total} {self.unit}s" if self.total is not None else _plural(self.done, self.unit)]
        if rate is not None:
            parts.append(f"{rate:.2f} {self.unit}s/s" if rate < 10 else f"{rate:.0f} {self.unit}s/s")
        if eta is not None and self.done < (self.total or 0):
            parts.append(f"ETA {format_duration(eta)}")
        parts.append(f"{format_duration(time.monotonic() - self.started)} elapsed")
        if self.counts["failed"]:
            parts.append(f"{self.counts['failed']} failed")
        return "  ".join(parts)

    def bar_text(self) -> str:
        """What the bar shows right of the bar itself: counts, rate, ETA, elapsed, the last item."""
        text = self.status_text()
        return f"{text}  {self.last_item}" if self.last_item else text

    def _show(self, step: bool) -> None:
        con = self.console
        if con.interactive:
            con.update_bar(self)
            return
        if not step or not self.total:
            return
        if self.total <= LINE_PER_ITEM_UP_TO:
            current = self.done
        else:
            current = math.floor(10 * self.done / self.total)
        if current != self._last_step and self.done < self.total:
            self._last_step = current
            con.line(f"  {self.stage:<{NAME_WIDTH}} {self.status_text()}")

    def start_line(self, detail: str) -> str:
        head = f"{self.console.symbol('start')} {self.stage:<{NAME_WIDTH}} "
        if self.total is None:
            return head + (detail or "started")
        return head + _plural(self.total, self.unit) + (f": {detail}" if detail else "")

    def end_line(self) -> str:
        seconds = time.monotonic() - self.started
        if self.total is None and not self.done:
            return f"{self.console.symbol('ok')} {self.stage:<{NAME_WIDTH}} done in {seconds:.1f} s"
        c = self.counts
        counts = f"{c['computed']} computed, {c['reused']} reused, {c['failed']} failed"
        return f"{self.console.symbol('ok')} {self.stage:<{NAME_WIDTH}} {_plural(self.done, self.unit)} in {seconds:.1f} s: {counts}"


@contextlib.contextmanager
def stage_progress(stage: str, total: int | None = None, unit: str | None = None, detail: str = "") -> Iterator[StageProgress]:
    """Start line, live progress, end line of one stage (``stage``: a key of STAGE_NAMES or a display name)."""
    name = STAGE_NAMES.get(stage, stage)
    con = _console
    progress = StageProgress(con, name, total, unit or STAGE_UNITS.get(name, "item"))
    con.started.add(name)
    con.line(progress.start_line(detail))
    con.start_bar(progress)
    try:
        yield progress
        progress.close_remote()
    except BaseException as exc:
        progress.close_remote()
        con.stop_bar()
        seconds = time.monotonic() - progress.started
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        con.line(f"{con.symbol('fail')} {name:<{NAME_WIDTH}} failed after {seconds:.1f} s: {type(exc).__name__}: {message}")
        raise
    con.stop_bar()
    con.line(progress.end_line())


class _StatusColumn(ProgressColumn):
    """The stage's own counts, rate and ETA (reused items and start-up outside the rate), computed
    at each redraw so the elapsed time moves while one long item runs."""

    def __init__(self, progress: StageProgress):
        super().__init__()
        self.progress = progress

    def render(self, task: Task) -> Text:
        return Text(self.progress.bar_text(), no_wrap=True, overflow="ellipsis")


def reused_stage(result: Any) -> Any:
    """After a stage task returns: a line for a stage that did not run here (a Prefect cache hit).

    ``result`` is the stage's StageResult; returned unchanged so a flow can wrap the call.
    """
    name = STAGE_NAMES.get(result.stage, result.stage)
    if name not in _console.started:
        _console.started.add(name)
        unit = STAGE_UNITS.get(name, "item")
        _console.line(
            f"{_console.symbol('ok')} {name:<{NAME_WIDTH}} {_plural(result.ok + result.failed, unit)}: "
            f"reused whole (finished by an earlier run with the same inputs)"
        )
    return result
