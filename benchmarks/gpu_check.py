"""One prepared GPU check (issue 24): does every stage keep a GPU busy? Run as is on a CUDA machine.

    .venv/bin/python benchmarks/gpu_check.py              # CUDA: gpu tests first, then one table (< 8 min on an H100-class GPU)
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick   # the same measurements on this CPU (bf16 vs fp32)

Without CUDA (and without ``--device cpu``) it prints "no CUDA" and exits 0. Each figure sits
beside its baseline measured in the same run:

- TV-L1 pairs/s at 224×224: ``tvl1_torch`` on the device (a batch of pairs) vs OpenCV's TV-L1 on
  the host's cores (FlowConfig's settings, the same for both);
- VGG-16 frames/s, fp32 vs bf16 (channels-last on CUDA): feature extraction (forward) and a
  training step (forward + backward + Adam);
- each sequence model's fwd+bwd clips/s at the paper's sizes (512-channel 7×7 maps, 30 steps) in
  fp32 and bf16, and its achieved FLOP rate as a percentage of the device's bf16 matmul rate
  measured in the same run (FLOPs counted with ``torch.utils.flop_counter``);
- the loader's side: host→device copies of float16 snippet batches (pinned, non-blocking) in
  clips/s, against the fastest model's appetite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

#: The paper's sequence-model input: VGG-16 pool5 maps (512 × 7 × 7), 30-step snippets.
PAPER_CHANNELS, PAPER_GRID, PAPER_STEPS = 512, 7, 30
SEQUENCE_VARIANTS = ("convlstm", "convalstm", "videolstm")


@dataclass(frozen=True)
class Row:
    """One line of the table: ``measured`` beside ``baseline`` (same unit, same run)."""

    what: str
    unit: str
    baseline_name: str
    baseline: float
    measured_name: str
    measured: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline > 0 else float("nan")


def format_table(rows: list[Row]) -> str:
    """A Markdown table: what, unit, baseline, measured, measured / baseline, note."""
    lines = ["| what | unit | baseline | measured | ratio | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.what} | {r.unit} | {r.baseline_name} {r.baseline:.3g} | {r.measured_name} {r.measured:.3g} | {r.ratio:.2f}× | {r.note} |")
    return "\n".join(lines)


def sequence_inputs(variant: str, batch: int, steps: int, channels: int = PAPER_CHANNELS, grid: int = PAPER_GRID) -> dict[str, tuple[int, ...]]:
    """Input shapes of a sequence model's forward: ``x`` (B, T, C, h, w), plus ``flow`` for the motion variants."""
    from videolstm.models.registry import build_model

    shapes = {"x": (batch, steps, channels, grid, grid)}
    if build_model(variant, 2, input_channels=8, hidden_channels=4).needs_flow:
        shapes["flow"] = (batch, steps, channels, grid, grid)
    return shapes


def percent_of_peak(flops: float, seconds: float, peak_flops_per_second: float) -> float:
    """Achieved FLOP rate as a percentage of ``peak_flops_per_second``."""
    return 100.0 * flops / seconds / peak_flops_per_second


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, iterations: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``iterations`` calls after ``warmup`` (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, iterations: int) -> float:
    """FLOP/s of an ``n × n`` matmul in ``dtype`` (the device's practical peak for dense GEMMs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2.0 * n**3 / seconds_per_call(lambda: a @ b, device, iterations)


def tvl1_row(device: torch.device, size: int, pairs: int) -> Row:
    """TV-L1 pairs/s at ``size``², FlowConfig's settings: OpenCV on the host vs tvl1_torch on ``device``."""
    import cv2

    from videolstm.config import FlowConfig
    from videolstm.data.flow import FlowEstimator

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (size + 8, size + 8)).astype(np.float32), (0, 0), 2)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = np.stack([base[t % 8 : t % 8 + size, :size] for t in range(pairs + 1)])  # one pixel per frame
    config = FlowConfig(height=size, width=size)
    opencv = FlowEstimator.from_config(config)
    torch_estimator = FlowEstimator.from_config(config.model_copy(update={"method": "tvl1_torch"}))
    torch_estimator.pairs_per_batch = pairs
    from videolstm.data.tvl1_torch import tvl1_flow

    params = torch_estimator.torch_params()
    prev, nxt = torch.from_numpy(frames[:-1]), torch.from_numpy(frames[1:])
    cpu = seconds_per_call(lambda: [opencv(frames[t], frames[t + 1]) for t in range(pairs)], torch.device("cpu"), 1, warmup=0)
    dev = seconds_per_call(lambda: tvl1_flow(prev, nxt, params, device), device, 1, warmup=1)
    return Row(f"TV-L1 {size}² ({pairs} pairs)", "pairs/s", f"OpenCV ({cv2.getNumThreads()} threads)", pairs / cpu, f"tvl1_torch {device.type}", pairs / dev)


