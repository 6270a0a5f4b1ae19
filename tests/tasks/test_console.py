"""The console a person sees: stage lines, progress as bars (terminal) or lines (anything else),
and the log file that takes everything else a process and its children print."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tasks import console as console_module
from tasks.console import Console, StageProgress, format_duration, reused_stage, stage_progress
from videolstm.store.lineage import StageResult

REPO = Path(__file__).resolve().parents[2]


def _console_into_buffer(monkeypatch, interactive: bool) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(console_module, "_console", Console(buffer, interactive=interactive))
    return buffer


@pytest.fixture
def lines_console(monkeypatch):
    """A non-terminal console writing into a buffer (as CI and ``ray job submit`` logs see it)."""
    return _console_into_buffer(monkeypatch, interactive=False)


@pytest.fixture
def terminal_console(monkeypatch):
    """A console that redraws its bar in place, as on a terminal."""
    return _console_into_buffer(monkeypatch, interactive=True)


def test_a_stage_prints_one_start_line_one_line_per_item_and_an_end_line_with_its_counts(lines_console):
    with stage_progress("frames_flow", total=5, detail="3 to compute, 2 reused") as p:
        p.advance(2, "reused")
        p.advance(item="a")
        p.advance(status="failed", item="b")
        p.advance(item="c")
    lines = lines_console.getvalue().splitlines()
    assert lines[0].endswith("flow      5 videos: 3 to compute, 2 reused")
    assert [re.search(r"(\d+)/5 videos", line)[1] for line in lines[1:-1]] == ["2", "3", "4"]  # the last step is the end line
    assert re.search(r"flow      5 videos in \d+\.\d s: 2 computed, 2 reused, 1 failed$", lines[-1]), lines[-1]
    assert len(lines) == 5


def test_a_stage_of_many_items_prints_a_line_per_tenth_not_per_item(lines_console):
    with stage_progress("features", total=144) as p:
        for _ in range(144):
            p.advance()
    steps = lines_console.getvalue().splitlines()[1:-1]
    assert len(steps) == 10  # 0 % … 90 % (100 % is the end line)
    assert "144/144" not in "".join(steps) and "ETA" in steps[-1] and "videos/s" in steps[-1]


def test_the_rate_and_eta_leave_out_reused_items_and_the_start_up(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: now[0])
    p = StageProgress(Console(io.StringIO()), "flow", total=10, unit="video")
    p.advance(4, status="reused")  # instant: no rate from reused items
    assert p.rate() is None
    now[0] = 10.0
    p.advance(status="computed")  # the first computed item, after 10 s of start-up
    assert p.rate() is None and p.eta() is None
    now[0] = 14.0
    p.advance(2, status="computed")
    assert p.rate() == pytest.approx(2 / 4)  # 2 items in the 4 s since the first
    assert p.eta() == pytest.approx(3 / 0.5)  # 3 left


def screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: carriage return, newline, erase line
    (``ESC[K``, ``ESC[2K``) and cursor up (``ESC[nA``) applied; other escapes (colours, cursor
    visibility) dropped."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            rows += [""] * (row + 1 - len(rows))
        elif token.startswith("\x1b["):
            if token[-1] == "K":
                rows[row] = "" if token in ("\x1b[2K",) else rows[row][:col]
            elif token[-1] == "A":
                row = max(0, row - int(token[2:-1] or 1))
        else:
            rows[row] = rows[row][:col] + token + rows[row][col + len(token) :]
            col += len(token)
    return [r for r in rows if r]


def test_screen_applies_erase_and_cursor_up():
    assert screen("a\nbar 1\r\x1b[2Kbar 2\n\r\x1b[1A\x1b[2Kend\n") == ["a", "end"]


def test_a_terminal_gets_a_bar_redrawn_in_place_and_only_the_start_and_end_lines_stay(terminal_console):
    with stage_progress("train", total=3) as p:
        p.advance(item="lstm-rgb")
        p.note("training alstm-rgb")
        p.advance(item="alstm-rgb")
        p.advance(status="failed", item="convlstm-rgb")
    out = terminal_console.getvalue()
    # the bar was drawn (rich.progress, redrawn in place) with the stage's counts and notes …
    assert "\r\x1b[2K" in out and "━" in out and "training alstm-rgb" in out and "1/3 models" in out
    # … and erased: what stays on screen is the start line and the end line.
    shown = screen(out)
    assert len(shown) == 2 and shown[0].startswith("▸ train") and shown[1].startswith("✓ train     3 models in"), shown
    assert shown[1].endswith("2 computed, 0 reused, 1 failed")


def test_a_line_said_while_a_bar_is_drawn_stays_above_it(terminal_console):
    with stage_progress("flow", total=2) as p:
        p.advance()
        console_module.say("Ray: a local instance")
        p.advance()
    shown = screen(terminal_console.getvalue())
    assert shown[0].startswith("▸ flow") and shown[1] == "Ray: a local instance" and shown[2].startswith("✓ flow"), shown
    assert len(shown) == 3


def test_a_failing_stage_ends_with_a_failed_line_and_raises(lines_console):
    with pytest.raises(RuntimeError, match="boom"):
        with stage_progress("evaluate", total=2) as p:
            p.advance()
            raise RuntimeError("boom\nsecond line")
    last = lines_console.getvalue().splitlines()[-1]
    assert re.search(r"evaluate  failed after \d+\.\d s: RuntimeError: boom$", last), last


def test_unknown_status_is_refused(lines_console):
    with stage_progress("flow", total=1) as p, pytest.raises(ValueError, match="computed"):
        p.advance(status="done")


def test_a_stage_prefect_answered_from_its_cache_still_gets_its_line(lines_console):
    result = StageResult(stage="features", uri="u", lineage="l", content="c", ok=140, failed=4)
    assert reused_stage(result) is result
    assert reused_stage(result) is result  # once only
    with stage_progress("frames_flow", total=1) as p:
        p.advance()
    reused_stage(result.model_copy(update={"stage": "frames_flow"}))  # ran here: no extra line
    lines = lines_console.getvalue().splitlines()
    assert lines[0].endswith("features  144 videos: reused whole (finished by an earlier run with the same inputs)")
    assert len(lines) == 3


def test_durations_read_as_minutes_and_seconds():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00", "1:00", "1:01", "1:01:02"]


NOISY = textwrap.dedent("""
    import os, subprocess, sys, warnings
    from pathlib import Path
    from tasks.console import say, stage_progress
    from tasks.console_log import start_console, stop_console

    start_console(Path(sys.argv[1]), "demo", verbose=sys.argv[2] == "verbose")
    print("python print")
    warnings.warn("a deprecation", DeprecationWarning)
    os.write(2, b"[2026 E 1 2] core_worker.cc: native stderr\\n")
    subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"], check=True)
    with stage_progress("flow", total=2) as p:
        p.advance(); p.advance()
    say("summary line")
    stop_console()
