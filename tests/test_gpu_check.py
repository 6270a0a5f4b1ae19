"""benchmarks/gpu_check.py: the no-CUDA exit, and the CUDA branch's CPU-side parts (shapes, table,
arithmetic, each measuring function at a tiny size on the CPU) so a first GPU run does not die on a typo."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import Row, format_table, percent_of_peak, sequence_inputs


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_exits_0(capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA" in capsys.readouterr().out


def test_table_has_one_line_per_row_with_the_ratio():
    rows = [Row("TV-L1 224²", "pairs/s", "OpenCV", 4.0, "tvl1_torch cuda", 200.0), Row("x", "clips/s", "fp32", 0.0, "bf16", 1.0, "n")]
    table = format_table(rows).splitlines()
    assert len(table) == 4 and table[0].startswith("| what |")
    assert "| OpenCV 4 | tvl1_torch cuda 200 | 50.00× |" in table[2]
    assert "nan×" in table[3]  # a zero baseline gives no ratio, not a crash
    assert rows[0].ratio == 50.0 and math.isnan(rows[1].ratio)


def test_sequence_inputs_are_the_papers_pool5_snippets():
    assert sequence_inputs("convlstm", 32, 30) == {"x": (32, 30, 512, 7, 7)}
    assert sequence_inputs("convalstm", 2, 4) == {"x": (2, 4, 512, 7, 7)}
    assert sequence_inputs("videolstm", 2, 4) == {"x": (2, 4, 512, 7, 7), "flow": (2, 4, 512, 7, 7)}


def test_percent_of_peak():
    assert percent_of_peak(1e12, 2.0, 1e12) == pytest.approx(50.0)


def test_measuring_functions_run_on_cpu_at_tiny_sizes():
    cpu = torch.device("cpu")
    assert gpu_check.matmul_rate(cpu, torch.float32, 64, 1) > 0
    row = gpu_check.tvl1_row(cpu, 32, 2)
    assert row.unit == "pairs/s" and row.baseline > 0 and row.measured > 0
    loader = gpu_check.loader_row(cpu, 1, 2, appetite=1.0, iterations=1)
    assert loader.measured > 0 and loader.baseline == 1.0


def test_sequence_rows_count_flops_and_time_each_variant(monkeypatch):
    from videolstm.models import registry

    small = registry.build_model
    monkeypatch.setattr(registry, "build_model", lambda name, k, **kw: small(name, k, **{"input_channels": 16, "hidden_channels": 8, **kw}))
    monkeypatch.setattr(gpu_check, "PAPER_CHANNELS", 16)
    original = gpu_check.sequence_inputs
    monkeypatch.setattr(gpu_check, "sequence_inputs", lambda v, b, t: original(v, b, t, channels=16))
    rows, fastest = gpu_check.sequence_rows(torch.device("cpu"), 1, 2, 1, peak=1e9)
    assert [r.what.split()[0] for r in rows] == list(gpu_check.SEQUENCE_VARIANTS)
    assert all(r.baseline > 0 and r.measured > 0 and "% of the bf16 matmul rate" in r.note for r in rows)
    assert fastest == max(r.measured for r in rows)
