"""The hull-distance stage (gisweep.hull_stage), its figures and CLI, on small synthetic tables.

The stage's numbers are checked against a direct hull_distance call on independently built features and
against Clarabel (certified intervals must overlap); the CLI runs end to end on a table made here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.spatial.distance import cdist, pdist

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import build_table
from gisweep.hull import hull_distance
from gisweep.hull_stage import NEAREST_COLUMNS, hull_space_distances, nearest_examples, pick_examples
from gisweep.hull_summary import read_summary, summary_table
from gisweep.io import read_parquet, read_provenance, write_parquet
from gisweep.models import build_mlp, save_model
from gisweep.spaces import hidden_features, random_points

clarabel = pytest.importorskip("clarabel")

SIDE, N_TRAIN, N_TEST, N_RANDOM = 4, 30, 14, 9
OPTS = dict(n_random=N_RANDOM, random_seed=3, device="cpu")


def make_data(path, seed=0):
    """A data.parquet of 4x4 'images' in [0, 1]; the first 4 test rows are inside the training hull."""
    rng = np.random.default_rng(seed)
    train = rng.random((N_TRAIN, SIDE * SIDE)) * 0.6 + 0.2
    test = rng.random((N_TEST, SIDE * SIDE))
    w = rng.dirichlet(np.ones(N_TRAIN), size=4)
    test[:4] = w @ train  # convex combinations: inside
    x = np.concatenate([train, test]).astype(np.float32)
    y = np.arange(len(x)) % 3
    table = build_table(x, y, np.arange(N_TRAIN), np.arange(N_TRAIN, len(x)), None, 1.0)
    write_parquet(table, path, {})
    return x[:N_TRAIN].astype(np.float64), x[N_TRAIN:].astype(np.float64)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.parquet"
    train, test = make_data(path)
    return path, train, test


def clarabel_interval(train, x):
    """Clarabel's certified [lower, upper] for min ||x - train^T lam|| over the simplex."""
    c = train.mean(0)
    t, q = train - c, x - c
    n = len(t)
    P = sp.csc_matrix(np.triu(t @ t.T))
    A = sp.vstack([-sp.eye(n), sp.csr_matrix(np.ones((1, n)))]).tocsc()
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    sol = clarabel.DefaultSolver(P, -(t @ q), A, np.r_[np.zeros(n), 1.0],
                                 [clarabel.NonnegativeConeT(n), clarabel.ZeroConeT(1)], settings).solve()
    lam = np.clip(np.array(sol.x), 0, None)
    lam /= lam.sum()
    g = q - lam @ t
    upper = float(np.linalg.norm(g))
    lower = max(0.0, float((g @ q - (t @ g).max()) / upper)) if upper > 0 else 0.0
    return lower, upper


def test_pixels_against_direct_call_and_clarabel(data, tmp_path):
    path, train, test = data
    df = hull_space_distances(path, "pixels", tmp_path / "pixels.parquet", **OPTS)
    assert list(df["kind"]) == ["test"] * N_TEST + ["random"] * N_RANDOM
    np.testing.assert_array_equal(df["query"], np.r_[np.arange(N_TEST), np.arange(N_RANDOM)])
    rand = random_points(N_RANDOM, SIDE * SIDE, 3).astype(np.float64)
    assert rand.min() >= 0 and rand.max() <= 1
    queries = np.concatenate([test, rand])
    direct = hull_distance(train, queries, device="cpu", progress=False)
    np.testing.assert_allclose(df["distance"], direct.distance.numpy(), rtol=1e-9, atol=1e-12)
    assert df["certified"].all()
    assert df["inside"].iloc[:4].all() and not df["inside"].iloc[4:].any()
    assert (df["lower"] <= df["distance"]).all()
    # Clarabel on a few test and random queries: the certified intervals overlap and are tight
    for i in [0, 5, 9, N_TEST, N_TEST + 4]:
        lo, up = clarabel_interval(train, queries[i])
        assert df["lower"].iloc[i] <= up + 1e-9 and lo <= df["distance"].iloc[i] + 1e-9
        assert abs(df["distance"].iloc[i] - up) <= 1e-5 * max(up, 1e-3)
    # nearest-neighbour distances, diameter and relative distances from scipy
    nn = cdist(queries, train)
    np.testing.assert_allclose(df["nn_distance"], nn.min(1), rtol=1e-12)
    np.testing.assert_array_equal(df["nn_index"], nn.argmin(1))
    assert (df["distance"] <= df["nn_distance"] + 1e-12).all()  # a vertex is a hull point
    s = read_summary(tmp_path / "pixels.parquet")
    assert s["diameter"] == pytest.approx(pdist(train).max(), rel=1e-12)
    np.testing.assert_allclose(df["rel_distance"], df["distance"] / s["diameter"], rtol=1e-12)
    # support: heaviest first, weights reproduce the nearest point's distance when not truncated
    for i in range(len(df)):
        idx, w = np.array(df["support_index"].iloc[i]), np.array(df["support_weight"].iloc[i])
        assert len(idx) == min(df["support_size"].iloc[i], 10) and np.all(np.diff(w) <= 0)
        if df["support_size"].iloc[i] <= 10:
            assert np.linalg.norm(queries[i] - w @ train[idx]) == pytest.approx(df["distance"].iloc[i], abs=1e-9)


