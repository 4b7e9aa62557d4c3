"""The hull paper's claims table (gisweep.hull_claims): rows from small synthetic hull tables, each
verdict able to come out either way, the Markdown and CSV agreeing, and the tiny workflow building it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gisweep import GisweepError
from gisweep.claims import FAILS, HOLDS, LOOSE, UNMEASURED
from gisweep.hull_claims import (INK_ENRICHMENT, SIGNIFICANT_FRACTION, hull_claims, ink_enrichment, read_hull,
                                 read_nearest, to_table, write_hull_claims)
from gisweep.io import write_csv, write_parquet

SPLIT_SPACES = ["pixels", "wavelet_haar", "wavelet_haar_subset"]
LEARNED_SPACES = ["resnet_prepool_s0", "resnet_pool_s0", "hidden_3x128_real_s0_l1"]


def summary(space, *, outside=1.0, inside=0.0, p=0.5, rel_mean=0.2, rel_max=0.3, mean=3.0, random_mean=12.0):
    """A hull table's metadata summary (gisweep.hull_stage.summarize) with the numbers the claims read."""
    test = {"n": 50, "fraction_outside": outside, "fraction_inside": inside,
            "fraction_undecided": 1 - outside - inside, "mean": mean, "normaltest_p": p, "rel_mean": rel_mean,
            "rel_max": rel_max}
    rand = {"n": 20, "fraction_outside": 1.0, "fraction_inside": 0.0, "mean": random_mean, "normaltest_p": 0.5,
            "rel_mean": 0.8, "rel_max": 0.9}
    return {"space": space, "features": 49, "train_points": 200, "diameter": 15.0, "test": test, "random": rand}


def hull_table(path, space, **numbers):
    write_parquet(pd.DataFrame({"query": [0]}), path, {"summary": summary(space, **numbers)})
    return path


def nearest_table(path, enrichment_high=True, n=4, side=7, seed=0):
    """Test images (a bright block of 'ink') with nearest points: the residual on the ink, or spread out."""
    rng = np.random.default_rng(seed)
    images, nearest = [], []
    for _ in range(n):
        x = np.zeros(side * side)
        x[10:20] = 1.0
        r = np.zeros_like(x)
        if enrichment_high:
            r[10:20] = rng.uniform(0.2, 0.4, 10)
        else:
            r[:] = rng.uniform(0.1, 0.2, x.size)
        images.append(x.tolist())
        nearest.append((x - r).tolist())
    write_parquet(pd.DataFrame({"image": images, "nearest": nearest}), path)
    return path


def sweep_table(path, slope=-0.13, level=0.5, seeds=(0, 1, 2), far=60000):
    rows = []
    for n in (50, 100, 200):
        for s in seeds:
            rows.append({"kind": "measured", "train_points": n, "seed": s, "statistic": "rel_distance_mean",
                         "value": level * n ** slope * (1 + 0.01 * s), "slope": np.nan, "extrapolated": False})
    for n in (50, 200, far):
        rows.append({"kind": "fit", "train_points": n, "seed": -1, "statistic": "rel_distance_mean",
                     "value": level * n ** slope * 1.01, "slope": slope, "extrapolated": n > 200})
    write_csv(pd.DataFrame(rows), path)
    return path


def build(tmp_path, split_numbers=None, learned_numbers=None, ink=True, sweep=True, seeds=(0, 1, 2), **kw):
    """Hull, nearest and sweep inputs in tmp_path; split_numbers(seed, space) -> the summary's numbers."""
    hull, nearest = [], []
    for seed in seeds:
        for space in SPLIT_SPACES:
            numbers = split_numbers(seed, space) if split_numbers else {}
            hull.append(f"{seed}={hull_table(tmp_path / f's{seed}_{space}.parquet', space, **numbers)}")
        nearest.append(f"{seed}={nearest_table(tmp_path / f'n{seed}.parquet', ink, seed=seed)}")
    for space in LEARNED_SPACES:
        numbers = learned_numbers(space) if learned_numbers else {}
        hull.append(f"0={hull_table(tmp_path / f'{space}.parquet', space, **numbers)}")
    sw = [str(sweep_table(tmp_path / "sweep.csv"))] if sweep else []
    return write_hull_claims(hull, tmp_path / "out" / "hull_claims.md", tmp_path / "out" / "hull_claims.csv",
                             nearest, sw, **kw)


def verdicts(table):
    return dict(zip(table.id, table.verdict))


