"""The toy 2-D data set, its evaluation grid, convex-hull membership and inside/outside comparisons.

Two classes of 2-D points on either side of the true curve x2 = g(x1) = curve_amplitude *
sin(curve_frequency * x1). x1 ~ U[train_x1]; the class y = +1 lies above, y = -1 below, at vertical
distance gap + spread * U[0, 1] from the curve. Classes are balanced (n_train // 2 negatives).
The polynomial and the network sweeps draw the same points from the same seed and train_x1.

"Inside" means inside the convex hull of the training points (scipy Delaunay, `find_simplex >= 0`,
so points on the hull's boundary count as inside). The evaluation grid is the training points'
bounding box widened by `outside_extent` times its width/height on every side; test points are
drawn from the data distribution with x1 over the widened x1 range and labelled by the true curve,
then split by hull membership (the polynomial sweep evaluates over Legendre's interval instead:
`sample_test_data` and `grid_points` with explicit ranges).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gisweep import GisweepError


def true_curve(x1: np.ndarray, cfg: dict) -> np.ndarray:
    """g(x1) = A sin(w x1), the true boundary."""
    return cfg["curve_amplitude"] * np.sin(cfg["curve_frequency"] * np.asarray(x1, dtype=np.float64))


def true_labels(xy: np.ndarray, cfg: dict) -> np.ndarray:
    """+1 above the true curve, -1 on or below it. xy: (m, 2) -> (m,) int8."""
    return np.where(xy[:, 1] > true_curve(xy[:, 0], cfg), 1, -1).astype(np.int8)


def _sample_band(n: int, x1_lo: float, x1_hi: float, cfg: dict, rng: np.random.Generator):
    x1 = rng.uniform(x1_lo, x1_hi, n)                                        # (n,)
    y = rng.permutation(np.r_[np.ones(n - n // 2), -np.ones(n // 2)]).astype(np.int8)
    dist = cfg["gap"] + cfg["spread"] * rng.uniform(0.0, 1.0, n)            # (n,)
    xy = np.stack([x1, true_curve(x1, cfg) + y * dist], axis=1)             # (n, 2)
    return xy, y


def make_training_data(cfg: dict):
    """Training points xy (n, 2) float64 and labels y (n,) int8 in {-1, +1}; x1 ~ U[train_x1]."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0]))
    lo, hi = cfg["train_x1"]
    return _sample_band(cfg["n_train"], lo, hi, cfg, rng)


def band_x2_range(x1_lo: float, x1_hi: float, cfg: dict, n: int = 1001) -> tuple[float, float]:
    """The x2 range the data distribution covers over x1 in [x1_lo, x1_hi]: the true curve's
    range there (sampled at n points) widened by gap + spread on each side."""
    g = true_curve(np.linspace(x1_lo, x1_hi, n), cfg)
    reach = cfg["gap"] + cfg["spread"]
    return float(g.min() - reach), float(g.max() + reach)