def test_summary_numbers(data, tmp_path):
    path, train, test = data
    out = tmp_path / "pixels.parquet"
    df = hull_space_distances(path, "pixels", out, **OPTS)
    s = read_summary(out)
    assert s["space"] == "pixels" and s["features"] == 16 and s["train_points"] == N_TRAIN
    t = s["test"]
    d = df.loc[df["kind"] == "test", "distance"].to_numpy()
    assert t["n"] == N_TEST and t["fraction_outside"] == pytest.approx((N_TEST - 4) / N_TEST)
    assert t["fraction_inside"] == pytest.approx(4 / N_TEST) and t["fraction_undecided"] == 0
    assert df.loc[df["kind"] == "test", "inside"].iloc[:4].all()
    assert (df["outside"] == (df["lower"] > s["atol"])).all() and not (df["outside"] & df["inside"]).any()
    assert t["fraction_certified"] == 1.0 and t["not_certified"] == 0
    assert t["mean"] == pytest.approx(d.mean()) and t["std"] == pytest.approx(d.std(ddof=1))
    assert t["skewness"] == pytest.approx(stats.skew(d)) and t["kurtosis"] == pytest.approx(stats.kurtosis(d))
    assert t["normaltest_p"] == pytest.approx(stats.normaltest(d).pvalue)
    assert s["random"]["n"] == N_RANDOM and s["random"]["normaltest_p"] == pytest.approx(
        stats.normaltest(df.loc[df["kind"] == "random", "distance"]).pvalue)
    table = summary_table([out])
    assert list(table["kind"]) == ["test", "random"]
    prov = read_provenance(out)
    assert prov["space"] == "pixels" and prov["tol"] == 1e-6 and "versions" in prov


def test_wavelet_spaces(data, tmp_path):
    """Full orthogonal Haar coefficients give the pixel distances (Parseval); the subset does not."""
    path, _, _ = data
    pix = hull_space_distances(path, "pixels", tmp_path / "p.parquet", **OPTS)
    haar = hull_space_distances(path, "wavelet_haar", tmp_path / "h.parquet", **OPTS)
    sub = hull_space_distances(path, "wavelet_haar_subset", tmp_path / "s.parquet", subset_levels=1, **OPTS)
    np.testing.assert_allclose(haar["distance"], pix["distance"], rtol=1e-6, atol=1e-8)
    assert read_summary(tmp_path / "s.parquet")["features"] == 1  # level 2 on 4x4: cA is 1x1
    assert (sub["distance"] <= pix["distance"] + 1e-9).all()  # an orthogonal projection never moves away
    assert not np.allclose(sub["distance"], pix["distance"])


