"""The claims table (gisweep.claims): statistics per seed and pooled, verdicts by the stated rules."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gisweep import GisweepError
from gisweep.claims import (FAILS, HOLDS, LOOSE, TRACKS_R, UNMEASURED, Claim, checkpoints_from, claims_table,
                            gi_claims, verdict, write_claims)
from gisweep.io import write_parquet


def claim(kind, values, pooled=None, **params):
    vals = dict(enumerate(values))
    return Claim("x", "Fig", "text", "stat", kind, vals, np.mean(values) if pooled is None else pooled, params)


@pytest.mark.parametrize("values, expected", [
    ([0.01, -0.02, 0.0], HOLDS),       # |mean| + 2 sd = 0.0033 + 0.030 <= 0.1
    ([0.02], LOOSE),                   # one seed: spread unknown
    ([0.09, -0.05, 0.08], LOOSE),      # mean 0.04 <= 0.1, but mean + 2 sd = 0.20 > 0.1
    ([0.15, 0.12, 0.2], FAILS),        # mean 0.157 > 0.1
    ([-0.15, -0.12, -0.2], FAILS),     # the margin holds on both sides
    ([0.11, 0.02, 0.02], LOOSE),       # mean 0.05 and a seed past the margin
])
def test_similar_rule(values, expected):
    assert verdict(claim("similar", values, margin=0.1))[0] == expected


@pytest.mark.parametrize("values, sign, size, expected", [
    ([-0.30, -0.25, -0.35], -1, 0.0, HOLDS),
    ([-0.30, -0.25, -0.35], -1, 0.2, HOLDS),
    ([-0.10, -0.12, -0.14], -1, 0.2, LOOSE),   # lower, but not by the stated size
    ([-0.30, 0.05, -0.35], -1, 0.0, LOOSE),    # one seed of the other sign
    ([-0.05, -0.30, -0.01], -1, 0.0, LOOSE),   # mean 0.12 <= 2 sd 0.30
    ([-0.3], -1, 0.0, LOOSE),                  # one seed
    ([0.05, 0.02, -0.01], -1, 0.0, FAILS),     # the other sign
    ([0.9, 0.85, 0.95], 1, 0.7, HOLDS),
    ([0.5, 0.55, 0.6], 1, 0.7, LOOSE),
    ([-0.5, -0.55, -0.6], 1, 0.7, FAILS),
])
def test_direction_rule(values, sign, size, expected):
    assert verdict(claim("direction", values, sign=sign, size=size))[0] == expected


def test_all_and_near_rules():
    assert verdict(claim("all", [1.0, 1.0], level=1.0, loose=0.01))[0] == HOLDS
    assert verdict(claim("all", [1.0, 0.995], level=1.0, loose=0.01)) == (LOOSE, "lowest 0.995, within 0.01")
    assert verdict(claim("all", [1.0, 0.9], level=1.0, loose=0.01))[0] == FAILS
    assert verdict(claim("near", [0.89, 0.91, 0.90], target=0.9, margin=0.05))[0] == HOLDS
    assert verdict(claim("near", [0.86], target=0.9, margin=0.05))[0] == LOOSE
    assert verdict(claim("near", [0.80, 0.82, 0.81], target=0.9, margin=0.05))[0] == FAILS
    assert verdict(Claim("x", "F", "t", "s", "similar", {}, np.nan, {"margin": 0.1}, "not configured")) == \
        (UNMEASURED, "not configured")


# ------------------------------------------------------------------ claims from a summary table


def summary(means: dict, accs=None) -> pd.DataFrame:
    """A summary table like gisweep.summary's: per-seed rows, then a pooled row (seed -1, the mean)."""
    rows = []
    for (ds, dim, arch, labels, family), per_seed in means.items():
        for s, m in enumerate(per_seed):
            tr, va = (accs or {}).get((ds, dim, arch, labels, s), (1.0, 0.9 if labels == "real" else 0.1))
            rows.append(dict(dataset=ds, dim=dim, arch=arch, labels=labels, seed=s, family=family, gi_mean=m,
                             train_acc=tr, val_acc=va))
        rows.append(dict(dataset=ds, dim=dim, arch=arch, labels=labels, seed=-1, family=family,
                         gi_mean=float(np.mean(per_seed)), train_acc=1.0, val_acc=0.5))
    return pd.DataFrame(rows)


