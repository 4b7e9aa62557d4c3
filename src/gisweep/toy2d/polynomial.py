"""Legendre-polynomial decision boundaries (command polynomial-sweep), Yousefzadeh (2021), section 3.

Data: the 2-D two-class points of `gisweep.toy2d.data` (same seed, same points as the network sweep): class +1 above,
class -1 below the true curve x2 = g(x1) = A sin(w x1), x1 ~ U[-1, 1].

Model: the classifier sign(x2 - p(x1)) with boundary p(x1) = sum_k c_k P_k(x1), P_k the standard
Legendre polynomials (numpy.polynomial.legendre, P_k(1) = 1) on the sampling interval [-1, 1];
degree d has d + 1 coefficients.

Training: every regime fits the same margin targets t_i = x2_i - y_i * target_margin (the
boundary passes target_margin from each training point, on that point's side) in the
least-squares sense; an exact fit therefore separates every training point with vertical margin
target_margin. With fewer coefficients than points the least-squares solution is unique (up to
numerical rank) and all closed-form regimes coincide; with more, the interpolants form an affine
family and the regime picks one:

  min_norm            minimum Euclidean norm of c (pseudo-inverse / lstsq)
  gd_zero             gradient descent on (1/2n)||Phi c - t||^2 from c = 0, step 1/L, gd_steps steps
  gd_random           the same from c0 ~ N(0, gd_init_scale^2 / (d + 1)) per coefficient
  high_order_penalty  minimum sum_k ((1 + k)^penalty_power c_k)^2
  curvature_penalty   minimum integral over [-1, 1] of p''(x1)^2

Gradient descent is computed exactly in the SVD basis of Phi (the iterate after T steps in closed
form), so any number of steps costs one SVD; tests check it against explicit iteration.

"Inside": for the boundary curve, x1 inside the training hull's x1-range [min x1_i, max x1_i];
for classification (grid, test points), inside the 2-D convex hull of the training points. The
evaluation reaches outside_extent times the data's width past each side.

Separation: a training point is misclassified when its signed vertical margin
y_i (x2_i - p(x1_i)) is <= 0 (train_error counts these); a fit "separates" the training data
when every signed margin is >= separation_margin. capacity_margin is the largest margin any
polynomial of that degree achieves (a linear program), which says whether the degree *can*
separate, independent of the regime; it is inf as soon as some polynomial of the degree has the
labels' sign pattern at the training x1 (then the boundary can dip arbitrarily far), which happens
once the degree reaches the number of class alternations along x1, well before interpolation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.polynomial import legendre as L

from gisweep import GisweepError
from gisweep.toy2d.config import parse_config_json, part_schema, resolve
from gisweep.toy2d.data import (
    compare_rows,
    curve_rows,
    hull_mask,
    make_grid,
    make_test_data,
    make_training_data,
    masked_mean,
    true_curve,
    true_labels,
    widened_box,
)


def regimes() -> list[str]:
    """The fitting regimes the schema allows (overparam.polynomial.regimes)."""
    return list(part_schema("polynomial")["properties"]["regimes"]["items"]["enum"])


# ---------------------------------------------------------------- basis and fits


def legendre_features(x1: np.ndarray, degree: int) -> np.ndarray:
    """Phi[i, k] = P_k(x1_i). x1 (n,) -> (n, degree + 1)."""
    return L.legvander(np.asarray(x1, dtype=np.float64), degree)


def boundary(coef: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """p(x1) = sum_k coef_k P_k(x1). x1 (m,) -> (m,)."""
    return L.legval(np.asarray(x1, dtype=np.float64), coef)


def margin_targets(xy: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
    """t_i = x2_i - y_i * margin: the boundary height target_margin from each point, on its side."""
    return xy[:, 1] - y * margin


def signed_margins(coef: np.ndarray, xy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y_i (x2_i - p(x1_i)): positive when the point is on its class's side of the boundary."""
    return y * (xy[:, 1] - boundary(coef, xy[:, 0]))


def separation_report(coef: np.ndarray, xy: np.ndarray, y: np.ndarray, separation_margin: float) -> dict:
    """train_error (fraction with signed margin <= 0), min_train_margin, separates (all >= margin)."""
    m = signed_margins(coef, xy, y)
    return {"train_error": float(np.mean(m <= 0)), "min_train_margin": float(m.min()),
            "separates": bool(m.min() >= separation_margin)}


def _svd(phi: np.ndarray):
    """Full SVD and numerical rank (numpy's lstsq/pinv tolerance: eps * max(shape) * s_max)."""
    u, s, vt = np.linalg.svd(phi, full_matrices=True)
    tol = np.finfo(np.float64).eps * max(phi.shape) * (s[0] if s.size else 0.0)
    return u, s, vt, int(np.sum(s > tol))


