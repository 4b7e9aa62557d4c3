"""Outputs along directions (gisweep.along): values, chosen lines, directions, files, errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gisweep import GisweepError
from gisweep.along import DIRECTIONS, along_table, outputs_along, outputs_along_directions, pick_lines
from gisweep.code_inputs import external_imports
from gisweep.figures.along import plot_along
from gisweep.data import load_table, prepare_data, training_labels
from gisweep.io import read_parquet, read_provenance
from gisweep.models import build_mlp
from gisweep.train import train


def test_compute_module_imports_no_plotting():
    # along.py's whole import closure, function-level imports included
    assert not {"matplotlib", "seaborn"} & external_imports("gisweep.along")


def numpy_forward(model, x):
    """Independent forward pass in numpy float64 from the model's weights: x [S, F] -> logits [S, C]."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    h = np.asarray(x, np.float64)
    for k, lin in enumerate(linears):
        h = h @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
        if k < len(linears) - 1:
            h = np.maximum(h, 0.0)
    return h


def small_model(features=6, classes=4, arch="2x7", seed=1):
    model = build_mlp(arch, features, classes, init_scale=0.6, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.bias.uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(seed + 7))
    return model.eval()


def test_outputs_along_equal_direct_evaluation_at_each_point():
    model = small_model()
    rng = np.random.default_rng(0)
    x0, d = rng.standard_normal(6), rng.standard_normal(6)
    ts = np.linspace(-1.0, 2.0, 37)
    got = outputs_along(model, x0, d, ts).numpy()  # [37, 4]
    want = np.stack([numpy_forward(model, (x0 + t * d)[None])[0] for t in ts])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and the float32 model evaluated point by point agrees to float32 rounding
    direct = np.stack([model(torch.as_tensor(x0 + t * d, dtype=torch.float32)[None]).detach().numpy()[0] for t in ts])
    np.testing.assert_allclose(got, direct, rtol=1e-4, atol=1e-5)
    # the model given is not changed (converted on a copy)
    assert next(model.parameters()).dtype == torch.float32


def test_outputs_along_rejects_mismatched_shapes():
    model = small_model()
    with pytest.raises(GisweepError, match="vectors of one length"):
        outputs_along(model, np.zeros(6), np.zeros(5), np.linspace(0, 1, 3))
    with pytest.raises(GisweepError, match="vectors"):
        outputs_along(model, np.zeros((2, 6)), np.zeros((2, 6)), np.linspace(0, 1, 3))


