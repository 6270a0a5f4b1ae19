"""Attention health per epoch, read back from MLflow: the curves behind the localization figures.

Every attention model logs, per epoch on its validation videos, ``val/attention_entropy`` (mean
entropy normalised by log(h·w): 1 = uniform) and ``val/attention_in_box`` (attention mass inside
the ground-truth box) beside ``val/attention_in_box_chance`` (uniform attention's share). This
script reads those histories from a run's MLflow store (e.g. the one
``benchmarks/localization_suite.py`` writes under ``--root``), averages them over seeds per set
and model, and draws one row per set: entropy, and in-box mass as a multiple of chance (1 = no
better than uniform). It prints the last epoch's values as a Markdown table.

    .venv/bin/python benchmarks/attention_curves.py --root runs/localization_suite --out docs/attention-health.png
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

METRICS = ("val/attention_entropy", "val/attention_in_box", "val/attention_in_box_chance")

#: Curves: (model, stream) → {metric: {epoch: [value per seed]}}, per set.
Curves = dict[str, dict[tuple[str, str], dict[str, dict[int, list[float]]]]]


def read_curves(tracking_uri: str, experiment: str) -> Curves:
    """The per-epoch attention-health histories of every run of ``experiment``, by set and model."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} at {tracking_uri}; run benchmarks/localization_suite.py first")
    curves: Curves = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    # oldest first, so the sets come in the order they were run
    for run in client.search_runs([found.experiment_id], max_results=10_000, order_by=["attributes.start_time ASC"]):
        if METRICS[0] not in run.data.metrics:
            continue
        set_name = run.data.params.get("name", "?").removeprefix("suite-")
        model = (run.data.tags.get("variant", "?"), run.data.tags.get("stream", "?"))
        for metric in METRICS:
            for point in client.get_metric_history(run.info.run_id, metric):
                curves[set_name][model][metric][int(point.step)].append(float(point.value))
    return curves


def mean_curve(points: Mapping[int, Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, mean over seeds) of one metric's history."""
    epochs = np.array(sorted(points))
    return epochs, np.array([np.mean(points[e]) for e in epochs])


def last_epoch_table(curves: Curves) -> str:
    """Markdown: set | model | seeds | entropy | in box | chance | in box / chance, at the last epoch."""
    lines = ["| set | model | n | entropy | mass in box | chance | × chance |", "|:---|:---|---:|---:|---:|---:|---:|"]
    for set_name, models in curves.items():
        for (variant, stream), metrics in sorted(models.items()):
            last = max(metrics[METRICS[0]])
            entropy, inside, chance = (float(np.mean(metrics[m][last])) for m in METRICS)
            lines.append(
                f"| {set_name} | {variant} {stream} | {len(metrics[METRICS[0]][last])} | {entropy:.3f} | {inside:.3f} | {chance:.3f} | {inside / chance:.2f} |"
            )
    return "\n".join(lines)


def plot(curves: Curves, out: Path) -> None:
    """One row per set: entropy and in-box mass / chance per epoch, one line per model (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(curves)
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 2.6 * len(sets)), squeeze=False)
    for row, set_name in enumerate(sets):
        entropy_ax, mass_ax = axes[row]
        for (variant, stream), metrics in sorted(curves[set_name].items()):
            label = f"{variant} {stream}"
            epochs, entropy = mean_curve(metrics[METRICS[0]])
            entropy_ax.plot(epochs, entropy, marker="o", markersize=3, label=label)
            epochs, inside = mean_curve(metrics[METRICS[1]])
            _, chance = mean_curve(metrics[METRICS[2]])
            mass_ax.plot(epochs, inside / chance, marker="o", markersize=3, label=label)
        entropy_ax.set_ylim(0, 1.02)
        entropy_ax.set_ylabel(f"{set_name}\nentropy / log(h·w)")
        mass_ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        mass_ax.set_ylabel("mass in box / chance")
        if row == 0:
            entropy_ax.set_title("attention entropy (1 = uniform)")
            mass_ax.set_title("attention mass in the box (1 = uniform)")
            mass_ax.legend(fontsize=7, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("epoch (VideoLSTM: of its fine-tuning)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/localization_suite", help="storage root holding mlflow.db")
    parser.add_argument("--experiment", default="localization-suite")
    parser.add_argument("--out", default=None, help="PNG to write (default: <root>/attention_health.png)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if not (root / "mlflow.db").is_file():
        raise SystemExit(f"{root / 'mlflow.db'} does not exist; run benchmarks/localization_suite.py --root {args.root} first")
    curves = read_curves(f"sqlite:///{root / 'mlflow.db'}", args.experiment)
    if not curves:
        raise SystemExit(f"no run of {args.experiment!r} logged {METRICS[0]}")
    out = Path(args.out) if args.out else root / "attention_health.png"
    plot(curves, out)
    print(last_epoch_table(curves))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