def min_seminorm_fit(phi: np.ndarray, t: np.ndarray, penalty: np.ndarray | None = None) -> np.ndarray:
    """Among the least-squares solutions of phi c ~ t, the one minimising ||penalty @ c||.

    phi (n, p), t (n,), penalty (q, p) or None (the identity: the minimum-norm solution, as
    numpy.linalg.lstsq / pinv). Least-squares solutions are c_ls + N z with c_ls the pseudo-inverse
    solution and N (p, p - r) a basis of phi's numerical null space; z minimises
    ||penalty (c_ls + N z)|| (its own minimum-norm least-squares solution when not unique)."""
    u, s, vt, r = _svd(phi)
    c_ls = vt[:r].T @ ((u[:, :r].T @ t) / s[:r])                             # (p,)
    if penalty is None or r == phi.shape[1] or penalty.shape[0] == 0:
        return c_ls
    null = vt[r:].T                                                           # (p, p - r)
    z = np.linalg.lstsq(penalty @ null, -(penalty @ c_ls), rcond=None)[0]    # (p - r,)
    return c_ls + null @ z


def gradient_descent_fit(phi: np.ndarray, t: np.ndarray, c0: np.ndarray, steps: int) -> np.ndarray:
    """The iterate after `steps` steps of c <- c - (1/L) grad, grad = phi^T (phi c - t) / n,
    L = s_max^2 / n (the gradient's Lipschitz constant), computed exactly in phi's SVD basis:
    along right singular vector j the error to the least-squares solution shrinks by
    (1 - s_j^2 / s_max^2) per step; directions in phi's null space never move."""
    u, s, vt = np.linalg.svd(phi, full_matrices=False)                       # s (min(n, p),)
    c0 = np.asarray(c0, dtype=np.float64)
    if steps == 0 or s.size == 0 or s[0] == 0:
        return c0.copy()
    a = (s / s[0]) ** 2                                                       # (k,) in [0, 1]
    with np.errstate(divide="ignore"):
        log_keep = steps * np.log1p(-a)                                      # -inf where a == 1
    keep = np.exp(log_keep)                                                   # (1 - a)^steps
    moved = -np.expm1(log_keep)                                               # 1 - (1 - a)^steps
    coords0 = vt @ c0                                                         # (k,)
    ut_t = u.T @ t                                                            # (k,)
    safe = s > 0
    target_part = np.where(safe, moved * ut_t / np.where(safe, s, 1.0), 0.0)
    coords = keep * coords0 + target_part
    return c0 + vt.T @ (coords - coords0)


def high_order_penalty_matrix(degree: int, power: float) -> np.ndarray:
    """diag((1 + k)^power), k = 0..degree."""
    return np.diag((1.0 + np.arange(degree + 1)) ** power)


def curvature_penalty_matrix(degree: int) -> np.ndarray:
    """B with ||B c||^2 = integral_{-1}^{1} p''(x)^2 dx for p = sum_k c_k P_k.

    p'' = sum_j a_j P_j with a = D2 c (numpy's legder), and the P_j are orthogonal on [-1, 1]
    with integral of P_j^2 = 2 / (2j + 1). Shape (max(degree - 1, 0), degree + 1)."""
    p = degree + 1
    if degree < 2:
        return np.zeros((0, p))
    d2 = L.legder(np.eye(p), m=2, axis=0)                                     # (p - 2, p)
    w = np.sqrt(2.0 / (2.0 * np.arange(p - 2) + 1.0))
    return w[:, None] * d2


def capacity_margin(phi: np.ndarray, xy: np.ndarray, y: np.ndarray) -> float:
    """Largest s such that some c has y_i (x2_i - phi_i c) >= s for all i (a linear program);
    inf when unbounded (some q = phi c has sign(q(x1_i)) = -y_i at every training point, e.g.
    once the degree can interpolate)."""
    from scipy.optimize import linprog

    n, p = phi.shape
    a_ub = np.hstack([y[:, None] * phi, np.ones((n, 1))])                    # y phi c + s <= y x2
    res = linprog(np.r_[np.zeros(p), -1.0], A_ub=a_ub, b_ub=y * xy[:, 1],
                  bounds=[(None, None)] * (p + 1), method="highs")
    if res.status == 3:
        return float("inf")
    if res.status != 0:
        raise GisweepError(f"capacity linear program failed for {p} coefficients: {res.message}")
    return float(-res.fun)