@pytest.fixture
def table():
    a = "3x128"
    return summary({
        ("mnist", 28, a, "real", "pairs"): [2.40, 2.42, 2.38],
        ("mnist", 28, a, "random", "pairs"): [2.35, 2.39, 2.31],
        ("mnist", 14, a, "real", "pairs"): [2.41, 2.43, 2.40],
        ("mnist", 14, a, "random", "pairs"): [1.68, 1.97, 1.80],
        ("mnist", 28, a, "real", "triangles"): [4.0, 4.1, 3.9],
        ("mnist", 28, a, "random", "triangles"): [3.0, 3.9, 2.0],
        ("mnist", 28, "1x512", "real", "pairs"): [2.3, 2.35, 2.31],
        ("mnist", 28, "1x512", "random", "pairs"): [2.0, 2.1, 2.2],
    }, accs={("mnist", 28, a, "random", 1): (0.997, 0.12)})


def by_id(claims):
    return claims_table(claims).set_index("id")


def test_claims_from_summary(table, tmp_path):
    rows = by_id(gi_claims(table))
    pairs = rows.loc["pairs_similar_28"]
    expected = [(2.35 - 2.40) / 2.40, (2.39 - 2.42) / 2.42, (2.31 - 2.38) / 2.38]
    np.testing.assert_allclose(pairs[["s0", "s1", "s2"]].astype(float), expected, rtol=1e-12)
    assert pairs.pooled == pytest.approx((2.35 - 2.40) / 2.40, rel=1e-12)  # from the pooled rows
    assert pairs.sd == pytest.approx(np.std(expected, ddof=1)) and pairs.seeds == 3
    assert pairs.verdict == HOLDS  # |-0.021| + 2 * 0.0086 < 0.1
    assert rows.loc["pairs_random_lower_14"].verdict == HOLDS
    assert rows.loc["pairs_random_lower_7"].verdict == UNMEASURED
    assert "no mnist 7×7 3x128 pairs GIs" in rows.loc["pairs_random_lower_7"].reason
    tri = rows.loc["triangles_random_much_lower_28"]  # -25 %, -4.9 %, -49 %: lower in every seed, sd 0.22
    assert tri.verdict == LOOSE and "2 sd" in tri.reason
    flat = rows.loc["pairs_real_flat_by_dim"]
    assert flat.s0 == pytest.approx((2.41 - 2.40) / 2.405) and flat.verdict == HOLDS
    archs = rows.loc["archs_similar_random"]
    assert "1x512, 3x128" in archs.statistic
    assert archs.s0 == pytest.approx((2.35 - 2.0) / 2.175) and archs.verdict == FAILS
    train = rows.loc["train_acc_100"]
    assert (train.s0, train.s1, train.pooled, train.verdict) == (1.0, 0.997, 0.997, LOOSE)
    assert train.reason.endswith("(17 of 18 models at 1; below: mnist d28 3x128 random s1 0.997)")
    val = rows.loc["val_acc_random_10"]
    assert val.s1 == 0.12 and val.pooled == pytest.approx(0.32 / 3) and val.verdict == HOLDS
    for key in ("moons_random_much_lower", "cifar10_pairs_similar_32", "gi_tracks_val_acc"):
        assert rows.loc[key].verdict == UNMEASURED and np.isnan(rows.loc[key].pooled)


def dynamics(path, mean_gi, val_acc):
    df = pd.DataFrame({"epoch": np.arange(len(mean_gi)), "mean_gi": mean_gi, "val_acc": val_acc})
    write_parquet(df, path)
    return path