def test_hidden_space_equals_direct_call(data, tmp_path):
    path, train, test = data
    import torch

    model = build_mlp("2x8", 16, 3, init_scale=0.5, generator=torch.Generator().manual_seed(0))
    mp = tmp_path / "model.pt"
    save_model(model, mp, arch="2x8", in_features=16, n_classes=3, meta={})
    df = hull_space_distances(path, "hidden_2x8_real_s0_l2", tmp_path / "h.parquet", model_path=mp, **OPTS)
    queries = np.concatenate([test, random_points(N_RANDOM, 16, 3)])
    f_train, f_q = hidden_features(model, train, 2), hidden_features(model, queries, 2)
    direct = hull_distance(f_train, f_q, device="cpu", progress=False)
    np.testing.assert_allclose(df["distance"], direct.distance.numpy(), rtol=1e-6, atol=1e-9)
    assert read_summary(tmp_path / "h.parquet")["features"] == 8
    with pytest.raises(GisweepError, match="architecture 2x8, but space"):
        hull_space_distances(path, "hidden_3x8_real_s0_l1", tmp_path / "x.parquet", model_path=mp, **OPTS)
    with pytest.raises(GisweepError, match="1 hidden layer|2 hidden layer"):
        hull_space_distances(path, "hidden_2x8_real_s0_l3", tmp_path / "x.parquet", model_path=mp, **OPTS)


def test_resnet_space(data, tmp_path):
    import torch

    path, _, _ = data
    before = torch.get_num_threads()
    try:
        assert main(["train-resnet", "--data", str(path), "--out", str(tmp_path / "cnn.pt"), "--epochs", "1",
                     "--width", "4", "--batch-size", "8", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    for layer, feats in (("pool", 16), ("prepool", 16 * 1 * 1)):  # width 4: 16 channels; 4x4 -> 1x1 maps
        out = tmp_path / f"r_{layer}.parquet"
        df = hull_space_distances(path, f"resnet_{layer}_s0", out, model_path=tmp_path / "cnn.pt", **OPTS)
        s = read_summary(out)
        assert s["features"] == feats and len(df) == N_TEST + N_RANDOM
        assert 0 <= s["model_train_acc"] <= 1 and 0 <= s["model_test_acc"] <= 1  # the ResNet's accuracy
    table = summary_table([tmp_path / "r_pool.parquet", tmp_path / "r_prepool.parquet"])
    assert table["model_test_acc"].notna().all() and table["model_train_acc"].notna().all()


@pytest.mark.filterwarnings("ignore:Level value of 1 is too high")
def test_same_seed_same_contents(data, tmp_path):
    path, _, _ = data
    a = hull_space_distances(path, "wavelet_db4_subset", tmp_path / "a.parquet", max_test=9, **OPTS)
    b = hull_space_distances(path, "wavelet_db4_subset", tmp_path / "b.parquet", max_test=9, **OPTS)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "a.parquet"), read_parquet(tmp_path / "b.parquet"))
    assert read_summary(tmp_path / "a.parquet") == read_summary(tmp_path / "b.parquet")
    assert len(a) == 9 + N_RANDOM and sorted(a["query"].iloc[:9]) == list(a["query"].iloc[:9])
    c = hull_space_distances(path, "wavelet_db4_subset", tmp_path / "c.parquet", max_test=9,
                             **{**OPTS, "random_seed": 4})
    assert not np.allclose(c["distance"], a["distance"])


def test_uncertified_queries_are_flagged(data, tmp_path, capsys):
    path, _, _ = data
    out = tmp_path / "p.parquet"
    df = hull_space_distances(path, "pixels", out, max_iter=1, **OPTS)
    bad = ~df["certified"]
    assert bad.any()
    assert "NOT certified" in capsys.readouterr().err
    assert (df["lower"] <= df["distance"]).all()
    gap = df["distance"] - df["lower"]
    assert (gap[bad] > 1e-6 * df["distance"][bad]).all()  # flagged rows really have a wide gap
    s = read_summary(out)
    assert s["test"]["not_certified"] + s["random"]["not_certified"] == int(bad.sum())


