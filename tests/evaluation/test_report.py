"""Layout of the comparison tables on a small hand-made set of rows."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest

from videolstm.evaluation.report import Cell, aggregate, comparison_html, comparison_markdown, comparison_tables, format_cell


def _rows():
    return [
        # LSTM RGB, two seeds: 0.70 and 0.74 -> mean 72.0, sample std 2.83 (sqrt(2 * 0.02^2)).
        {"variant": "lstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.70},
        {"variant": "lstm", "stream": "rgb", "seed": 1, "test/accuracy": 0.74},
        {"variant": "lstm", "stream": "flow", "seed": 0, "test/accuracy": 0.60},
        {"variant": "lstm", "stream": "fused", "seed": 0, "test/accuracy": 0.80},
        {"variant": "convnet", "stream": "rgb", "seed": 0, "test/accuracy": 0.65},
        # A re-run of ALSTM RGB seed 0 replaces the first row.
        {"variant": "alstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.10, "loc/mAP_0.2": 0.9},
        {"variant": "alstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.71, "loc/mAP_0.1": 0.2, "loc/mAP_0.2": 0.055},
        {"variant": "motion_alstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.73, "test/mean_class_accuracy": float("nan")},
        {"variant": "videolstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.79, "loc/mAP_0.2": 0.369},
        {"variant": "videolstm", "stream": "rgb", "seed": 1, "test/accuracy": 0.81, "loc/mAP_0.2": 0.371},
    ]


def test_aggregate_takes_mean_and_sample_std_over_seeds():
    cells = aggregate(_rows(), "test/accuracy")
    lstm = cells[("lstm", "rgb")]
    assert (lstm.mean, lstm.n) == (pytest.approx(0.72), 2)
    assert lstm.std == pytest.approx(math.sqrt(2 * 0.02**2))  # ddof=1: 0.0283
    assert cells[("alstm", "rgb")] == Cell(0.71, 0.0, 1)  # the re-run won
    assert ("motion_alstm", "rgb") not in aggregate(_rows(), "test/mean_class_accuracy")  # NaN = missing
    assert format_cell(lstm, percent=True) == "72.0 ± 2.8"
    assert format_cell(Cell(0.369, 0.0, 1), percent=False) == "0.369"
    assert format_cell(None, percent=True) == "—"


def test_table1_rows_and_columns_follow_the_paper():
    table1 = comparison_tables(_rows())[0]
    assert table1.header == ("Model", "RGB", "Flow", "RGB+Flow")
    # ConvNet first (present), the four core rows always, VideoLSTM last (present); no Motion ALSTM.
    assert [r[0] for r in table1.body] == ["ConvNet", "LSTM", "ALSTM", "ConvLSTM", "ConvALSTM", "VideoLSTM"]
    body = {r[0]: r[1:] for r in table1.body}
    assert body["LSTM"] == ("72.0 ± 2.8", "60.0", "80.0")
    assert body["ConvLSTM"] == ("—", "—", "—")
    assert body["VideoLSTM"] == ("80.0 ± 1.4", "—", "—")
    assert "n = 2 seeds" in table1.note and "(n=k)" in table1.note
    assert comparison_tables(_rows(), expected_seeds=2)[0].body[1][2] == "60.0 (n=1)"  # LSTM flow lacks a seed


def test_table1_without_convnet_or_videolstm_keeps_the_four_core_rows():
    rows = [{"variant": "convlstm", "stream": "flow", "seed": 0, "test/accuracy": 0.5}]
    table1 = comparison_tables(rows)[0]
    assert [r[0] for r in table1.body] == ["LSTM", "ALSTM", "ConvLSTM", "ConvALSTM"]
    assert table1.body[2] == ("ConvLSTM", "—", "50.0", "—")
    assert table1.note == "One seed per cell (n = 1)."


def test_table2_pairs_appearance_and_motion_attention():
    table2 = comparison_tables(_rows())[1]
    assert table2.header == ("Model", "Attention", "RGB", "Flow", "RGB+Flow")
    assert [r[:3] for r in table2.body] == [
        ("ALSTM", "appearance", "71.0"),
        ("Motion ALSTM", "motion", "73.0"),
        ("ConvALSTM", "appearance", "—"),
        ("VideoLSTM", "motion", "80.0 ± 1.4"),
    ]


def test_table5_lists_map_per_attention_variant_and_threshold():
    table5 = comparison_tables(_rows())[2]
    assert table5.header == ("Model", "Stream", "0.1", "0.2", "0.3", "0.4", "0.5")
    assert table5.body == (
        ("ALSTM", "RGB", "0.200", "0.055", "—", "—", "—"),
        ("Motion ALSTM", "—", "—", "—", "—", "—", "—"),
        ("ConvALSTM", "—", "—", "—", "—", "—", "—"),
        ("VideoLSTM", "RGB", "—", "0.370 ± 0.001", "—", "—", "—"),
    )


def test_markdown_renders_three_pipe_tables():
    text = comparison_markdown(_rows())
    assert text.count("### Table") == 3
    assert "| Model | RGB | Flow | RGB+Flow |" in text
    assert "|:---|---:|---:|---:|" in text  # Table 1: one label column
    assert "|:---|:---|---:|---:|---:|---:|---:|" in text  # Table 5: model and stream labels
    assert "| LSTM | 72.0 ± 2.8 | 60.0 | 80.0 |" in text
    assert "| VideoLSTM | RGB | — | 0.370 ± 0.001 | — | — | — |" in text
    # Every table line has as many cells as its header.
    for block in text.split("### ")[1:]:
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.count(" | ") for line in lines if not line.startswith("|:")}) == 1


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_holds_the_same_tables_and_escapes_names():
    rows = _rows() + [{"variant": "my<variant>", "stream": "rgb", "seed": 0, "test/accuracy": 0.5}]
    page = comparison_html(rows)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "my&lt;variant&gt;" in page and "my<variant>" not in page
    parser = _Cells()
    parser.feed(page)
    assert len(parser.tables) == 4  # Tables 1, 2, 5 and the claims
    table1 = parser.tables[0]
    assert table1[0] == ["Model", "RGB", "Flow", "RGB+Flow"]
    assert ["LSTM", "72.0 ± 2.8", "60.0", "80.0"] in table1
    assert ["my<variant>", "50.0", "—", "—"] == table1[-1]  # unknown variants go last
    expected = [list(r) for r in comparison_tables(rows)[2].body]
    assert parser.tables[2][1:] == expected


def test_claims_table_states_the_smallest_difference_each_claim_could_resolve():
    """Resolvable = the half-width of the claim's 95 % interval: t(0.975, n-1) * sd / sqrt(n) of the
    per-seed differences (here ConvLSTM − LSTM on RGB: 0.10, 0.20, 0.00 → sd 0.10, t(0.975, 2) = 4.302653)."""
    from videolstm.evaluation.report import claims_table

    rows = []
    for seed, (conv, lstm) in enumerate([(0.60, 0.50), (0.70, 0.50), (0.50, 0.50)]):
        rows += [
            {"variant": "convlstm", "stream": "rgb", "seed": seed, "test/accuracy": conv},
            {"variant": "lstm", "stream": "rgb", "seed": seed, "test/accuracy": lstm},
        ]
    table = claims_table(rows)
    column = table.header.index("Resolvable")
    half = 4.302653 * 0.10 / 3**0.5 * 100  # points
    overall = next(r for r in table.body if r[0].startswith("Convolution helps"))
    assert overall[column] == f"±{half:.1f} points"
    one_seed = claims_table(rows[:2])
    assert next(r for r in one_seed.body if r[0].startswith("Convolution"))[column] == "—"