def vgg_rows(device: torch.device, batch: int, iterations: int) -> list[Row]:
    """VGG-16 (224², 101 classes) frames/s: extraction and a training step, fp32 vs bf16."""
    from videolstm.features.backbones import build_frame_cnn
    from videolstm.features.precision import autocast, prepare_for_device, to_device

    model = prepare_for_device(build_frame_cnn("vgg16", 101, 3), device, channels_last=True)
    x = to_device(np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32), device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def extract(precision: str) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad(), autocast(device, precision):
                return model.eval()(x).fc7

        return run

    def step(precision: str) -> Callable[[], object]:
        def run() -> object:
            model.train()
            with autocast(device, precision):
                loss = torch.nn.functional.cross_entropy(model(x).logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss

        return run

    rows = []
    for name, make in (("VGG-16 extraction", extract), ("VGG-16 training step", step)):
        fp32 = seconds_per_call(make("fp32"), device, iterations)
        bf16 = seconds_per_call(make("bf16"), device, iterations)
        rows.append(Row(f"{name} (batch {batch})", "frames/s", "fp32", batch / fp32, "bf16", batch / bf16))
    return rows


def sequence_rows(device: torch.device, batch: int, steps: int, iterations: int, peak: float) -> tuple[list[Row], float]:
    """Each paper-size sequence model's fwd+bwd clips/s, fp32 vs bf16, and bf16's % of ``peak``.

    Returns the rows and the highest bf16 clips/s (the loader's target)."""
    from torch.utils.flop_counter import FlopCounterMode

    from videolstm.features.precision import autocast
    from videolstm.models.registry import build_model

    rows, fastest = [], 0.0
    for variant in SEQUENCE_VARIANTS:
        model = build_model(variant, 101).to(device).train()
        inputs = {k: torch.randn(shape, device=device) for k, shape in sequence_inputs(variant, batch, steps).items()}

        def run(precision: str, model: torch.nn.Module = model, inputs: dict[str, torch.Tensor] = inputs) -> Callable[[], object]:
            def go() -> object:
                with autocast(device, precision):
                    logits = model(inputs["x"], flow=inputs.get("flow")).logits
                logits.float().sum().backward()
                return logits

            return go

        counter = FlopCounterMode(display=False)
        with counter:
            run("fp32")()
        flops = float(counter.get_total_flops())
        fp32 = seconds_per_call(run("fp32"), device, iterations)
        bf16 = seconds_per_call(run("bf16"), device, iterations)
        fastest = max(fastest, batch / bf16)
        note = f"bf16 at {percent_of_peak(flops, bf16, peak):.0f}% of the bf16 matmul rate; {flops / batch / 1e9:.0f} GFLOP/clip"
        rows.append(Row(f"{variant} fwd+bwd (B={batch}, T={steps})", "clips/s", "fp32", batch / fp32, "bf16", batch / bf16, note))
        del model, inputs
    return rows, fastest


def loader_row(device: torch.device, batch: int, steps: int, appetite: float, iterations: int) -> Row:
    """Host→device transfer of float16 snippet batches (pinned, non-blocking) in clips/s vs the models' appetite."""
    from videolstm.features.precision import to_device

    host = np.random.default_rng(0).standard_normal((batch, steps, PAPER_CHANNELS, PAPER_GRID, PAPER_GRID)).astype(np.float16)
    seconds = seconds_per_call(lambda: to_device(host, device, torch.float32), device, iterations)
    return Row(
        f"loader copy (B={batch}, T={steps}, float16)",
        "clips/s",
        "fastest model needs",
        appetite,
        "copy delivers",
        batch / seconds,
        "the shard read itself: benchmarks/loader.py",
    )


def run_gpu_tests() -> int:
    """The ``gpu``-marked tests (CUDA paths) first: a broken path fails here, not in the table."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(REPO / "tests")], cwd=REPO, check=False)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: CUDA if present, else say so and stop")
    parser.add_argument("--quick", action="store_true", help="small batches, few iterations (for a CPU)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests first")
    args = parser.parse_args(argv)
    if args.device in ("auto", "cuda") and not torch.cuda.is_available():
        print("no CUDA: nothing to measure here (run with --device cpu for the CPU figures)")
        return 0
    device = torch.device("cuda" if args.device in ("auto", "cuda") else "cpu")
    if device.type == "cuda" and not args.skip_tests and run_gpu_tests() not in (0, 5):  # 5: no tests collected
        print("the gpu tests failed; fix them before reading any figure")
        return 1
    quick = args.quick or device.type == "cpu"
    iterations = 2 if quick else 10
    started = time.perf_counter()
    peak = matmul_rate(device, torch.bfloat16, 2048 if quick else 8192, iterations)
    fp32_peak = matmul_rate(device, torch.float32, 2048 if quick else 8192, iterations)
    rows = [Row("dense matmul", "TFLOP/s", "fp32", fp32_peak / 1e12, "bf16", peak / 1e12)]
    rows.append(tvl1_row(device, 224, 4 if quick else 64))
    rows += vgg_rows(device, 4 if quick else 64, iterations)
    batch, steps = (2, 4) if quick else (32, PAPER_STEPS)
    sequence, appetite = sequence_rows(device, batch, steps, iterations, peak)
    rows += sequence
    rows.append(loader_row(device, batch, steps, appetite, iterations))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"## gpu_check on {name}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
