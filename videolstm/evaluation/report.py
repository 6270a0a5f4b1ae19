"""The comparison tables of the benchmark, laid out like the paper's.

Input: result rows, one per trained (variant, stream, seed), as flat mappings such as::

    {"variant": "videolstm", "stream": "rgb", "seed": 0,
     "test/accuracy": 0.79, "test/mean_class_accuracy": 0.78,
     "loc/mAP_0.1": 0.52, "loc/mAP_0.2": 0.37, ...}

``stream`` is ``"rgb"``, ``"flow"`` or ``"fused"`` (the two-stream product); variant names are
those of :data:`videolstm.models.VARIANTS`. The mAP keys are :func:`videolstm.evaluation.localization.map_key`.
A missing key, ``None`` or NaN is a missing value; rows repeating a (variant, stream, seed) replace
the earlier one (a re-run): a cell counts distinct models. Several seeds of a cell are shown as
mean ± sample standard deviation (ddof 1), with "(n=k)" when the cell has fewer seeds than the
run trained (a failed or missing seed is shown, never silently dropped); a cell without values
is "—".

Tables (Li et al., CVIU 2018):

- Table 1: accuracy of LSTM, ALSTM, ConvLSTM, ConvALSTM (plus ConvNet first and VideoLSTM last
  when present, then any other variant present except Motion ALSTM) on RGB / Flow / RGB+Flow.
- Table 2: appearance vs motion-based attention: ALSTM vs Motion ALSTM, ConvALSTM vs VideoLSTM.
- Table 5: localization video mAP at each IoU threshold, per attention variant and stream.
- Claims: each of the paper's claims decided from paired comparisons over seeds
  (:mod:`videolstm.evaluation.claims`), with the mean difference and its 95 % interval.

Accuracies are printed in percent with one decimal (as in the paper), mAP with three decimals.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ATTENTION_VARIANTS",
    "STREAMS",
    "VARIANT_NAMES",
    "Cell",
    "Table",
    "aggregate",
    "comparison_html",
    "comparison_markdown",
    "comparison_tables",
    "display_name",
    "format_cell",
]

#: Display names in the paper's spelling, in the paper's order.
VARIANT_NAMES: dict[str, str] = {
    "convnet": "ConvNet",
    "lstm": "LSTM",
    "alstm": "ALSTM",
    "convlstm": "ConvLSTM",
    "convalstm": "ConvALSTM",
    "motion_alstm": "Motion ALSTM",
    "videolstm": "VideoLSTM",
}
#: Stream keys and their column titles.
STREAMS: tuple[tuple[str, str], ...] = (("rgb", "RGB"), ("flow", "Flow"), ("fused", "RGB+Flow"))
#: Variants with an attention map (the ones localization applies to), Table 5's order.
ATTENTION_VARIANTS: tuple[str, ...] = ("alstm", "motion_alstm", "convalstm", "videolstm")

MISSING = "—"
_TABLE1_CORE = ("lstm", "alstm", "convlstm", "convalstm")
_TABLE2_PAIRS = (
    ("alstm", "appearance"),
    ("motion_alstm", "motion"),
    ("convalstm", "appearance"),
    ("videolstm", "motion"),
)
_MAP_KEY = re.compile(r"^loc/mAP_([0-9.]+)$")
_DEFAULT_MAP_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
_METRIC_TITLES = {"test/accuracy": "top-1 accuracy", "test/mean_class_accuracy": "mean class accuracy"}


@dataclass(frozen=True)
class Cell:
    """Summary of one metric over the seeds of one (variant, stream): n = 0 means missing."""

    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class Table:
    """A rendered-independent table: ``header`` and ``body`` hold display strings."""

    title: str
    header: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    note: str
    text_columns: int = 1  # leading label columns (left-aligned); the rest are numbers


def display_name(variant: str) -> str:
    """The paper's spelling of a variant name (``motion_alstm`` -> ``Motion ALSTM``)."""
    return VARIANT_NAMES.get(variant, variant)


