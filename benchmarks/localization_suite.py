"""Localization on synthetic sets it was not tuned on, calibrated (a script, not a test).

Runs the pipeline's own stages (dataset → flow → frame CNNs → features → every attention variant →
evaluation with its calibration rows; no Prefect) on each set of :data:`SETS`, for several
training seeds, and prints one table: set × model → video mAP@0.2 (mean ± sd over seeds), with the
oracle, uniform, centre and motion rows (:mod:`videolstm.evaluation.calibration`), then the same given
the class, then the attention health of each exported model (entropy and mass in the box at the
checkpoint kept, :mod:`videolstm.evaluation.attention_health`). Everything also lands in one
MLflow experiment (``localization-suite``, SQLite under ``--root``) and in
``<root>/localization_suite.json``.

    .venv/bin/python benchmarks/localization_suite.py                      # the full study: 5 sets × 3 seeds
    .venv/bin/python benchmarks/localization_suite.py --tiny --epochs 1 --seeds 0 1   # a smoke run
    .venv/bin/python benchmarks/localization_suite.py --set train.epochs=20 --root runs/suite-e20   # an experiment
    .venv/bin/python benchmarks/localization_suite.py --oracle-only        # the oracle alone, no training (seconds)
    .venv/bin/python benchmarks/localization_suite.py --oracle-only --sigma 0 0.5 --grid 7 14
    .venv/bin/python benchmarks/localization_suite.py --oracle-only --sets embedded \
        --ucf101-24 videolstm/data/datasets/metadata/ucf101_24/pyannot.pkl videolstm/data/datasets/metadata/ucf101_24/testlist01.txt

Seeds: ``train.seeds`` (one run per set trains every seed: its own frame CNNs, features and
models; VideoLSTM is assembled and fine-tuned as the pipeline does). Stages are cached by lineage
under ``--root``, so a re-run only computes what changed.

``--oracle-only`` renders each set's test videos (no files), turns the ground truth into oracle
maps at each ``--grid`` resolution and runs them through the box pipeline at each ``--sigma``:
what the box pipeline itself can reach, per set — for choosing the sets and for measuring the
feature resolution and smoothing (issue 13, part 4).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from flows.cli import parse_override
from videolstm.config import BenchmarkConfig, LocalizationConfig, SyntheticConfig, TrainConfig, load_config
from videolstm.evaluation.calibration import CALIBRATION_ROWS, mean_sd

#: The suite: each set changes what the embedded set fixes (overrides of ``dataset.synthetic``).
SETS: dict[str, dict[str, Any]] = {
    # the embedded default: 112×112, 36 frames, 8 classes, class colour styles, 3 static look-alikes
    "embedded": {},
    # UCF101's shape: non-square 160×120, 24 frames (≤ 30), 6 classes, no appearance cue
    "ucf-shape": {"height": 120, "width": 160, "frames": 24, "num_classes": 6, "appearance_cue": 0.0},
    # two of the three look-alikes wander: "what moves" no longer singles out the actor
    "moving-distractors": {"moving_distractors": 2},
    # camera shake (every pixel moves) over a cluttered background, 4:3 frames
    "shaky-cluttered": {"height": 96, "width": 128, "camera_jitter": 0.01, "background_clutter": 0.3},
    # smaller actors (0.15 of the short side, about one attention cell), longer videos (48 frames)
    "small-actors": {"actor_size": 0.15, "frames": 48},
}

#: Sets that probe a limit of the box pipeline itself (not in the default run; ``--sets`` runs them).
#: Small actors that shake (10 classes bring ShakeHorizontal/Vertical: 4-7-frame oscillations in
#: place): LOWESS over 30 % of a 48-frame tube averages their boxes onto the centre, and with
#: 7×7 maps at σ 0.5 cell the oracle reaches mAP@0.2 0.86 only (12 classes at the default actor
#: size: 1.0) — see ``--oracle-only``.
DIAGNOSTIC_SETS: dict[str, dict[str, Any]] = {
    "small-shaking-actors": {"actor_size": 0.15, "num_classes": 10, "frames": 48},
    "all-classes": {"num_classes": 12},
    # issue 21: the shapes of real UCF101-24 videos (small actors at 160×120, late starts; --early-end: early ends)
    "ucf-small-actors": {"height": 120, "width": 160, "frames": 24, "num_classes": 6, "appearance_cue": 0.0, "actor_size": 0.12, "late_start_fraction": 0.5},
    "ucf-320x240": {"height": 240, "width": 320, "frames": 48, "num_classes": 6, "appearance_cue": 0.0, "actor_size": 0.12, "late_start_fraction": 0.5},
    # issue 21 part 3: two actors of the video's class in every video
    "two-actors": {"height": 120, "width": 160, "frames": 24, "num_classes": 6, "appearance_cue": 0.0, "actors": 2},
}

#: The variants with attention (the only ones that localize), on both streams.
ATTENTION_VARIANTS = ["alstm", "convalstm", "motion_alstm", "videolstm"]

#: Smoke-run sizes: a few videos, small networks (the sets keep their frame size and shape).
TINY_SYNTHETIC = {"num_classes": 3, "videos_per_class": 6, "max_frames": 16}
TINY_SECTIONS: dict[str, Any] = {
    "flow": {"method": "dis", "dis_preset": "ultrafast", "height": 28, "width": 28, "workers": 1},
    "frame_cnn": {"channels": [4, 8], "fc_dim": 16, "flow_stack": 2, "epochs": 1, "batch_size": 16, "frames_per_video": 4},
    "train": {"batch_size": 4, "snippet_length": 8, "model": {"hidden_channels": 4, "lstm_hidden": 8, "fc_dim": 8}},
    "evaluate": {"num_segments": 2, "segment_length": 8},
}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, Mapping) else value
    return out


def set_config(name: str, tiny: bool) -> dict[str, Any]:
    """The ``dataset.synthetic`` mapping of set ``name`` (shrunk for a smoke run)."""
    synthetic = dict({**SETS, **DIAGNOSTIC_SETS}[name])
    if tiny:
        frames = synthetic.get("frames", SyntheticConfig().frames)
        synthetic.update({k: v for k, v in TINY_SYNTHETIC.items() if k != "max_frames"})
        synthetic["frames"] = min(frames, TINY_SYNTHETIC["max_frames"])
    SyntheticConfig.model_validate(synthetic)  # a bad set fails here, before any work
    return synthetic


def run_configs(name: str, args: argparse.Namespace) -> list[BenchmarkConfig]:
    """The configuration(s) of set ``name``: one, training every seed of ``--seeds`` (``train.seeds``)."""
    base: dict[str, Any] = {
        "name": f"suite-{name}",
        "dataset": {"kind": "synthetic", "synthetic": set_config(name, args.tiny)},
        "storage": {"root": str(Path(args.root).resolve())},
        "train": {"variants": list(args.variants), "epochs": args.epochs},
        "mlflow": {"experiment": "localization-suite", "register_models": False},
        "ray": {"num_cpus": args.cpus},
    }
    if args.tiny:
        base = _merge(TINY_SECTIONS, base)
    for text in args.set:  # e.g. --set train.model.attention_inverse_temperature=2 (part 4's experiments)
        key, value = parse_override(text)
        node = base
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[key.split(".")[-1]] = value
    return [load_config(_merge(base, {"train": {"seeds": list(args.seeds)}}))]  # one run trains every seed


def run_pipeline(config: BenchmarkConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every stage up to the evaluation; returns (evaluation rows, health rows of the exported models)."""
    from tasks.dataset import run_dataset
    from tasks.evaluate import run_evaluate
    from tasks.features import run_features
    from tasks.frames_flow import run_frames_flow
    from tasks.train import parse_model_name, run_finetune, run_frame_cnn, run_train
    from videolstm.store.checkpoint import load_checkpoint
    from videolstm.store.manifest import read_manifest

    index = run_dataset(config)
    frames_flow = run_frames_flow(config, index)
    frame_cnn = run_frame_cnn(config, index, frames_flow)
    features = run_features(config, frames_flow, frame_cnn)
    trained = run_train(config, features)
    finetuned = run_finetune(config, features, trained)
    evaluated = run_evaluate(config, index, frames_flow, features, frame_cnn, trained, finetuned)
    health = []
    for stage in (trained, finetuned):
        for item in read_manifest(stage.manifest_uri, config.storage):
            if not item.ok:
                continue
            metrics = load_checkpoint(item.shard, config.storage).get("metrics", {})
            if "val/attention_entropy" not in metrics:
                continue  # no attention (or no validation)
            variant, stream, seed = parse_model_name(item.video_id)
            health.append(
                {
                    "variant": variant,
                    "stream": stream,
                    "seed": seed,
                    "epoch": item.counts.get("epoch"),
                    **{k: float(v) for k, v in metrics.items() if k.startswith("val/")},
                }
            )
    return list(evaluated.extra.get("rows", [])), health