def test_bad_inputs_name_the_file(data, tmp_path):
    path, _, _ = data
    with pytest.raises(GisweepError, match="missing.parquet: file not found"):
        hull_space_distances(tmp_path / "missing.parquet", "pixels", tmp_path / "o.parquet", **OPTS)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage")
    with pytest.raises(GisweepError, match="corrupt.parquet: not a readable Parquet"):
        hull_space_distances(corrupt, "pixels", tmp_path / "o.parquet", **OPTS)
    with pytest.raises(GisweepError, match="nomodel.pt: model file not found"):
        hull_space_distances(path, "hidden_2x8_real_s0_l1", tmp_path / "o.parquet",
                             model_path=tmp_path / "nomodel.pt", **OPTS)
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"junk")
    with pytest.raises(GisweepError, match="bad.pt: not a gisweep model file"):
        hull_space_distances(path, "hidden_2x8_real_s0_l1", tmp_path / "o.parquet", model_path=bad_model, **OPTS)
    with pytest.raises(GisweepError, match="bad.pt: not a gisweep ResNet"):
        hull_space_distances(path, "resnet_pool_s0", tmp_path / "o.parquet", model_path=bad_model, **OPTS)
    with pytest.raises(GisweepError, match="needs --model"):
        hull_space_distances(path, "resnet_prepool_s0", tmp_path / "o.parquet", **OPTS)
    with pytest.raises(GisweepError, match="unknown space"):
        hull_space_distances(path, "voxels", tmp_path / "o.parquet", **OPTS)
    assert not (tmp_path / "o.parquet").exists()  # nothing half-written


