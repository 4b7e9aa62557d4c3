"""Legendre-polynomial decision boundaries (command polynomial-sweep), Yousefzadeh (2021), section 3.

The claim tested: "we must over-parameterize the polynomial to have control over its extensions
outside the hull, and once it is over-parameterized we need a specific training regime to obtain
the decision boundary we want".

Data: the 2-D two-class points of `gisweep.toy2d.data`: class +1 above, class -1 below the true
curve x2 = g(x1) = A sin(w x1), training x1 ~ U[train_x1] (default [-0.5, 0.5]), well inside
Legendre's interval [-1, 1]. Everything is evaluated over [-1, 1] only, where every P_k is bounded
by 1: "outside the hull" is [-1, 1] minus the training x1-range, so a boundary that blows up there
does so because of how it was trained, not because Legendre polynomials grow past +-1.

Model: the classifier sign(x2 - p(x1)) with boundary p(x1) = sum_k c_k P_k(x1), P_k the standard
Legendre polynomials (numpy.polynomial.legendre, P_k(1) = 1); degree d has d + 1 coefficients.

Training (`fit`): with `fit: separate` (the default) every regime solves a quadratic program: the
boundary minimising the regime's penalty subject to every training point lying on its own side at
vertical distance >= target_margin, y_i (x2_i - p(x1_i)) >= target_margin (linear inequalities;
gisweep.toy2d.separating_qp). The boundary is free between training points: nothing forces it
through a target beside each point. When no polynomial of the degree separates with that margin
(capacity_margin < target_margin) the regime falls back to its least-squares fit below, and the
row says so (fit_method 'least_squares'). With `fit: interpolate` every regime fits the margin
targets t_i = x2_i - y_i * target_margin in the least-squares sense (an exact fit, once the degree
can interpolate, passes target_margin from each point on its side, which forces zig-zags between
nearby points of opposite classes). The regimes, as (penalty, start or prior) of the separating fit
and as least-squares fits:

  min_norm            separate: min ||c||^2.  interpolate: minimum-norm least squares (lstsq)
  gd_zero             separate: the separator closest to the start c0 = 0 (min ||c - c0||^2), the
                      limit of per-example projections (Hildreth's row-action method) from c0:
                      equal to min_norm. interpolate: gradient descent on (1/2n)||Phi c - t||^2
                      from c = 0, step 1/L, gd_steps steps (early stopping included)
  gd_random           the same from c0 ~ N(0, gd_init_scale^2 / (d + 1)) per coefficient; both ways
                      the start's component in Phi's null space is kept (updates move c only along
                      the training rows), which is what the start decides outside the hull
  high_order_penalty  min sum_k ((1 + k)^penalty_power c_k)^2
  curvature_penalty   min integral over [-1, 1] of p''(x1)^2: penalises the boundary over the
                      whole domain, inside and outside the hull, without knowing the true curve
                      (separate: plus CURVATURE_TIE_BREAK x integral of p^2, so that the penalty
                      has full rank and the minimiser is unique; lines cost no curvature)
  truth_prior         min integral over [-1, 1] of (p(x1) - g(x1))^2: the boundary we want,
                      asked for over the whole domain (inside and outside the hull); it knows g,
                      so it tests whether the boundary *can* be steered outside, not whether it
                      generalizes by itself. When the projection of g on the degree separates the
                      data with the margin, the separating fit is that projection

Gradient descent (fit: interpolate, and the least-squares fallback) is computed exactly in the SVD
basis of Phi (the iterate after T steps in closed form), so any number of steps costs one SVD; tests
check it against explicit iteration. The separating fits are checked against Clarabel (an
interior-point QP solver) and the KKT conditions in the tests.

"Inside": for the boundary curve, x1 inside the training hull's x1-range [min x1_i, max x1_i]
(outside: the rest of [-1, 1]); for classification (grid, test points), inside the 2-D convex hull
of the training points. Test points: x1 ~ U[-1, 1]; the grid: x1 over [-1, 1], x2 over the
data's band there.

Separation: a training point is misclassified when its signed vertical margin
y_i (x2_i - p(x1_i)) is <= 0 (train_error counts these); a fit "separates" the training data
when every signed margin is >= separation_margin. capacity_margin is the largest margin any
polynomial of that degree achieves (a linear program), which says whether the degree *can*
separate, independent of the regime (inf once some polynomial of the degree has the labels' sign
pattern at the training x1).

Control and the verdict: a regime *controls the boundary outside the hull* at a degree when it
separates the training data and its RMS deviation from the true curve outside the hull is at most
control_fraction times the true curve's own RMS there (the deviation of the boundary x2 = 0, a
boundary that knows nothing). `polynomial_verdict` states the rules of the three verdict rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.polynomial import legendre as L

from gisweep import GisweepError
from gisweep.toy2d.config import parse_config_json, part_schema, resolve
from gisweep.toy2d.separating_qp import separating_fit
from gisweep.toy2d.data import (
    band_x2_range,
    compare_rows,
    curve_rows,
    grid_points,
    hull_mask,
    make_training_data,
    masked_mean,
    sample_test_data,
    true_curve,
    true_labels,
)

DOMAIN = (-1.0, 1.0)          # Legendre's interval: the basis's orthogonality interval, |P_k| <= 1 on it
QUADRATURE_EXTRA = 64         # Gauss-Legendre nodes beyond the degree for projecting g (exact to rounding)
HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"
CURVATURE_TIE_BREAK = 1e-6    # curvature_penalty's separating fit adds this x integral of p^2 (full rank)
SEPARATING, LEAST_SQUARES = "separating_qp", "least_squares"      # fit_method values


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


def domain_l2_matrix(degree: int) -> np.ndarray:
    """W with ||W c||^2 = integral_{-1}^{1} p(x)^2 dx for p = sum_k c_k P_k: diag(sqrt(2 / (2k + 1)))."""
    return np.diag(np.sqrt(2.0 / (2.0 * np.arange(degree + 1) + 1.0)))


def curve_coefficients(cfg: dict, degree: int) -> np.ndarray:
    """Legendre coefficients (degree + 1,) of the L2([-1, 1]) projection of the true curve g:
    a_k = (2k + 1) / 2 * integral_{-1}^{1} g P_k, by Gauss-Legendre quadrature."""
    xq, wq = L.leggauss(degree + 1 + QUADRATURE_EXTRA)                        # (q,), (q,)
    vq = L.legvander(xq, degree)                                              # (q, degree + 1)
    return (2.0 * np.arange(degree + 1) + 1.0) / 2.0 * (vq.T @ (wq * true_curve(xq, cfg)))


def prior_fit(phi: np.ndarray, t: np.ndarray, prior: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Among the least-squares solutions of phi c ~ t, the one minimising ||weight (c - prior)||:
    c = prior + d with d the weight-minimal least-squares solution of phi d ~ t - phi prior."""
    return prior + min_seminorm_fit(phi, t - phi @ prior, weight)


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


