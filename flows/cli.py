"""The ``videolstm`` command line: the whole benchmark, or one stage alone.

    videolstm benchmark  --config FILE [--set train.epochs=2 ...]   the full-benchmark flow, locally
    videolstm dataset    --config FILE      generate/download + index the split
    videolstm flow       --config FILE      decode + optical flow (Ray Data)
    videolstm frame-cnn  --config FILE      train the RGB and flow frame CNNs (Ray Train)
    videolstm features   --config FILE      per-frame features (Ray Data)
    videolstm train      --config FILE      every (variant, stream) of every seed except VideoLSTM (Ray Train)
    videolstm finetune   --config FILE      VideoLSTM, assembled from the trained models and fine-tuned
    videolstm evaluate   --config FILE      evaluate + localize the trained experiment
    videolstm evaluate   --config FILE --checkpoint URI | --run-id ID   one model alone
    videolstm report     --config FILE      comparison tables and charts on the parent run
    videolstm sweep      --config FILE --sweep SWEEP.yaml   every arm of a sweep, compared with its baseline
    videolstm reevaluate --config FILE      the scheduled re-evaluation flow, once
    videolstm config     [--config FILE]    print the resolved configuration (YAML)
    videolstm predict    VIDEO... --model MODEL [--output DIR]   a trained model on new videos (JSON lines)

A stage run alone reads its upstream stages' saved results (``stage.json``) and says which
stage to run first when one is missing. Exit status: 0 ok, 1 failed, 2 bad usage or config.

The terminal shows per stage a start line, a progress bar and an end line, then the summary;
what Ray, Prefect and MLflow print goes to ``<storage.root>/logs/<command>-….log`` (its path is
the first line; ``--verbose`` shows it live) — see :mod:`tasks.console` and :mod:`tasks.console_log`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import yaml

from tasks.stages import PIPELINE
from videolstm.config import BenchmarkConfig, ConfigError, load_config
from videolstm.messages import RedactingFilter, redact

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
#: Prefect's temporary server gets 20 s to start by default; on a busy 2-core machine it took
#: 18 s when quiet and failed the benchmark ("Timed out ... ephemeral Prefect API server") under load.
PREFECT_DEFAULTS = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


def parse_override(text: str) -> tuple[str, Any]:
    """``train.epochs=2`` → ("train.epochs", 2); the value is parsed as YAML (lists, numbers, null)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videolstm", description="VideoLSTM benchmark pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", "-c", help="YAML config file (defaults: the embedded benchmark)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
        p.add_argument("--verbose", "-v", action="store_true", help="show Ray's, Prefect's and MLflow's output live (it always goes to the run's log file)")
        return p

    add("benchmark", "run the full-benchmark flow locally")
    for stage in PIPELINE:  # one command per stage of the graph (tasks.stages.PIPELINE)
        command = add(stage.command, stage.summary)
        if stage.name == "evaluate":
            group = command.add_mutually_exclusive_group()
            group.add_argument("--checkpoint", help="evaluate this videolstm checkpoint URI alone")
            group.add_argument("--run-id", help="evaluate the model of this MLflow run alone")
    sweep = add("sweep", "run every arm of a sweep file (config overrides over seeds) and compare them with the baseline arm")
    sweep.add_argument("--sweep", required=True, metavar="FILE", help="the sweep YAML file (name, seeds, baseline, arms, metrics)")
    sweep.add_argument("--arms", metavar="A,B", help="run only these arms (comma-separated; the baseline always runs)")
    add("reevaluate", "run the re-evaluation flow once")
    add("config", "print the resolved configuration")
    predict = add("predict", "apply a trained model (MLflow model URI or run id) to videos: top-5 and the localization tube")
    predict.add_argument("videos", nargs="*", metavar="VIDEO_OR_URI", help="video files or URIs")
    predict.add_argument(
        "--model", "-m", required=True, help="models:/name/version, models:/name@alias, runs:/<run id>/model, or a run id (a fused pair's too)"
    )
    predict.add_argument(
        "--output",
        "-o",
        help="folder for predictions.jsonl and an overlay per video (GIF and MP4); with --input: where predictions.parquet goes (a path or URI)",
    )
    predict.add_argument("--input", "-i", help="score every file under this folder or s3:// prefix on Ray Data (resumable)")
    predict.add_argument("--workers", type=int, default=1, help="with --input: Ray Data actors scoring at once")
    return parser


def resolve_config(args: argparse.Namespace) -> BenchmarkConfig:
    overrides = dict(parse_override(item) for item in args.set)
    return load_config(args.config, **overrides)


