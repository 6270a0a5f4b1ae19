"""Run one call on a hostile input in a child process and measure what it cost.

The child imports what the call needs, records its resident memory, caps its address space
(``RLIMIT_AS``: what it has mapped so far + ``headroom``, so a bomb fails there with a
``MemoryError`` instead of taking the shared machine's memory), runs the call, and reports as
JSON: the exception (type, its classes, message and the message's full length) or the result's
``repr``, the seconds the call took (wall clock, and CPU seconds: the bound that does not depend
on how busy the shared machine is), and its peak RSS above the RSS before the call
(``VmHWM`` of ``/proc/self/status`` after minus ``/proc/self/statm`` before). Not ``ru_maxrss``:
Linux keeps it across ``execve``, so a child forked from a pytest that has grown to 2 GiB would
report 2 GiB before doing anything. A crash (SIGSEGV) shows as a negative return code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARK = "@@CHILD-RESULT@@"
MiB = 1024**2

_TEMPLATE = """\
import json, os, resource, sys, time
{setup}
def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def _peak_rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
def _mapped():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
_limit = _mapped() + {headroom}
resource.setrlimit(resource.RLIMIT_AS, (_limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
_before = _rss()
_start = time.perf_counter()
_cpu = time.process_time()
_out = {{}}
try:
{call}
    _out.update(ok=True, result=repr(result)[:4000])
except BaseException as exc:
    _message = str(exc)
    _out.update(ok=False, type=type(exc).__name__, classes=[c.__name__ for c in type(exc).__mro__],
                message=_message[:20000], message_length=len(_message))
_out["seconds"] = time.perf_counter() - _start
_out["cpu_seconds"] = time.process_time() - _cpu
_out["extra_rss"] = _peak_rss() - _before
print("{mark}" + json.dumps(_out), flush=True)
"""


@dataclass
class ChildResult:
    returncode: int
    ok: bool
    error: str = ""
    classes: list[str] = field(default_factory=list)
    message: str = ""
    message_length: int = 0
    result: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    extra_rss: int = 0
    output: str = ""

    @property
    def extra_rss_mib(self) -> float:
        return self.extra_rss / MiB

    def raised(self, name: str) -> bool:
        return name in self.classes


def run_child(setup: str, call: str, *, headroom: int = 1024 * MiB, timeout: float = 120.0, env: dict[str, str] | None = None) -> ChildResult:
    """Run ``call`` (statements that set ``result``) after ``setup`` (imports) in a fresh interpreter."""
    code = _TEMPLATE.format(setup=textwrap.dedent(setup), call=textwrap.indent(textwrap.dedent(call), "    "), headroom=int(headroom), mark=MARK)
    child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        return ChildResult(returncode=proc.returncode, ok=False, error="no result", output=output[-4000:])
    data = json.loads(lines[-1][len(MARK) :])
    return ChildResult(
        returncode=proc.returncode,
        ok=data["ok"],
        error=data.get("type", ""),
        classes=data.get("classes", []),
        message=data.get("message", ""),
        message_length=data.get("message_length", 0),
        result=data.get("result", ""),
        seconds=data["seconds"],
        cpu_seconds=data["cpu_seconds"],
        extra_rss=data["extra_rss"],
        output=output[-4000:],
    )


def files_outside(base: Path, allowed: list[Path], before: set[Path]) -> list[str]:
    """Files under ``base`` that appeared since ``before`` and lie in none of ``allowed``."""
    allowed = [a.resolve() for a in allowed]
    found = []
    for path in base.rglob("*"):
        if path.is_dir() or path in before:
            continue
        resolved = path.resolve()
        if not any(resolved == a or a in resolved.parents for a in allowed):
            found.append(str(path.relative_to(base)))
    return sorted(found)


def snapshot(base: Path) -> set[Path]:
    return {p for p in base.rglob("*") if not p.is_dir()}