def fit_regime(regime: str, phi: np.ndarray, t: np.ndarray, cfg: dict, degree: int) -> np.ndarray:
    """Coefficients (degree + 1,) of one regime's fit of targets t."""
    p = degree + 1
    if regime == "min_norm":
        return min_seminorm_fit(phi, t)
    if regime == "gd_zero":
        return gradient_descent_fit(phi, t, np.zeros(p), cfg["gd_steps"])
    if regime == "gd_random":
        rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 3, degree]))
        c0 = rng.normal(0.0, cfg["gd_init_scale"] / np.sqrt(p), p)
        return gradient_descent_fit(phi, t, c0, cfg["gd_steps"])
    if regime == "high_order_penalty":
        return min_seminorm_fit(phi, t, high_order_penalty_matrix(degree, cfg["penalty_power"]))
    if regime == "curvature_penalty":
        return min_seminorm_fit(phi, t, curvature_penalty_matrix(degree))
    raise GisweepError(f"overparam.polynomial.regimes: unknown regime {regime!r}; known: {regimes()}")


def rms(v: np.ndarray) -> float:
    """Root mean square that does not overflow for huge values (boundaries far outside the hull)."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    big = np.max(np.abs(v))
    if big == 0 or not np.isfinite(big):
        return float(big)
    return float(big * np.sqrt(np.mean((v / big) ** 2)))


def x1_hull(train_xy: np.ndarray) -> tuple[float, float]:
    """[min x1, max x1] of the training points: the hull of the boundary's domain."""
    return float(train_xy[:, 0].min()), float(train_xy[:, 0].max())


def inside_x1_hull(x1: np.ndarray, train_xy: np.ndarray) -> np.ndarray:
    lo, hi = x1_hull(train_xy)
    return (x1 >= lo) & (x1 <= hi)


# ---------------------------------------------------------------- the sweep