def random_start(cfg: dict, degree: int) -> np.ndarray:
    """gd_random's start c0 (degree + 1,) ~ N(0, gd_init_scale^2 / (degree + 1)) per coefficient."""
    p = degree + 1
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 3, degree]))
    return rng.normal(0.0, cfg["gd_init_scale"] / np.sqrt(p), p)


def fit_regime(regime: str, phi: np.ndarray, t: np.ndarray, cfg: dict, degree: int) -> np.ndarray:
    """Coefficients (degree + 1,) of one regime's least-squares fit of targets t (fit: interpolate,
    and the fallback of fit: separate where no polynomial of the degree separates)."""
    p = degree + 1
    if regime == "min_norm":
        return min_seminorm_fit(phi, t)
    if regime == "gd_zero":
        return gradient_descent_fit(phi, t, np.zeros(p), cfg["gd_steps"])
    if regime == "gd_random":
        return gradient_descent_fit(phi, t, random_start(cfg, degree), cfg["gd_steps"])
    if regime == "high_order_penalty":
        return min_seminorm_fit(phi, t, high_order_penalty_matrix(degree, cfg["penalty_power"]))
    if regime == "curvature_penalty":
        return min_seminorm_fit(phi, t, curvature_penalty_matrix(degree))
    if regime == "truth_prior":
        return prior_fit(phi, t, curve_coefficients(cfg, degree), domain_l2_matrix(degree))
    raise GisweepError(f"overparam.polynomial.regimes: unknown regime {regime!r}; known: {regimes()}")