# --------------------------------------------------------------------------------------------
# tables


def _model_label(variant: str, stream: str) -> str:
    from videolstm.evaluation.report import display_name

    return f"{display_name(variant)} {'RGB' if stream == 'rgb' else 'Flow'}"


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]


def suite_table(results: Mapping[str, Sequence[Mapping[str, Any]]], threshold: float = 0.2, given_class: bool = False) -> str:
    """Markdown: one row per model (``loc/mAP_<θ>``, or ``loc/learned/...`` given the class) and the
    oracle, uniform, centre and motion rows (given the class, pooled over the models), one column per set."""
    key = f"mAP_{threshold:g}"
    sets = list(results)
    models = sorted(
        {(r["variant"], r["stream"]) for rows in results.values() for r in rows if f"loc/{key}" in r},
        key=lambda m: (ATTENTION_VARIANTS.index(m[0]) if m[0] in ATTENTION_VARIANTS else 99, m[1]),
    )
    lines = ["| model | " + " | ".join(sets) + " |", "|:---|" + "---:|" * len(sets)]
    for variant, stream in models:
        metric = f"loc/learned/{key}" if given_class else f"loc/{key}"
        cells = [mean_sd(_values([r for r in results[s] if (r["variant"], r["stream"]) == (variant, stream)], metric)) for s in sets]
        lines.append(f"| {_model_label(variant, stream)} | " + " | ".join(cells) + " |")
    for baseline in CALIBRATION_ROWS[1:]:
        cells = [mean_sd(_values(results[s], f"loc/{baseline}/{key}")) for s in sets]
        lines.append(f"| *{baseline}* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_table(results: Mapping[str, Sequence[Mapping[str, Any]]], rows: Sequence[str] = ("learned", "oracle", "motion", "uniform")) -> str:
    """Markdown: per model and set, its whole-video accuracy under each attention of ``rows``
    (``loc/<row>/video_accuracy``, mean over seeds): does the trained classifier gain from
    attention on the actor (oracle) or on what moves (motion) over its own?"""
    sets = list(results)
    models = sorted(
        {(r["variant"], r["stream"]) for rs in results.values() for r in rs if "loc/learned/video_accuracy" in r},
        key=lambda m: (ATTENTION_VARIANTS.index(m[0]) if m[0] in ATTENTION_VARIANTS else 99, m[1]),
    )
    lines = ["| model | " + " | ".join(f"{s}: {' / '.join(rows)}" for s in sets) + " |", "|:---|" + "---:|" * len(sets)]
    for variant, stream in models:
        cells = []
        for s in sets:
            mine = [r for r in results[s] if (r["variant"], r["stream"]) == (variant, stream)]
            values = [_values(mine, f"loc/{row}/video_accuracy") for row in rows]
            cells.append(" / ".join(f"{np.mean(v):.2f}" if v else "—" for v in values))
        lines.append(f"| {_model_label(variant, stream)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def health_table(health: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Markdown: per model and set, the exported checkpoint's attention entropy and in-box mass (chance)."""
    sets = list(health)
    models = sorted({(r["variant"], r["stream"]) for rows in health.values() for r in rows if "val/attention_entropy" in r})
    lines = ["| model | " + " | ".join(sets) + " |", "|:---|" + "---:|" * len(sets)]
    for variant, stream in models:
        cells = []
        for s in sets:
            rows = [r for r in health[s] if (r["variant"], r["stream"]) == (variant, stream)]
            entropy = _values(rows, "val/attention_entropy")
            inside, chance = _values(rows, "val/attention_in_box"), _values(rows, "val/attention_in_box_chance")
            cell = f"H {np.mean(entropy):.3f}" if entropy else "—"
            if inside:
                cell += f", in box {np.mean(inside):.3f} (chance {np.mean(chance):.3f})"
            cells.append(cell)
        lines.append(f"| {_model_label(variant, stream)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the oracle alone


def oracle_columns(args: argparse.Namespace) -> list[tuple[str, LocalizationConfig]]:
    """The ``--oracle-only`` columns: one box-pipeline configuration per grid × sigma × box method × tubes."""
    columns = []
    for grid in args.grid:
        for sigma in args.sigma:
            for method in args.box_method:
                for tubes in args.max_tubes:
                    config = LocalizationConfig(sigma=sigma, box_method=method, max_tubes=tubes, temporal_extent=args.temporal_extent)
                    label = f"{grid}×{grid}, {method}" + (f" σ {sigma:g}" if method == "paper" else "") + (f", {tubes} tubes" if tubes > 1 else "")
                    columns.append((label, config, grid))
    return columns


def _oracle_cell(
    truth: Mapping[str, list[Any]],
    num_steps: Mapping[str, int],
    size: tuple[int, int],
    num_classes: int,
    config: LocalizationConfig,
    grid: int,
    threshold: float,
) -> str:
    """The oracle's mAP@θ / @0.5, and the same with the whole-video tube in brackets: the calibration's oracle and
    oracle_video rows (every actor rendered, tubes ranked by a model-free score)."""
    from videolstm.evaluation.calibration import reference_attention
    from videolstm.evaluation.scoring import localization_metrics

    labels = {v: tubes[0].label for v, tubes in truth.items()}
    scores = {v: np.eye(num_classes)[labels[v]] for v in truth}
    attention = {v: reference_attention("oracle", num_steps[v], (grid, grid), config, truth[v], size) for v in truth}
    sizes = {v: size for v in truth}
    cells = []
    for extent in (config, config.model_copy(update={"temporal_extent": "video"})):
        metrics, _, _ = localization_metrics(attention, scores, labels, truth, sizes, extent, given_class=True)
        cells.append(f"{metrics[f'loc/mAP_{threshold:g}']:.3f} / {metrics['loc/mAP_0.5']:.3f}")
    return f"{cells[0]} ({cells[1]})"


def synthetic_truth(synthetic: SyntheticConfig, early_end: bool) -> dict[str, list[Any]]:
    """video → its annotated tubes (every actor), split-1 test videos, rendered (no files); with ``early_end``
    every other video's tubes end a quarter of the video early (the generator's run to the last frame)."""
    from videolstm.data.datasets.synthetic import render_video, split_groups
    from videolstm.evaluation.localization import GroundTruthTube

    truth: dict[str, list[Any]] = {}
    for label in range(synthetic.num_classes):
        for video in split_groups(synthetic.videos_per_class, synthetic.test_fraction, 1):
            rendered = render_video(synthetic, label, video)
            tubes = []
            for xywh in (rendered.boxes, rendered.other_actor_boxes):
                if not len(xywh):
                    continue
                xywh = xywh.astype(np.float64)
                boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                frames = np.arange(rendered.sf, synthetic.frames)
                if early_end and video % 2 == 0:
                    keep = len(frames) - max(1, len(frames) // 4)
                    frames, boxes = frames[:keep], boxes[:keep]
                tubes.append(GroundTruthTube(label, frames, boxes))
            truth[f"{label}/{video}"] = tubes
    return truth


def oracle_only(args: argparse.Namespace) -> None:
    """The oracle's video mAP per set and box-pipeline configuration, on each set's split-1 test videos (no training)."""
    columns = oracle_columns(args)
    print(
        f"Oracle attention through the box pipeline, video mAP@{args.threshold:g} / @0.5 (given the class, tubes ranked "
        f"by a model-free score; temporal extent {args.temporal_extent}; in brackets the whole-video tube), split-1 test "
        f"videos of each set{' with every other tube ending a quarter early' if args.early_end else ''}\n"
    )
    print("| set | " + " | ".join(label for label, _, _ in columns) + " |")
    print("|:---|" + "---:|" * len(columns))
    for name in args.sets:
        synthetic = SyntheticConfig.model_validate(set_config(name, args.tiny))
        size = (synthetic.height, synthetic.width)
        truth = synthetic_truth(synthetic, args.early_end)
        steps = {v: synthetic.frames for v in truth}
        cells = [_oracle_cell(truth, steps, size, synthetic.num_classes, config, grid, args.threshold) for _, config, grid in columns]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.ucf101_24:
        truth, labels, numf = ucf101_24_truth(args)
        num_classes = max(labels.values()) + 1
        print(
            f"| UCF101-24 ({len(truth)} test videos) | "
            + " | ".join(_oracle_cell(truth, numf, (240, 320), num_classes, config, grid, args.threshold) for _, config, grid in columns)
            + " |"
        )
        everything, _, all_numf = ucf101_24_truth(argparse.Namespace(**{**vars(args), "max_videos": None}))
        several = sum(len(tubes) > 1 for tubes in everything.values())
        total = sum(len(tubes) for tubes in everything.values())
        partial = sum(int(t.frames[0]) > 0 or int(t.frames[-1]) < all_numf[v] - 1 for v, tubes in everything.items() for t in tubes)
        print(f"\nUCF101-24 test list: {partial} of the {total} tubes start after the first or end before the last frame")
        print(
            f"\nUCF101-24 test list: {len(everything)} videos, {total} tubes, {several} videos with several tubes: "
            f"one tube per video can match at most {len(everything)} of the {total} tubes ({len(everything) / total:.0%})"
        )


def ucf101_24_truth(args: argparse.Namespace) -> tuple[dict[str, list[Any]], dict[str, int], int]:
    """(video → tubes, video → label, numf) of the videos of ``--ucf101-24 PICKLE TESTLIST``
    (every k-th one with ``--max-videos``); ``numf`` per video in the third item's place: a dict."""
    from videolstm.data.datasets.ucf101_24 import read_ucf101_24

    pickle_uri, testlist = args.ucf101_24
    annotations = read_ucf101_24(pickle_uri)
    names = [line.strip().rsplit(".", 1)[0] for line in Path(testlist).read_text().splitlines() if line.strip()]
    videos = [v for v in dict.fromkeys(names) if v in annotations]
    if args.max_videos and len(videos) > args.max_videos:
        videos = videos[:: math.ceil(len(videos) / args.max_videos)]
    return ({v: annotations[v].tubes for v in videos}, {v: annotations[v].label for v in videos}, {v: annotations[v].numf for v in videos})


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=[*SETS, *DIAGNOSTIC_SETS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=ATTENTION_VARIANTS)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--tiny", action="store_true", help="smoke run: 3 classes × 6 videos, ≤ 16 frames, small networks")
    parser.add_argument("--root", default="runs/localization_suite", help="storage root (stages are cached here)")
    parser.add_argument("--cpus", type=int, default=None, help="Ray CPUs (default: all)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for every set (repeatable, dotted keys, YAML values), as videolstm --set",
    )
    parser.add_argument("--threshold", type=float, default=0.2, help="IoU of the mAP in the tables")
    parser.add_argument("--oracle-only", action="store_true", help="the oracle through the box pipeline, no training")
    parser.add_argument("--grid", nargs="+", type=int, default=[7], help="--oracle-only: attention grid sizes")
    parser.add_argument("--sigma", nargs="+", type=float, default=[LocalizationConfig().sigma], help="--oracle-only: sigmas (cells, box method paper)")
    parser.add_argument("--box-method", nargs="+", default=[LocalizationConfig().box_method], choices=["extent", "paper"], help="--oracle-only: box methods")
    parser.add_argument("--max-tubes", nargs="+", type=int, default=[1], help="--oracle-only: tubes per video")
    parser.add_argument(
        "--temporal-extent",
        default=LocalizationConfig().temporal_extent,
        choices=["boxes", "evidence", "video"],
        help="--oracle-only: the tube's frames (the bracketed figures: always the whole video)",
    )
    parser.add_argument("--early-end", action="store_true", help="--oracle-only: every other synthetic tube ends a quarter early")
    parser.add_argument(
        "--ucf101-24", nargs=2, metavar=("PICKLE", "TESTLIST"), help="--oracle-only: also the real UCF101-24 ground truth (pyannot.pkl and its test list)"
    )
    parser.add_argument("--max-videos", type=int, default=None, help="--ucf101-24: every k-th test video, about this many")
    args = parser.parse_args()
    if args.oracle_only:
        oracle_only(args)
        return
    for key, value in {"RAY_AUTH_MODE": "disabled", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results: dict[str, list[dict[str, Any]]] = {}
    health: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for name in args.sets:
        results[name], health[name] = [], []
        for config in run_configs(name, args):
            t0 = time.perf_counter()
            rows, healthy = run_pipeline(config)
            results[name] += rows
            health[name] += healthy
            print(f"[{name}, seeds {config.train.seeds}] {len(rows)} models evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    out = Path(args.root) / "localization_suite.json"
    out.write_text(
        json.dumps(
            {
                "sets": {n: set_config(n, args.tiny) for n in args.sets},
                "seeds": args.seeds,
                "epochs": args.epochs,
                "tiny": args.tiny,
                "rows": results,
                "health": health,
            },
            indent=1,
            default=float,
        )
    )
    seeds = ", ".join(map(str, args.seeds))
    print(
        f"\nLocalization suite{' (tiny smoke run)' if args.tiny else ''}: video mAP@{args.threshold:g}, mean ± sd over "
        f"seeds {seeds}, {args.epochs} epoch(s); learned rows with the predicted class (the paper's protocol), "
        f"oracle / uniform / centre / motion given the class (pooled over the models)\n"
    )
    print(suite_table(results, args.threshold))
    print("\nThe same, every row given the class (localization alone):\n")
    print(suite_table(results, args.threshold, given_class=True))
    print(
        "\nWhole-video accuracy of each model under its own (learned), the oracle's, the motion and uniform attention "
        "(mean over seeds): a classifier that does not gain from the oracle has no reason to learn to localize\n"
    )
    print(accuracy_table(results))
    print(
        "\nAttention health of the exported checkpoints (validation centre snippets): normalised entropy H "
        "(1 = uniform), attention mass in the ground-truth box (uniform attention's share in brackets)\n"
    )
    print(health_table(health))
    print(f"\n{elapsed / 60:.1f} min (noisy: shared machine); rows in {out}; MLflow experiment 'localization-suite' under {args.root}")


if __name__ == "__main__":
    main()
