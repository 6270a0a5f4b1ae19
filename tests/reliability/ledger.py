"""The reliability suite's figures: inputs tried, faults injected, runs completed, items lost.

Tests call :func:`record`; this module is also a pytest plugin (listed in ``pytest_plugins`` of
tests/conftest.py) whose ``pytest_terminal_summary`` prints the totals. Fault tests elsewhere
(the training-worker kill in tests/integration/test_training.py) call :func:`record` themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

FIGURES = ("inputs tried", "faults injected", "runs completed", "items lost")


@dataclass
class Ledger:
    totals: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def record(self, what: str, inputs: int = 0, faults: int = 0, runs: int = 0, lost: int = 0) -> None:
        self.totals.update({"inputs tried": inputs, "faults injected": faults, "runs completed": runs, "items lost": lost})
        self.lines.append(f"{what}: inputs {inputs}, faults {faults}, runs {runs}, lost {lost}")


LEDGER = Ledger()


def record(what: str, inputs: int = 0, faults: int = 0, runs: int = 0, lost: int = 0) -> None:
    """Add one test's figures (``lost``: items that disappeared or were duplicated; must be 0)."""
    LEDGER.record(what, inputs=inputs, faults=faults, runs=runs, lost=lost)


def pytest_terminal_summary(terminalreporter) -> None:
    if not LEDGER.lines:
        return
    terminalreporter.section("reliability figures")
    for line in LEDGER.lines:
        terminalreporter.write_line(f"  {line}")
    terminalreporter.write_line("TOTAL: " + ", ".join(f"{name} {LEDGER.totals[name]}" for name in FIGURES))
