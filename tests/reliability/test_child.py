"""The hostile-input harness measures the child's own memory, not the parent's it was forked from."""

from __future__ import annotations

from tests.reliability.child import MiB, run_child


def test_a_child_forked_from_a_large_parent_reports_only_its_own_extra_memory():
    ballast = bytearray(600 * MiB)  # the parent (pytest after the integration tests) is large
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    idle = run_child("", "result = 0")
    busy = run_child("", "block = bytearray(200 * 1024 * 1024)\nblock[::4096] = b'x' * len(block[::4096])\nresult = len(block)")
    del ballast
    assert idle.ok and busy.ok, (idle.output, busy.output)
    assert idle.extra_rss < 50 * MiB, f"{idle.extra_rss_mib:.0f} MiB"
    assert 190 * MiB < busy.extra_rss < 260 * MiB, f"{busy.extra_rss_mib:.0f} MiB"