def test_gi_tracks_validation_accuracy(table, tmp_path):
    run = tmp_path / "results" / "mnist" / "d28" / "3x128" / "real"
    a = dynamics(run / "s0" / "gi_during_training.parquet", [1.0, 1.5, 2.0, 2.2], [0.2, 0.6, 0.85, 0.9])
    b = dynamics(run / "s1" / "gi_during_training.parquet", [1.1, 1.4, 2.1, 2.3], [0.1, 0.7, 0.8, 0.9])
    row = by_id(gi_claims(table, [a, b])).loc["gi_tracks_val_acc"]
    assert row.s0 == pytest.approx(np.corrcoef([1.0, 1.5, 2.0, 2.2], [0.2, 0.6, 0.85, 0.9])[0, 1])
    assert row.pooled == pytest.approx(np.corrcoef([1.0, 1.5, 2.0, 2.2, 1.1, 1.4, 2.1, 2.3],
                                                   [0.2, 0.6, 0.85, 0.9, 0.1, 0.7, 0.8, 0.9])[0, 1])
    assert row.verdict == HOLDS
    anti = dynamics(run / "s2" / "gi_during_training.parquet", [3.0, 2.0, 1.5, 1.0], [0.2, 0.6, 0.85, 0.9])
    assert by_id(gi_claims(table, [anti])).loc["gi_tracks_val_acc"].verdict == FAILS
    with pytest.raises(GisweepError, match="no s\\{seed\\} folder"):
        gi_claims(table, [dynamics(tmp_path / "g.parquet", [1, 2, 3], [1, 2, 3])])
    with pytest.raises(GisweepError, match="a second GI-during-training table of seed 0"):
        gi_claims(table, [a, a])
    with pytest.raises(GisweepError, match="2 checkpoints"):
        gi_claims(table, [dynamics(run / "s5" / "x.parquet", [1, 2], [1, 2])])


def test_gi_tracks_from_half_validation_accuracy(table, tmp_path):
    """The second row drops each seed's checkpoints before its first at validation accuracy >= 0.5: early
    checkpoints with long GIs at low accuracy turn r from negative over the whole run to positive."""
    run = tmp_path / "results" / "mnist" / "d28" / "3x128" / "real"
    g0, v0 = [2.9, 2.8, 1.0, 1.5, 2.0, 2.2, 2.4], [0.1, 0.2, 0.55, 0.7, 0.8, 0.85, 0.9]
    g1, v1 = [2.95, 2.7, 1.2, 1.4, 1.9, 2.3, 2.5], [0.1, 0.3, 0.6, 0.45, 0.82, 0.88, 0.91]  # a dip below 0.5 stays in
    paths = [dynamics(run / "s0" / "gi_during_training.parquet", g0, v0),
             dynamics(run / "s1" / "gi_during_training.parquet", g1, v1)]
    rows = by_id(gi_claims(table, paths))
    whole, cut = rows.loc["gi_tracks_val_acc"], rows.loc["gi_tracks_val_acc_from_val50"]
    assert whole.s0 == pytest.approx(np.corrcoef(g0, v0)[0, 1]) and whole.s0 < 0
    assert whole.verdict == FAILS
    assert cut.s0 == pytest.approx(np.corrcoef(g0[2:], v0[2:])[0, 1])
    assert cut.s1 == pytest.approx(np.corrcoef(g1[2:], v1[2:])[0, 1])
    assert cut.pooled == pytest.approx(np.corrcoef(g0[2:] + g1[2:], v0[2:] + v1[2:])[0, 1])
    assert cut.s0 > TRACKS_R and cut.s1 > TRACKS_R and cut.verdict == HOLDS
    assert "seed 0 from epoch 2 (5 checkpoints); seed 1 from epoch 2 (5 checkpoints)" in cut.reason
    assert ">= 0.5" in cut.statistic and "d_pooled > 0" in cut.rule
    # a seed that reaches 0.5 only at its last two checkpoints leaves too few: not measured, naming the seed
    late = dynamics(run / "s2" / "gi_during_training.parquet", [3.0, 2.0, 1.0, 1.5], [0.1, 0.3, 0.5, 0.6])
    short = by_id(gi_claims(table, [*paths, late])).loc["gi_tracks_val_acc_from_val50"]
    assert short.verdict == UNMEASURED and "seed 2: 2" in short.reason
    # unsorted epochs are sorted before the cut
    df = pd.DataFrame({"epoch": [5, 0, 1, 3], "mean_gi": [1, 2, 3, 4], "val_acc": [0.9, 0.1, 0.6, 0.4]})
    assert checkpoints_from(df, 0.5).epoch.tolist() == [1, 3, 5]
    assert checkpoints_from(df, 0.95).empty