def separating_penalty(regime: str, cfg: dict, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """(M (q, degree + 1) of full column rank, c0 (degree + 1,)): the separating fit of the regime
    minimises ||M (c - c0)||^2 (see the module docstring)."""
    p = degree + 1
    if regime in ("min_norm", "gd_zero"):
        return np.eye(p), np.zeros(p)
    if regime == "gd_random":
        return np.eye(p), random_start(cfg, degree)
    if regime == "high_order_penalty":
        return high_order_penalty_matrix(degree, cfg["penalty_power"]), np.zeros(p)
    if regime == "curvature_penalty":
        tie = np.sqrt(CURVATURE_TIE_BREAK) * domain_l2_matrix(degree)
        return np.vstack([curvature_penalty_matrix(degree), tie]), np.zeros(p)
    if regime == "truth_prior":
        return domain_l2_matrix(degree), curve_coefficients(cfg, degree)
    raise GisweepError(f"overparam.polynomial.regimes: unknown regime {regime!r}; known: {regimes()}")


def fit_boundary(regime: str, phi: np.ndarray, xy: np.ndarray, y: np.ndarray, cfg: dict, degree: int,
                 capacity: float) -> tuple[np.ndarray, str]:
    """(coefficients (degree + 1,), fit_method) of one regime at one degree under cfg['fit'].

    separate: the separating QP when some polynomial of the degree separates with target_margin
    (capacity >= target_margin), else (or if the QP finds no separator) the least-squares fit;
    interpolate: the least-squares fit of the margin targets."""
    margin = cfg["target_margin"]
    if cfg["fit"] == "separate" and capacity >= margin:
        penalty, c0 = separating_penalty(regime, cfg, degree)
        out = separating_fit(phi, xy[:, 1], y, margin, penalty, c0)
        if out is not None:
            coef = out[0]
            worst = float(np.min(signed_margins(coef, xy, y)))
            if worst < margin - 1e-6 * max(1.0, margin):
                raise GisweepError(f"overparam.polynomial: the separating fit of {regime} at degree {degree} "
                                   f"misses the target_margin {margin:g} (smallest margin {worst:.3g}): "
                                   "numerically unreliable at this degree; lower the degree or use "
                                   "fit: interpolate")
            return coef, SEPARATING
    return fit_regime(regime, phi, margin_targets(xy, y, margin), cfg, degree), LEAST_SQUARES


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
    """Fit every (degree, regime) boundary; measure inside vs outside the training hull within [-1, 1].

    cfg: config['overparam']['polynomial'] (missing keys take the schema's defaults).
    Returns (metrics_df, curves_df).
    metrics_df: one row per (degree, regime, reference); reference 'truth' or an earlier regime.
      degree, n_coef, n_train, coef_ratio (= n_coef / n_train), regime, reference,
      capacity_margin (per degree), and the regime's own values, repeated over its reference rows:
      fit_method ('separating_qp' or 'least_squares', see fit_boundary), train_error, min_train_margin, separates, coef_norm, test_error_inside, test_error_outside,
      n_test_inside, n_test_outside, curve_outside_rms (RMS of g outside the x1-hull),
      outside_ratio (RMS deviation from g outside / curve_outside_rms), control_fraction,
      controls_outside (separates and outside_ratio <= control_fraction);
      boundary_gap_inside_rms / boundary_gap_outside_rms / boundary_gap_outside_max: RMS / max of
      p(x1) - reference(x1) over x1 in [-1, 1] inside / outside the x1-hull (reference: the true
      curve or the other regime's boundary);
      region_disagree_inside / _outside: fraction of grid points inside / outside the 2-D hull
      classified differently; test_disagree_inside / _outside: the same over the test points.
    curves_df: kind 'boundary' (degree, n_coef, regime, x1, x2 = p(x1), inside_x1hull), plus kind
      'train' (label = class) and 'true_curve' rows (degree -1, regime '') for plots.
    """
    cfg = resolve({} if cfg is None else cfg, "polynomial")
    train_xy, train_y = make_training_data(cfg)                              # (n, 2), (n,)
    test_xy, test_y = sample_test_data(*DOMAIN, cfg)                          # (n_test, 2), (n_test,)
    test_inside = hull_mask(train_xy, test_xy)
    _, _, grid = grid_points(DOMAIN, band_x2_range(*DOMAIN, cfg), cfg["grid_size"])
    grid_inside = hull_mask(train_xy, grid)
    grid_truth = true_labels(grid, cfg)
    xs = np.linspace(*DOMAIN, cfg["curve_points"])                            # (m,)
    xs_inside = inside_x1_hull(xs, train_xy)
    if not (~xs_inside).any():
        raise GisweepError(f"overparam.polynomial.curve_points: none of the {cfg['curve_points']} x1 "
                           "samples of [-1, 1] falls outside the training x1-range; train_x1 "
                           f"{cfg['train_x1']} leaves no outside to measure")
    truth = true_curve(xs, cfg)
    curve_outside = rms(truth[~xs_inside])
    n = cfg["n_train"]
    names = cfg["regimes"]

    def classify(coef, xy):
        return np.where(xy[:, 1] > boundary(coef, xy[:, 0]), 1, -1).astype(np.int8)

    metric_rows, curve_frames = [], []
    for degree in cfg["degrees"]:
        phi = legendre_features(train_xy[:, 0], degree)                       # (n, degree + 1)
        cap = capacity_margin(phi, train_xy, train_y)
        fits = {r: fit_boundary(r, phi, train_xy, train_y, cfg, degree, cap) for r in names}
        coefs = {r: c for r, (c, _) in fits.items()}
        curves = {r: boundary(c, xs) for r, c in coefs.items()}
        curves["truth"] = truth
        grid_pred = {r: classify(c, grid) for r, c in coefs.items()}
        test_pred = {r: classify(c, test_xy) for r, c in coefs.items()}
        own = {}
        for r, c in coefs.items():
            test_hits = test_pred[r] == test_y                                # (n_test,) bool
            sep = separation_report(c, train_xy, train_y, cfg["separation_margin"])
            ratio = rms(curves[r][~xs_inside] - truth[~xs_inside]) / curve_outside
            own[r] = {
                "fit_method": fits[r][1],
                **sep,
                "coef_norm": float(np.linalg.norm(c)),
                "test_error_inside": 1.0 - masked_mean(test_hits, test_inside),
                "test_error_outside": 1.0 - masked_mean(test_hits, ~test_inside),
                "n_test_inside": int(test_inside.sum()),
                "n_test_outside": int((~test_inside).sum()),
                "curve_outside_rms": curve_outside,
                "outside_ratio": ratio,
                "control_fraction": cfg["control_fraction"],
                "controls_outside": bool(sep["separates"] and ratio <= cfg["control_fraction"]),
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
                "boundary_gap_outside_max": float(np.max(np.abs(gap[~xs_inside]))),
                **{k: v for k, v in row.items() if k not in ("regime", "reference")},
            })

    extra = curve_rows(train_xy, train_y, cfg, cfg["curve_points"], x1_range=DOMAIN)
    extra = extra.assign(degree=-1, n_coef=0, regime="", inside_x1hull=inside_x1_hull(extra["x1"].to_numpy(), train_xy))
    curves_df = pd.concat(curve_frames + [extra[curve_frames[0].columns]], ignore_index=True)
    curves_df = curves_df.astype({"degree": np.int64, "n_coef": np.int64, "label": np.int8, "inside_x1hull": bool})
    return pd.DataFrame(metric_rows), curves_df


