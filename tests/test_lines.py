"""Line families (gisweep.lines) and the GI stage on them (gisweep.gi_stage).

Each family's lines are checked against an independent recomputation: pairs and triangles from
their sample indices, direction lengths from explicit pair distances, principal components from
numpy's eigendecomposition of the covariance; the GI stage on non-pair families against the grid
baseline of gisweep.gi on lines built here without gisweep.lines.
"""
from __future__ import annotations

import json

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import build_table, load_table, training_labels
from gisweep.gi import grid_intervals
from gisweep.gi_stage import batched_gi
from gisweep.io import read_parquet, write_parquet
from gisweep.lines import (
    FAMILIES,
    class_direction_lines,
    different_class_pairs,
    make_lines,
    materialize,
    random_direction_lines,
    read_lines,
    same_class_pairs,
    sample_lines,
    to_table,
    triangle_midlines,
)
from gisweep.models import build_mlp, load_model, save_model

F = 12  # features of the synthetic data


def synthetic(per_class=(9, 8, 7), features=F, seed=0):
    """Training rows grouped by class around distinct centres: x [n, F] float32, y [n]."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(per_class):
        centre = rng.normal(size=features) * 2
        xs.append(centre + rng.normal(size=(n, features)) * (0.3 + 0.2 * np.arange(features) / features))
        ys.append(np.full(n, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


@pytest.fixture
def xy():
    return synthetic()


@pytest.fixture
def data_file(tmp_path, xy):
    x, y = xy
    n = len(y)
    test_x, test_y = synthetic((3, 3, 3), seed=1)
    table = build_table(np.concatenate([x, test_x]), np.concatenate([y, test_y]), np.arange(n),
                        np.arange(n, n + len(test_y)), None, 1.0)
    path = tmp_path / "data.parquet"
    write_parquet(table, path)
    return path


# ---------------------------------------------------------------- pairs


def test_pairs_are_every_same_class_pair(xy):
    _, y = xy
    df = same_class_pairs(y, [0, 2])
    expected = {(i, j) for i, j in itertools.combinations(range(len(y)), 2) if y[i] == y[j] and y[i] in (0, 2)}
    assert set(zip(df.i, df.j)) == expected and len(df) == len(expected) == 36 + 21
    assert (df.k == -1).all() and (df.label == y[df.i]).all()
    assert (df.t_min == -1).all() and (df.t_max == 2).all() and df.line.tolist() == list(range(len(df)))


def test_pairs_all_classes(xy):
    _, y = xy
    df = same_class_pairs(y, "all", -0.5, 1.5)
    assert len(df) == 36 + 28 + 21 and sorted(set(df.label)) == [0, 1, 2]
    assert (df.t_min == -0.5).all() and (df.t_max == 1.5).all()


@pytest.mark.parametrize("classes, t_min, t_max, match", [
    ([7], -1, 2, r"\[7\] have no training samples"),
    ("some", -1, 2, "list of labels or 'all'"),
    ([0], 0.5, 2, "must be finite and contain 0"),
    ([0], -1, -0.5, "must be finite and contain 0"),
    ([0], 0, 0, "must be finite and contain 0"),
    ([0], -1, float("inf"), "must be finite"),
])
def test_pairs_bad_input(xy, classes, t_min, t_max, match):
    with pytest.raises(GisweepError, match=match):
        same_class_pairs(xy[1], classes, t_min, t_max)


# ---------------------------------------------------------------- different-class pairs


def test_diffpairs_drawn_by_seed(xy):
    _, y = xy
    df = different_class_pairs(y, [0, 1], count=20, seed=3)
    assert len(df) == 40 and (df.groupby("label").size() == 20).all()
    assert (y[df.i] == df.label).all() and (y[df.j] != df.label).all()
    assert not df.duplicated(["i", "j"]).any()
    again = different_class_pairs(y, [0, 1], count=20, seed=3)
    pd.testing.assert_frame_equal(df, again)
    other = different_class_pairs(y, [0, 1], count=20, seed=4)
    assert set(zip(df.i, df.j)) != set(zip(other.i, other.j))


def test_diffpairs_count_above_total_gives_all(xy):
    _, y = xy
    df = different_class_pairs(y, [2], count=10_000, seed=0)
    expected = {(i, j) for i in np.flatnonzero(y == 2) for j in np.flatnonzero(y != 2)}
    assert set(zip(df.i, df.j)) == expected and len(df) == 7 * 17


def test_diffpairs_bad_input(xy):
    _, y = xy
    with pytest.raises(GisweepError, match="count must be a positive integer"):
        different_class_pairs(y, [0], count=0, seed=0)
    with pytest.raises(GisweepError, match="every training sample has label 0"):
        different_class_pairs(np.zeros(5, int), [0], count=3, seed=0)


# ---------------------------------------------------------------- triangles


def test_triangle_midlines_join_midpoints(xy):
    x, y = xy
    df = triangle_midlines(y, [0, 1], count=10, seed=5)
    assert len(df) == 2 * 10 * 3
    assert (df.t_min == -2).all() and (df.t_max == 3).all()  # range 5
    for col in "ijk":
        assert (y[df[col]] == df.label).all()
    assert ((df.i != df.j) & (df.j != df.k) & (df.i != df.k)).all()
    tri = [frozenset(t) for t in zip(df.i, df.j, df.k)]
    assert len(set(tri)) == 20  # distinct triangles, each with its three mid-lines
    assert all(tri.count(t) == 3 for t in set(tri))
    assert all(len({(a, ) for a in df.i[[t == s for t in tri]]}) == 3 for s in set(tri))  # one per vertex
    x0, d, t_min, t_max = materialize(df, x)
    xd = x.astype(np.float64)
    for n, (i, j, k) in enumerate(zip(df.i, df.j, df.k)):
        mid_ij, mid_ik = (xd[i] + xd[j]) / 2, (xd[i] + xd[k]) / 2
        np.testing.assert_allclose(x0[n].numpy(), mid_ij, rtol=0, atol=1e-12)
        np.testing.assert_allclose((x0[n] + d[n]).numpy(), mid_ik, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(df, triangle_midlines(y, [0, 1], count=10, seed=5))
    assert not df.equals(triangle_midlines(y, [0, 1], count=10, seed=6))


def test_triangles_all_when_few(xy):
    _, y = xy
    df = triangle_midlines(y, [2], count=1000, seed=0)
    assert len(df) == 3 * math.comb(7, 3)
    with pytest.raises(GisweepError, match="a triangle needs 3"):
        triangle_midlines(np.array([0, 0, 1, 1, 1]), [0], count=1, seed=0)


# ---------------------------------------------------------------- direction families


def mean_pair_distance(x, y, c):
    rows = x[y == c].astype(np.float64)
    return np.mean([np.linalg.norm(rows[a] - rows[b]) for a, b in itertools.combinations(range(len(rows)), 2)])


def test_random_directions(xy):
    x, y = xy
    df = random_direction_lines(x, y, [0, 2], count=30, seed=1)
    assert len(df) == 60 and (y[df.i] == df.label).all() and (df.j == -1).all()
    x0, d, _, _ = materialize(df, x)
    np.testing.assert_array_equal(x0.numpy(), x[df.i].astype(np.float64))
    for c in (0, 2):
        rows = torch.tensor((df.label == c).to_numpy())
        np.testing.assert_allclose(d[rows].norm(dim=1).numpy(), mean_pair_distance(x, y, c), rtol=1e-12)
    # Gaussian directions: no two alike, roughly uncorrelated with each other
    unit = d / d.norm(dim=1, keepdim=True)
    cos = (unit @ unit.T - torch.eye(len(unit), dtype=unit.dtype)).abs()
    assert float(cos.max()) < 0.99
    pd.testing.assert_frame_equal(df.drop(columns="d"), random_direction_lines(x, y, [0, 2], 30, 1).drop(columns="d"))
    fixed = random_direction_lines(x, y, [1], count=5, seed=1, scale=0.25)
    np.testing.assert_allclose(np.linalg.norm(np.stack(fixed.d), axis=1), 0.25, rtol=1e-12)
    with pytest.raises(GisweepError, match="scale must be a positive number"):
        random_direction_lines(x, y, [1], count=5, seed=1, scale=-1)


def test_class_directions_pc1_minor_perp(xy):
    x, y = xy
    c = 1
    rows = np.flatnonzero(y == c)
    xc = x[rows].astype(np.float64)
    vals, vecs = np.linalg.eigh(np.cov(xc, rowvar=False))  # ascending
    pc1_ref = vecs[:, -1]
    scale = mean_pair_distance(x, y, c)
    lines = {f: class_direction_lines(x, y, f, [c]) for f in ("pc1", "minor", "perp")}
    dirs = {}
    for f, df in lines.items():
        assert df.i.tolist() == rows.tolist() and (df.label == c).all()  # every sample of the class, once
        _, d, _, _ = materialize(df, x)
        assert torch.allclose(d, d[:1].expand_as(d))  # one direction per class
        np.testing.assert_allclose(d.norm(dim=1).numpy(), scale, rtol=1e-12)
        dirs[f] = d[0].numpy() / scale
    assert abs(abs(dirs["pc1"] @ pc1_ref) - 1) < 1e-9
    assert abs(dirs["pc1"] @ dirs["perp"]) < 1e-12 and abs(dirs["pc1"] @ dirs["minor"]) < 1e-9
    # minor: the smallest non-zero eigenvalue among the n-1 = 7 spanned components
    spanned = vecs[:, -(len(rows) - 1):]
    assert abs(abs(dirs["minor"] @ spanned[:, 0]) - 1) < 1e-6
    # perp: the mean difference to all other classes, minus its pc1 part
    diff = x[y != c].astype(np.float64).mean(0) - xc.mean(0)
    perp_ref = diff - (diff @ pc1_ref) * pc1_ref
    assert abs(dirs["perp"] @ (perp_ref / np.linalg.norm(perp_ref)) - 1) < 1e-9
    one = class_direction_lines(x, y, "perp", [c], other=2)
    diff2 = x[y == 2].astype(np.float64).mean(0) - xc.mean(0)
    ref2 = diff2 - (diff2 @ pc1_ref) * pc1_ref
    d2 = np.stack(one.d)[0]
    assert abs(d2 @ ref2 / np.linalg.norm(d2) / np.linalg.norm(ref2) - 1) < 1e-9
    with pytest.raises(GisweepError, match="equals the class itself"):
        class_direction_lines(x, y, "perp", [c], other=c)
    with pytest.raises(GisweepError, match="unknown class-direction family"):
        class_direction_lines(x, y, "pairs", [c])


# ---------------------------------------------------------------- materialize and files


def test_materialize_pairs_and_bad_rows(xy):
    x, y = xy
    df = same_class_pairs(y, [0])
    x0, d, t_min, t_max = materialize(df, x)
    np.testing.assert_array_equal((x0 + d).numpy(), x[df.j].astype(np.float64))
    bad = df.copy()
    bad.loc[0, "j"] = len(y)
    with pytest.raises(GisweepError, match=r"\(j\) outside"):
        materialize(bad, x)
    bad = random_direction_lines(x, y, [0], 3, 0).drop(columns="d")
    with pytest.raises(GisweepError, match="need a column 'd'"):
        materialize(bad, x)
    wrong = random_direction_lines(x, y, [0], 3, 0)
    with pytest.raises(GisweepError, match="directions have 12 entries but the data has 5"):
        materialize(wrong, x[:, :5])
    odd = df.assign(family="spiral")
    with pytest.raises(GisweepError, match="unknown family"):
        materialize(odd, x)


@pytest.mark.parametrize("family", FAMILIES)
def test_file_roundtrip_and_random_labels(tmp_path, data_file, family):
    out = tmp_path / f"lines_{family}.parquet"
    df = sample_lines(data_file, out, family=family, labels="random", seed=2, classes=[0, 1], count=6)
    back = read_lines(out)
    x, y_true, _, _ = load_table(data_file)
    y = training_labels(y_true, "random", 2)
    assert not np.array_equal(y, y_true)
    assert (y[back.i] == back.label).all()  # classes are the permuted labels
    if family in ("pairs", "triangles"):
        assert (y[back.j] == back.label).all()
    a, b = materialize(back, x), materialize(df, x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_cli_sample_lines(tmp_path, data_file):
    out = tmp_path / "lines_triangles.parquet"
    assert main(["sample-lines", "--data", str(data_file), "--family", "triangles", "--labels", "real", "--seed",
                 "0", "--classes", "all", "--count", "2", "--out", str(out)]) == 0
    df = read_lines(out)
    assert len(df) == 3 * 2 * 3 and (df.t_min == -2).all() and (df.t_max == 3).all()
    rc = main(["sample-lines", "--data", str(data_file), "--family", "random", "--labels", "real", "--seed", "0",
               "--classes", "9", "--count", "2", "--out", str(tmp_path / "x.parquet")])
    assert rc == 2 and not (tmp_path / "x.parquet").exists()


def test_several_families_in_one_call_equal_each_alone(tmp_path, data_file):
    """One job writes every family (the rule's way); each file equals that family sampled alone,
    whatever the other families and their order: each family has its own random stream."""
    settings = {"triangles": {"t_min": -2.0, "t_max": 3.0, "count": 2, "classes": "all"},
                "random": {"count": 3, "scale": 2.5, "classes": [0, 2]},
                "perp": {"other": "rest", "classes": [1]}}
    families = ["pairs", "triangles", "random", "perp", "minor"]
    outs = [tmp_path / "all" / f"{f}.parquet" for f in families]
    assert main(["sample-lines", "--data", str(data_file), "--family", *families, "--labels", "random",
                 "--seed", "4", "--classes", "0", "1", "--settings", json.dumps(settings),
                 "--out", *map(str, outs)]) == 0
    for family, out in zip(families, outs):
        alone = tmp_path / "alone" / f"{family}.parquet"
        opts = {"classes": [0, 1], **settings.get(family, {})}
        sample_lines(data_file, alone, family=family, labels="random", seed=4, **opts)
        a, b = read_lines(out), read_lines(alone)
        pd.testing.assert_frame_equal(a, b)
    # reversed order, same files
    rev = [tmp_path / "rev" / f"{f}.parquet" for f in families[::-1]]
    sample_lines(data_file, rev, family=families[::-1], labels="random", seed=4, classes=[0, 1],
                 settings=settings)
    for family, out in zip(families[::-1], rev):
        pd.testing.assert_frame_equal(read_lines(out), read_lines(tmp_path / "all" / f"{family}.parquet"))


def test_sample_lines_bad_requests(tmp_path, data_file, capsys):
    out = str(tmp_path / "a.parquet")
    assert main(["sample-lines", "--data", str(data_file), "--family", "pairs", "random", "--labels", "real",
                 "--seed", "0", "--classes", "0", "--out", out]) == 2
    assert "2 families but 1 output files" in capsys.readouterr().err
    assert main(["sample-lines", "--data", str(data_file), "--family", "pairs", "--labels", "real",
                 "--seed", "0", "--settings", '{"pairs": {"clases": [0]}}', "--classes", "0", "--out", out]) == 2
    assert "unknown option(s) ['clases']" in capsys.readouterr().err
    assert main(["sample-lines", "--data", str(data_file), "--family", "pairs", "--labels", "real",
                 "--seed", "0", "--out", out]) == 2
    assert "no classes" in capsys.readouterr().err
    assert not (tmp_path / "a.parquet").exists()


# ---------------------------------------------------------------- the GI stage on non-pair families


@pytest.mark.parametrize("family", ["triangles", "random", "perp"])
def test_batched_gi_matches_grid(tmp_path, data_file, family):
    x, y, _, _ = load_table(data_file)
    torch.manual_seed(0)
    model = build_mlp("2x8", F, 3, init_scale=0.5, generator=torch.Generator().manual_seed(1))
    save_model(model, tmp_path / "model.pt", arch="2x8", in_features=F, n_classes=3, meta={"seed": 0})
    lines = sample_lines(data_file, tmp_path / "lines.parquet", family=family, labels="real", seed=0,
                         classes="all", count=10)
    batched_gi(tmp_path / "model.pt", data_file, tmp_path / "lines.parquet", tmp_path / "gi.parquet",
               device="cpu", memory_mb=16)
    gi = read_parquet(tmp_path / "gi.parquet")
    assert "d" not in gi.columns
    for col in ["line", "family", "i", "j", "label", "t_min", "t_max", "class0", "t_lo", "t_hi", "gi", "pieces"]:
        assert col in gi.columns
    # the lines, built here from their definition, through the grid baseline
    xd = x.astype(np.float64)
    if family == "triangles":
        x0 = (xd[lines.i] + xd[lines.j]) / 2
        d = (xd[lines.k] - xd[lines.j]) / 2
    else:
        x0, d = xd[lines.i], np.stack(lines.d)
    steps = 3000
    ref = grid_intervals(load_model(tmp_path / "model.pt"), torch.tensor(x0), torch.tensor(d),
                         torch.tensor(lines.t_min.to_numpy()), torch.tensor(lines.t_max.to_numpy()), steps=steps)
    h = (lines.t_max - lines.t_min).to_numpy() / steps
    assert np.array_equal(gi.class0.to_numpy(), ref.class0.numpy())
    close = (np.abs(gi.t_hi.to_numpy() - ref.t_hi.numpy()) <= h + 1e-9) & \
            (np.abs(gi.t_lo.to_numpy() - ref.t_lo.numpy()) <= h + 1e-9)
    assert close.mean() >= 0.95, f"only {close.mean():.2%} of lines agree with the grid within one step"
    assert gi.gi.min() > 0 and (gi.gi <= gi.t_max - gi.t_min + 1e-12).all()
    assert (gi.gi < gi.t_max - gi.t_min).any()  # the model changes class on some lines: a real test


def test_make_lines_unknown_family(xy):
    with pytest.raises(GisweepError, match="unknown line family 'spiral'"):
        make_lines("spiral", xy[0], xy[1], seed=0, classes=[0])


def test_to_table_keeps_directions_exact(tmp_path, xy):
    x, y = xy
    df = class_direction_lines(x, y, "minor", [0])
    write_parquet(to_table(df), tmp_path / "l.parquet")
    back = read_lines(tmp_path / "l.parquet")
    np.testing.assert_array_equal(np.stack(back.d), np.stack(df.d))