def sample_test_data(x1_lo: float, x1_hi: float, cfg: dict):
    """n_test points from the data distribution with x1 ~ U[x1_lo, x1_hi], true labels."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 1]))
    return _sample_band(cfg["n_test"], x1_lo, x1_hi, cfg, rng)


def widened_box(train_xy: np.ndarray, extent: float):
    """((x1_lo, x1_hi), (x2_lo, x2_hi)): the training bounding box widened by `extent` x its size."""
    lo, hi = train_xy.min(axis=0), train_xy.max(axis=0)
    pad = extent * (hi - lo)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def make_test_data(train_xy: np.ndarray, cfg: dict):
    """Test points from the data distribution with x1 over the widened x1 range, true labels."""
    (x1_lo, x1_hi), _ = widened_box(train_xy, cfg["outside_extent"])
    return sample_test_data(x1_lo, x1_hi, cfg)


def make_grid(train_xy: np.ndarray, extent: float, size: int):
    """Grid over the widened box. Returns x1s (size,), x2s (size,), points (size*size, 2) with
    x1 varying fastest (points.reshape(size, size, 2)[i, j] = (x1s[j], x2s[i]))."""
    (a, b), (c, d) = widened_box(train_xy, extent)
    return grid_points((a, b), (c, d), size)


def grid_points(x1_range, x2_range, size: int):
    """Grid over x1_range x x2_range; the same layout as make_grid."""
    x1s, x2s = np.linspace(*x1_range, size), np.linspace(*x2_range, size)
    g1, g2 = np.meshgrid(x1s, x2s)                                          # (size, size) each
    return x1s, x2s, np.stack([g1.ravel(), g2.ravel()], axis=1)


def hull_mask(train_xy: np.ndarray, query_xy: np.ndarray) -> np.ndarray:
    """True where a query point lies in the convex hull of the training points (boundary included).

    train_xy (n, 2), query_xy (m, 2) -> (m,) bool. Training points that span no area (fewer than
    3, or all on one line) raise GisweepError: such a hull has no inside to compare with."""
    from scipy.spatial import Delaunay
    from scipy.spatial import QhullError

    train_xy = np.asarray(train_xy, dtype=np.float64)
    if train_xy.ndim != 2 or train_xy.shape[1] != 2 or len(train_xy) < 3:
        raise GisweepError(f"convex hull needs at least 3 points in 2-D, got array of shape {train_xy.shape}")
    try:
        tri = Delaunay(train_xy)
    except QhullError:
        raise GisweepError("convex hull of the training points is degenerate (all points on one line)") from None
    return tri.find_simplex(np.asarray(query_xy, dtype=np.float64)) >= 0


def hull_polygon(train_xy: np.ndarray) -> np.ndarray:
    """The hull's vertices in order, the first repeated at the end: (v + 1, 2), ready to draw."""
    from scipy.spatial import ConvexHull

    v = ConvexHull(train_xy).vertices
    return np.vstack([train_xy[v], train_xy[v[:1]]])


def masked_mean(hits: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the boolean `hits` over the masked entries (NaN when the mask is empty)."""
    m = np.asarray(mask, dtype=bool)
    return float(np.mean(hits[m])) if m.any() else float("nan")


def compare_rows(names: list[str], sets: dict) -> list[dict]:
    """Class comparisons of every regime vs the truth and vs every earlier regime.

    sets: prefix -> (preds, truth, inside) with preds: name -> (m,) labels, truth (m,), inside
    (m,) bool; e.g. 'region' for the grid, 'test' for the test points. Rows: regime, reference,
    <prefix>_disagree_inside, <prefix>_disagree_outside (fractions of the points inside / outside
    the hull whose classes differ)."""
    rows = []
    for j, name in enumerate(names):
        for ref_name in ["truth"] + names[:j]:
            row = {"regime": name, "reference": ref_name}
            for prefix, (preds, truth, inside) in sets.items():
                ref = truth if ref_name == "truth" else preds[ref_name]
                differ = preds[name] != ref                                   # (m,) bool
                row[f"{prefix}_disagree_inside"] = masked_mean(differ, inside)
                row[f"{prefix}_disagree_outside"] = masked_mean(differ, ~inside)
            rows.append(row)
    return rows


def curve_rows(train_xy: np.ndarray, train_y: np.ndarray, cfg: dict, n_curve: int = 301,
               x1_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """Rows for plots: kind 'train' (the training points, label = class) and 'true_curve' over
    x1_range (None: the widened x1 range of cfg['outside_extent'])."""
    (a, b) = x1_range if x1_range is not None else widened_box(train_xy, cfg["outside_extent"])[0]
    xs = np.linspace(a, b, n_curve)
    train = pd.DataFrame({"kind": "train", "x1": train_xy[:, 0], "x2": train_xy[:, 1],
                          "label": train_y.astype(np.int8)})
    curve = pd.DataFrame({"kind": "true_curve", "x1": xs, "x2": true_curve(xs, cfg),
                          "label": np.zeros(n_curve, dtype=np.int8)})
    return pd.concat([train, curve], ignore_index=True)
