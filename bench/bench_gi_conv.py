"""Benchmark of the exact GI engine on conv nets: the CNN's pair lines on a CPU, ResNet-20 on a GPU.

CPU (default): the small CNN of the CNN stage (gisweep.models.SmallCNN, results/mnist/d28/cnn/real/s0/
model.pt) on the 4,950 class-5 pair lines x_i + t (x_j - x_i), t in [-1, 2], of MNIST 28x28. Prints
the exact engine's lines/s and knots per line; the dense grid's lines/s at 3,000 and 30,000 steps
(on --grid-lines lines: the rate per line is what matters), the exact/grid speed ratios, and their
agreement: the share of lines whose grid ends lie within one step of the exact ends, and the share
where the grid stepped over a class change (checked with the model at the exact end).

    python bench/bench_gi_conv.py --threads 2                     # the pipeline's CNN and data
    python bench/bench_gi_conv.py --max-lines 200 --grid-lines 20  # a quick rehearsal

--device cuda --resnet: a ResNet-20 (gisweep.resnet.ResNet20, width 16, CIFAR size 32x32x3, random
weights and batch-norm statistics, eval mode) on --resnet-lines pair lines between random images:
lines/s and knots of the exact engine on the GPU. (`--device cpu --resnet --resnet-lines 2
--resnet-side 8 --resnet-width 2` rehearses it on a CPU.) No timed asserts: numbers are printed, and
written as JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from gisweep.gi import exact_intervals, grid_intervals

ROOT = Path(__file__).resolve().parents[1]


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def cnn_workload(args):
    """(model, x0, d, t_min, t_max, note) of the CNN's class-5 pair lines."""
    from gisweep.data import load_table
    from gisweep.lines import materialize, same_class_pairs
    from gisweep.models import build_cnn, load_cnn

    x, y, _, _ = load_table(args.data)
    if args.model.exists():
        model, note = load_cnn(args.model), f"model {args.model}"
    else:
        model = build_cnn(x.shape[1], int(y.max()) + 1, generator=torch.Generator().manual_seed(0)).eval()
        note = f"{args.model} missing: an untrained SmallCNN (seed 0) stands in"
    lines = same_class_pairs(y, [5], -1.0, 2.0)
    x0, d, t_min, t_max = materialize(lines, x)
    n = len(x0) if args.max_lines is None else min(args.max_lines, len(x0))
    return model, x0[:n], d[:n], t_min[:n], t_max[:n], note


def agreement(model, x0, d, exact, grid, steps):
    """Share of lines with both grid ends within one step of the exact ends; share where the grid
    stepped over a class change (its end beyond the exact one, and the model's class just past the
    exact end is not class0)."""
    n = grid.t_hi.shape[0]
    h = 3.0 / steps
    tol = 1e-9
    hi, lo = exact.t_hi[:n], exact.t_lo[:n]
    within = ((grid.t_hi <= hi + tol) & (grid.t_hi >= hi - h - tol)
              & (grid.t_lo >= lo - tol) & (grid.t_lo <= lo + h + tol))
    missed = (grid.t_hi > hi + tol) | (grid.t_lo < lo - tol)
    net = model.double()
    confirmed = 0
    for i in missed.nonzero()[:, 0].tolist():
        for end, sign in ((hi[i], 1.0), (lo[i], -1.0)):
            ts = end + sign * torch.tensor([0.0, 1e-9], dtype=torch.float64)
            with torch.no_grad():
                cls = net(x0[i:i + 1].double() + ts[:, None] * d[i:i + 1].double()).argmax(1)
            if (cls != exact.class0[i]).any():
                confirmed += 1
                break
    return float(within.double().mean()), float(missed.double().mean()), confirmed, int(missed.sum())