def polynomial_sweep(cfg: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every (degree, regime) boundary; measure inside vs outside the training hull.

    cfg: config['overparam']['polynomial'] (missing keys take the schema's defaults).
    Returns (metrics_df, curves_df).
    metrics_df: one row per (degree, regime, reference); reference 'truth' or an earlier regime.
      degree, n_coef, n_train, coef_ratio (= n_coef / n_train), regime, reference,
      capacity_margin (per degree), train_error, min_train_margin, separates, coef_norm,
      test_error_inside, test_error_outside, n_test_inside, n_test_outside (the regime's own,
      repeated over its reference rows);
      boundary_gap_inside_rms / boundary_gap_outside_rms / boundary_gap_outside_max: RMS / max of
      p(x1) - reference(x1) over x1 inside / outside the x1-hull (reference: the true curve or the
      other regime's boundary);
      region_disagree_inside / _outside: fraction of grid points inside / outside the 2-D hull
      classified differently; test_disagree_inside / _outside: the same over the test points.
    curves_df: kind 'boundary' (degree, n_coef, regime, x1, x2 = p(x1), inside_x1hull), plus kind
      'train' (label = class) and 'true_curve' rows (degree -1, regime '') for plots.
    """
    cfg = resolve({} if cfg is None else cfg, "polynomial")
    train_xy, train_y = make_training_data(cfg)                              # (n, 2), (n,)
    test_xy, test_y = make_test_data(train_xy, cfg)
    test_inside = hull_mask(train_xy, test_xy)
    _, _, grid = make_grid(train_xy, cfg["outside_extent"], cfg["grid_size"])
    grid_inside = hull_mask(train_xy, grid)
    grid_truth = true_labels(grid, cfg)
    (a, b), _ = widened_box(train_xy, cfg["outside_extent"])
    xs = np.linspace(a, b, cfg["curve_points"])                               # (m,)
    xs_inside = inside_x1_hull(xs, train_xy)
    t = margin_targets(train_xy, train_y, cfg["target_margin"])
    n = cfg["n_train"]
    names = cfg["regimes"]

    def classify(coef, xy):
        return np.where(xy[:, 1] > boundary(coef, xy[:, 0]), 1, -1).astype(np.int8)

    metric_rows, curve_frames = [], []
    for degree in cfg["degrees"]:
        phi = legendre_features(train_xy[:, 0], degree)                       # (n, degree + 1)
        cap = capacity_margin(phi, train_xy, train_y)
        coefs = {r: fit_regime(r, phi, t, cfg, degree) for r in names}
        curves = {r: boundary(c, xs) for r, c in coefs.items()}
        curves["truth"] = true_curve(xs, cfg)
        grid_pred = {r: classify(c, grid) for r, c in coefs.items()}
        test_pred = {r: classify(c, test_xy) for r, c in coefs.items()}
        own = {}
        for r, c in coefs.items():
            test_hits = test_pred[r] == test_y                                # (n_test,) bool
            own[r] = {
                **separation_report(c, train_xy, train_y, cfg["separation_margin"]),
                "coef_norm": float(np.linalg.norm(c)),
                "test_error_inside": 1.0 - masked_mean(test_hits, test_inside),
                "test_error_outside": 1.0 - masked_mean(test_hits, ~test_inside),
                "n_test_inside": int(test_inside.sum()),
                "n_test_outside": int((~test_inside).sum()),
            }
            curve_frames.append(pd.DataFrame({
                "kind": "boundary", "degree": degree, "n_coef": degree + 1, "regime": r,
                "x1": xs, "x2": curves[r], "label": np.zeros(len(xs), dtype=np.int8),
                "inside_x1hull": xs_inside,
            }))
        sets = {"region": (grid_pred, grid_truth, grid_inside), "test": (test_pred, test_y, test_inside)}
        for row in compare_rows(names, sets):
            gap = curves[row["regime"]] - curves[row["reference"]]
            metric_rows.append({
                "degree": degree, "n_coef": degree + 1, "n_train": n, "coef_ratio": (degree + 1) / n,
                "regime": row["regime"], "reference": row["reference"], "capacity_margin": cap,
                **own[row["regime"]],
                "boundary_gap_inside_rms": rms(gap[xs_inside]),
                "boundary_gap_outside_rms": rms(gap[~xs_inside]),
                "boundary_gap_outside_max": float(np.max(np.abs(gap[~xs_inside]))) if (~xs_inside).any() else float("nan"),
                **{k: v for k, v in row.items() if k not in ("regime", "reference")},
            })

    extra = curve_rows(train_xy, train_y, cfg, cfg["curve_points"])
    extra = extra.assign(degree=-1, n_coef=0, regime="", inside_x1hull=inside_x1_hull(extra["x1"].to_numpy(), train_xy))
    curves_df = pd.concat(curve_frames + [extra[curve_frames[0].columns]], ignore_index=True)
    curves_df = curves_df.astype({"degree": np.int64, "n_coef": np.int64, "label": np.int8, "inside_x1hull": bool})
    return pd.DataFrame(metric_rows), curves_df


def summarize_polynomial(metrics: pd.DataFrame) -> str:
    """Plain-text table: per degree, capacity margin, which regimes separate, gap to the true curve
    outside (median over regimes), and the gaps between regimes inside vs outside (median over
    regime pairs), and grid/test disagreement between regimes inside vs outside."""
    own = metrics[metrics["reference"] == "truth"]
    pairs = metrics[metrics["reference"] != "truth"]
    lines = ["degree n_coef ratio capacity | separates (regimes) | test_err in/out (median) | "
             "gap-to-truth in/out (median rms) | pair gap in/out (median rms) | pair test-disagree in/out (mean)"]
    for degree, g in own.groupby("degree", sort=True):
        pr = pairs[pairs["degree"] == degree]
        sep = ",".join(r for r, s in zip(g.regime, g.separates) if s) or "none"
        lines.append(
            f"{degree:6d} {int(g.n_coef.iloc[0]):6d} {g.coef_ratio.iloc[0]:5.2f} {g.capacity_margin.iloc[0]:8.4g} | "
            f"{sep} | {g.test_error_inside.median():.3f} / {g.test_error_outside.median():.3f} | "
            f"{g.boundary_gap_inside_rms.median():.3g} / {g.boundary_gap_outside_rms.median():.3g} | "
            + (f"{pr.boundary_gap_inside_rms.median():.3g} / {pr.boundary_gap_outside_rms.median():.3g} | "
               f"{pr.test_disagree_inside.mean():.3f} / {pr.test_disagree_outside.mean():.3f}" if len(pr) else "- | -")
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- CLI


def _cmd_sweep(args) -> None:
    from gisweep.io import provenance, write_parquet

    cfg = parse_config_json(args.config_json, "polynomial")
    metrics, curves = polynomial_sweep(cfg)
    meta = provenance(stage="polynomial_sweep", config=cfg, seed=cfg["seed"])
    write_parquet(metrics, args.out_metrics, meta)
    write_parquet(curves, args.out_curves, meta)
    print(summarize_polynomial(metrics))


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("polynomial-sweep", help="fit Legendre boundaries across degrees and regimes")
    p.add_argument("--config-json", default="{}",
                   help="JSON object: config overparam.polynomial (missing keys take the schema's defaults)")
    p.add_argument("--out-metrics", required=True, help="output Parquet: per (degree, regime, reference) metrics")
    p.add_argument("--out-curves", required=True,
                   help="output Parquet: boundary curves, training points, true curve")
    p.set_defaults(func=_cmd_sweep)