""")


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_everything_the_process_and_its_children_print_goes_to_the_log_and_verbose_shows_it(tmp_path, mode):
    run = subprocess.run(
        [sys.executable, "-W", "always", "-c", NOISY, str(tmp_path), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    log = next(tmp_path.glob("demo-*.log")).read_text()
    noise = ["python print", "a deprecation", "native stderr", "child stdout", "child stderr"]
    assert all(n in log for n in noise), log
    assert "summary line" in log and "flow      2 videos in" in log  # the log has the console lines too
    terminal = run.stdout
    assert f"output goes to {next(tmp_path.glob('demo-*.log'))}" in terminal
    assert "summary line" in terminal and "flow      2 videos in" in terminal
    if mode == "quiet":
        assert not any(n in terminal for n in noise), terminal
        assert run.stderr == ""
        assert len(terminal.splitlines()) == 5  # where the log is, start, 1 step, end, summary
    else:
        assert all(n in terminal for n in noise), terminal


@pytest.mark.integration
def test_ray_workers_advance_the_drivers_bar_through_the_remote_handle(lines_console):
    import ray

    from tasks.runtime import init_ray
    from videolstm.config import load_config

    init_ray(load_config({"ray": {"num_cpus": 2}}))  # the integration session's instance when there is one

    @ray.remote(num_cpus=0)
    def train_two_models(handle) -> None:  # as a Ray Train worker training several models would
        handle.advance(item="lstm-rgb")
        handle.advance(status="failed", item="alstm-rgb")

    with stage_progress("train", total=3) as p:
        p.advance(status="reused")
        ray.get(train_two_models.remote(p.remote()))
    last = lines_console.getvalue().splitlines()[-1]
    assert re.search(r"train     3 models in \d+\.\d s: 1 computed, 1 reused, 1 failed$", last), last
