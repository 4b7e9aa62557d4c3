"""How the hull answer depends on the training-set size N (command `hull-train-size`).

The paper measures against the whole training set (MNIST 60,000); the default run has 4,000 training
images. This sweep draws, for every N in `sizes` and every seed, N training rows of the hull data table
uniformly without replacement (all classes together; default_rng([seed, N, 0x5B])), and measures the
test rows (a seeded sample of max_test when > 0, the sample of gisweep.hull_stage) in pixel space
against their hull: certified distance, the subsample's diameter, nearest-neighbour distance, and the
counts outside / inside / undecided from the certificates. An N equal to every training row is the same
set for every seed and is solved once.

Output: one CSV, long format, one row per (N, seed, statistic) for the measurements (kind 'measured')
and per (N on a grid up to `extrapolate_to`, statistic) for the fitted trend (kind 'fit'):

  dataset, dim, kind, train_points, seed (-1 for fit rows), statistic, value,
  lower / upper            fit rows: 95 % confidence band of the fitted trend
  pred_lower / pred_upper  fit rows: 95 % prediction band of one new (N, seed) measurement
  slope, slope_se          fit rows: the fitted slope (see FITS) and its standard error
  extrapolated             fit rows: N beyond the largest measured N (an extrapolation, not a measurement)
  n_test                   test queries per measurement

Statistics (STATISTICS): distance mean and quartiles, distance / diameter mean and quartiles, diameter,
nearest-neighbour distance mean and median, the mean ratio distance / nearest-neighbour distance,
fraction_outside / fraction_inside / fraction_undecided, not_certified, the distance distribution's
skewness, excess kurtosis and normaltest p. FITS names the fitted ones and their scale: 'log' fits
log(value) = a + b log(N) (a power law), 'logit' fits logit(value) = a + b log(N) (fractions, clipped
half a query away from 0 and 1), both by least squares over every measured (N, seed). The table holds
no timing, so that identical runs write identical bytes; each measurement's seconds are in the
progress lines on stderr (the job's log).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from gisweep import GisweepError
from gisweep.schema import integer, schema_number

STATISTICS = ["distance_mean", "distance_q25", "distance_median", "distance_q75", "rel_distance_mean",
              "rel_distance_q25", "rel_distance_median", "rel_distance_q75", "diameter", "nn_distance_mean",
              "nn_distance_median", "distance_over_nn_mean", "fraction_outside", "fraction_inside",
              "fraction_undecided", "not_certified", "skewness", "kurtosis", "normaltest_p"]
FITS = {"rel_distance_mean": "log", "rel_distance_q25": "log", "rel_distance_q75": "log", "distance_mean": "log",
        "nn_distance_mean": "log", "diameter": "log", "fraction_outside": "logit"}
COLUMNS = ["dataset", "dim", "kind", "train_points", "seed", "statistic", "value", "lower", "upper", "pred_lower",
           "pred_upper", "slope", "slope_se", "extrapolated", "n_test"]
FIT_POINTS = 30  # grid of the fitted trend, log-spaced from the smallest N to extrapolate_to


def subsample(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of `size` of n_rows training rows, uniform without replacement, by (seed, size)."""
    if size == n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng([seed, size, 0x5B]).choice(n_rows, size, replace=False))


def measure(train: np.ndarray, queries: np.ndarray, *, tol: float, max_iter: int, device, dtype,
            memory_mb: float | None) -> dict:
    """The statistics of one training subsample train [N, D] and the test queries [Q, D]."""
    from gisweep.hull import hull_distance
    from gisweep.hull_geometry import hull_diameter, nearest_neighbor_distance
    from gisweep.hull_stage import moments

    diameter, _, _ = hull_diameter(train, device=device, dtype=dtype, memory_mb=memory_mb)
    res = hull_distance(train, queries, tol=tol, max_iter=max_iter, device=device, dtype=dtype,
                        memory_mb=memory_mb, support_k=1)
    nn_d, _ = nearest_neighbor_distance(train, queries, device=device, dtype=dtype, memory_mb=memory_mb)
    d, lower = res.distance.double().numpy(), res.lower.double().numpy()
    nn = nn_d.double().numpy()
    inside = d <= res.atol
    outside = (lower > res.atol) & ~inside
    rel = d / diameter if diameter > 0 else np.full_like(d, np.nan)
    m = moments(d)
    q = np.quantile(d, [0.25, 0.5, 0.75])
    rq = np.quantile(rel, [0.25, 0.5, 0.75])
    ratio = d / np.where(nn > 0, nn, np.nan)
    return {"distance_mean": float(d.mean()), "distance_q25": float(q[0]), "distance_median": float(q[1]),
            "distance_q75": float(q[2]), "rel_distance_mean": float(rel.mean()), "rel_distance_q25": float(rq[0]),
            "rel_distance_median": float(rq[1]), "rel_distance_q75": float(rq[2]), "diameter": float(diameter),
            "nn_distance_mean": float(nn.mean()), "nn_distance_median": float(np.median(nn)),
            "distance_over_nn_mean": float(np.nanmean(ratio)) if np.isfinite(ratio).any() else np.nan,
            "fraction_outside": float(outside.mean()), "fraction_inside": float(inside.mean()),
            "fraction_undecided": float((~inside & ~outside).mean()),
            "not_certified": float((~res.certified.numpy()).sum()),
            "skewness": np.nan if m["skewness"] is None else m["skewness"],
            "kurtosis": np.nan if m["kurtosis"] is None else m["kurtosis"],
            "normaltest_p": np.nan if m["normaltest_p"] is None else m["normaltest_p"]}


