"""Training throughput of the model zoo on this machine (a script, not a test).

Measures forward+backward (the loss is the paper's summed cross-entropy) of every variant at
the paper's sizes — batch 8, 30 steps, pool5 maps 512×7×7, fc7 4096, 101 classes, hidden 512,
3×3 kernels, dropout 0.7 in train mode, gate_execution "auto" — and prints Markdown tables:

1. per variant: seconds per batch, clips/s, GFLOP per batch and achieved GFLOP/s, beside the
   rate a plain matrix multiply reaches in the same run (sgemm, the practical limit);
2. the gate formulations of a ConvLSTM cell (fused / split_xh / per_gate, each with the
   F.conv2d and the im2col+GEMM backend) at batch 8 and 32, for the 3×3 top cell with x per
   step, the 3×3 cell with x precomputed (the ConvLSTM loop) and the 1×1 motion cell.

FLOPs: counted with ``torch.utils.flop_counter.FlopCounterMode`` over one forward+backward
(matrix products and convolutions only, forward and backward, including the ones inside the
cells' custom autograd functions; element-wise work is not counted); the gate table
analytically, 2·B·H·W·4Hd·(C+Hd)·k²·3 per step (what FlopCounterMode reports for it too).
The sgemm reference is ``torch.mm`` (forward, no autograd) at the shape of the fused gate
convolution's GEMM, (B·H·W) × ((C+Hd)·k²) @ ((C+Hd)·k²) × 4Hd. Each timed repetition of a
variant is paired with an sgemm sample taken just before it; "% of sgemm" is the median of
those per-pair ratios, so a busy moment on the shared machine slows both sides.

Times are medians of ``--repeats`` runs after one warm-up (the FLOP-counting run).

    .venv/bin/python benchmarks/models_throughput.py                    # everything (minutes)
    .venv/bin/python benchmarks/models_throughput.py --variants convlstm,lstm --skip-gates
    .venv/bin/python benchmarks/models_throughput.py --profile videolstm --steps 8  # where the time goes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videolstm.models import VARIANTS, build_model, sequence_loss
from videolstm.models.cells import ConvLSTMCell

EXECUTIONS = ("fused", "split_xh", "per_gate")
BACKENDS = ("conv2d", "gemm")


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def build_variant(name: str, args: argparse.Namespace):
    """The paper's sizes unless the command line changes them."""
    return build_model(
        name,
        args.classes,
        input_channels=args.channels,
        input_dim=args.input_dim,
        spatial_size=args.size,
        hidden_channels=args.hidden,
        kernel_size=args.kernel,
        gate_execution=args.execution,
    )


def make_inputs(model, batch: int, steps: int, args: argparse.Namespace, generator: torch.Generator):
    if model.input_kind == "vectors":
        x = torch.randn(batch, steps, args.input_dim, generator=generator)
    else:
        x = torch.randn(batch, steps, args.channels, args.size, args.size, generator=generator)
    flow = torch.randn(batch, steps, args.channels, args.size, args.size, generator=generator) if model.needs_flow else None
    labels = torch.randint(args.classes, (batch,), generator=generator)
    return x, flow, labels


def train_step_fn(model, x, flow, labels) -> Callable[[], float]:
    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = sequence_loss(model(x, flow).logits, labels)
        loss.backward()
        return loss.item()

    return step


def sgemm_fn(batch: int, args: argparse.Namespace) -> tuple[Callable[[], object], int]:
    m = batch * args.size * args.size
    k = (args.channels + args.hidden) * args.kernel * args.kernel
    n = 4 * args.hidden
    a, b = torch.randn(m, k), torch.randn(k, n)

    def run() -> object:
        with torch.no_grad():
            return torch.mm(a, b)

    return run, 2 * m * k * n


