"""Toy 2-D polynomial boundary (gisweep.toy2d.polynomial): Legendre basis, fits, separation, capacity,
sweep, CLI and its figures."""
import json

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial import Polynomial
from numpy.polynomial import legendre as L

from gisweep import GisweepError
from gisweep.toy2d import polynomial as P
from gisweep.toy2d.config import resolve
from gisweep.cli import main as cli_main
from gisweep.io import read_parquet, read_provenance

SMALL = {"n_train": 12, "degrees": [2, 11, 30], "grid_size": 15, "n_test": 200, "curve_points": 41,
         "gd_steps": 2000}


def _spread_points(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.sort(np.linspace(-0.9, 0.9, n) + rng.uniform(-0.02, 0.02, n))


# ---------------------------------------------------------------- basis


def test_legendre_features_match_numpy_basis_and_closed_forms():
    x = np.linspace(-1.3, 1.3, 27)
    phi = P.legendre_features(x, 7)
    assert phi.shape == (27, 8)
    for k in range(8):
        np.testing.assert_allclose(phi[:, k], L.Legendre.basis(k)(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(phi[:, 2], (3 * x**2 - 1) / 2, atol=1e-12)
    np.testing.assert_allclose(phi[:, 3], (5 * x**3 - 3 * x) / 2, atol=1e-12)
    ends = P.legendre_features(np.array([1.0, -1.0]), 9)
    np.testing.assert_allclose(ends[0], 1.0)
    np.testing.assert_allclose(ends[1], (-1.0) ** np.arange(10))


def test_boundary_is_phi_times_coef():
    rng = np.random.default_rng(1)
    c, x = rng.normal(size=6), rng.uniform(-2, 2, 30)
    np.testing.assert_allclose(P.boundary(c, x), P.legendre_features(x, 5) @ c, rtol=1e-10)


# ---------------------------------------------------------------- fits


def test_min_norm_fit_is_lstsq_and_minimum_norm_interpolant():
    x = _spread_points(8)
    t = np.random.default_rng(2).normal(size=8)
    phi = P.legendre_features(x, 20)                                          # (8, 21): over-param
    c = P.min_seminorm_fit(phi, t)
    np.testing.assert_allclose(c, np.linalg.lstsq(phi, t, rcond=None)[0], atol=1e-10)
    np.testing.assert_allclose(phi @ c, t, atol=1e-9)                         # interpolates
    null = np.linalg.svd(phi)[2][8:]                                          # null-space rows
    for v in null[:5]:
        assert np.linalg.norm(c + 0.1 * v) > np.linalg.norm(c)
        np.testing.assert_allclose(phi @ (c + 0.1 * v), t, atol=1e-9)


def test_min_norm_fit_under_parameterized_is_least_squares():
    x = _spread_points(30)
    t = np.sin(3 * x) + 0.1 * np.random.default_rng(3).normal(size=30)
    phi = P.legendre_features(x, 4)
    np.testing.assert_allclose(P.min_seminorm_fit(phi, t), np.linalg.lstsq(phi, t, rcond=None)[0], atol=1e-12)
    # with full column rank every penalty gives the same (unique) least-squares solution
    for B in (P.high_order_penalty_matrix(4, 3.0), P.curvature_penalty_matrix(4)):
        np.testing.assert_allclose(P.min_seminorm_fit(phi, t, B), P.min_seminorm_fit(phi, t), atol=1e-12)


def _kkt(phi, t, H):
    """min c^T H c s.t. phi c = t, by the KKT system (independent of the null-space method)."""
    n, p = phi.shape
    K = np.block([[2 * H, phi.T], [phi, np.zeros((n, n))]])
    return np.linalg.solve(K, np.r_[np.zeros(p), t])[:p]


def test_weighted_penalty_fit_matches_kkt():
    x = _spread_points(5, seed=4)
    t = np.array([0.3, -0.2, 0.5, 0.1, -0.4])
    phi = P.legendre_features(x, 9)
    B = P.high_order_penalty_matrix(9, 2.0)
    np.testing.assert_allclose(B, np.diag((1.0 + np.arange(10)) ** 2))
    c = P.min_seminorm_fit(phi, t, B)
    np.testing.assert_allclose(c, _kkt(phi, t, B.T @ B), atol=1e-9)
    np.testing.assert_allclose(phi @ c, t, atol=1e-10)
    # it pays less in weighted norm, more in plain norm, than the min-norm interpolant
    c0 = P.min_seminorm_fit(phi, t)
    assert np.linalg.norm(B @ c) < np.linalg.norm(B @ c0)
    assert np.linalg.norm(c) > np.linalg.norm(c0)


def test_curvature_matrix_is_integral_of_second_derivative_squared():
    rng = np.random.default_rng(5)
    for degree in (0, 1, 2, 5, 12):
        B = P.curvature_penalty_matrix(degree)
        assert B.shape == (max(degree - 1, 0), degree + 1)
        c = rng.normal(size=degree + 1)
        # independent route: power basis, exact polynomial integration
        pp = Polynomial(L.leg2poly(c)).deriv(2)
        sq = (pp * pp).integ()
        exact = sq(1.0) - sq(-1.0)
        np.testing.assert_allclose(np.sum((B @ c) ** 2), exact, rtol=1e-9, atol=1e-12)


def test_curvature_fit_matches_kkt_and_lowers_curvature():
    x = _spread_points(6, seed=6)
    t = np.array([0.1, 0.4, -0.3, 0.2, 0.0, -0.5])
    phi = P.legendre_features(x, 11)
    B = P.curvature_penalty_matrix(11)
    c = P.min_seminorm_fit(phi, t, B)
    # H is singular (lines cost nothing) but the constraints pin the linear part: KKT is regular
    np.testing.assert_allclose(c, _kkt(phi, t, B.T @ B), atol=1e-7)
    np.testing.assert_allclose(phi @ c, t, atol=1e-9)
    assert np.sum((B @ c) ** 2) < np.sum((B @ P.min_seminorm_fit(phi, t)) ** 2)


def test_curvature_fit_recovers_a_line_exactly():
    x = _spread_points(4, seed=7)
    t = 0.3 - 0.7 * x                                                         # data on a line
    c = P.min_seminorm_fit(P.legendre_features(x, 15), t, P.curvature_penalty_matrix(15))
    xs = np.linspace(-1.5, 1.5, 11)
    np.testing.assert_allclose(P.boundary(c, xs), 0.3 - 0.7 * xs, atol=1e-7)


@pytest.mark.parametrize("n,degree", [(10, 3), (6, 14), (7, 6)])
def test_gradient_descent_closed_form_matches_iteration(n, degree):
    rng = np.random.default_rng(n + degree)
    x = _spread_points(n, seed=n)
    t = rng.normal(size=n)
    phi = P.legendre_features(x, degree)
    c0 = rng.normal(size=degree + 1)
    lr = n / np.linalg.norm(phi, 2) ** 2                                      # 1 / L
    c = c0.copy()
    for _ in range(37):
        c = c - lr * phi.T @ (phi @ c - t) / n
    np.testing.assert_allclose(P.gradient_descent_fit(phi, t, c0, 37), c, atol=1e-10)
    np.testing.assert_array_equal(P.gradient_descent_fit(phi, t, c0, 0), c0)


def test_gradient_descent_from_zero_converges_to_min_norm_and_random_start_keeps_null_part():
    x = _spread_points(6, seed=8)
    t = np.array([0.2, -0.1, 0.4, -0.3, 0.1, 0.0])
    phi = P.legendre_features(x, 9)
    c_mn = P.min_seminorm_fit(phi, t)
    np.testing.assert_allclose(P.gradient_descent_fit(phi, t, np.zeros(10), 10**9), c_mn, atol=1e-8)
    c0 = np.random.default_rng(9).normal(size=10)
    c_r = P.gradient_descent_fit(phi, t, c0, 10**9)
    np.testing.assert_allclose(phi @ c_r, t, atol=1e-8)
    vt = np.linalg.svd(phi)[2]
    np.testing.assert_allclose(vt[6:] @ c_r, vt[6:] @ c0, atol=1e-10)        # null part untouched


# ---------------------------------------------------------------- separation and capacity


def test_separation_report_on_constructed_cases():
    xy = np.array([[-0.5, 1.0], [0.0, -1.0], [0.5, 0.2]])
    y = np.array([1, -1, 1])
    zero = np.zeros(1)                                                        # p = 0
    np.testing.assert_allclose(P.signed_margins(zero, xy, y), [1.0, 1.0, 0.2])
    rep = P.separation_report(zero, xy, y, 0.1)
    assert rep == {"train_error": 0.0, "min_train_margin": pytest.approx(0.2), "separates": True}
    assert P.separation_report(zero, xy, y, 0.3)["separates"] is False        # margin below threshold
    # boundary exactly through the third point: on the boundary counts as an error
    rep = P.separation_report(np.array([0.2]), xy, y, 0.0)
    assert rep["train_error"] == pytest.approx(1 / 3) and rep["min_train_margin"] == 0.0
    assert rep["separates"] is True                                            # margin 0 >= 0
    # boundary above a positive point: misclassified
    rep = P.separation_report(np.array([0.5]), xy, y, 0.0)
    assert rep["train_error"] == pytest.approx(1 / 3) and rep["separates"] is False
    # margin targets: an exact fit has every signed margin equal to the target margin
    t = P.margin_targets(xy, y, 0.05)
    np.testing.assert_allclose(y * (xy[:, 1] - t), 0.05)


def test_capacity_margin_known_values():
    x = np.linspace(-0.9, 0.9, 6)
    y = np.array([1, -1, 1, -1, 1, -1])
    xy = np.stack([x, np.where(y > 0, 1.0, -1.0)], axis=1)                   # +1 at x2=1, -1 at x2=-1
    # a constant boundary b has margins 1 - b and 1 + b: best is b = 0, margin 1
    assert P.capacity_margin(P.legendre_features(x, 0), xy, y) == pytest.approx(1.0, abs=1e-9)
    # 5 alternations need degree >= 5 to match the sign pattern: unbounded then
    assert P.capacity_margin(P.legendre_features(x, 5), xy, y) == np.inf
    # labels opposite to the heights: no constant separates; the best constant margin is -1
    xy_bad = xy.copy()
    xy_bad[:, 1] = -xy[:, 1]
    assert P.capacity_margin(P.legendre_features(x, 0), xy_bad, y) == pytest.approx(-1.0, abs=1e-9)


def test_x1_hull_labelling_and_rms():
    xy = np.array([[-0.4, 0.0], [0.7, 1.0], [0.1, -2.0]])
    assert P.x1_hull(xy) == (-0.4, 0.7)
    q = np.array([-0.41, -0.4, 0.0, 0.7, 0.7000001, 3.0])
    np.testing.assert_array_equal(P.inside_x1_hull(q, xy), [False, True, True, True, False, False])
    assert P.rms(np.array([3.0, -4.0])) == pytest.approx(np.sqrt(12.5))
    assert P.rms(np.array([1e200, -1e200])) == pytest.approx(1e200)          # no overflow
    assert np.isnan(P.rms(np.array([])))


# ---------------------------------------------------------------- sweep

METRIC_COLS = ["degree", "n_coef", "n_train", "coef_ratio", "regime", "reference", "capacity_margin",
               "fit_method", "train_error", "min_train_margin", "separates", "coef_norm", "test_error_inside",
               "test_error_outside", "n_test_inside", "n_test_outside", "curve_outside_rms", "outside_ratio",
               "control_fraction", "controls_outside", "boundary_gap_inside_rms",
               "boundary_gap_outside_rms", "boundary_gap_outside_max", "region_disagree_inside",
               "region_disagree_outside", "test_disagree_inside", "test_disagree_outside"]


DEFAULTS = resolve({}, "polynomial")


@pytest.fixture(scope="module")
def small_sweep():
    return P.polynomial_sweep(SMALL)


def test_sweep_columns_rows_and_consistency(small_sweep):
    metrics, curves = small_sweep
    assert list(metrics.columns) == METRIC_COLS
    R = len(P.regimes())
    assert len(metrics) == len(SMALL["degrees"]) * (R + R * (R - 1) // 2)
    own = metrics[metrics["reference"] == "truth"]
    assert len(own) == len(SMALL["degrees"]) * R
    # separates is exactly the measured min margin against the threshold
    assert (own["separates"] == (own["min_train_margin"] >= DEFAULTS["separation_margin"])).all()
    # fit: separate (the default): the QP wherever some polynomial separates with the target margin,
    # least squares exactly where none does; every QP fit keeps the margin, and the penalised regimes
    # (whose start 0 does not separate) have some point exactly at it
    assert DEFAULTS["fit"] == "separate"
    feasible = own["capacity_margin"] >= DEFAULTS["target_margin"]
    assert (own["fit_method"] == np.where(feasible, P.SEPARATING, P.LEAST_SQUARES)).all()
    assert (own.loc[feasible, "min_train_margin"] >= DEFAULTS["target_margin"] - 1e-9).all()
    assert own.loc[feasible, "separates"].all() and (own.loc[feasible, "train_error"] == 0).all()
    hi = own[(own["degree"] == 30) & own["regime"].isin(["min_norm", "high_order_penalty", "curvature_penalty"])]
    assert len(hi) == 3 and np.allclose(hi["min_train_margin"], DEFAULTS["target_margin"], atol=1e-9)
    # gd_zero's separating fit is the separator closest to 0: min_norm's
    sep = metrics[(metrics["regime"] == "gd_zero") & (metrics["reference"] == "min_norm") & (metrics["degree"] == 30)]
    assert (sep["boundary_gap_outside_rms"] < 1e-9).all()
    assert (own["n_test_inside"] + own["n_test_outside"] == SMALL["n_test"]).all()
    for col in ("region_disagree_inside", "region_disagree_outside", "test_disagree_inside", "test_disagree_outside"):
        assert metrics[col].between(0, 1).all()
    # curves: one boundary per (degree, regime), the training points, the true curve
    b = curves[curves["kind"] == "boundary"]
    assert len(b) == len(SMALL["degrees"]) * R * SMALL["curve_points"]
    assert (curves["kind"] == "train").sum() == SMALL["n_train"]
    assert set(curves["kind"]) == {"boundary", "train", "true_curve"}
    # training data well inside Legendre's interval; everything measured within [-1, 1]
    train = curves[curves["kind"] == "train"]
    lo, hi = DEFAULTS["train_x1"]
    assert train["x1"].between(lo, hi).all()
    assert b["x1"].min() == -1.0 and b["x1"].max() == 1.0
    assert b["inside_x1hull"].any() and (~b["inside_x1hull"]).any()
    # the regime's own control flag follows its stated rule
    assert (own["controls_outside"] == (own["separates"] & (own["outside_ratio"] <= DEFAULTS["control_fraction"]))).all()
    g = curves[curves["kind"] == "true_curve"]
    np.testing.assert_allclose(own["curve_outside_rms"], P.rms(g.loc[~g["inside_x1hull"], "x2"].to_numpy()))
    np.testing.assert_allclose(own["outside_ratio"], own["boundary_gap_outside_rms"] / own["curve_outside_rms"])


def test_interpolate_fit_keeps_the_least_squares_sweep():
    """fit: interpolate: every regime's least-squares fit of the margin targets (fit_method least_squares)."""
    metrics, _ = P.polynomial_sweep({**SMALL, "fit": "interpolate"})
    own = metrics[metrics["reference"] == "truth"]
    assert (own["fit_method"] == P.LEAST_SQUARES).all()
    # under-parameterized (3 coefficients, 12 points): all closed-form regimes give one boundary
    low = metrics[(metrics["degree"] == 2) & metrics["reference"].isin(["min_norm", "high_order_penalty"])
                  & metrics["regime"].isin(["high_order_penalty", "curvature_penalty"])]
    assert (low["boundary_gap_outside_rms"] < 1e-9).all()
    # over-parameterized: the exact interpolants separate with the target margin
    hi = own[(own["degree"] == 30) & own["regime"].isin(["min_norm", "high_order_penalty", "curvature_penalty"])]
    assert hi["separates"].all() and np.allclose(hi["min_train_margin"], DEFAULTS["target_margin"], atol=1e-6)


def test_sweep_is_deterministic_and_seed_dependent(small_sweep):
    m1, c1 = small_sweep
    m2, c2 = P.polynomial_sweep(SMALL)
    pd.testing.assert_frame_equal(m1, m2)
    pd.testing.assert_frame_equal(c1, c2)
    m3, _ = P.polynomial_sweep({**SMALL, "seed": 1})
    assert not np.allclose(m1["coef_norm"], m3["coef_norm"])


@pytest.mark.parametrize("cfg,needle", [
    ({"degreez": [3]}, "degreez"),
    ({"degrees": [-1]}, "overparam.polynomial.degrees[0]"),
    ({"degrees": [3, 3]}, "overparam.polynomial.degrees"),
    ({"degrees": []}, "overparam.polynomial.degrees"),
    ({"regimes": ["min_norm", "sgd"]}, "overparam.polynomial.regimes[1]"),
    ({"n_train": "40"}, "overparam.polynomial.n_train"),
    ({"n_train": True}, "overparam.polynomial.n_train"),
    ({"n_train": 3}, "overparam.polynomial.n_train"),
    ({"target_margin": 0}, "overparam.polynomial.target_margin"),
    ({"gap": float("nan")}, "overparam.polynomial.gap"),
    ({"gd_steps": -1}, "overparam.polynomial.gd_steps"),
    ({"curve_points": 2}, "overparam.polynomial.curve_points"),
    ({"regimes": ["gd_zero", "gd_zero"]}, "overparam.polynomial.regimes"),
    ({"train_x1": [0.5, -0.5]}, "overparam.polynomial.train_x1: low must be below high"),
    ({"train_x1": [-1.5, 0.0]}, "overparam.polynomial.train_x1[0]"),
    ({"train_x1": [0.0]}, "overparam.polynomial.train_x1"),
    ({"control_fraction": 0}, "overparam.polynomial.control_fraction"),
    ({"fit": "exact"}, "overparam.polynomial.fit"),
    ({"outside_extent": 0.25}, r"overparam.polynomial: unknown key\(s\) ['outside_extent']"),
])
def test_bad_config_raises_naming_the_key(cfg, needle):
    with pytest.raises(GisweepError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        P.polynomial_sweep(cfg)


def test_config_not_a_dict():
    with pytest.raises(GisweepError, match="JSON object"):
        P.polynomial_sweep([1, 2])


def test_cli_sweep_and_plots(tmp_path, capsys):
    cfg = json.dumps({**SMALL, "degrees": [2, 20]})
    m, c = tmp_path / "m.parquet", tmp_path / "c.parquet"
    tables = [tmp_path / "t.csv", tmp_path / "v.md", tmp_path / "v.csv"]
    outs = ["--out-metrics", str(m), "--out-curves", str(c), "--out-table", str(tables[0]),
            "--out-verdict", str(tables[1]), "--out-verdict-csv", str(tables[2])]
    assert cli_main(["polynomial-sweep", "--config-json", cfg, *outs]) == 0
    assert "Per degree and regime" in capsys.readouterr().out
    meta = read_provenance(m)
    assert meta["stage"] == "polynomial_sweep" and meta["seed"] == 0 and meta["config"]["degrees"] == [2, 20]
    assert list(read_parquet(m).columns) == METRIC_COLS
    table = pd.read_csv(tables[0])
    assert list(table.columns) == list(P.TABLE_COLUMNS.values()) and len(table) == 2 * len(P.regimes())
    verdict = pd.read_csv(tables[2])
    assert list(verdict.columns) == ["claim", "verdict", "rule", "evidence"] and len(verdict) == 3
    assert set(verdict["verdict"]) <= {P.HOLDS, P.FAILS, P.UNMEASURED}
    text = tables[1].read_text()
    assert all(v in text for v in verdict["verdict"]) and "Rules:" in text
    for cmd, extra in (("plot-polynomial-boundaries", ["--curves", str(c)]), ("plot-polynomial-disagreement", [])):
        out = tmp_path / f"{cmd}.png"
        assert cli_main([cmd, "--metrics", str(m), *extra, "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))                                  # nothing half-written
    # bad JSON and a missing input: clear error, exit code 2
    assert cli_main(["polynomial-sweep", "--config-json", "{oops", *outs]) == 2
    assert cli_main(["plot-polynomial-disagreement", "--metrics", str(tmp_path / "none.parquet"),
                     "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "none.parquet" in err


def test_gd_steps_zero_keeps_the_start():
    """gd_steps 0 is allowed (schema minimum 0): with fit: interpolate gradient descent from zero
    stays at zero; with fit: separate gd_steps plays no part where the QP applies."""
    cfg = {**SMALL, "degrees": [4], "regimes": ["gd_zero"], "gd_steps": 0}
    m, _ = P.polynomial_sweep({**cfg, "fit": "interpolate"})
    assert m["coef_norm"].iloc[0] == 0.0
    m0, _ = P.polynomial_sweep(cfg)
    m1, _ = P.polynomial_sweep({**cfg, "gd_steps": 5})
    assert m0["fit_method"].iloc[0] == P.SEPARATING and m0["coef_norm"].iloc[0] > 0
    pd.testing.assert_frame_equal(m0, m1)


# ---------------------------------------------------------------- whole-domain regimes


def test_domain_l2_matrix_is_the_integral_of_p_squared():
    rng = np.random.default_rng(11)
    for degree in (0, 3, 10):
        c = rng.normal(size=degree + 1)
        sq = (Polynomial(L.leg2poly(c)) ** 2).integ()
        np.testing.assert_allclose(np.sum((P.domain_l2_matrix(degree) @ c) ** 2), sq(1.0) - sq(-1.0), rtol=1e-10)


def test_curve_coefficients_project_the_true_curve():
    cfg = resolve({"curve_amplitude": 0.7, "curve_frequency": 3.0}, "polynomial")
    a = P.curve_coefficients(cfg, 25)
    # independent route: a_k = (2k + 1) / 2 * integral g P_k by adaptive quadrature
    from scipy.integrate import quad

    ref = [(2 * k + 1) / 2 * quad(lambda u: 0.7 * np.sin(3.0 * u) * L.Legendre.basis(k)(u), -1, 1,
                                  epsabs=1e-13, limit=200)[0] for k in range(26)]
    np.testing.assert_allclose(a, ref, atol=1e-12)
    x = np.linspace(-1, 1, 201)
    g = 0.7 * np.sin(3.0 * x)
    # degree 25 reproduces the smooth curve to rounding over [-1, 1]
    np.testing.assert_allclose(P.boundary(a, x), g, atol=1e-12)


def test_truth_prior_fit_matches_kkt_on_the_whole_domain_integral():
    """min integral_{-1}^{1} (p - g)^2 subject to p(x_i) = t_i: KKT with the Gram matrix and the
    linear term computed by a dense trapezoid rule (independent of the Legendre orthogonality)."""
    cfg = resolve({}, "polynomial")
    x = _spread_points(6, seed=12) / 2                                        # inside [-0.5, 0.5]
    t = np.array([0.2, -0.1, 0.3, 0.0, -0.2, 0.1])
    degree = 14
    phi = P.legendre_features(x, degree)
    c = P.fit_regime("truth_prior", phi, t, cfg, degree)
    xq = np.linspace(-1, 1, 40001)
    V = P.legendre_features(xq, degree)
    w = np.full(len(xq), xq[1] - xq[0])
    w[[0, -1]] /= 2
    H = V.T @ (w[:, None] * V)
    b = V.T @ (w * 0.5 * np.sin(5.0 * xq))
    n, p = phi.shape
    K = np.block([[2 * H, phi.T], [phi, np.zeros((n, n))]])
    ref = np.linalg.solve(K, np.r_[2 * b, t])[:p]
    np.testing.assert_allclose(c, ref, atol=1e-6)
    np.testing.assert_allclose(phi @ c, t, atol=1e-9)
    # when the prior (the curve's projection) itself meets the targets, the fit is the prior, also outside
    prior = P.curve_coefficients(cfg, degree)
    c_true = P.fit_regime("truth_prior", phi, phi @ prior, cfg, degree)
    np.testing.assert_allclose(c_true, prior, atol=1e-12)
    # under-parameterized: the unique least-squares fit, like every closed-form regime
    phi3 = P.legendre_features(x, 3)
    np.testing.assert_allclose(P.fit_regime("truth_prior", phi3, t, cfg, 3),
                               np.linalg.lstsq(phi3, t, rcond=None)[0], atol=1e-10)


# ---------------------------------------------------------------- verdict


def _table(rows):
    """A regime table from (degree, n_coef, regime, separates, outside_ratio) rows (n_train 40)."""
    df = pd.DataFrame(rows, columns=["degree", "n_coef", "regime", "separates", "outside_ratio"])
    return df.assign(n_train=40, controls_outside=df["separates"] & (df["outside_ratio"] <= 0.5))


def _verdicts(rows):
    return list(P.polynomial_verdict(_table(rows), 0.5, 0.01)["verdict"])


UNDER = [(3, 4, "min_norm", False, 8.0), (3, 4, "curvature_penalty", False, 8.0), (3, 4, "truth_prior", False, 8.0)]


def test_verdict_holds_when_a_chosen_regime_controls_and_min_norm_does_not():
    top = [(99, 100, "min_norm", True, 1.2), (99, 100, "curvature_penalty", True, 0.4),
           (99, 100, "truth_prior", True, 0.0)]
    assert _verdicts(UNDER + top) == [P.HOLDS, P.HOLDS, P.HOLDS]
    v = P.polynomial_verdict(_table(UNDER + top), 0.5, 0.01)
    assert "curvature_penalty, truth_prior" in v["evidence"][0] and "0.5 x" in v["rule"][0]
    # only the oracle controls: the paper's claim holds, the knowledge-free one does not
    top_oracle = [(99, 100, "min_norm", True, 1.2), (99, 100, "curvature_penalty", True, 0.9),
                  (99, 100, "truth_prior", True, 0.0)]
    assert _verdicts(UNDER + top_oracle) == [P.HOLDS, P.HOLDS, P.FAILS]


def test_verdict_does_not_hold_in_the_cases_the_rule_excludes():
    # min_norm controls too: the regime is not what controls
    both = [(99, 100, "min_norm", True, 0.3), (99, 100, "truth_prior", True, 0.0)]
    assert _verdicts(UNDER + both)[0] == P.FAILS
    # nothing controls; a small ratio without separating the training data does not count
    none = [(99, 100, "min_norm", True, 1.2), (99, 100, "truth_prior", False, 0.1)]
    assert _verdicts(UNDER + none) == [P.FAILS, P.HOLDS, P.FAILS]
    # control at an under-parameterized degree: over-parameterization was not necessary
    under_ctrl = [(3, 4, "min_norm", False, 8.0), (3, 4, "truth_prior", True, 0.2)]
    top = [(99, 100, "min_norm", True, 1.2), (99, 100, "truth_prior", True, 0.0)]
    assert _verdicts(under_ctrl + top)[:2] == [P.HOLDS, P.FAILS]


def test_verdict_not_measured_without_its_inputs():
    # highest degree not over-parameterized; no under-parameterized degree; no min_norm; oracle only
    assert _verdicts(UNDER)[0] == P.UNMEASURED
    assert _verdicts([(99, 100, "min_norm", True, 1.2), (99, 100, "truth_prior", True, 0.0)])[1] == P.UNMEASURED
    assert _verdicts([(99, 100, "curvature_penalty", True, 0.2), (99, 100, "truth_prior", True, 0.0)])[0] == P.UNMEASURED
    assert _verdicts([(99, 100, "truth_prior", True, 0.0)]) == [P.UNMEASURED, P.UNMEASURED, P.UNMEASURED]


def test_sweep_verdict_follows_the_table():
    """End to end on a sweep: its verdict equals the rule applied to its own table, and a
    control_fraction above every ratio flips the first row to 'holds' only if min_norm fails."""
    metrics, _ = P.polynomial_sweep({**SMALL, "degrees": [3, 40]})
    table = P.regime_table(metrics)
    assert list(table.columns) == list(P.TABLE_COLUMNS.values())
    assert (table["deviation_outside_rms"] >= 0).all() and table["train_error"].between(0, 1).all()
    v = P.polynomial_verdict(table, DEFAULTS["control_fraction"], DEFAULTS["separation_margin"])
    top = table[table["degree"] == 40].set_index("regime")
    ctrl = [r for r in top.index if top.loc[r, "controls_outside"] and r != "min_norm"]
    assert v["verdict"][0] == (P.HOLDS if ctrl and not top.loc["min_norm", "controls_outside"] else P.FAILS)


# ---------------------------------------------------------------- the separating fit (a QP)


def _clarabel_qp(phi, x2, y, margin, M, c0):
    """The same QP solved directly by Clarabel (interior point, independent of the dual/NNLS route):
    min 1/2 (c - c0)^T H (c - c0) s.t. y phi c <= y x2 - margin."""
    import clarabel
    import scipy.sparse as sp

    H = M.T @ M
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(sp.csc_matrix(np.triu(H)), -H @ c0, sp.csc_matrix(y[:, None] * phi),
                                    y * x2 - margin, [clarabel.NonnegativeConeT(len(y))], settings)
    sol = solver.solve()
    assert str(sol.status) in ("Solved", "AlmostSolved")
    return np.array(sol.x)


def _small_data(n, degree, seed, frequency=5.0):
    cfg = resolve({"n_train": n, "seed": seed, "curve_frequency": frequency}, "polynomial")
    from gisweep.toy2d.data import make_training_data

    xy, y = make_training_data(cfg)
    return cfg, xy, y.astype(np.float64), P.legendre_features(xy[:, 0], degree)


@pytest.mark.parametrize("regime", P.regimes())
@pytest.mark.parametrize("n,degree,frequency", [(12, 5, 5.0), (12, 30, 5.0), (10, 15, 30.0), (16, 60, 5.0)])
def test_separating_fit_matches_clarabel_and_kkt(regime, n, degree, frequency):
    cfg, xy, y, phi = _small_data(n, degree, seed=degree, frequency=frequency)
    margin = cfg["target_margin"]
    assert P.capacity_margin(phi, xy, y) >= margin
    M, c0 = P.separating_penalty(regime, cfg, degree)
    c, mu = P.separating_fit(phi, xy[:, 1], y, margin, M, c0)
    ref = _clarabel_qp(phi, xy[:, 1], y, margin, M, c0)
    obj = lambda v: float(np.sum((M @ (v - c0)) ** 2))                       # noqa: E731
    # the same boundary over [-1, 1] and the same optimal value
    xs = np.linspace(-1, 1, 201)
    scale = max(1.0, float(np.max(np.abs(P.boundary(ref, xs)))))
    np.testing.assert_allclose(P.boundary(c, xs), P.boundary(ref, xs), atol=1e-6 * scale)
    assert obj(c) == pytest.approx(obj(ref), rel=1e-6, abs=1e-12)
    # KKT: primal feasibility, dual feasibility, complementary slackness, stationarity
    slack = y * (xy[:, 1] - phi @ c) - margin                                  # (n,) >= 0
    assert slack.min() >= -1e-9
    assert mu.min() >= 0.0
    assert np.max(np.abs(mu * slack)) <= 1e-8 * max(1.0, float(np.max(mu)))
    grad = M.T @ (M @ (c - c0))                                                # (p,)
    np.testing.assert_allclose(grad, -phi.T @ (y * mu), atol=1e-7 * max(1.0, float(np.max(np.abs(grad)))))


def test_separating_fit_infeasible_returns_none_and_sweep_falls_back_to_least_squares():
    x = np.linspace(-0.5, 0.5, 6)
    y = np.array([1, -1, 1, -1, 1, -1], dtype=np.float64)
    xy = np.stack([x, -0.1 * y], axis=1)                                      # every point on the wrong side of 0
    phi = P.legendre_features(x, 0)                                           # a constant cannot separate
    assert P.capacity_margin(phi, xy, y) < 0
    assert P.separating_fit(phi, xy[:, 1], y, 0.025, np.eye(1), np.zeros(1)) is None
    cfg = resolve({}, "polynomial")
    c, method = P.fit_boundary("min_norm", phi, xy, y, cfg, 0, P.capacity_margin(phi, xy, y))
    assert method == P.LEAST_SQUARES
    np.testing.assert_allclose(c, P.fit_regime("min_norm", phi, P.margin_targets(xy, y, cfg["target_margin"]), cfg, 0))
    # the same points become separable at degree 5: the QP then applies
    phi5 = P.legendre_features(x, 5)
    c5, method5 = P.fit_boundary("min_norm", phi5, xy, y, cfg, 5, P.capacity_margin(phi5, xy, y))
    assert method5 == P.SEPARATING and P.signed_margins(c5, xy, y).min() >= cfg["target_margin"] - 1e-9


def test_separating_fit_leaves_the_boundary_free_where_the_prior_separates():
    """truth_prior: when the projection of g separates the data with the margin it is the answer,
    inside and outside the hull (no target beside each point to pull it away)."""
    cfg, xy, y, phi = _small_data(12, 30, seed=1)
    a = P.curve_coefficients(cfg, 30)
    assert P.signed_margins(a, xy, y).min() > cfg["target_margin"]            # gap 0.05 > margin 0.025
    c, _ = P.fit_boundary("truth_prior", phi, xy, y, cfg, 30, P.capacity_margin(phi, xy, y))
    np.testing.assert_allclose(c, a, atol=1e-10)
    # the least-squares fit of the targets does not: it must pass 0.025 beside every point
    c_ls = P.fit_regime("truth_prior", phi, P.margin_targets(xy, y, cfg["target_margin"]), cfg, 30)
    assert np.max(np.abs(c_ls - a)) > 1e-2


def test_gd_random_separating_fit_keeps_the_starts_null_space_part():
    cfg, xy, y, phi = _small_data(12, 30, seed=2)
    c, _ = P.fit_boundary("gd_random", phi, xy, y, cfg, 30, P.capacity_margin(phi, xy, y))
    c0 = P.random_start(cfg, 30)
    vt = np.linalg.svd(phi)[2]
    np.testing.assert_allclose(vt[12:] @ c, vt[12:] @ c0, atol=1e-9)          # null part untouched
    assert np.linalg.norm(vt[:12] @ (c - c0)) > 1e-3                           # moved to separate


def _verdict_of(cfg):
    metrics, _ = P.polynomial_sweep(cfg)
    table = P.regime_table(metrics)
    return table, list(P.polynomial_verdict(table, DEFAULTS["control_fraction"], DEFAULTS["separation_margin"])["verdict"])


def test_paper_claim_verdict_comes_out_both_ways_on_constructed_cases():
    """Where the claim is true (a smooth curve the over-parameterized degree can represent) the
    separating fit lets the oracle regime control the boundary outside while min_norm does not:
    'holds'. The exact fit of fit: interpolate cannot show it (the zig-zags between nearby points
    of opposite classes), nor can any fit when the true curve oscillates faster than the top degree
    can follow outside the hull: 'does not hold'."""
    base = {**SMALL, "degrees": [3, 30]}
    table, v = _verdict_of(base)
    top = table[table["degree"] == 30].set_index("regime")
    assert v[0] == P.HOLDS
    assert top.loc["truth_prior", "outside_ratio"] < 1e-6 and top.loc["min_norm", "outside_ratio"] > 0.5
    _, v_interp = _verdict_of({**base, "fit": "interpolate"})
    assert v_interp[0] == P.FAILS
    fast = {**SMALL, "degrees": [3, 15], "curve_frequency": 30.0}
    table_fast, v_fast = _verdict_of(fast)
    assert (table_fast["fit_method"][table_fast["degree"] == 15] == P.SEPARATING).all()
    assert v_fast[0] == P.FAILS
    assert not table_fast.loc[table_fast["degree"] == 15, "controls_outside"].any()
