"""Sweeps: a baseline arm and other arms, each a set of config overrides, compared over seeds.

A sweep file (YAML, read safely by :func:`videolstm.config.read_config_file`)::

    name: recipe-ablation            # results in <storage.root>/sweeps/recipe-ablation/
    seeds: [0, 1, 2, 3, 4]           # replaces train.seeds in every arm
    baseline: faithful
    base: {train.variants: [convalstm, videolstm]}   # optional: overrides every arm starts from
    arms:
      faithful: {}
      torch-init: {train.model.init: torch}
      old-optimizer: {train.optimizer: rmsprop_torch, train.clip_grad_norm: 10}
    metrics: [videolstm.rgb/test/accuracy, videolstm.rgb/loc/mAP_0.2]   # optional

Each arm is the benchmark's configuration with ``base``, then the arm's overrides (dotted keys,
the ``--set`` syntax as a mapping), then ``train.seeds`` and ``name`` applied. Every seed trains
every model of every arm on the same split and features, so an arm is compared with the
baseline *seed by seed*: the paired difference d_s = m(arm, s) − m(baseline, s) of a metric m,
its mean and Student-t 95 % interval over the seeds both ran, and the verdict of
:mod:`videolstm.evaluation.claims` for the claim "the arm is higher" (reproduced: the interval
lies above 0; not reproduced: below 0; unresolved: it contains 0 or n < 2).

Metric keys are ``<variant>.<stream>/<metric>`` (``videolstm.rgb/test/accuracy``,
``convalstm.fused/test/accuracy``, ``alstm.rgb/loc/mAP_0.2``), as the benchmark's parent run
carries them.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videolstm.config import BenchmarkConfig, ConfigError, _set_dotted, read_config_file
from videolstm.evaluation.claims import Interval, confidence_interval
from videolstm.messages import redact, short_repr, shorten

#: Metrics compared when a sweep names none: every (variant, stream) and fused pair's.
DEFAULT_METRICS = ("test/accuracy", "loc/mAP_0.2")
#: Keys a sweep sets itself; an arm may not override them.
SWEEP_OWNED_KEYS = ("train.seeds", "name")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_METRIC = re.compile(r"^[a-z0-9_]+\.[a-z]+/[A-Za-z0-9_./-]+$")


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{what} {short_repr(value)} must be 1-64 characters of letters, digits, '.', '_' or '-', starting with "
            "a letter or digit (it names a folder and MLflow runs)"
        )
    return value


class SweepSpec(BaseModel):
    """A sweep: arms of config overrides run over the same seeds, compared with the baseline arm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="sweep name: the folder <storage.root>/sweeps/<name>/ and the MLflow sweep run")
    seeds: list[int] = Field(min_length=1, description="replaces train.seeds in every arm")
    baseline: str = Field(description="the arm every other arm is compared with")
    arms: dict[str, dict[str, Any]] = Field(min_length=1, description="arm name → config overrides (dotted keys)")
    base: dict[str, Any] = Field(default_factory=dict, description="overrides applied to every arm before its own")
    metrics: list[str] | None = Field(None, description="metrics to compare (<variant>.<stream>/<metric>); empty: every test/accuracy and loc/mAP_0.2")
    description: str = Field("", description="what the sweep asks (shown at the top of sweep.md)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _check_name(value, "sweep name")

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value

    @field_validator("arms")
    @classmethod
    def _arms(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for arm, overrides in value.items():
            _check_name(arm, "arm name")
            if not isinstance(overrides, dict):
                raise ValueError(f"arm {arm!r}: overrides must be a mapping of dotted keys to values, got {short_repr(overrides)}")
            _check_overrides(overrides, f"arm {arm!r}")
        return value

    @field_validator("base")
    @classmethod
    def _base(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_overrides(value, "base")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str] | None) -> list[str] | None:
        for metric in value or ():
            if not _METRIC.match(metric):
                raise ValueError(f"metric {short_repr(metric)} must read <variant>.<stream>/<metric>, e.g. videolstm.rgb/test/accuracy")
        return value

    @model_validator(mode="after")
    def _baseline_is_an_arm(self) -> SweepSpec:
        if self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not one of the arms {sorted(self.arms)}")
        return self

    def subset(self, arms: Sequence[str]) -> SweepSpec:
        """The same sweep with only ``arms`` (the baseline always kept), in the file's order."""
        unknown = [a for a in arms if a not in self.arms]
        if unknown:
            raise ConfigError(f"sweep {self.name!r} has no arm(s) {unknown}; arms: {list(self.arms)}")
        keep = set(arms) | {self.baseline}
        return self.model_copy(update={"arms": {a: o for a, o in self.arms.items() if a in keep}})

    def arm_names(self) -> list[str]:
        """The baseline first, then the other arms in the file's order."""
        return [self.baseline] + [a for a in self.arms if a != self.baseline]


def _check_overrides(overrides: Mapping[str, Any], where: str) -> None:
    for key in overrides:
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ValueError(f"{where}: {short_repr(key)} is not a dotted config key (e.g. train.model.init)")
        if key in SWEEP_OWNED_KEYS:
            raise ValueError(f"{where}: {key} is set by the sweep itself (seeds: the sweep's `seeds`; name: <sweep>-<arm>)")


def load_sweep(source: str | Path | Mapping[str, Any]) -> SweepSpec:
    """A :class:`SweepSpec` from a YAML file or a mapping; :class:`ConfigError` names every problem."""
    origin = "mapping" if isinstance(source, Mapping) else str(source)
    data = dict(source) if isinstance(source, Mapping) else read_config_file(source)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                lines.append(f"  {shorten(where, 200)}: unknown key (a sweep file has name, seeds, baseline, arms, base, metrics, description)")
            else:
                lines.append(f"  {shorten(where, 200)}: {shorten(redact(err['msg']), 500)}")
        raise ConfigError(shorten(f"invalid sweep in {origin}:\n" + "\n".join(lines), 4000)) from None


def arm_config(config: BenchmarkConfig, sweep: SweepSpec, arm: str) -> BenchmarkConfig:
    """The benchmark configuration of ``arm``: ``config`` + the sweep's base + the arm's overrides,
    with ``train.seeds`` = the sweep's seeds and ``name`` = ``<sweep>-<arm>``.

    Raises :class:`ConfigError` naming the arm when its overrides do not validate."""
    if arm not in sweep.arms:
        raise ConfigError(f"sweep {sweep.name!r} has no arm {arm!r}; arms: {sorted(sweep.arms)}")
    data = config.model_dump(mode="json")
    try:
        for key, value in {**sweep.base, **sweep.arms[arm]}.items():
            _set_dotted(data, key, value)
    except ConfigError as exc:
        raise ConfigError(f"sweep {sweep.name!r}, arm {arm!r}: {exc}") from None
    data["train"]["seeds"] = list(sweep.seeds)
    data["name"] = f"{sweep.name}-{arm}"
    try:
        return BenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {shorten(redact(e['msg']), 300)}" for e in exc.errors(include_url=False))
        raise ConfigError(shorten(f"sweep {sweep.name!r}, arm {arm!r}: invalid overrides: {problems}", 4000)) from None


# ----------------------------------------------------------------------------------------
# statistics


def metric_values(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """{``<variant>.<stream>/<metric>``: {seed: value}} of every numeric metric in benchmark rows.

    Rows are the report's (one per model and seed: ``variant``, ``stream``, ``seed`` and metric
    keys); NaN and None are missing values; a later row of the same model and seed replaces an
    earlier one (a re-run)."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("seed") is None or row.get("variant") is None or row.get("stream") is None:
            continue
        prefix = f"{row['variant']}.{row['stream']}"
        for key, value in row.items():
            if "/" not in key or isinstance(value, (bool, str)) or value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isnan(number):
                continue
            out.setdefault(f"{prefix}/{key}", {})[int(row["seed"])] = number
    return out


def summary(values: Mapping[int, float]) -> dict[str, float | int]:
    """``{"mean", "sd", "n"}`` over seeds (sample sd, ddof 1; NaN for n < 2)."""
    x = np.asarray(list(values.values()), dtype=np.float64)
    n = int(x.size)
    return {
        "mean": float(x.mean()) if n else math.nan,
        "sd": float(x.std(ddof=1)) if n > 1 else math.nan,
        "n": n,
    }


def paired_difference(arm: Mapping[int, float], baseline: Mapping[int, float]) -> Interval:
    """Mean of arm − baseline over the seeds both have, with its Student-t 95 % interval."""
    seeds = sorted(set(arm) & set(baseline))
    return confidence_interval([arm[s] - baseline[s] for s in seeds], seeds)


def selected_metrics(sweep: SweepSpec, values_by_arm: Mapping[str, Mapping[str, Mapping[int, float]]]) -> list[str]:
    """The sweep's metrics, or every ``…/test/accuracy`` and ``…/loc/mAP_0.2`` any arm has."""
    if sweep.metrics:
        return list(sweep.metrics)
    found = {m for values in values_by_arm.values() for m in values if m.split("/", 1)[1] in DEFAULT_METRICS}
    return sorted(found)


def sweep_results(
    sweep: SweepSpec,
    rows_by_arm: Mapping[str, Sequence[Mapping[str, Any]]],
    failed: Sequence[Mapping[str, Any]] = (),
    overrides_by_arm: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``sweep.json`` document: per arm and metric mean ± sd (n) and, for every arm but the
    baseline, the paired difference against the baseline with its interval and verdict.

    ``rows_by_arm``: each finished arm's benchmark rows (an arm that failed as a whole is absent
    and listed in ``failed``); ``failed``: ``{"arm", "seed", "reason"}`` records (seed None when
    the whole arm failed)."""
    values_by_arm = {arm: metric_values(rows) for arm, rows in rows_by_arm.items()}
    metrics = selected_metrics(sweep, values_by_arm)
    base_values = values_by_arm.get(sweep.baseline, {})
    arms: dict[str, Any] = {}
    for arm in sweep.arm_names():
        entry: dict[str, Any] = {"overrides": dict((overrides_by_arm or {}).get(arm, {**sweep.base, **sweep.arms[arm]}))}
        if arm not in values_by_arm:
            entry.update(metrics={}, differences={}, finished=False)
            arms[arm] = entry
            continue
        values = values_by_arm[arm]
        entry["finished"] = True
        entry["metrics"] = {m: summary(values[m]) for m in metrics if values.get(m)}
        if arm != sweep.baseline:
            diffs = {}
            for m in metrics:
                if values.get(m) and base_values.get(m):
                    interval = paired_difference(values[m], base_values[m])
                    if interval.n:
                        diffs[m] = {"mean": interval.mean, "low": interval.low, "high": interval.high, "n": interval.n, "verdict": interval.verdict}
            entry["differences"] = diffs
        arms[arm] = entry
    return {
        "name": sweep.name,
        "baseline": sweep.baseline,
        "seeds": list(sweep.seeds),
        "metrics": metrics,
        "description": sweep.description,
        "arms": arms,
        "failed": [dict(f) for f in failed],
    }


def sweep_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics of a sweep: ``<arm>/<metric>/mean`` and ``<arm>/<metric>/diff`` (+ ``_low``, ``_high``)."""
    out: dict[str, float] = {}
    for arm, entry in results["arms"].items():
        for metric, s in entry.get("metrics", {}).items():
            out[f"{arm}/{metric}/mean"] = s["mean"]
        for metric, d in entry.get("differences", {}).items():
            out[f"{arm}/{metric}/diff"] = d["mean"]
            if not math.isnan(d["low"]):
                out[f"{arm}/{metric}/diff_low"] = d["low"]
                out[f"{arm}/{metric}/diff_high"] = d["high"]
    return {k: v for k, v in out.items() if not math.isnan(v)}


# ----------------------------------------------------------------------------------------
# rendering


def _is_percent(metric: str) -> bool:
    return "accuracy" in metric


def _value(x: float, percent: bool) -> str:
    return f"{x * 100:.1f}" if percent else f"{x:.3f}"


def _signed(x: float, percent: bool) -> str:
    return f"{x * 100:+.1f}" if percent else f"{x:+.3f}"


def format_summary(s: Mapping[str, Any], metric: str) -> str:
    """``31.2 ± 6.2 (5)`` (accuracy in percent, mAP with three decimals)."""
    p = _is_percent(metric)
    if s["n"] < 2:
        return f"{_value(s['mean'], p)} (1)"
    return f"{_value(s['mean'], p)} ± {_value(s['sd'], p)} ({s['n']})"


def format_difference(d: Mapping[str, Any], metric: str) -> str:
    """``+8.3 [−1.2, +17.8] (5)``: mean paired difference with its 95 % interval and n."""
    p = _is_percent(metric)
    if d["n"] < 2 or math.isnan(d["low"]):
        return f"{_signed(d['mean'], p)} (n={d['n']}: no interval)"
    return f"{_signed(d['mean'], p)} [{_signed(d['low'], p)}, {_signed(d['high'], p)}] ({d['n']})"


VERDICT_WORDS = {"reproduced": "higher", "not reproduced": "lower", "unresolved": "unresolved"}


def _tables(results: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    metrics = results["metrics"]
    baseline = results["baseline"]
    header = ["arm", *metrics]
    absolute = []
    for arm, entry in results["arms"].items():
        absolute.append([arm, *(format_summary(entry["metrics"][m], m) if m in entry.get("metrics", {}) else "—" for m in metrics)])
    diffs = []
    for arm, entry in results["arms"].items():
        if arm == baseline:
            continue
        cells = []
        for m in metrics:
            d = entry.get("differences", {}).get(m)
            cells.append("—" if d is None else f"{format_difference(d, m)} {VERDICT_WORDS.get(d['verdict'], d['verdict'])}")
        diffs.append([arm, *cells])
    return [
        ("Per arm: mean ± sd (n seeds)", header, absolute, "Accuracy in percent, mAP@0.2 with three decimals; sd is the sample standard deviation over seeds."),
        (
            f"Paired difference against the baseline arm '{baseline}': mean [95 % CI] (n)",
            header,
            diffs,
            "arm − baseline per seed, Student-t interval over the seeds both ran; higher / lower: the interval lies "
            "above / below 0 (claims.py: reproduced / not reproduced for 'the arm is higher'); unresolved: it contains 0.",
        ),
    ]


def _overrides_text(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(none)"


def sweep_markdown(results: Mapping[str, Any]) -> str:
    """``sweep.md``: the arms and their overrides, both tables, the failures."""
    lines = [f"# Sweep `{results['name']}`", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    lines += [f"Seeds {results['seeds']}; baseline arm `{results['baseline']}`.", "", "| arm | overrides |", "|:---|:---|"]
    for arm, entry in results["arms"].items():
        lines.append(f"| {arm} | {_overrides_text(entry['overrides']).replace('|', '/')} |")
    for title, header, body, note in _tables(results):
        lines += ["", f"### {title}", "", "| " + " | ".join(header) + " |", "|:---|" + "|".join(["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        lines += ["", note]
    if results["failed"]:
        lines += ["", "### Failed", ""]
        for f in results["failed"]:
            seed = "every seed" if f.get("seed") is None else f"seed {f['seed']}"
            lines.append(f"- arm `{f['arm']}`, {seed}: {f['reason']}")
    return "\n".join(lines) + "\n"


def sweep_html(results: Mapping[str, Any]) -> str:
    """``sweep.html``: the same content as :func:`sweep_markdown` as a standalone page (no scripts)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Sweep {esc(results['name'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "th,td{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:right}th{border-bottom:2px solid #444}"
        ".l{text-align:left}caption{font-weight:600;text-align:left}p.note{color:#555;font-size:90%}</style>",
        "</head><body>",
        f"<h1>Sweep {esc(results['name'])}</h1>",
    ]
    if results.get("description"):
        parts.append(f"<p>{esc(results['description'])}</p>")
    parts.append(f"<p>Seeds {esc(str(results['seeds']))}; baseline arm <b>{esc(results['baseline'])}</b>.</p>")
    parts.append('<table><caption>Arms</caption><tr><th class="l">arm</th><th class="l">overrides</th></tr>')
    for arm, entry in results["arms"].items():
        parts.append(f'<tr><td class="l">{esc(arm)}</td><td class="l">{esc(_overrides_text(entry["overrides"]))}</td></tr>')
    parts.append("</table>")
    for title, header, body, note in _tables(results):
        parts.append(
            f"<table><caption>{esc(title)}</caption><tr>" + "".join(f"<th{' class=l' if i == 0 else ''}>{esc(h)}</th>" for i, h in enumerate(header)) + "</tr>"
        )
        for row in body:
            parts.append("<tr>" + "".join(f"<td{' class=l' if i == 0 else ''}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>")
        parts.append(f'</table><p class="note">{esc(note)}</p>')
    if results["failed"]:
        parts.append("<h2>Failed</h2><ul>")
        for f in results["failed"]:
            seed = "every seed" if f.get("seed") is None else f"seed {f['seed']}"
            parts.append(f"<li>arm {esc(str(f['arm']))}, {esc(seed)}: {esc(str(f['reason']))}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
