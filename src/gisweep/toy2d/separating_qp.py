"""The separating fit of a linear-in-coefficients boundary: a quadratic program with linear inequalities.

    minimise   1/2 ||M (c - c0)||^2
    subject to y_i (x2_i - phi_i c) >= margin   for every training point i

phi (n, p): features of the training x1; M (q, p) with full column rank (the regime's penalty);
c0 (p,): the regime's prior or start. Every training point is on its own side of the boundary
x2 = phi c, at vertical distance at least `margin`; among such boundaries the one the penalty likes
best. Unlike an exact fit to targets beside each point, the constraints leave the boundary free
between points (no forced zig-zag between nearby points of opposite classes).

Solved as a least-distance program (Lawson & Hanson, "Solving Least Squares Problems", ch. 23):
with M = Q R (R (p, p) upper triangular) and u = R (c - c0) the problem is min ||u|| s.t. G u >= h,
G = -diag(y) phi R^-1, h_i = margin - y_i x2_i + y_i phi_i c0, whose dual is one non-negative least
squares problem min ||E lam - f||, lam >= 0, E = [G^T; h^T] (p + 1, n), f = (0, .., 0, 1), solved
by scipy.optimize.nnls (n unknowns: seconds at most for n = 40, p = 320). A zero residual means
the constraints are infeasible (no boundary of these features separates with that margin). The
NNLS point is then polished on its active set (see _polish): large objectives (a curvature penalty
on data that needs a lot of curvature) otherwise cost digits.
"""
from __future__ import annotations

import numpy as np

from gisweep import GisweepError

INFEASIBLE_RESIDUAL = 1e-12          # NNLS residual norm below which the constraints count as infeasible


def separating_fit(phi: np.ndarray, x2: np.ndarray, y: np.ndarray, margin: float,
                   penalty: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(c (p,), multipliers (n,)) of the separating QP above, or None when it is infeasible.

    The multipliers mu >= 0 satisfy the KKT conditions M^T M (c - c0) = -phi^T (y mu) and
    mu_i (y_i (x2_i - phi_i c) - margin) = 0 (the tests check them)."""
    from scipy.linalg import qr, solve_triangular
    from scipy.optimize import nnls

    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = phi.shape
    if penalty.shape[1] != p or c0.shape != (p,):
        raise GisweepError(f"separating fit: penalty {penalty.shape} / start {c0.shape} do not match "
                           f"{p} coefficients")
    r = qr(penalty, mode="r")[0][:p]                                          # (p, p), R^T R = M^T M
    if np.min(np.abs(np.diag(r))) <= np.finfo(np.float64).eps * p * np.max(np.abs(np.diag(r))):
        raise GisweepError(f"separating fit: the penalty has no full column rank ({p} coefficients)")
    ay = y[:, None] * phi                                                     # (n, p)
    g = -solve_triangular(r, ay.T, trans="T", lower=False).T                  # (n, p) = -A R^-1
    h = margin - y * x2 + ay @ c0                                             # (n,)
    scale = max(np.max(np.abs(g)), np.max(np.abs(h)), 1.0)                    # rows scaled for nnls
    e = np.vstack([g.T, h[None, :]]) / scale                                  # (p + 1, n)
    f = np.zeros(p + 1)
    f[p] = 1.0
    lam, res = nnls(e, f, maxiter=50 * max(n, 10))
    resid = e @ lam - f                                                       # (p + 1,)
    if res <= INFEASIBLE_RESIDUAL or resid[p] >= 0:
        return None
    u = -resid[:p] / resid[p]                                                 # (p,) the least-distance point
    mu = lam / (-resid[p] * scale)                                            # (n,) multipliers of G u >= h
    u, mu = _polish(g, h, u, mu)
    c = c0 + solve_triangular(r, u, lower=False)                              # (p,)
    return c, mu


def _polish(g: np.ndarray, h: np.ndarray, u: np.ndarray, mu: np.ndarray):
    """Re-solve on the active set S = {mu > 0}: u = the least-norm solution of G_S u = h_S, mu_S its
    multipliers (u = G_S^T mu_S). u = -resid / resid[p] loses digits when ||u|| is large (then
    resid[p] is small); the polished point is kept when it is feasible and its multipliers are
    non-negative (the KKT conditions, to rounding), else the NNLS point is."""
    act = mu > 0
    if not act.any():
        return u, mu
    u_s = np.linalg.lstsq(g[act], h[act], rcond=None)[0]                     # (p,)
    w = np.linalg.lstsq(g[act].T, u_s, rcond=None)[0]                        # (|S|,)
    slack = g @ u_s - h                                                       # (n,) >= 0 when feasible
    tol = 1e-9 * max(1.0, float(np.max(np.abs(h))))
    if slack.min() < -tol or w.min() < -tol * max(1.0, float(np.max(np.abs(w)))):
        return u, mu
    mu_s = np.zeros_like(mu)
    mu_s[act] = np.maximum(w, 0.0)
    return u_s, mu_s