def _transform(values: np.ndarray, scale: str, n_test: int):
    if scale == "log":
        return np.log(values) if (values > 0).all() else None
    p = np.clip(values, 0.5 / n_test, 1 - 0.5 / n_test)
    return np.log(p / (1 - p))


def _inverse(y: np.ndarray, scale: str) -> np.ndarray:
    return np.exp(y) if scale == "log" else 1 / (1 + np.exp(-y))


def fit_trend(n: np.ndarray, values: np.ndarray, scale: str, grid: np.ndarray, n_test: int) -> dict | None:
    """Least-squares line of transform(value) on log(N); the fitted value on `grid` with its 95 % confidence
    (trend) and prediction (one new measurement) bands, back-transformed. None when it cannot be fitted
    (fewer than 3 points or 2 distinct N, or non-positive values on the log scale)."""
    from scipy import stats

    y = _transform(np.asarray(values, dtype=np.float64), scale, n_test)
    x = np.log(np.asarray(n, dtype=np.float64))
    if y is None or len(x) < 3 or len(np.unique(x)) < 2 or not np.isfinite(y).all():
        return None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    dof = len(x) - 2
    s2 = float(resid @ resid) / dof if dof > 0 else 0.0
    sxx = float(((x - x.mean()) ** 2).sum())
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else np.nan
    xg = np.log(grid)
    fit = intercept + slope * xg
    se_mean = np.sqrt(s2 * (1 / len(x) + (xg - x.mean()) ** 2 / sxx))
    se_pred = np.sqrt(s2 + se_mean**2)
    return {"value": _inverse(fit, scale), "lower": _inverse(fit - t * se_mean, scale),
            "upper": _inverse(fit + t * se_mean, scale), "pred_lower": _inverse(fit - t * se_pred, scale),
            "pred_upper": _inverse(fit + t * se_pred, scale), "slope": float(slope),
            "slope_se": float(np.sqrt(s2 / sxx))}


def fit_rows(measured, *, dataset: str, dim: int, extrapolate_to: int, n_test: int):
    """The 'fit' rows of every statistic in FITS (a pandas DataFrame); one fit per (N, value) pair, so the
    full training set measured once per seed counts once."""
    import pandas as pd

    sizes = np.sort(measured["train_points"].unique())
    top = max(int(extrapolate_to), int(sizes.max()))
    grid = np.unique(np.r_[np.geomspace(sizes.min(), top, FIT_POINTS).round(), sizes, top]).astype(np.int64)
    rows = []
    for stat, scale in FITS.items():
        m = measured[measured["statistic"] == stat].drop_duplicates(["train_points", "value"])
        fit = fit_trend(m["train_points"].to_numpy(), m["value"].to_numpy(), scale, grid, n_test)
        if fit is None:
            print(f"note: no trend fitted for {stat} ({len(m)} points, scale {scale})", file=sys.stderr)
            continue
        rows.append(pd.DataFrame({
            "dataset": dataset, "dim": dim, "kind": "fit", "train_points": grid, "seed": -1, "statistic": stat,
            **{k: fit[k] for k in ("value", "lower", "upper", "pred_lower", "pred_upper")},
            "slope": fit["slope"], "slope_se": fit["slope_se"], "extrapolated": grid > sizes.max(), "n_test": n_test,
        }))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=COLUMNS)