def main(argv: list[str] | None = None) -> int:
    for key, value in {**TELEMETRY_OFF, **PREFECT_DEFAULTS}.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "botocore", "s3fs", "fsspec", "alembic", "matplotlib", "PIL", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # a URI credential never reaches the console or a log file
        handler.addFilter(RedactingFilter())
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        return run_command(args, config)
    from tasks.console import say_error
    from tasks.console_log import default_log_dir, show_log_tail, start_console, stop_console

    # From here on, what Ray, Prefect and MLflow print goes to the log file; the terminal shows
    # one start line, a progress bar and an end line per stage, then the summary.
    start_console(default_log_dir(config.storage.root), args.command, verbose=args.verbose)
    try:
        return run_command(args, config)
    except KeyboardInterrupt:
        say_error("interrupted; re-run the same command to resume")
        return 130
    except Exception as exc:  # the CLI's boundary: the message on the terminal, the traceback in the log file
        logging.getLogger("videolstm").exception("%s failed", args.command)
        show_log_tail()
        say_error(f"error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        stop_console()


def run_command(args: argparse.Namespace, config: BenchmarkConfig) -> int:
    from tasks.console import say, say_error
    from videolstm.store.lineage import MissingStageError, load_stage_result

    command = args.command
    if command == "config":
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        return 0
    if command == "benchmark":
        from flows.full_benchmark import full_benchmark

        report = full_benchmark(config)  # the flow logs the closing message (table, where to look) ...
        say(report["message"])  # ... and the console shows it
        return 0 if report.get("ok", True) else 1
    if command == "sweep":
        from flows.sweep import sweep
        from videolstm.evaluation.sweep import load_sweep

        try:
            spec = load_sweep(args.sweep)
            if args.arms:
                spec = spec.subset([a.strip() for a in args.arms.split(",") if a.strip()])
        except ConfigError as exc:
            say_error(f"error: {exc}")
            return 2
        outcome = sweep(config, spec)
        say(outcome["markdown"])
        say(f"Sweep written to {outcome['uri']} (sweep.md, sweep.html, sweep.json)")
        return 1 if any(f.get("seed") is None for f in outcome["results"]["failed"]) else 0  # an arm failed as a whole
    if command == "reevaluate":
        from flows.reevaluate import reevaluate

        state = reevaluate(config, return_state=True)
        say(f"{state.name}: {state.message}")
        return 1 if state.is_failed() else 0
    try:
        if command == "evaluate" and (args.checkpoint or args.run_id):
            from tasks.evaluate import evaluate_single

            metrics = evaluate_single(config, checkpoint=args.checkpoint, run_id=args.run_id)
            say(json.dumps(metrics, indent=2, sort_keys=True))
            return 0
        if command == "predict":
            return _predict(args, config)
        from tasks.report import start_benchmark_run
        from tasks.stages import by_command

        stage = by_command(command)
        if stage is None:  # argparse guarantees a known command
            raise AssertionError(command)
        inputs = {name: load_stage_result(config, name) for name in stage.inputs}
        result = stage.run(*stage.arguments(config, inputs, start_benchmark_run(config) if stage.tracked else None))
    except MissingStageError as exc:
        say_error(f"error: {exc}")
        return 2
    if stage.collects:  # the report: its closing message
        say(result["message"])
        return 0 if result.get("ok", True) else 1
    say(f"{result.stage}: {result.ok} ok, {result.failed} failed, {result.computed} computed this run, {result.seconds:.1f} s; output {result.uri}")
    for item, reason in result.failures:
        say(f"  failed {item}: {redact(reason)}")
    return 0


def _predict(args: argparse.Namespace, config: BenchmarkConfig) -> int:
    """``videolstm predict``: videos → JSON lines (and overlays), or a folder scored on Ray Data."""
    from tasks.console import say, say_error
    from tasks.predict import run_predict

    if args.input:
        from tasks.predict import run_batch

        if not args.output or args.videos:
            say_error("error: --input scores a folder into --output URI (required); give videos or --input, not both")
            return 2
        summary = run_batch(config, args.model, args.input, args.output, args.workers)
        say(
            f"predict: {summary['ok']} ok, {summary['failed']} failed, {summary['computed']} computed this run, "
            f"{summary['reused']} done before; output {summary['predictions']}"
        )
        for video, reason in summary["failures"]:
            say(f"  failed {video}: {redact(reason)}")
        return 0
    for record in run_predict(config, args.model, args.videos, args.output):
        say(json.dumps(record))  # the terminal's stdout (print would go to the log file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