def bench_variants(args: argparse.Namespace) -> None:
    """The variants table (see the module docstring)."""
    gen = torch.Generator().manual_seed(0)
    sgemm, sgemm_flop = sgemm_fn(args.batch, args)
    timed(sgemm, 3)
    all_sgemm: list[float] = []
    rows = []
    for name in args.variants:
        torch.manual_seed(0)
        model = build_variant(name, args)
        model.train()
        x, flow, labels = make_inputs(model, args.batch, args.steps, args, gen)
        step = train_step_fn(model, x, flow, labels)
        flops = count_flops(step)  # also the warm-up
        times, ratios = [], []
        for _ in range(args.repeats):
            sg_rate = sgemm_flop / statistics.median(timed(sgemm, 3, warmup=0)) / 1e9
            (seconds,) = timed(step, 1, warmup=0)
            times.append(seconds)
            all_sgemm.append(sg_rate)
            ratios.append(flops / seconds / 1e9 / sg_rate)
        med = statistics.median(times)
        rows.append((name, model.input_kind, flops, med, min(times), max(times), statistics.median(ratios)))
        print(f"  {name}: {med:.3f} s/batch, {flops / med / 1e9:.1f} GFLOP/s", file=sys.stderr, flush=True)
        del model, step
    ref = statistics.median(all_sgemm)
    kk = (args.channels + args.hidden) * args.kernel**2
    print(
        f"\n### Variants: forward+backward, batch {args.batch}, {args.steps} steps, "
        f"{args.channels}×{args.size}×{args.size} maps / fc7 {args.input_dim}, {args.classes} classes, "
        f"gate_execution={args.execution!r}, median of {args.repeats}\n"
    )
    print(
        f"sgemm reference: torch.mm ({args.batch * args.size**2}×{kk}) @ ({kk}×{4 * args.hidden}), forward, "
        f"**{ref:.1f} GFLOP/s** (median of {len(all_sgemm)} samples, range {min(all_sgemm):.1f}–{max(all_sgemm):.1f}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| variant | input | GFLOP / batch (fwd+bwd) | s / batch (median, min–max) | clips/s | GFLOP/s | % of sgemm (paired) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, kind, flops, med, lo, hi, ratio in rows:
        print(
            f"| {name} | {kind} | {flops / 1e9:.1f} | {med:.3f} ({lo:.3f}–{hi:.3f}) | {args.batch / med:.2f} | {flops / med / 1e9:.1f} | {100 * ratio:.0f}% |"
        )
    sys.stdout.flush()


def bench_gates(args: argparse.Namespace) -> None:
    """One ConvLSTM step (gate convolutions + state update), forward+backward, every execution
    mode × convolution backend, all interleaved with an sgemm sample of the fused GEMM's shape."""
    print(
        f"\n### Gate convolutions of a ConvLSTM cell, {args.gate_steps} steps forward+backward (weights cut once), "
        f"{args.size}×{args.size} maps, median of {args.gate_repeats} interleaved runs; ms per step (GFLOP/s)\n"
    )
    combos = [(e, b) for b in BACKENDS for e in EXECUTIONS]
    print("| cell | batch | sgemm GFLOP/s | " + " | ".join(f"{e} {b}" for e, b in combos) + " | fastest |")
    print("|---|---:|---:|" + "---:|" * len(combos) + "---|")
    cells = [
        (f"{args.channels}→{args.hidden}, {args.kernel}×{args.kernel}, x and h per step (convalstm, videolstm top)", args.channels, args.kernel, False),
        (f"{args.channels}→{args.hidden}, {args.kernel}×{args.kernel}, x precomputed (convlstm loop)", args.channels, args.kernel, True),
        (f"{args.channels}+{args.hidden}→{args.hidden}, 1×1, x and h per step (videolstm motion)", args.channels + args.hidden, 1, False),
    ]
    for label, cin, k, h_only in cells:
        for batch in args.gate_batches:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(batch, cin, args.size, args.size, generator=gen)
            h = torch.randn(batch, args.hidden, args.size, args.size, generator=gen).requires_grad_()
            c = torch.randn(batch, args.hidden, args.size, args.size, generator=gen)
            pre = torch.randn(batch, 4 * args.hidden, args.size, args.size, generator=gen).requires_grad_()
            fns: dict[object, Callable[[], object]] = {}
            for execution, backend in combos:
                torch.manual_seed(0)
                cell = ConvLSTMCell(cin, args.hidden, k, execution=execution, backend=backend)

                def run(cell=cell) -> None:
                    cell.zero_grad(set_to_none=True)
                    kernels = cell.kernels(x_channels=0 if h_only else None)  # once per sequence
                    state = (h, c)
                    for _ in range(args.gate_steps):
                        state = cell.step(None, state, kernels, pre=pre) if h_only else cell.step(x, state, kernels)
                    (state[0].sum() + state[1].sum()).backward()

                fns[(execution, backend)] = run
            in_ch = 0 if h_only else cin
            flop = 2 * batch * args.size**2 * 4 * args.hidden * (in_ch + args.hidden) * k * k * 3 * args.gate_steps
            sg, sg_flop = sgemm_fn(batch, argparse.Namespace(**{**vars(args), "channels": in_ch, "kernel": k}))
            fns["sgemm"] = sg
            samples: dict[object, list[float]] = {e: [] for e in fns}
            for fn in fns.values():
                fn()
            for _ in range(args.gate_repeats):
                for e, fn in fns.items():
                    start = time.perf_counter()
                    fn()
                    samples[e].append(time.perf_counter() - start)
            sg_rate = sg_flop / statistics.median(samples.pop("sgemm")) / 1e9  # forward mm
            meds = {e: statistics.median(s) for e, s in samples.items()}
            cols = " | ".join(f"{meds[e] * 1e3 / args.gate_steps:.1f} ({flop / meds[e] / 1e9:.0f})" for e in combos)
            best = min(meds, key=meds.get)
            print(f"| {label} | {batch} | {sg_rate:.0f} | {cols} | {best[0]} {best[1]} |")
            sys.stdout.flush()


def profile(args: argparse.Namespace, name: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    gen = torch.Generator().manual_seed(0)
    model = build_variant(name, args)
    x, flow, labels = make_inputs(model, args.batch, args.steps, args, gen)
    step = train_step_fn(model, x, flow, labels)
    step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per variant (after one warm-up)")
    parser.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=list(VARIANTS))
    parser.add_argument("--execution", default="auto", help="gate_execution for the variants table")
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--channels", type=int, default=512, help="C of the pool5 maps (and the flow maps)")
    parser.add_argument("--size", type=int, default=7, help="H = W of the maps")
    parser.add_argument("--input-dim", type=int, default=4096, help="D of the fc7 vectors")
    parser.add_argument("--hidden", type=int, default=512, help="ConvLSTM hidden channels")
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--gate-batches", type=lambda s: [int(v) for v in s.split(",")], default=[8, 32])
    parser.add_argument("--gate-repeats", type=int, default=3)
    parser.add_argument("--gate-steps", type=int, default=4, help="steps per timed sequence in the gate table")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--skip-variants", action="store_true")
    parser.add_argument("--skip-gates", action="store_true")
    parser.add_argument("--profile", metavar="VARIANT", help="profile one forward+backward of VARIANT and exit")
    parser.add_argument("--profile-rows", type=int, default=20)
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {list(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        profile(args, args.profile)
        return
    if not args.skip_variants:
        bench_variants(args)
    if not args.skip_gates:
        bench_gates(args)


if __name__ == "__main__":
    main()