def test_write_and_cli(table, tmp_path, capsys):
    from gisweep.cli import main

    write_parquet(table, tmp_path / "gi_summary.parquet")
    md, csv = tmp_path / "t" / "claims.md", tmp_path / "t" / "claims.csv"
    write_claims(tmp_path / "gi_summary.parquet", md, csv)
    text = md.read_text()
    assert "holds: at least two seeds, every |d_s| <= m and |d_pooled| + 2 sd <= m" in text
    assert "| pairs_similar_28 | Fig 4 |" in text and "| holds |" in text
    back = pd.read_csv(csv)
    assert list(back.columns[:7]) == ["id", "figure", "claim", "statistic", "s0", "s1", "s2"]
    assert {"pooled", "sd", "seeds", "verdict", "reason", "rule"} <= set(back.columns)
    assert len(back) == len(gi_claims(table)) and back.id.is_unique
    assert main(["gi-claims", "--summary", str(tmp_path / "gi_summary.parquet"), "--out-markdown",
                 str(tmp_path / "c.md"), "--out-csv", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "c.md").read_text() == text
    write_parquet(pd.DataFrame({"x": [1]}), tmp_path / "bad.parquet")
    assert main(["gi-claims", "--summary", str(tmp_path / "bad.parquet"), "--out-markdown",
                 str(tmp_path / "d.md"), "--out-csv", str(tmp_path / "d.csv")]) == 2
    assert "not a GI summary table (missing column(s) dataset" in capsys.readouterr().err
    assert not (tmp_path / "d.md").exists() and not (tmp_path / "d.csv").exists()


def test_claims_module_needs_no_plotting_or_torch():
    import subprocess
    import sys

    code = ("import sys, gisweep.claims; bad = [m for m in ('torch', 'matplotlib', 'seaborn', 'scipy') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ runs side by side (compare-claims)


def test_compare_claims_side_by_side(table, tmp_path):
    from gisweep.claims_compare import compare_claims
    from gisweep.io import write_csv

    a = claims_table(gi_claims(table))
    other = table.copy()
    other.loc[(other.arch == "1x512") & (other.labels == "random"), "gi_mean"] = 2.3  # archs now similar
    b = claims_table(gi_claims(other)).iloc[1:]  # and the run lacks the first claim
    write_csv(a, tmp_path / "a.csv")
    write_csv(b, tmp_path / "b.csv")
    md = compare_claims([f"default={tmp_path / 'a.csv'}", f"paper={tmp_path / 'b.csv'}"], tmp_path / "out.md")
    assert (tmp_path / "out.md").read_text() == md
    rows = {line.split("(`")[1].split("`)")[0]: line.strip("| ").split(" | ") for line in md.splitlines()
            if "(`" in line}
    assert set(rows) == set(a.id)
    arch = rows["archs_similar_random"]
    assert arch[3] == FAILS and arch[5] == HOLDS  # default verdict, paper verdict
    s = a.set_index("id").loc["archs_similar_random"]
    assert arch[2] == f"{s.s0:.3g} / {s.s1:.3g} / {s.s2:.3g} → {s.pooled:.3g} ± {s.sd:.3g}"
    assert rows["train_acc_100"][4:6] == ["-", "-"]  # missing in the second run
    assert rows["moons_random_much_lower"][2] == "—"  # not measured
    counts = a.verdict.value_counts()
    assert (f"| default | {counts.get(HOLDS, 0)} | {counts.get(LOOSE, 0)} | {counts.get(FAILS, 0)} | "
            f"{counts.get(UNMEASURED, 0)} |") in md
    assert "- default, training accuracy: " + a.set_index("id").loc["train_acc_100"].reason in md


@pytest.mark.parametrize("inputs, message", [
    (["a.csv", "b=b.csv"], "expected NAME=PATH"),
    (["a=a.csv"], "at least two runs"),
    (["a=a.csv", "a=b.csv"], "given twice"),
    (["a=a.csv", "b=missing.csv"], "missing.csv: file not found"),
    (["a=a.csv", "b=bad.csv"], "bad.csv: not a claims table (missing column(s) figure"),
])
def test_compare_claims_bad_input(table, tmp_path, monkeypatch, inputs, message):
    from gisweep.claims_compare import compare_claims
    from gisweep.io import write_csv

    monkeypatch.chdir(tmp_path)
    write_csv(claims_table(gi_claims(table)), "a.csv")
    write_csv(claims_table(gi_claims(table)), "b.csv")
    pd.DataFrame({"id": ["x"], "claim": ["y"]}).to_csv("bad.csv", index=False)
    with pytest.raises(GisweepError, match=re_escape(message)):
        compare_claims(inputs, "out.md")
    assert not (tmp_path / "out.md").exists()


def re_escape(text):
    import re
    return re.escape(text)
