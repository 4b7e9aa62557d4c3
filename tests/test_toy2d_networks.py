"""Toy 2-D data and networks (gisweep.toy2d.data, .networks, .sweep): hull labels, batched training,
the network sweep, its CLI and figures."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from gisweep import GisweepError
from gisweep.toy2d import data as D
from gisweep.toy2d import networks as N
from gisweep.toy2d.config import resolve
from gisweep.toy2d.sweep import network_sweep
from gisweep.cli import main as cli_main
from gisweep.io import read_parquet, read_provenance

SMALL = {"n_train": 16, "widths": [2, 24], "steps": 400, "grid_size": 21, "n_test": 300,
         "regimes": [{"name": "adam"}, {"name": "adam_seed1", "seed": 1},
                     {"name": "sgd", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}]}




def _net(cfg):
    return resolve(cfg, "network")


# ---------------------------------------------------------------- data, hull, grid


def test_hull_mask_on_hand_made_points():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    q = np.array([[0.5, 0.5], [0.1, 0.9], [0.999, 0.001],      # inside
                  [0.5, 0.0], [1.0, 1.0],                      # on an edge, a vertex: inside
                  [1.01, 0.5], [-0.01, -0.01], [0.5, 1.2], [3.0, 3.0]])
    np.testing.assert_array_equal(D.hull_mask(square, q), [True] * 5 + [False] * 4)
    tri = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    # x + y <= 2 is inside the triangle
    np.testing.assert_array_equal(D.hull_mask(tri, np.array([[0.9, 0.9], [1.1, 1.1], [0.0, 1.0]])),
                                  [True, False, True])


def test_hull_mask_degenerate_inputs_raise():
    with pytest.raises(GisweepError, match="one line"):
        D.hull_mask(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), np.zeros((1, 2)))
    with pytest.raises(GisweepError, match="at least 3"):
        D.hull_mask(np.array([[0.0, 0.0], [1.0, 1.0]]), np.zeros((1, 2)))


def test_training_data_lies_on_the_right_side_with_the_gap():
    cfg = _net({"n_train": 41, "gap": 0.1, "spread": 0.2})
    xy, y = D.make_training_data(cfg)
    assert xy.shape == (41, 2) and (y == 1).sum() == 21 and (y == -1).sum() == 20
    d = y * (xy[:, 1] - D.true_curve(xy[:, 0], cfg))
    assert (d >= 0.1 - 1e-12).all() and (d <= 0.3 + 1e-12).all()
    np.testing.assert_array_equal(D.true_labels(xy, cfg), y)
    assert (np.abs(xy[:, 0]) <= 1).all()
    # test points cover the widened x1 range, so some fall outside the training hull
    txy, ty = D.make_test_data(xy, cfg)
    (a, b), _ = D.widened_box(xy, cfg["outside_extent"])
    assert txy[:, 0].min() >= a and txy[:, 0].max() <= b and txy[:, 0].min() < xy[:, 0].min()
    np.testing.assert_array_equal(D.true_labels(txy, cfg), ty)
    inside = D.hull_mask(xy, txy)
    assert 0 < inside.sum() < len(txy)


def test_same_seed_same_data_for_both_experiments():
    a = D.make_training_data(_net({}))
    b = D.make_training_data(resolve({"train_x1": [-1.0, 1.0]}, "polynomial"))
    np.testing.assert_array_equal(a[0], b[0])
    c = D.make_training_data(_net({"seed": 5}))
    assert not np.array_equal(a[0], c[0])
    # the polynomial's default training range lies well inside Legendre's interval
    lo, hi = resolve({}, "polynomial")["train_x1"]
    p = D.make_training_data(resolve({}, "polynomial"))[0]
    assert -1 < lo < hi < 1 and p[:, 0].min() >= lo and p[:, 0].max() <= hi


def test_grid_layout_and_widened_box():
    xy = np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 3.0]])
    (a, b), (c, d) = D.widened_box(xy, 0.5)
    assert (a, b, c, d) == (-1.0, 3.0, -1.5, 4.5)
    x1s, x2s, pts = D.make_grid(xy, 0.5, 5)
    assert pts.shape == (25, 2)
    grid = pts.reshape(5, 5, 2)
    np.testing.assert_array_equal(grid[2, 3], [x1s[3], x2s[2]])
    assert x1s[0] == -1.0 and x1s[-1] == 3.0 and x2s[0] == -1.5 and x2s[-1] == 4.5


def test_disagreement_and_compare_rows():
    a = np.array([1, 1, -1, -1], dtype=np.int8)
    b = np.array([1, -1, -1, 1], dtype=np.int8)
    inside = np.array([True, True, False, False])
    assert D.masked_mean(a != b, inside) == 0.5 and D.masked_mean(a != a, inside) == 0.0
    assert D.masked_mean(a == b, ~inside) == 0.5 and D.masked_mean(a == b, np.array([1, 0, 1, 1], bool)) == 2 / 3
    assert np.isnan(D.masked_mean(a != b, np.zeros(4, bool)))
    rows = D.compare_rows(["p", "q"], {"region": ({"p": a, "q": b}, a, inside)})
    assert [(r["regime"], r["reference"]) for r in rows] == [("p", "truth"), ("q", "truth"), ("q", "p")]
    assert rows[0]["region_disagree_inside"] == 0.0
    assert rows[2]["region_disagree_inside"] == 0.5 and rows[2]["region_disagree_outside"] == 0.5


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("width,layers", [(1, 1), (3, 1), (5, 2), (16, 3)])
def test_param_count_matches_module(width, layers):
    model = N.build_toy_mlp(width, layers, 1.0, torch.Generator().manual_seed(0))
    assert N.mlp_param_count(width, layers) == sum(p.numel() for p in model.parameters())


def test_init_is_scaled_pytorch_default_and_seeded():
    m1 = N.build_toy_mlp(50, 2, 3.0, torch.Generator().manual_seed(4))
    m2 = N.build_toy_mlp(50, 2, 3.0, torch.Generator().manual_seed(4))
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    w = m1[2].weight.detach()                                                 # 50 -> 50
    bound = 3.0 / np.sqrt(50)
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only spin on shared cores
    yield
    torch.set_num_threads(n)


def test_batched_training_equals_torch_optim_per_regime(one_thread):
    cfg = _net({"n_train": 20})
    xy, y = D.make_training_data(cfg)
    d = torch.float64
    X, Y = torch.tensor(xy, dtype=d), torch.tensor((y + 1) // 2, dtype=d)
    regimes = _net({"regimes": [
        {"name": "a"}, {"name": "aw", "weight_decay": 0.3, "lr": 0.02},
        {"name": "s", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "seed": 3},
        {"name": "s0", "optimizer": "sgd", "lr": 0.2, "init_scale": 2.0},
    ]})["regimes"]
    init = N.batched_mlp_params(6, 2, regimes, 7, d)
    params, loss = N.train_mlps_batched(init, X, Y, regimes, 40)
    for r, reg in enumerate(regimes):
        gen = torch.Generator().manual_seed(N.init_seed(7, reg["seed"], 6))
        model = N.build_toy_mlp(6, 2, reg["init_scale"], gen, d)
        ref_loss = N.train_mlp(model, X, Y, reg, 40)
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        for k, lin in enumerate(lins):
            torch.testing.assert_close(params[2 * k][r], lin.weight.detach().T, atol=1e-12, rtol=1e-10)
            torch.testing.assert_close(params[2 * k + 1][r, 0], lin.bias.detach(), atol=1e-12, rtol=1e-10)
        assert float(loss[r]) == pytest.approx(ref_loss, rel=1e-10)


# ---------------------------------------------------------------- sweep

METRIC_COLS = ["width", "hidden_layers", "n_params", "n_train", "param_ratio", "regime", "reference",
               "region_disagree_inside", "region_disagree_outside", "test_disagree_inside",
               "test_disagree_outside", "train_acc", "train_loss", "test_acc_inside", "test_acc_outside",
               "n_test_inside", "n_test_outside"]


@pytest.fixture(scope="module")
def small_sweep():
    return network_sweep(SMALL)


def test_sweep_columns_and_rows(small_sweep):
    metrics, regions = small_sweep
    assert list(metrics.columns) == METRIC_COLS
    assert len(metrics) == 2 * (3 + 3)                                        # 3 truth + 3 pair rows per width
    assert sorted(metrics["n_params"].unique()) == [N.mlp_param_count(2, 2), N.mlp_param_count(24, 2)]
    own = metrics[metrics["reference"] == "truth"]
    # against the truth, test disagreement is the test error
    np.testing.assert_allclose(own["test_disagree_inside"], 1 - own["test_acc_inside"])
    np.testing.assert_allclose(own["test_disagree_outside"], 1 - own["test_acc_outside"])
    # the wide network fits its 16 training points under every regime
    assert (own[own["width"] == 24]["train_acc"] == 1.0).all()
    grid = regions[regions["kind"] == "grid"]
    assert len(grid) == 2 * 3 * 21 * 21 and set(grid["label"].unique()) <= {-1, 1}
    assert 0 < grid["inside_hull"].mean() < 1
    assert (regions["kind"] == "train").sum() == 16


def test_identical_regimes_agree_exactly_and_seed_changes_things():
    same = {**SMALL, "widths": [8], "steps": 100,
            "regimes": [{"name": "a"}, {"name": "b"}, {"name": "c", "seed": 1}]}
    metrics, _ = network_sweep(same)
    ab = metrics[(metrics["regime"] == "b") & (metrics["reference"] == "a")].iloc[0]
    assert ab["region_disagree_inside"] == 0 and ab["region_disagree_outside"] == 0
    assert ab["test_disagree_inside"] == 0 and ab["test_disagree_outside"] == 0
    ca = metrics[(metrics["regime"] == "c") & (metrics["reference"] == "a")].iloc[0]
    assert ca["region_disagree_inside"] + ca["region_disagree_outside"] > 0


def test_sweep_is_deterministic_and_restores_threads(small_sweep):
    m1, r1 = small_sweep
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m2, r2 = network_sweep(SMALL)
        assert torch.get_num_threads() == 2                                   # restored after the sweep
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(m1, m2)
    pd.testing.assert_frame_equal(r1, r2)
    m3, _ = network_sweep({**SMALL, "seed": 1})
    assert not m1["train_loss"].equals(m3["train_loss"])


@pytest.mark.parametrize("cfg,needle", [
    ({"widthz": [2]}, "widthz"),
    ({"widths": [0]}, r"overparam.network.widths\[0\]"),
    ({"steps": True}, "overparam.network.steps"),
    ({"hidden_layers": 0}, "overparam.network.hidden_layers"),
    ({"device": "tpu"}, "overparam.network.device"),
    ({"regimes": []}, "overparam.network.regimes"),
    ({"regimes": [{"name": "a", "optimiser": "adam"}]}, r"overparam.network.regimes\[0\].*optimiser"),
    ({"regimes": [{"name": "a", "optimizer": "lbfgs"}]}, r"overparam.network.regimes\[0\].optimizer"),
    ({"regimes": [{"name": "a", "lr": -1}]}, r"overparam.network.regimes\[0\].lr"),
    ({"regimes": [{"name": "a", "momentum": 1.0}]}, r"overparam.network.regimes\[0\].momentum"),
    ({"regimes": [{"name": "a"}, {"name": "a"}]}, "distinct"),
    ({"regimes": [{"name": "truth"}]}, r"overparam.network.regimes\[0\].name"),
    ({"regimes": [{"lr": 0.1}]}, r"overparam.network.regimes\[0\].name"),
    ({"regimes": ["adam"]}, r"overparam.network.regimes\[0\]"),
    ({"grid_size": 2}, "overparam.network.grid_size"),
    ({"gap": 0}, "overparam.network.gap"),
    ({"spread": -0.1}, "overparam.network.spread"),
    ({"widths": [2, 2]}, "overparam.network.widths"),
])
def test_bad_config_raises_naming_the_key(cfg, needle):
    with pytest.raises(GisweepError, match=needle):
        network_sweep(cfg)


def test_cli_sweep_and_plots(tmp_path, capsys):
    cfg = json.dumps({**SMALL, "widths": [3], "steps": 50})
    m, r = tmp_path / "m.parquet", tmp_path / "r.parquet"
    assert cli_main(["network-sweep", "--config-json", cfg, "--out-metrics", str(m), "--out-regions", str(r)]) == 0
    assert "width" in capsys.readouterr().out
    meta = read_provenance(r)
    assert meta["stage"] == "network_sweep" and meta["config"]["widths"] == [3] and meta["seed"] == 0
    assert list(read_parquet(m).columns) == METRIC_COLS
    for cmd, extra in (("plot-network-regions", ["--regions", str(r)]), ("plot-network-disagreement", [])):
        out = tmp_path / f"{cmd}.png"
        assert cli_main([cmd, "--metrics", str(m), *extra, "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))
    assert cli_main(["network-sweep", "--config-json", "[1]", "--out-metrics", str(m), "--out-regions", str(r)]) == 2
    assert "JSON object" in capsys.readouterr().err
    # a metrics table without the needed columns: named error, no figure written
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "bad.parquet")
    out = tmp_path / "bad.png"
    assert cli_main(["plot-network-disagreement", "--metrics", str(tmp_path / "bad.parquet"), "--out", str(out)]) == 2
    assert "missing column" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------------- one MLP builder


def test_toy_mlp_is_the_models_builder_with_fan_in_init():
    """build_toy_mlp draws W, b per layer as (rand * 2 - 1) * init_scale / sqrt(fan_in) from the
    generator only, in float32 unless asked otherwise."""
    for dtype in (torch.float32, torch.float64):
        model = N.build_toy_mlp(5, 2, 1.5, torch.Generator().manual_seed(3), dtype)
        gen = torch.Generator().manual_seed(3)
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        assert [(l.in_features, l.out_features) for l in lins] == [(2, 5), (5, 5), (5, 1)]
        for lin in lins:
            bound = 1.5 / np.sqrt(lin.in_features)
            w = (torch.rand(lin.out_features, lin.in_features, generator=gen, dtype=dtype) * 2 - 1) * bound
            b = (torch.rand(lin.out_features, generator=gen, dtype=dtype) * 2 - 1) * bound
            assert lin.weight.dtype == dtype and torch.equal(lin.weight.detach(), w) and torch.equal(lin.bias.detach(), b)


def test_models_build_mlp_default_init_unchanged():
    """The GI models' init (weights U(-s, s), biases zero) is what it was before init= existed."""
    from gisweep.models import build_mlp

    model = build_mlp("2x7", 4, 3, 0.2, generator=torch.Generator().manual_seed(11))
    gen = torch.Generator().manual_seed(11)
    for lin in [m for m in model if isinstance(m, torch.nn.Linear)]:
        w = torch.empty(lin.out_features, lin.in_features).uniform_(-0.2, 0.2, generator=gen)
        assert torch.equal(lin.weight.detach(), w) and not lin.bias.detach().any()
    with pytest.raises(GisweepError, match="init"):
        build_mlp("1x3", 2, 2, init="xavier")