def _value(row: Mapping[str, Any], metric: str) -> float | None:
    value = row.get(metric)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _dedupe(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Later rows with the same (variant, stream, seed) replace earlier ones; no seed: kept."""
    keyed: dict[Any, Mapping[str, Any]] = {}
    for i, row in enumerate(rows):
        seed = row.get("seed")
        key = (str(row.get("variant")), str(row.get("stream")), str(seed)) if seed is not None else ("#", i)
        keyed[key] = row
    return list(keyed.values())


def aggregate(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[tuple[str, str], Cell]:
    """``{(variant, stream): Cell}`` of ``metric`` over seeds (cells without values omitted)."""
    values: dict[tuple[str, str], list[float]] = {}
    for row in _dedupe(rows):
        value = _value(row, metric)
        if value is not None:
            values.setdefault((str(row["variant"]), str(row["stream"])), []).append(value)
    out = {}
    for key, vals in values.items():
        arr = np.asarray(vals)
        out[key] = Cell(float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size))
    return out


def format_cell(cell: Cell | None, percent: bool, expected: int | None = None) -> str:
    """``"77.5 ± 1.2"`` (percent) or ``"0.369 ± 0.012"``; one seed: no ±; missing: "—";
    ``" (n=2)"`` appended when the cell has fewer seeds than ``expected``."""
    if cell is None or cell.n == 0:
        return MISSING
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{cell.mean * scale:.{digits}f}"
    if cell.n > 1:
        text += f" ± {cell.std * scale:.{digits}f}"
    if expected is not None and cell.n < expected:
        text += f" (n={cell.n})"
    return text


def _seed_note(cells: Iterable[Cell | None], expected: int | None = None) -> str:
    counts = sorted({c.n for c in cells if c is not None and c.n > 0})
    if not counts:
        return "No results yet."
    top = expected or counts[-1]
    if top == 1:
        return "One seed per cell (n = 1)."
    short = " Cells marked (n=k) lack a seed: see the missing results below." if counts[0] < top else ""
    return f"Mean ± sample std over n = {top} seeds (independent replicates), distinct models per cell.{short}"


def _map_thresholds(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    found = {float(m.group(1)) for row in rows for key in row if (m := _MAP_KEY.match(str(key)))}
    return sorted(found | set(_DEFAULT_MAP_THRESHOLDS))


def comparison_tables(
    rows: Iterable[Mapping[str, Any]],
    metric: str = "test/accuracy",
    expected_seeds: int | None = None,
    missing: Sequence[tuple[str, str]] = (),
) -> list[Table]:
    """Tables 1, 2, 5 and the claims as :class:`Table` objects (the renderers below print them).

    ``expected_seeds``: how many seeds the run trained (cells with fewer are marked);
    ``missing``: (model, reason) of models that failed or are absent, listed in a last table.
    """
    rows = _dedupe(rows)
    n = expected_seeds
    percent = "accuracy" in metric
    what = _METRIC_TITLES.get(metric, metric) + (" (%)" if percent else "")
    cells = aggregate(rows, metric)
    present = {variant for variant, _ in cells}
    stream_titles = tuple(title for _, title in STREAMS)

    # Table 1
    order = [v for v in ("convnet",) if v in present] + list(_TABLE1_CORE) + [v for v in ("videolstm",) if v in present]
    order += sorted(v for v in present if v not in VARIANT_NAMES)
    body1 = tuple((display_name(v), *(format_cell(cells.get((v, s)), percent, n) for s, _ in STREAMS)) for v in order)
    table1 = Table(
        title=f"Table 1. LSTM architectures, {what}",
        header=("Model", *stream_titles),
        body=body1,
        note=_seed_note((cells.get((v, s)) for v in order for s, _ in STREAMS), n),
    )

    # Table 2
    body2 = tuple((display_name(v), kind, *(format_cell(cells.get((v, s)), percent, n) for s, _ in STREAMS)) for v, kind in _TABLE2_PAIRS)
    table2 = Table(
        title=f"Table 2. Appearance vs motion-based attention, {what}",
        header=("Model", "Attention", *stream_titles),
        body=body2,
        note=_seed_note((cells.get((v, s)) for v, _ in _TABLE2_PAIRS for s, _ in STREAMS), n),
        text_columns=2,
    )

    # Table 5
    thresholds = _map_thresholds(rows)
    map_cells = {t: aggregate(rows, f"loc/mAP_{t:g}") for t in thresholds}
    body5 = []
    all_map_cells: list[Cell | None] = []
    for v in ATTENTION_VARIANTS:
        streams = [s for s, _ in STREAMS if any((v, s) in map_cells[t] for t in thresholds)]
        streams += sorted({s for t in thresholds for (var, s) in map_cells[t] if var == v} - set(streams))
        if not streams:
            body5.append((display_name(v), MISSING, *(MISSING for _ in thresholds)))
            continue
        for s in streams:
            row_cells = [map_cells[t].get((v, s)) for t in thresholds]
            all_map_cells += row_cells
            title = dict(STREAMS).get(s, s)
            body5.append((display_name(v), title, *(format_cell(c, percent=False, expected=n) for c in row_cells)))
    table5 = Table(
        title="Table 5. Localization, video mAP at spatio-temporal IoU",
        header=("Model", "Stream", *(f"{t:g}" for t in thresholds)),
        body=tuple(body5),
        note=_seed_note(all_map_cells, n),
        text_columns=2,
    )
    tables = [table1, table2, table5, claims_table(rows)]
    if missing:
        tables.append(
            Table(
                title="Missing results (failed or absent models; the cells above count only the models that finished)",
                header=("Model", "Reason"),
                body=tuple((m, r) for m, r in missing),
                note="",
                text_columns=2,
            )
        )
    return tables


def _difference(value: float, percent: bool) -> str:
    return f"{value * 100:+.1f}" if percent else f"{value:+.3f}"


def claims_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Each paper claim: its paired comparisons over seeds, mean difference with 95 % CI, verdict."""
    from videolstm.evaluation.claims import evaluate_claims

    body = []
    for result in evaluate_claims(rows):
        percent = "accuracy" in result.claim.comparisons[0].metric
        unit = " points" if percent else ""

        def ci(interval) -> str:
            if interval.n < 2:
                return f"{_difference(interval.mean, percent)}{unit} (one seed: no interval)"
            return f"{_difference(interval.mean, percent)}{unit} [{_difference(interval.low, percent)}, {_difference(interval.high, percent)}]"

        def resolvable(interval) -> str:
            half = resolvable_difference(interval)
            return "—" if math.isnan(half) else f"±{_difference(half, percent)[1:]}{unit}"

        body.append(
            (
                result.claim.statement,
                "all comparisons, averaged per seed",
                ci(result.overall),
                resolvable(result.overall),
                str(result.overall.n),
                result.overall.verdict.upper(),
            )
        )
        for comparison, interval in result.parts:
            (bv, bs), (wv, ws) = comparison.better, comparison.worse
            body.append(("", f"{display_name(bv)} {bs} − {display_name(wv)} {ws}", ci(interval), resolvable(interval), str(interval.n), interval.verdict))
    return Table(
        title="Claims of the paper, paired over seeds (difference of the better-claimed model minus the other)",
        header=("Claim", "Comparison", "Mean difference [95 % CI]", "Resolvable", "n", "Verdict"),
        body=tuple(body),
        note="Student-t interval of the mean paired difference over seeds; reproduced: interval above 0, "
        "not reproduced: below 0, unresolved: contains 0 (or one seed). Resolvable: the half-width of the "
        "interval, the smallest true difference this run could have told from 0 (with the observed spread).",
        text_columns=6,
    )


def resolvable_difference(interval) -> float:
    """Half-width of a claim's 95 % interval: the smallest mean difference the run could resolve
    (NaN with fewer than two seeds)."""
    if interval.n < 2 or math.isnan(interval.low):
        return math.nan
    return (interval.high - interval.low) / 2


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def comparison_markdown(
    rows: Iterable[Mapping[str, Any]],
    metric: str = "test/accuracy",
    expected_seeds: int | None = None,
    missing: Sequence[tuple[str, str]] = (),
) -> str:
    """Tables 1, 2, 5 and the claims as GitHub-flavoured Markdown (one ``###`` heading per table)."""
    parts = []
    for table in comparison_tables(rows, metric, expected_seeds, missing):
        lines = [f"### {table.title}", ""]
        lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
        numbers = len(table.header) - table.text_columns
        lines.append("|" + "|".join([":---"] * table.text_columns + ["---:"] * numbers) + "|")
        for row in table.body:
            lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
        if table.note:
            lines += ["", table.note]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 0.3em}caption{font-weight:600;text-align:left;padding:0.3em 0}
