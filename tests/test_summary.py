"""The GI summary table (gisweep.summary): every number recomputed with pandas and scipy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.io import provenance, read_parquet, write_parquet
from gisweep.summary import gi_summary, run_keys, to_markdown, write_summary


def fake_run(root, dataset, dim, arch, labels, seed, family, gi, t_min=-1.0, t_max=2.0, pieces=None,
             accs=((0.5, 0.4), (1.0, 0.9)), converged=True):
    run = root / "results" / dataset / f"d{dim}" / arch / labels / f"s{seed}"
    gi = np.asarray(gi, np.float64)
    pieces = np.arange(len(gi)) % 4 + 1 if pieces is None else pieces
    df = pd.DataFrame({"line": np.arange(len(gi)), "i": 0, "j": 1, "t_min": t_min, "t_max": t_max,
                       "class0": 5, "t_lo": t_min, "t_hi": t_min + gi, "gi": gi, "pieces": pieces})
    write_parquet(df, run / f"gi_{family}.parquet")
    hist = pd.DataFrame({"epoch": np.arange(1, len(accs) + 1), "loss": 1.0,
                         "train_acc": [a for a, _ in accs], "val_acc": [v for _, v in accs]})
    if not (run / "history.parquet").exists():
        write_parquet(hist, run / "history.parquet", provenance(converged=converged))
    return run / f"gi_{family}.parquet"


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    real = np.r_[np.full(30, 3.0), rng.uniform(0.5, 3, 70)]
    rand = rng.uniform(0.1, 3, 80)
    tri = rng.uniform(0, 5, 50)
    paths = [
        fake_run(tmp_path, "mnist", 28, "3x128", "real", 0, "pairs", real),
        fake_run(tmp_path, "mnist", 28, "3x128", "random", 0, "pairs", rand, accs=((0.2, 0.1), (0.99, 0.08)),
                 converged=False),
        fake_run(tmp_path, "mnist", 28, "3x128", "real", 0, "triangles", tri, t_min=-2, t_max=3),
        fake_run(tmp_path, "moons", 2, "1x512", "random", 1, "pairs", [1.0, 2.0]),
    ]
    return paths, {"real": real, "rand": rand, "tri": tri}


def test_summary_numbers(runs):
    paths, v = runs
    table = gi_summary(paths)
    assert len(table) == 8 and (table.seed == -1).sum() == 4  # a pooled row per (run, family), one seed each
    t = table[table.seed >= 0]
    assert len(t) == 4 and (t.seeds == 1).all() and t.gi_mean_sd.isna().all()
    assert (t.gi_mean_min == t.gi_mean).all() and (t.gi_mean_max == t.gi_mean).all()
    row = t[(t.labels == "real") & (t.family == "pairs")].iloc[0]
    s = pd.Series(v["real"])
    assert row.lines == 100 and row.gi_mean == pytest.approx(s.mean(), rel=1e-14)
    assert row.gi_median == pytest.approx(s.median()) and row.gi_std == pytest.approx(s.std())
    assert row.gi_iqr == pytest.approx(s.quantile(0.75) - s.quantile(0.25))
    assert row.full_range == pytest.approx(0.30)
    assert row.pieces_mean == pytest.approx(pd.Series(np.arange(100) % 4 + 1).mean())
    assert (row.train_acc, row.val_acc, row.epochs, row.converged) == (1.0, 0.9, 2, True)
    ks = stats.ks_2samp(v["real"], v["rand"])
    rand_row = t[(t.labels == "random") & (t.family == "pairs")].iloc[0]
    for r in (row, rand_row):
        assert r.ks_real_random == pytest.approx(ks.statistic) and r.ks_pvalue == pytest.approx(ks.pvalue)
    assert (rand_row.val_acc, rand_row.converged) == (0.08, False)
    tri = t[t.family == "triangles"].iloc[0]
    assert tri.full_range == pytest.approx(np.mean(v["tri"] >= 5)) and np.isnan(tri.ks_real_random)
    moons = t[t.dataset == "moons"].iloc[0]
    assert (moons.dim, moons.arch, moons.seed) == (2, "1x512", 1) and np.isnan(moons.ks_real_random)
    # with one seed the pooled row repeats the seed's statistics
    pooled = table[table.seed == -1].drop(columns="seed").reset_index(drop=True)
    pd.testing.assert_frame_equal(pooled, t.drop(columns="seed").reset_index(drop=True), check_dtype=False)


def test_pooled_rows_over_seeds(tmp_path):
    """Three seeds: per-seed rows as with one seed, then a pooled row (seed -1) over every seed's lines,
    with the spread of the per-seed means and the KS distance of the pooled real and random GIs."""
    rng = np.random.default_rng(1)
    gi = {(labels, s): rng.uniform(0.5 if labels == "real" else 0.1, 3, 40 + 10 * s)
          for labels in ("real", "random") for s in (0, 1, 2)}
    accs = {0: ((1.0, 0.90),), 1: ((1.0, 0.86),), 2: ((0.99, 0.88),)}
    paths = [fake_run(tmp_path, "mnist", 14, "3x128", labels, s, "pairs", gi[labels, s], accs=accs[s],
                      converged=s != 2)
             for (labels, s) in gi]
    t = gi_summary(paths[::-1])  # the order of the files does not matter
    assert list(t.seed) == [0, 1, 2, -1, 0, 1, 2, -1] and list(t.labels) == ["real"] * 4 + ["random"] * 4
    for labels in ("real", "random"):
        rows = t[t.labels == labels]
        seeds, pooled = rows[rows.seed >= 0], rows[rows.seed == -1].iloc[0]
        every = np.concatenate([gi[labels, s] for s in (0, 1, 2)])
        means = np.array([gi[labels, s].mean() for s in (0, 1, 2)])
        np.testing.assert_allclose(seeds.gi_mean, means, rtol=1e-14)
        assert pooled.lines == len(every) == 40 + 50 + 60 and pooled.seeds == 3
        assert pooled.gi_mean == pytest.approx(every.mean(), rel=1e-14)
        assert pooled.gi_median == pytest.approx(np.median(every)) and pooled.gi_std == pytest.approx(every.std(ddof=1))
        assert pooled.gi_mean_sd == pytest.approx(means.std(ddof=1), rel=1e-12)
        assert (pooled.gi_mean_min, pooled.gi_mean_max) == (means.min(), means.max())
        assert pooled.train_acc == pytest.approx((1 + 1 + 0.99) / 3) and pooled.val_acc == pytest.approx(0.88)
        assert pooled.epochs == 1 and pooled.converged == False  # noqa: E712 (seed 2 did not converge)
        for s in (0, 1, 2):
            ks = stats.ks_2samp(gi["real", s], gi["random", s])
            assert seeds[seeds.seed == s].ks_real_random.iloc[0] == pytest.approx(ks.statistic)
        ks = stats.ks_2samp(np.concatenate([gi["real", s] for s in (0, 1, 2)]),
                            np.concatenate([gi["random", s] for s in (0, 1, 2)]))
        assert pooled.ks_real_random == pytest.approx(ks.statistic) and pooled.ks_pvalue == pytest.approx(ks.pvalue)


def test_pooled_ks_needs_the_same_seeds(tmp_path):
    """Pooled real and random rows over different seeds are not compared (NaN), per-seed rows still are."""
    paths = [fake_run(tmp_path, "mnist", 7, "3x128", "real", s, "pairs", [1.0, 2.0 + s]) for s in (0, 1)]
    paths.append(fake_run(tmp_path, "mnist", 7, "3x128", "random", 0, "pairs", [0.5, 1.0]))
    t = gi_summary(paths)
    assert t[t.seed == -1].ks_real_random.isna().all()
    assert t[t.seed == 0].ks_real_random.notna().all() and np.isnan(t[t.seed == 1].ks_real_random.iloc[0])


def test_ks_matches_on_identical_distributions(tmp_path):
    a = fake_run(tmp_path, "mnist", 7, "3x128", "real", 0, "pairs", [1.0, 2.0, 3.0])
    b = fake_run(tmp_path, "mnist", 7, "3x128", "random", 0, "pairs", [3.0, 2.0, 1.0])
    t = gi_summary([a, b])
    assert len(t) == 4 and (t.ks_real_random == 0).all() and (t.ks_pvalue == 1).all()


def test_write_and_cli(runs, tmp_path):
    paths, _ = runs
    out = tmp_path / "tables" / "gi_summary.parquet"
    assert main(["gi-summary", "--inputs", *map(str, paths), "--out-table", str(out), "--out-markdown",
                 str(tmp_path / "s.md"), "--out-csv", str(tmp_path / "s.csv")]) == 0
    t = read_parquet(out)
    pd.testing.assert_frame_equal(t, gi_summary(paths))
    md = (tmp_path / "s.md").read_text().splitlines()
    assert len(md) == 2 + 8 and md[0].startswith("| dataset | dim | arch | labels | seed | family | lines")
    assert md[0].rstrip(" |").endswith("| seeds | gi_mean_sd | gi_mean_min | gi_mean_max")
    csv = pd.read_csv(tmp_path / "s.csv")
    np.testing.assert_allclose(csv.gi_mean, t.gi_mean, rtol=1e-5)


def test_bad_input(runs, tmp_path):
    paths, _ = runs
    with pytest.raises(GisweepError, match="no GI files"):
        gi_summary([])
    with pytest.raises(GisweepError, match="not a GI file path"):
        run_keys(tmp_path / "gi.parquet")
    with pytest.raises(GisweepError, match="listed twice"):
        gi_summary([paths[0], paths[0]])
    (paths[3].parent / "history.parquet").unlink()
    with pytest.raises(GisweepError, match="history.parquet: file not found"):
        gi_summary(paths)
    nan = fake_run(tmp_path, "mnist", 14, "3x128", "real", 0, "pairs", [1.0, np.nan])
    with pytest.raises(GisweepError, match="non-finite"):
        gi_summary([nan])


def test_markdown_formats_nan():
    md = to_markdown(pd.DataFrame({"a": [1.23456789, np.nan], "b": ["x", "y"]}))
    assert md.splitlines()[2] == "| 1.235 | x |" and md.splitlines()[3] == "|  | y |"