# ---------------------------------------------------------------- tables and verdict

TABLE_COLUMNS = {                                      # metrics column -> table column
    "degree": "degree", "n_coef": "n_coef", "n_train": "n_train", "regime": "regime",
    "fit_method": "fit_method", "train_error": "train_error", "min_train_margin": "min_train_margin", "separates": "separates",
    "boundary_gap_inside_rms": "deviation_inside_rms", "boundary_gap_outside_rms": "deviation_outside_rms",
    "boundary_gap_outside_max": "deviation_outside_max", "curve_outside_rms": "curve_outside_rms",
    "outside_ratio": "outside_ratio", "controls_outside": "controls_outside",
    "test_error_inside": "test_error_inside", "test_error_outside": "test_error_outside",
}


def regime_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (degree, regime): training error inside, deviation from the true curve inside
    and outside the hull (RMS over x1; outside also its max and its ratio to the curve's own RMS),
    whether the regime controls the boundary outside, and test errors inside / outside the 2-D hull."""
    own = metrics[metrics["reference"] == "truth"]
    return own[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS).reset_index(drop=True)


def _ratio_list(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.regime} {r.outside_ratio:.3g}{'' if r.separates else ' (does not separate)'}"
                     for r in rows.itertuples())


def polynomial_verdict(table: pd.DataFrame, control_fraction: float, separation_margin: float) -> pd.DataFrame:
    """The verdict rows (claim, verdict, rule, evidence) from the regime table.

    1. over-parameterization plus a chosen regime controls the boundary outside the hull (the
       paper's claim): holds when the highest degree is over-parameterized (n_coef > n_train), some
       regime other than min_norm controls the boundary there and plain min_norm does not.
    2. over-parameterization is necessary: holds when no regime controls it at any degree with
       n_coef <= n_train.
    3. (beyond the paper) a regime that does not know the true curve (any but truth_prior) controls
       it at the highest degree.
    Rows whose inputs are missing (no such degree, min_norm or another regime not swept) are
    "not measured"."""
    control = (f"a regime controls the boundary outside the hull when it separates the training data "
               f"(every signed margin >= {separation_margin:g}) and its RMS deviation from the true curve "
               f"outside the hull is <= {control_fraction:g} x the true curve's RMS there (outside_ratio "
               f"<= {control_fraction:g})")
    top = int(table["degree"].max())
    at_top = table[table["degree"] == top]
    n_coef, n_train = int(at_top["n_coef"].iloc[0]), int(at_top["n_train"].iloc[0])
    where = f"degree {top} ({n_coef} coefficients, {n_train} points)"
    regs = list(at_top["regime"])
    rows = []

    # 1. the paper's claim
    rule = (f"at the highest degree, which must be over-parameterized (coefficients > training points): "
            f"some regime other than min_norm controls the boundary and min_norm does not; {control}")
    if n_coef <= n_train:
        verdict, evidence = UNMEASURED, f"{where} is not over-parameterized"
    elif "min_norm" not in regs or len(regs) < 2:
        verdict, evidence = UNMEASURED, f"needs min_norm and another regime; swept: {regs}"
    else:
        ctrl = [r for r, c in zip(at_top["regime"], at_top["controls_outside"]) if c and r != "min_norm"]
        mn = bool(at_top.loc[at_top["regime"] == "min_norm", "controls_outside"].iloc[0])
        verdict = HOLDS if ctrl and not mn else FAILS
        evidence = (f"{where}: controlling: {', '.join(ctrl) or 'none'}; min_norm "
                    f"{'controls too' if mn else 'does not'}; outside_ratio: {_ratio_list(at_top)}")
    rows.append({"claim": "over-parameterization plus a chosen training regime controls the boundary "
                          "outside the hull", "verdict": verdict, "rule": rule, "evidence": evidence})

    # 2. necessity
    under = table[table["n_coef"] <= table["n_train"]]
    rule = f"no regime controls the boundary at any degree with coefficients <= training points; {control}"
    if under.empty:
        verdict, evidence = UNMEASURED, "no degree with coefficients <= training points swept"
    else:
        hits = under[under["controls_outside"]]
        verdict = HOLDS if hits.empty else FAILS
        best = under.loc[under["outside_ratio"].idxmin()]
        evidence = (f"degrees {sorted(set(under['degree']))}: "
                    + ("no regime controls" if hits.empty else
                       "controlling: " + ", ".join(f"{r.regime} at degree {r.degree}" for r in hits.itertuples()))
                    + f"; smallest outside_ratio {best.outside_ratio:.3g} ({best.regime}, degree {best.degree}"
                    + ("" if best.separates else ", does not separate") + ")")
    rows.append({"claim": "over-parameterization is necessary for that control", "verdict": verdict,
                 "rule": rule, "evidence": evidence})

    # 3. beyond the paper: without knowing the curve
    blind = at_top[at_top["regime"] != "truth_prior"]
    rule = f"at the highest degree, some regime other than truth_prior controls the boundary; {control}"
    if blind.empty:
        verdict, evidence = UNMEASURED, "only truth_prior swept"
    else:
        ctrl = list(blind.loc[blind["controls_outside"], "regime"])
        verdict = HOLDS if ctrl else FAILS
        evidence = f"{where}: controlling: {', '.join(ctrl) or 'none'}; outside_ratio: {_ratio_list(blind)}"
    rows.append({"claim": "(beyond the paper) a regime that does not know the true curve controls it",
                 "verdict": verdict, "rule": rule, "evidence": evidence})
    return pd.DataFrame(rows, columns=["claim", "verdict", "rule", "evidence"])


def _markdown(df: pd.DataFrame, fmt: dict | None = None) -> str:
    fmt = fmt or {}

    def cell(col, v):
        if col in fmt:
            return fmt[col](v)
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return f"{v:.3g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(df.columns, row)) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def fit_sentence(cfg: dict) -> str:
    """How the boundaries were trained, in one sentence (fit: separate | interpolate)."""
    m = cfg["target_margin"]
    if cfg["fit"] == "separate":
        return ("Training (fit: separate): each regime minimises its penalty subject to every training "
                f"point lying on its own side of the boundary at vertical distance >= {m:g} (a quadratic "
                "program with linear inequalities); fit_method 'least_squares' marks degrees where no "
                f"polynomial separates with that margin (capacity below {m:g}), fitted by least squares to "
                "targets beside each point instead.")
    return ("Training (fit: interpolate): each regime fits targets at vertical distance "
            f"{m:g} beside each training point, on its side, by least squares (exact once the degree can "
            "interpolate, which forces zig-zags between nearby points of opposite classes).")


def verdict_markdown(verdict: pd.DataFrame, table: pd.DataFrame, cfg: dict) -> str:
    """The verdict table, then the per-degree table it was decided from."""
    lo, hi = cfg["train_x1"]
    return "\n".join([
        "# Polynomial decision boundary: control outside the training hull (Yousefzadeh 2021, section 3)",
        "",
        f"Training x1 ~ U[{lo:g}, {hi:g}] ({cfg['n_train']} points, seed {cfg['seed']}); boundaries "
        "measured over Legendre's interval [-1, 1], outside the hull = [-1, 1] outside the training x1-range.",
        "",
        fit_sentence(cfg),
        "",
        _markdown(verdict[["claim", "verdict", "evidence"]]),
        "",
        "Rules:",
        "",
        *[f"- {c}: {r}." for c, r in zip(verdict["claim"], verdict["rule"])],
        "",
        "## Per degree and regime",
        "",
        "train_error: fraction of training points misclassified; deviation_*: RMS of p(x1) - g(x1) over "
        "x1 inside / outside the hull; outside_ratio: deviation_outside_rms / RMS of g outside.",
        "",
        _markdown(table[["degree", "n_coef", "regime", "fit_method", "train_error", "separates", "deviation_inside_rms",
                         "deviation_outside_rms", "outside_ratio", "controls_outside"]]),
        "",
    ])


# ---------------------------------------------------------------- CLI


def _cmd_sweep(args) -> None:
    from gisweep.io import atomic_path, provenance, write_csv, write_parquet

    cfg = parse_config_json(args.config_json, "polynomial")
    metrics, curves = polynomial_sweep(cfg)
    table = regime_table(metrics)
    verdict = polynomial_verdict(table, cfg["control_fraction"], cfg["separation_margin"])
    text = verdict_markdown(verdict, table, cfg)
    meta = provenance(stage="polynomial_sweep", config=cfg, seed=cfg["seed"])
    write_parquet(metrics, args.out_metrics, meta)
    write_parquet(curves, args.out_curves, meta)
    write_csv(table, args.out_table)
    write_csv(verdict, args.out_verdict_csv)
    with atomic_path(args.out_verdict) as tmp:
        tmp.write_text(text)
    print(text)


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("polynomial-sweep", help="fit Legendre boundaries across degrees and regimes")
    p.add_argument("--config-json", default="{}",
                   help="JSON object: config overparam.polynomial (missing keys take the schema's defaults)")
    p.add_argument("--out-metrics", required=True, help="output Parquet: per (degree, regime, reference) metrics")
    p.add_argument("--out-curves", required=True,
                   help="output Parquet: boundary curves, training points, true curve")
    p.add_argument("--out-table", required=True,
                   help="output CSV: per (degree, regime) training error, deviation inside / outside, control")
    p.add_argument("--out-verdict", required=True, help="output Markdown: the verdict, its rules and the per-degree table")
    p.add_argument("--out-verdict-csv", required=True, help="output CSV: the verdict rows (claim, verdict, rule, evidence)")
    p.set_defaults(func=_cmd_sweep)