def bench_cnn(args) -> dict:
    model, x0, d, t_min, t_max, note = cnn_workload(args)
    print(f"CNN pair lines: {len(x0)} lines; {note}; threads {torch.get_num_threads()}")
    stats: dict = {}
    exact, secs = timed(lambda: exact_intervals(model, x0, d, t_min, t_max, device=args.device, stats=stats,
                                                memory_mb=args.memory_mb), args.device)
    rate = len(x0) / secs
    knots = stats["knots"][-1] / len(x0) if stats["knots"] else 0.0
    print(f"exact: {rate:.1f} lines/s ({secs:.1f} s), mean pieces {exact.pieces.double().mean():.1f}, "
          f"knots per line after the last refinement {knots:.0f}, splits {stats['splits']}, "
          f"peak {stats['peak_bytes'] / 2**20:.0f} MiB")
    record = {"workload": "cnn_pairs", "lines": len(x0), "exact_lines_per_s": rate, "mean_pieces":
              float(exact.pieces.double().mean()), "note": note, "threads": torch.get_num_threads()}
    m = min(args.grid_lines, len(x0))
    for steps in (3000, 30000):
        if args.skip_grid:
            break
        grid, gsecs = timed(lambda: grid_intervals(model, x0[:m], d[:m], t_min[:m], t_max[:m], steps=steps,
                                                   device=args.device), args.device)
        grate = m / gsecs
        within, missed, confirmed, n_missed = agreement(model, x0[:m], d[:m], exact, grid, steps)
        print(f"grid {steps} steps on {m} lines: {grate:.2f} lines/s; exact is {rate / grate:.1f}x faster; "
              f"within one step of exact on {100 * within:.1f}% of lines; stepped over a class change on "
              f"{100 * missed:.1f}% ({confirmed}/{n_missed} confirmed by the model at the exact end)")
        record[f"grid{steps}_lines_per_s"] = grate
        record[f"grid{steps}_within_step"] = within
        record[f"grid{steps}_missed"] = missed
    return record


def bench_resnet(args) -> dict:
    from gisweep.resnet import ResNet20

    gen = torch.Generator().manual_seed(0)
    side, width = args.resnet_side, args.resnet_width
    model = ResNet20(side=side, channels=3, n_classes=10, width=width)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    model.eval()
    n = args.resnet_lines
    images = torch.rand(n + 1, side * side * 3, generator=gen, dtype=torch.float64)
    x0, d = images[:n], images[1:] - images[:n]
    print(f"ResNet-20 (width {width}, {side}x{side}x3, random weights): {n} pair lines on {args.device}")
    stats: dict = {}
    exact_intervals(model, x0[:1], d[:1], device=args.device, memory_mb=args.memory_mb)  # warm-up
    res, secs = timed(lambda: exact_intervals(model, x0.to(args.device), d.to(args.device), device=args.device,
                                              stats=stats, memory_mb=args.memory_mb), args.device)
    rate = n / secs
    print(f"exact: {rate:.2f} lines/s ({secs:.1f} s), mean pieces {res.pieces.double().mean():.0f}, "
          f"chunks {stats['chunks']}, splits {stats['splits']}, peak estimate "
          f"{stats['peak_bytes_estimate'] / 2**30:.2f} GiB")
    return {"workload": f"resnet20_w{width}_{side}x{side}x3", "device": args.device, "lines": n,
            "exact_lines_per_s": rate,
            "mean_pieces": float(res.pieces.double().mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "results/mnist/d28/cnn/real/s0/model.pt")
    p.add_argument("--data", type=Path, default=ROOT / "results/mnist/d28/data.parquet")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--memory-mb", type=float, default=None)
    p.add_argument("--max-lines", type=int, default=None, help="only the first N pair lines")
    p.add_argument("--grid-lines", type=int, default=100, help="lines the grid baseline is timed on")
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--resnet", action="store_true", help="ResNet-20 at CIFAR size instead of the CNN")
    p.add_argument("--resnet-lines", type=int, default=64)
    p.add_argument("--resnet-side", type=int, default=32, help="image side (32: CIFAR size)")
    p.add_argument("--resnet-width", type=int, default=16, help="ResNet-20 width (16: the standard one)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu", file=sys.stderr)
        return 2
    record = bench_resnet(args) if args.resnet else bench_cnn(args)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