def train_size_sweep(data_path, out, *, sizes, seeds, dataset: str = "", dim: int | None = None,
                     extrapolate_to: int = 60000, tol: float = 1e-6, max_iter: int = 500, max_test: int = 0,
                     random_seed: int = 0, device: str = "auto", dtype: str = "float64",
                     memory_mb: float | None = None, threads: int | None = None):
    """Measure the test rows of a hull data table against subsamples of its training rows; write `out` (CSV)."""
    import pandas as pd
    import torch

    from gisweep.data import load_table
    from gisweep.hull_stage import test_sample
    from gisweep.io import write_csv
    from gisweep.runtime import pick_device, pick_dtype

    if threads:
        torch.set_num_threads(threads)
    sizes, seeds = sorted({int(n) for n in sizes}), sorted({int(s) for s in seeds})
    if not sizes or not seeds:
        raise GisweepError("hull.train_sizes and hull.train_size_seeds must each name at least one value")
    if max_iter < 1 or not tol > 0 or max_test < 0:
        raise GisweepError(f"hull settings: need tol > 0, max_iter >= 1, max_test >= 0 (got {tol}, {max_iter}, "
                           f"{max_test})")
    x_tr, _, x_te, _ = load_table(data_path)
    if not (np.isfinite(x_tr).all() and np.isfinite(x_te).all()):
        raise GisweepError(f"{data_path}: column 'x' holds NaN or infinite values")
    bad = [n for n in sizes if not 2 <= n <= len(x_tr)]
    if bad:
        raise GisweepError(f"hull.train_sizes {bad}: {data_path} has {len(x_tr)} training rows; every size must "
                           f"be between 2 and {len(x_tr)} (raise hull.train_per_class or drop the size)")
    if len(x_te) == 0:
        raise GisweepError(f"{data_path}: no test rows to measure")
    queries = x_te[test_sample(len(x_te), max_test, random_seed)].astype(np.float64)  # [Q, F]
    dev, dt = pick_device(device), pick_dtype(dtype)
    n_test = len(queries)
    rows, done = [], {}
    t0 = time.monotonic()
    for n in sizes:
        for seed in seeds:
            idx = subsample(len(x_tr), n, seed)
            key = (n, idx.tobytes()) if n == len(x_tr) else (n, seed)
            if key not in done:
                t1 = time.monotonic()
                done[key] = measure(x_tr[idx].astype(np.float64), queries, tol=tol, max_iter=max_iter, device=dev,
                                    dtype=dt, memory_mb=memory_mb)
                s = done[key]
                print(f"N={n} seed={seed}: distance/diameter mean {s['rel_distance_mean']:.4g}, outside "
                      f"{s['fraction_outside']:.3f}, undecided {s['fraction_undecided']:.3f}, {time.monotonic() - t1:.1f} s "
                      f"[{time.monotonic() - t0:.0f} s]", file=sys.stderr, flush=True)
            rows += [{"train_points": n, "seed": seed, "statistic": k, "value": v} for k, v in done[key].items()]
    measured = pd.DataFrame(rows)
    measured = measured.assign(dataset=dataset, dim=dim if dim is not None else -1, kind="measured",
                               lower=np.nan, upper=np.nan, pred_lower=np.nan, pred_upper=np.nan, slope=np.nan,
                               slope_se=np.nan, extrapolated=False, n_test=n_test)
    fits = fit_rows(measured, dataset=dataset, dim=dim if dim is not None else -1, extrapolate_to=extrapolate_to,
                    n_test=n_test)
    table = pd.concat([measured[COLUMNS], fits[COLUMNS]], ignore_index=True)
    write_csv(table, out)
    at = fits[(fits["train_points"] == max(extrapolate_to, sizes[-1])) & (fits["statistic"] == "rel_distance_mean")]
    if len(at):
        r = at.iloc[0]
        print(f"{out}: distance/diameter ~ N^{r.slope:.3f} (se {r.slope_se:.3f}); at N={int(r.train_points)} "
              f"(extrapolated) {r.value:.4g} [{r.lower:.4g}, {r.upper:.4g}]; {time.monotonic() - t0:.1f} s")
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("hull-train-size", help="hull distances of the test rows against N training rows, N swept")
    p.add_argument("--data", required=True, help="the hull data table (pixels)")
    p.add_argument("--sizes", type=schema_number("hull.train_sizes[]"), nargs="+", required=True,
                   help="training-set sizes N")
    p.add_argument("--seeds", type=schema_number("hull.train_size_seeds[]"), nargs="+", default=[0, 1, 2],
                   help="subsample seeds")
    p.add_argument("--dataset", default="", help="dataset name written into the table")
    p.add_argument("--dim", type=schema_number("hull.train_size_dim"), default=None,
                   help="image side written into the table")
    p.add_argument("--extrapolate-to", type=schema_number("hull.extrapolate_to"), default=60000,
                   help="the fitted trend's grid reaches this N")
    p.add_argument("--tol", type=schema_number("hull.tol"), default=1e-6)
    p.add_argument("--max-iter", type=schema_number("hull.max_iter"), default=500)
    p.add_argument("--max-test", type=schema_number("hull.max_test"), default=0, help="0: every test row")
    p.add_argument("--random-seed", type=schema_number("hull.random_seed"), default=0,
                   help="seed of the test sample when --max-test > 0")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--memory-mb", type=schema_number("hull.memory_mb"), default=None)
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.add_argument("--out", required=True, help="the CSV table")
    p.set_defaults(func=lambda a: train_size_sweep(
        a.data, a.out, sizes=a.sizes, seeds=a.seeds, dataset=a.dataset, dim=a.dim, extrapolate_to=a.extrapolate_to,
        tol=a.tol, max_iter=a.max_iter, max_test=a.max_test, random_seed=a.random_seed, device=a.device,
        dtype=a.dtype, memory_mb=a.memory_mb, threads=a.threads))