def test_rows_per_claim_and_space(tmp_path):
    v = verdicts(build(tmp_path))
    assert {f"outside_{s}" for s in ["pixels", "wavelet_haar", "wavelet_haar_subset", "resnet_prepool",
                                     "resnet_pool"]} <= v.keys()
    assert {"normal_pixels", "normal_wavelet_haar_subset", "normal_resnet_pool"} <= v.keys()
    assert "normal_wavelet_haar" not in v and "outside_hidden_3x128_real_l1" not in v  # not the paper's claims
    assert {"diameter_fraction_pixels", "diameter_fraction_resnet_pool", "inside_hidden_3x128_real_l1"} <= v.keys()
    for claim in ("outside_pixels", "outside_wavelet_haar", "normal_pixels", "closer_than_random_pixels",
                  "diameter_fraction_pixels", "direction_carries_object_pixels", "trend_falls_with_n",
                  "diameter_fraction_extrapolated"):
        assert v[claim] == HOLDS, claim
    # learned spaces have one network seed here: nothing can hold beyond the pooled value
    assert v["outside_resnet_pool"] == HOLDS  # an 'every point' claim does not use the spread
    assert v["diameter_fraction_resnet_pool"] == LOOSE and v["inside_resnet_pool"] == LOOSE
    assert v["farthest_27_cifar10"] == UNMEASURED  # the paper's 27 % is CIFAR-10's


@pytest.mark.parametrize("numbers, claim, expected", [
    (lambda seed, space: {"outside": 0.995 if seed == 1 else 1.0}, "outside_pixels", LOOSE),
    (lambda seed, space: {"outside": 0.9 if seed == 2 else 1.0, "inside": 0.1 if seed == 2 else 0.0},
     "outside_pixels", FAILS),
    (lambda seed, space: {"outside": 0.98}, "outside_wavelet_haar_subset", FAILS),
    (lambda seed, space: {"rel_mean": 0.05 + 0.001 * seed}, "diameter_fraction_pixels", FAILS),
    (lambda seed, space: {"rel_mean": [0.3, 0.05, 0.12][seed]}, "diameter_fraction_pixels", LOOSE),
    (lambda seed, space: {"p": [0.3, 0.03, 0.2][seed]}, "normal_pixels", LOOSE),
    (lambda seed, space: {"p": [0.3, 0.001, 0.2][seed]}, "normal_wavelet_haar_subset", FAILS),
    (lambda seed, space: {"mean": 11.0}, "closer_than_random_pixels", LOOSE),  # closer, but not by 20 %
    (lambda seed, space: {"mean": 13.0}, "closer_than_random_pixels", FAILS),
])
def test_each_verdict_can_fail(tmp_path, numbers, claim, expected):
    assert verdicts(build(tmp_path, numbers))[claim] == expected


def test_learned_inside_and_ink_and_trend_can_fail(tmp_path):
    v = verdicts(build(tmp_path, learned_numbers=lambda space: {"inside": 0.7, "outside": 0.3}, ink=False))
    assert v["inside_resnet_pool"] == FAILS and v["outside_resnet_pool"] == FAILS
    assert v["direction_carries_object_pixels"] == FAILS  # a residual spread over the image: enrichment ~1


def test_trend_rows(tmp_path):
    table = build(tmp_path).set_index("id")
    row = table.loc["trend_falls_with_n"]
    assert row[["s0", "s1", "s2"]].tolist() == pytest.approx([-0.13] * 3, abs=1e-4)  # the CSV keeps 6 digits
    assert row.pooled == pytest.approx(-0.13)
    ext = table.loc["diameter_fraction_extrapolated"]
    assert bool(ext.extrapolated) and not bool(row.extrapolated)
    assert ext.s0 == pytest.approx(0.5 * 60000 ** -0.13, rel=1e-4)  # the per-seed power law evaluated at the far N
    assert ext.pooled == pytest.approx(0.5 * 60000 ** -0.13 * 1.01, rel=1e-4)  # the sweep's own fit
    assert ext.pooled > SIGNIFICANT_FRACTION and ext.verdict == HOLDS
    assert "60,000" in ext.figure
    v = verdicts(build(tmp_path, sweep=False))
    assert v["trend_falls_with_n"] == v["diameter_fraction_extrapolated"] == UNMEASURED


def test_cifar10_farthest_row(tmp_path):
    v = verdicts(build(tmp_path, lambda seed, space: {"rel_max": 0.26 + 0.01 * seed}, dataset="cifar10"))
    assert v["farthest_27_cifar10"] == HOLDS
    v = verdicts(build(tmp_path, lambda seed, space: {"rel_max": 0.12}, dataset="cifar10"))
    assert v["farthest_27_cifar10"] == FAILS


def test_ink_enrichment():
    x = np.zeros(49)
    x[:7] = 1.0  # a seventh of the pixels is ink
    assert ink_enrichment(x, x - np.r_[np.full(7, 0.5), np.zeros(42)]) == pytest.approx(7.0)  # all on the ink
    assert ink_enrichment(x, x - 0.1) == pytest.approx(1.0)  # spread like the image area
    assert INK_ENRICHMENT > 1.0
    assert np.isnan(ink_enrichment(x, x))  # the image is its own nearest point: no direction