def test_cli_end_to_end(data, tmp_path, capsys):
    path, _, _ = data
    outs = {}
    for space in ["pixels", "wavelet_haar_subset"]:
        outs[space] = tmp_path / "hull" / f"{space}.parquet"
        assert main(["hull-distance", "--data", str(path), "--space", space, "--n-random", "5", "--device", "cpu",
                     "--max-iter", "200", "--threads", "1", "--out", str(outs[space])]) == 0
    df = read_parquet(outs["pixels"], required=["query", "kind", "distance", "certified"])
    assert len(df) == N_TEST + 5
    assert main(["hull-summary", "--inputs", *map(str, outs.values()), "--out", str(tmp_path / "summary.parquet")]) == 0
    assert len(read_parquet(tmp_path / "summary.parquet")) == 4
    series = ["--inputs", *map(str, outs.values()), "--names", *outs]
    figs = tmp_path / "figs"
    assert main(["plot-hull-distributions", *series, "--out", str(figs / "d.png")]) == 0
    assert main(["plot-hull-test-vs-random", *series, "--out", str(figs / "r.png")]) == 0
    nearest = tmp_path / "hull" / "nearest_pixels.parquet"
    assert main(["hull-nearest", "--data", str(path), "--hull", str(outs["pixels"]), "--examples", "3",
                 "--support", "4", "--out", str(nearest)]) == 0
    assert main(["plot-hull-nearest", "--nearest", str(nearest), "--out", str(figs / "n.png")]) == 0
    for f in ["d.png", "r.png", "n.png"]:
        assert (figs / f).stat().st_size > 1000
    # names and inputs must pair up
    assert main(["plot-hull-distributions", "--inputs", *map(str, outs.values()), "--names", "pixels",
                 "--out", str(figs / "x.png")]) == 2
    assert "--inputs has 2 files but --names has 1" in capsys.readouterr().err
    # the nearest examples refuse a non-pixel table, and a data file the table does not belong to
    assert main(["hull-nearest", "--data", str(path), "--hull", str(outs["wavelet_haar_subset"]),
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert "need the pixel space" in capsys.readouterr().err
    other = tmp_path / "other.parquet"
    make_data(other, seed=1)
    assert main(["hull-nearest", "--data", str(other), "--hull", str(outs["pixels"]),
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert "do not match a re-solve" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists() and not (figs / "x.png").exists()
    assert main(["hull-distance", "--data", str(tmp_path / "nope.parquet"), "--space", "pixels",
                 "--out", str(tmp_path / "o.parquet")]) == 2
    assert "nope.parquet: file not found" in capsys.readouterr().err


def test_nearest_examples_table(data, tmp_path):
    """The saved nearest points: the re-solved convex combinations of full support, spread over distances."""
    path, train, test = data
    hull = tmp_path / "pixels.parquet"
    df = hull_space_distances(path, "pixels", hull, max_iter=300, **OPTS)
    out = tmp_path / "nearest.parquet"
    table = nearest_examples(path, hull, out, n_examples=3, n_support=2)
    saved = read_parquet(out)
    assert list(saved.columns) == NEAREST_COLUMNS and len(saved) == 3
    t = df[df["kind"] == "test"].reset_index(drop=True)
    pick = pick_examples(t["distance"].to_numpy(), 3)
    np.testing.assert_array_equal(saved["query"], t["query"].to_numpy()[pick])
    np.testing.assert_allclose(saved["distance"], t["distance"].to_numpy()[pick], rtol=1e-6, atol=1e-9)
    res = hull_distance(train, test[saved["query"].to_numpy()], device="cpu", progress=False)
    for r, row in enumerate(saved.itertuples(index=False)):
        np.testing.assert_array_equal(np.asarray(row.image), test[row.query].astype(np.float32))
        # nearest point: at the stored distance from the image; the full convex combination of the support
        assert np.linalg.norm(np.asarray(row.image) - np.asarray(row.nearest)) == pytest.approx(row.distance, rel=1e-9)
        np.testing.assert_allclose(row.nearest, res.nearest_points(train)[r].numpy(), rtol=0, atol=1e-12)
        k = min(2, int(row.support_size))
        assert len(row.support_index) == k and list(row.support_index) == res.support_index[r, :k].tolist()
        assert np.all(np.diff(row.support_weight) <= 0)
        for i, img in zip(row.support_index, row.support_image):
            np.testing.assert_array_equal(np.asarray(img), train[i])
    assert len(table) == 3


def test_counts_come_from_certificates(data, tmp_path):
    """A query left undecided by the iteration cap (its interval [lower, distance] straddles atol) is neither
    inside nor outside, and never counted as outside; the three fractions add up to 1."""
    path, _, _ = data
    out = tmp_path / "p.parquet"
    df = hull_space_distances(path, "pixels", out, max_iter=1, **OPTS)
    s = read_summary(out)
    atol = s["atol"]
    undecided = ~df["inside"] & ~df["outside"]
    assert undecided.any()  # the 4 test points inside the hull cannot be settled in one round
    assert (df.loc[undecided, "distance"] > atol).all() and (df.loc[undecided, "lower"] <= atol).all()
    assert not df.loc[undecided, "outside"].any()
    # the old rule (outside = not inside) would have called these outside
    assert (~df["inside"]).sum() > df["outside"].sum()
    for kind in ("test", "random"):
        k = s[kind]
        g = df[df["kind"] == kind]
        assert k["fraction_outside"] == pytest.approx(g["outside"].mean())
        assert k["fraction_undecided"] == pytest.approx((~g["inside"] & ~g["outside"]).mean())
        assert k["fraction_outside"] + k["fraction_inside"] + k["fraction_undecided"] == pytest.approx(1)
    assert s["test"]["fraction_undecided"] > 0
    # the same queries with enough rounds: every undecided test point is inside (it is a convex combination)
    full = hull_space_distances(path, "pixels", tmp_path / "full.parquet", **OPTS)
    test_undecided = undecided & (df["kind"] == "test")
    assert full.loc[test_undecided, "inside"].all()


def test_rgb_data_in_every_space(tmp_path):
    """RGB rows (H, W, C) in pixels, wavelets (per channel), a hidden layer and both ResNet spaces."""
    import torch

    rng = np.random.default_rng(7)
    side, n_tr, n_te = 8, 24, 6
    x = rng.random((n_tr + n_te, side * side * 3)).astype(np.float32)
    y = np.arange(len(x)) % 3
    path = tmp_path / "rgb.parquet"
    write_parquet(build_table(x, y, np.arange(n_tr), np.arange(n_tr, len(x)), None, 1.0), path, {})
    pix = hull_space_distances(path, "pixels", tmp_path / "p.parquet", **OPTS)
    haar = hull_space_distances(path, "wavelet_haar", tmp_path / "h.parquet", **OPTS)
    np.testing.assert_allclose(haar["distance"], pix["distance"], rtol=1e-6, atol=1e-8)  # orthogonal per channel
    hull_space_distances(path, "wavelet_haar_subset", tmp_path / "s.parquet", subset_levels=1, **OPTS)
    assert read_summary(tmp_path / "s.parquet")["features"] == 3  # level 3 on 8x8: cA 1x1 per channel
    # the nearest-point images in colour
    assert main(["hull-nearest", "--data", str(path), "--hull", str(tmp_path / "p.parquet"), "--examples", "2",
                 "--support", "2", "--out", str(tmp_path / "near.parquet")]) == 0
    assert main(["plot-hull-nearest", "--nearest", str(tmp_path / "near.parquet"), "--out", str(tmp_path / "n.png")]) == 0
    assert (tmp_path / "n.png").stat().st_size > 1000
    model = build_mlp("1x8", side * side * 3, 3, init_scale=0.5, generator=torch.Generator().manual_seed(0))
    save_model(model, tmp_path / "m.pt", arch="1x8", in_features=side * side * 3, n_classes=3, meta={})
    hull_space_distances(path, "hidden_1x8_real_s0_l1", tmp_path / "hid.parquet", model_path=tmp_path / "m.pt", **OPTS)
    before = torch.get_num_threads()
    try:
        assert main(["train-resnet", "--data", str(path), "--out", str(tmp_path / "r.pt"), "--epochs", "1",
                     "--width", "2", "--batch-size", "8", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    for layer, feats in (("prepool", 8 * 2 * 2), ("pool", 8)):
        hull_space_distances(path, f"resnet_{layer}_s0", tmp_path / f"{layer}.parquet", model_path=tmp_path / "r.pt",
                             **OPTS)
        assert read_summary(tmp_path / f"{layer}.parquet")["features"] == feats


def test_shape_and_finiteness_errors_before_work(tmp_path, capsys):
    """A space the rows cannot support, a ResNet on too-small images, non-finite data: clear errors, no output."""
    rng = np.random.default_rng(1)
    x = rng.random((12, 10)).astype(np.float32)  # 10 features: no square image
    path = tmp_path / "flat.parquet"
    write_parquet(build_table(x, np.arange(12) % 2, np.arange(8), np.arange(8, 12), None, 1.0), path, {})
    with pytest.raises(GisweepError, match="flat.parquet.*not a square grey or RGB image"):
        hull_space_distances(path, "wavelet_haar", tmp_path / "o.parquet", **OPTS)
    small = tmp_path / "small.parquet"
    write_parquet(build_table(rng.random((12, 9)).astype(np.float32), np.arange(12) % 2, np.arange(8),
                              np.arange(8, 12), None, 1.0), small, {})
    with pytest.raises(GisweepError, match="small.parquet.*3x3 images are too small for the ResNet"):
        hull_space_distances(small, "resnet_pool_s0", tmp_path / "o.parquet", model_path=tmp_path / "none.pt", **OPTS)
    assert main(["train-resnet", "--data", str(small), "--out", str(tmp_path / "r.pt")]) == 2
    assert "small.parquet: 3x3 images are too small" in capsys.readouterr().err
    x[3, 2] = np.nan
    bad = tmp_path / "nan.parquet"
    write_parquet(build_table(x, np.arange(12) % 2, np.arange(8), np.arange(8, 12), None, 1.0), bad, {})
    with pytest.raises(GisweepError, match="nan.parquet: column 'x' holds NaN"):
        hull_space_distances(bad, "pixels", tmp_path / "o.parquet", **OPTS)
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "r.pt").exists()


def test_train_size_sweep_table_fit_and_figure(data, tmp_path, capsys):
    from gisweep.hull_sweep import COLUMNS as SWEEP_COLUMNS, FITS, subsample

    path, train, test = data
    out = tmp_path / "tables" / "hull_vs_train_size.csv"
    assert main(["hull-train-size", "--data", str(path), "--sizes", "8", "15", str(N_TRAIN), "--seeds", "0", "1",
                 "--dataset", "toy", "--dim", "4", "--extrapolate-to", "100", "--device", "cpu", "--threads", "1",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == SWEEP_COLUMNS
    m = df[df["kind"] == "measured"]
    assert sorted(m["train_points"].unique()) == [8, 15, N_TRAIN] and sorted(m["seed"].unique()) == [0, 1]
    assert not m.duplicated(["train_points", "seed", "statistic"]).any()  # one row per N, seed and statistic
    # no timing in the table: the same sweep again writes the same bytes (the seconds are in the log)
    assert "seconds" not in set(df["statistic"])
    again = tmp_path / "again" / "hull_vs_train_size.csv"
    assert main(["hull-train-size", "--data", str(path), "--sizes", "8", "15", str(N_TRAIN), "--seeds", "0", "1",
                 "--dataset", "toy", "--dim", "4", "--extrapolate-to", "100", "--device", "cpu", "--threads", "1",
                 "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    # one measurement by hand: the seed-1 subsample of 15 training rows
    idx = subsample(N_TRAIN, 15, 1)
    res = hull_distance(train[idx], test, device="cpu", progress=False)
    diam = pdist(train[idx]).max()
    row = m[(m["train_points"] == 15) & (m["seed"] == 1)].set_index("statistic")["value"]
    assert row["diameter"] == pytest.approx(diam, rel=1e-6)
    assert row["distance_mean"] == pytest.approx(res.distance.numpy().mean(), rel=1e-5)
    assert row["rel_distance_mean"] == pytest.approx((res.distance.numpy() / diam).mean(), rel=1e-5)
    assert row["nn_distance_mean"] == pytest.approx(cdist(test, train[idx]).min(1).mean(), rel=1e-6)
    assert row["fraction_outside"] + row["fraction_inside"] + row["fraction_undecided"] == pytest.approx(1)
    # the full training set is one set for every seed
    full = m[m["train_points"] == N_TRAIN].pivot(index="statistic", columns="seed", values="value")
    np.testing.assert_array_equal(full.loc["distance_mean", 0], full.loc["distance_mean", 1])
    # fitted trends reach the extrapolation target, flagged beyond the largest measured N, bands around the fit
    f = df[df["kind"] == "fit"]
    assert set(f["statistic"]) <= set(FITS) and "rel_distance_mean" in set(f["statistic"])
    assert f["train_points"].max() == 100 and f.loc[f["train_points"] > N_TRAIN, "extrapolated"].all()
    assert not f.loc[f["train_points"] <= N_TRAIN, "extrapolated"].any()
    assert (f["lower"] <= f["value"] + 1e-12).all() and (f["value"] <= f["upper"] + 1e-12).all()
    assert (f["pred_lower"] <= f["lower"] + 1e-12).all()
    # the slope is the least-squares slope of log(value) on log(N) over the distinct measurements
    r = m[m["statistic"] == "rel_distance_mean"].drop_duplicates(["train_points", "value"])
    slope = np.polyfit(np.log(r["train_points"]), np.log(r["value"]), 1)[0]
    # (the CSV keeps 6 significant digits, so the refit from its values agrees to about 1e-5)
    assert f.loc[f["statistic"] == "rel_distance_mean", "slope"].iloc[0] == pytest.approx(slope, rel=1e-4)
    fig = tmp_path / "fig.png"
    assert main(["plot-hull-train-size", "--table", str(out), "--out", str(fig)]) == 0
    assert fig.stat().st_size > 1000
    # a size beyond the training rows: a clear error naming the key, before any solve, nothing written
    bad = tmp_path / "bad.csv"
    assert main(["hull-train-size", "--data", str(path), "--sizes", "10", str(N_TRAIN + 1), "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"hull.train_sizes [{N_TRAIN + 1}]" in err and "data.parquet" in err and not bad.exists()