th,td{padding:0.3em 0.9em;border-bottom:1px solid #ccc}th{border-bottom:2px solid #444}
th,td{text-align:right}.label{text-align:left}td.missing{color:#999}p.note{color:#555;font-size:90%}"""


def comparison_html(
    rows: Iterable[Mapping[str, Any]],
    metric: str = "test/accuracy",
    title: str = "VideoLSTM benchmark",
    expected_seeds: int | None = None,
    missing: Sequence[tuple[str, str]] = (),
) -> str:
    """Tables 1, 2, 5 and the claims as a standalone HTML page (inline CSS, no scripts)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for table in comparison_tables(rows, metric, expected_seeds, missing):
        parts.append(f"<table><caption>{esc(table.title)}</caption>")

        def klass(i: int, text: str) -> str:
            names = (["label"] if i < table.text_columns else []) + (["missing"] if text == MISSING else [])
            return f' class="{" ".join(names)}"' if names else ""

        parts.append("<thead><tr>" + "".join(f"<th{klass(i, h)}>{esc(h)}</th>" for i, h in enumerate(table.header)) + "</tr></thead><tbody>")
        for row in table.body:
            parts.append("<tr>" + "".join(f"<td{klass(i, c)}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>")
        parts.append(f'</tbody></table><p class="note">{esc(table.note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