def test_markdown_and_csv_agree(tmp_path):
    table = build(tmp_path, lambda seed, space: {"outside": 0.9 if seed == 2 else 1.0})
    md = (tmp_path / "out" / "hull_claims.md").read_text()
    back = pd.read_csv(tmp_path / "out" / "hull_claims.csv")
    assert list(back.id) == list(table.id) and list(back.verdict) == list(table.verdict)
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| id ")]
    assert len(rows) == len(back)
    for line, row in zip(rows, back.itertuples()):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[0] == row.id and row.verdict in cells
        if not pd.isna(row.pooled):
            assert f"{row.pooled:.4g}" in cells
    counts = back.verdict.value_counts()
    assert f"Verdicts: holds {counts.get(HOLDS, 0)}, holds loosely {counts.get(LOOSE, 0)}, does not hold " \
           f"{counts.get(FAILS, 0)}, not measured {counts.get(UNMEASURED, 0)}." in md
    assert f"- `outside_pixels` (" in md and "certified outside" in md  # each row's rule, in words
    assert {"s0", "s1", "s2", "pooled", "sd", "seeds", "verdict", "reason", "rule", "extrapolated"} <= set(back.columns)


def test_bad_inputs(tmp_path, capsys):
    from gisweep.cli import main

    path = hull_table(tmp_path / "p.parquet", "pixels")
    with pytest.raises(GisweepError, match="expected SEED=PATH"):
        write_hull_claims([str(path)], tmp_path / "a.md", tmp_path / "a.csv")
    with pytest.raises(GisweepError, match="a second hull table of space 'pixels' and seed 0"):
        read_hull([(0, path), (0, path)])
    write_parquet(pd.DataFrame({"x": [1]}), tmp_path / "bare.parquet")
    assert main(["hull-claims", "--hull", f"0={tmp_path / 'bare.parquet'}", "--out-markdown",
                 str(tmp_path / "b.md"), "--out-csv", str(tmp_path / "b.csv")]) == 2
    assert "no hull summary in its metadata" in capsys.readouterr().err
    assert not (tmp_path / "b.md").exists() and not (tmp_path / "b.csv").exists()
    assert main(["hull-claims", "--hull", f"0={path}", "--out-markdown", str(tmp_path / "c.md"),
                 "--out-csv", str(tmp_path / "c.csv")]) == 0
    assert read_nearest([])[1] == "no nearest-point tables"


def test_compare_claims_takes_hull_tables(tmp_path):
    from gisweep.claims_compare import compare_claims

    build(tmp_path)
    a = tmp_path / "out" / "hull_claims.csv"
    (tmp_path / "b").mkdir()
    b = tmp_path / "b" / "hull_claims.csv"
    write_csv(to_table(hull_claims(read_hull([(0, tmp_path / "s0_pixels.parquet")]), {})), b)
    gi = tmp_path / "gi.csv"
    pd.read_csv(a).assign(id=lambda t: "gi_" + t.id).to_csv(gi, index=False)  # any claims table will do
    md = compare_claims([f"default={gi}", f"paper={gi}"], tmp_path / "side.md",
                        [f"default={a}", f"paper={b}"])
    assert "# Claims side by side" in md and "# Hull claims side by side" in md
    hull = md.split("# Hull claims side by side")[1]
    assert "(`outside_pixels`)" in hull and "(`gi_outside_pixels`)" not in hull
    assert "| default | " in hull and "| paper | " in hull
    with pytest.raises(GisweepError, match="--hull-inputs: give at least two runs"):
        compare_claims([f"default={gi}", f"paper={gi}"], tmp_path / "x.md", [f"default={a}"])


def test_hull_claims_module_needs_no_plotting_or_torch():
    import subprocess

    code = ("import sys, gisweep.hull_claims; bad = [m for m in ('torch', 'matplotlib', 'seaborn', 'scipy') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_tiny_config_builds_the_hull_claims(tmp_path):
    """The tiny config plans hull_claims with three hull splits and builds results/tables/hull_claims.md."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import copy_project, run_ok
    from test_workflow import planned_jobs

    project = copy_project(tmp_path / "project")
    target = "results/tables/hull_claims.md"
    jobs = planned_jobs(run_ok(project, "--dry-run", target))
    assert jobs["hull_claims"] == 1 and jobs["hull_split_distance"] == 2 and jobs["hull_claims_nearest"] == 3, jobs
    assert target in run_ok(project, "--dry-run")  # a default target
    run_ok(project, "--cores", "2", target)
    back = pd.read_csv(project / "results" / "tables" / "hull_claims.csv").set_index("id")
    assert back.loc["outside_pixels", "seeds"] == 3
    assert back.loc["direction_carries_object_pixels", "seeds"] == 3
    assert back.loc["trend_falls_with_n", "verdict"] != UNMEASURED
    assert (project / target).read_text().startswith("# Claims of the hull paper")