def blobs(n_per_class=12, classes=4, features=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 3
    # anisotropic clouds so pc1 and the minor component are well defined
    scales = np.linspace(2.0, 0.1, features)
    x = np.concatenate([centers[c] + rng.standard_normal((n_per_class, features)) * scales for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


def test_pick_lines_pairs_classes_scale_and_directions():
    x, y = blobs()
    lines = pick_lines(x, y, class_a=2, class_b=0, seed=5)
    assert set(lines) == set(DIRECTIONS)
    x64 = x.astype(np.float64)
    i, j, x0, d = lines["same_pair"]
    assert i != j and y[i] == y[j] == 2
    np.testing.assert_array_equal(x0, x64[i])
    np.testing.assert_array_equal(d, x64[j] - x64[i])
    ib, jb, _, d_b = lines["same_pair_b"]
    assert ib != jb and y[ib] == y[jb] == 0
    i2, k, x0o, do = lines["other_pair"]
    assert i2 == i and y[k] == 0
    np.testing.assert_array_equal(do, x64[k] - x64[i])
    # unit directions: start at the same sample, length = mean class-2 pair distance (computed by a loop)
    rows = np.flatnonzero(y == 2)
    dists = [np.linalg.norm(x64[a] - x64[b]) for n, a in enumerate(rows) for b in rows[n + 1:]]
    scale = float(np.mean(dists))
    units = {}
    for name in ("random", "pc1", "perp", "minor"):
        ii, jj, x0u, du = lines[name]
        assert ii == i and jj == -1
        np.testing.assert_array_equal(x0u, x64[i])
        assert np.linalg.norm(du) == pytest.approx(scale, rel=1e-12)
        units[name] = du / scale
    # pc1 = the top eigenvector of the class covariance (independent: numpy eigh), up to sign
    xa = x64[rows]
    w, v = np.linalg.eigh(np.cov(xa.T))
    assert abs(units["pc1"] @ v[:, -1]) == pytest.approx(1.0, abs=1e-9)
    # minor: the smallest-eigenvalue component (11 samples span 8 dims: all eigenvalues are positive)
    assert abs(units["minor"] @ v[:, 0]) == pytest.approx(1.0, abs=1e-9)
    # perp: orthogonal to pc1, and in the plane of pc1 and the mean difference (mean class 0 - mean class 2)
    assert units["perp"] @ units["pc1"] == pytest.approx(0.0, abs=1e-12)
    diff = x64[y == 0].mean(0) - xa.mean(0)
    resid = diff - (diff @ units["pc1"]) * units["pc1"]
    np.testing.assert_allclose(units["perp"], resid / np.linalg.norm(resid), atol=1e-12)
    assert units["minor"] @ units["pc1"] == pytest.approx(0.0, abs=1e-9)


def test_pick_lines_reproducible_by_seed():
    x, y = blobs()
    a = pick_lines(x, y, class_a=1, class_b=3, seed=4)
    b = pick_lines(x, y, class_a=1, class_b=3, seed=4)
    for name in DIRECTIONS:
        assert a[name][:2] == b[name][:2]
        np.testing.assert_array_equal(a[name][3], b[name][3])
    others = [pick_lines(x, y, class_a=1, class_b=3, seed=s)["same_pair"][:2] for s in range(5, 12)]
    assert any(o != a["same_pair"][:2] for o in others)


@pytest.mark.parametrize("kw, match", [
    (dict(class_a=1, class_b=1), "must differ"),
    (dict(class_a=7, class_b=1), "class 7 has 0 training samples"),
])
def test_pick_lines_bad_classes(kw, match):
    x, y = blobs()
    with pytest.raises(GisweepError, match=match):
        pick_lines(x, y, seed=0, **kw)


def test_pick_lines_too_few_samples():
    x, y = blobs(n_per_class=2)
    with pytest.raises(GisweepError, match="at least 3"):
        pick_lines(x, y, class_a=0, class_b=1, seed=0)


def test_along_table_long_format_matches_direct_evaluation():
    x, y = blobs()
    model = small_model(features=8, classes=4)
    df, record = along_table(model, x, y, class_a=2, class_b=0, seed=3, n_points=21, t_min=-1, t_max=2)
    assert len(df) == len(DIRECTIONS) * 21 * 4
    assert set(df.direction) == set(DIRECTIONS)
    lines = pick_lines(x, y, class_a=2, class_b=0, seed=3)
    for name, (i, j, x0, d) in lines.items():
        sub = df[df.direction == name].sort_values(["t", "class"])
        ts = np.unique(sub.t)
        np.testing.assert_allclose(ts, np.linspace(-1, 2, 21))
        want = numpy_forward(model, x0[None] + ts[:, None] * d[None])  # [21, 4]
        np.testing.assert_allclose(sub.output.to_numpy().reshape(21, 4), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(sub.predicted.to_numpy().reshape(21, 4)[:, 0], want.argmax(1))
        assert (sub.i == i).all() and (sub.j == j).all() and (sub.anchor_label == y[i]).all()
        assert record[name]["scale"] == pytest.approx(np.linalg.norm(d))


@pytest.mark.parametrize("kw, match", [(dict(n_points=1), "n_points"), (dict(t_min=2.0, t_max=2.0), "t_min")])
def test_along_table_bad_settings(kw, match):
    x, y = blobs()
    args = dict(class_a=2, class_b=0, seed=0, n_points=5, t_min=-1.0, t_max=2.0) | kw
    with pytest.raises(GisweepError, match=match):
        along_table(small_model(features=8), x, y, **args)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """MNIST 7×7, 10 per class; a 1x16 model per label mode (a few epochs)."""
    root = tmp_path_factory.mktemp("along")
    data = root / "data.parquet"
    prepare_data("mnist", 7, data, seed=0, train_per_class=10)
    models = {}
    for labels in ("real", "random"):
        models[labels] = root / f"{labels}.pt"
        train(data, models[labels], root / f"{labels}_history.parquet", arch="1x16", labels=labels, seed=0,
              max_epochs=15, batch_size=16, device="cpu")
    return root, data, models


def test_outputs_along_directions_file_and_figures(tiny_models):
    root, data, models = tiny_models
    from gisweep.models import load_model

    for labels in ("real", "random"):
        out = root / f"along_{labels}.parquet"
        outputs_along_directions(models[labels], data, out, labels=labels, seed=0, n_points=11)
        df = read_parquet(out)
        meta = read_provenance(out)
        assert meta["labels"] == labels and set(meta["lines"]) == set(DIRECTIONS)
        x, y_true, _, _ = load_table(data)
        y = training_labels(y_true, labels, 0)
        same = meta["lines"]["same_pair"]
        assert y[same["i"]] == y[same["j"]] == 9  # class 9 under the training labels
        # the stored outputs are the model's outputs at x_i + t (x_j - x_i)
        model = load_model(models[labels])
        sub = df[df.direction == "same_pair"].sort_values(["t", "class"])
        ts = np.unique(sub.t)
        x64 = x.astype(np.float64)
        pts = x64[same["i"]] + ts[:, None] * (x64[same["j"]] - x64[same["i"]])
        np.testing.assert_allclose(sub.output.to_numpy().reshape(len(ts), -1), numpy_forward(model, pts),
                                   rtol=1e-10, atol=1e-10)
    for fig, labels in (("fig1", "real"), ("fig2", "real"), ("fig3", "random")):
        out = root / f"{fig}.png"
        plot_along(root / f"along_{labels}.parquet", out, figure=fig, title="t")
        assert out.stat().st_size > 1000


def test_outputs_along_directions_errors(tiny_models, tmp_path):
    root, data, models = tiny_models
    with pytest.raises(GisweepError, match="model file not found"):
        outputs_along_directions(tmp_path / "nope.pt", data, tmp_path / "a.parquet", labels="real", seed=0)
    other = tmp_path / "d14.parquet"
    prepare_data("mnist", 14, other, seed=0, train_per_class=10)
    with pytest.raises(GisweepError, match="takes 49 features"):
        outputs_along_directions(models["real"], other, tmp_path / "a.parquet", labels="real", seed=0)
    with pytest.raises(GisweepError, match="unknown figure"):
        plot_along(tmp_path / "a.parquet", tmp_path / "f.png", figure="fig7")
    pd.DataFrame({"direction": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(GisweepError, match="missing column"):
        plot_along(tmp_path / "bad.parquet", tmp_path / "f.png", figure="fig1")
    assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "f.png").exists()
