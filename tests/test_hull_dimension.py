"""Hull membership against the PCA dimension (gisweep.hull_dimension): the projection, fractions where the
answer is known, the commands, and the opt-in workflow jobs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import build_table
from gisweep.hull_dimension import COLUMNS, crossing, dimensions, principal_basis, project, sweep_space
from gisweep.io import read_parquet, read_provenance, write_parquet
from gisweep.models import build_mlp, save_model

OPTS = dict(tol=1e-6, max_iter=500)


def square(extra_dims: int = 3, seed: int = 0):
    """Training points filling the square [0, 4]^2 (corners included), embedded in 2 + extra_dims
    dimensions (zero elsewhere); queries: three inside the square, three outside it in the plane."""
    rng = np.random.default_rng(seed)
    train = np.zeros((40, 2 + extra_dims))
    train[:, :2] = rng.random((40, 2)) * 4
    train[:4, :2] = [[0, 0], [4, 0], [0, 4], [4, 4]]
    test = np.zeros((6, 2 + extra_dims))
    test[:, :2] = [[1, 1], [2, 3], [3, 2], [5, 5], [-1, 2], [2, 6]]
    return train, test


def test_square_in_two_dimensions_is_decided_exactly():
    train, test = square()
    (row,) = sweep_space("pixels", train, test, [2], 0, **OPTS)
    assert row["inside"] == pytest.approx(0.5) and row["outside"] == pytest.approx(0.5) and row["undecided"] == 0
    assert row["variance_kept"] == pytest.approx(1.0) and row["n_train"] == 40 and row["n_test"] == 6
    diameter = 4 * np.sqrt(2)
    nearest = np.array([np.sqrt(2), 1, 2])  # (5, 5) -> (4, 4); (-1, 2) -> (0, 2); (2, 6) -> (2, 4)
    assert row["mean_dist_over_diameter"] == pytest.approx(nearest.sum() / 6 / diameter, rel=1e-6)


def test_d_beyond_the_rank_keeps_off_plane_queries_outside():
    """Past the training rank (2 here) the basis is completed orthonormally (which null direction comes
    first is arbitrary): a query over the square but off its plane is inside at d = 2 (the projection
    drops the offset) and outside at the full d = 5, where the training hull is flat."""
    train, test = square(extra_dims=3)
    test = np.vstack([test[:1], test[:1] + [0, 0, 0, 0, 1.0]])
    rows = sweep_space("pixels", train, test, [2, 5, 64], 0, **OPTS)
    assert [r["d"] for r in rows] == [2, 5]  # 64 capped at the space's 5 dimensions
    assert rows[0]["inside"] == 1.0
    assert rows[1]["inside"] == 0.5 and rows[1]["outside"] == 0.5
    assert rows[1]["mean_dist_over_diameter"] == pytest.approx(0.5 / (4 * np.sqrt(2)), rel=1e-6)


def test_principal_basis_is_orthonormal_sorted_and_fitted_on_train():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(5, 8)) * np.arange(1, 9)  # rank 4 after centring, in 8 dimensions
    centre, basis, var = principal_basis(train)
    assert np.allclose(basis.T @ basis, np.eye(8), atol=1e-10)
    assert np.all(np.diff(var) <= 1e-9) and np.allclose(var[4:], 0, atol=1e-8)
    _, s, vt = np.linalg.svd(train - train.mean(0), full_matrices=False)
    assert np.allclose(np.abs(project(train, centre, basis, 4)), np.abs((train - train.mean(0)) @ vt[:4].T))
    assert np.allclose(var[:4], s[:4] ** 2 / 4)
    # distances are kept at full d (an orthonormal change of coordinates)
    q = rng.normal(size=(3, 8))
    assert np.allclose(np.linalg.norm(project(q, centre, basis, 8) - project(train[:1], centre, basis, 8), axis=1),
                       np.linalg.norm(q - train[:1], axis=1))


def test_dimensions_and_crossing():
    assert dimensions([2, 4, 784], 49) == [2, 4, 49]
    with pytest.raises(GisweepError, match="hull.dimension.dims"):
        dimensions([0, 2], 10)
    by_d = pd.Series([0.9, 0.6, 0.3, 0.0], index=[2, 4, 8, 16])
    assert crossing(by_d, 0.5) == 8 and crossing(by_d, 0.01) == 16 and crossing(by_d, 0.0) is None


def make_data(path, side=4, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, side * side)).astype(np.float32)
    y = np.arange(len(x)) % 3
    write_parquet(build_table(x, y, np.arange(n_train), np.arange(n_train, len(x)), None, 1.0), path, {})


def test_cli_pixels_random_hidden_and_the_gathered_table(tmp_path):
    data = tmp_path / "data.parquet"
    make_data(data)
    model = build_mlp("1x8", 16, 3, init_scale=0.5, generator=torch.Generator().manual_seed(0))
    save_model(model, tmp_path / "m.pt", arch="1x8", in_features=16, n_classes=3, meta={})
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"dim_s{seed}.parquet"
        assert main(["hull-dimension", "--data", str(data), "--dims", "2", "4", "32", "--seed", str(seed),
                     "--model", str(tmp_path / "m.pt"), "--hidden-space", "hidden_1x8_real_s0_l1",
                     "--threads", "1", "--out", str(out)]) == 0
        outs.append(out)
    df = read_parquet(outs[0])
    assert list(df.columns) == COLUMNS
    got = {s: sorted(g["d"]) for s, g in df.groupby("space")}
    assert got == {"pixels": [2, 4, 16], "random": [2, 4, 16], "hidden_1x8_real_s0_l1": [2, 4, 8]}
    assert np.allclose(df[["inside", "outside", "undecided"]].sum(axis=1), 1.0)
    assert (df["n_test"] == 20).all() and (df["n_train"] == 60).all()
    assert read_provenance(outs[0])["stage"] == "hull_dimension"
    pixels2 = df[(df["space"] == "pixels") & (df["d"] == 2)].iloc[0]
    assert pixels2["inside"] > 0.5  # 20 uniform points against 60 in a plane: most inside
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    assert main(["hull-dimension-table", "--inputs", *map(str, outs), "--out-markdown", str(md),
                 "--out-csv", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 2 * len(df) and set(table["seed"]) == {0, 1}
    assert "below 50 %" in md.read_text() and "| pixels | 2 | 2 |" in md.read_text()
    fig = tmp_path / "f.png"
    assert main(["plot-hull-dimension", "--table", str(csv), "--out", str(fig)]) == 0 and fig.stat().st_size > 0


def test_cli_errors_name_the_problem(tmp_path, capsys):
    data = tmp_path / "data.parquet"
    make_data(data)
    assert main(["hull-dimension", "--data", str(data), "--model", "m.pt", "--out", str(tmp_path / "o.parquet")]) == 2
    assert "--model and --hidden-space" in capsys.readouterr().err
    assert main(["hull-dimension", "--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "missing.parquet" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


def test_compute_module_imports_no_plotting():
    code = ("import sys, gisweep.hull_dimension; bad = [m for m in ('matplotlib', 'seaborn') if m in sys.modules];"
            " print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_tiny_config_plans_the_opt_in_jobs(tmp_path):
    """Off by default (not a default target); enabled, the tiny config plans one job per hull split, the
    table and the figure, and with hidden: true the MLP the hidden layer comes from."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import copy_project, run_ok
    from test_workflow import planned_jobs

    project = copy_project(tmp_path / "project")
    assert "hull_dimension" not in planned_jobs(run_ok(project, "--dry-run"))
    config = yaml.safe_load((project / "tiny.yaml").read_text())
    config["hull"]["dimension"] = {"enabled": True, "hidden": True, "dims": [2, 8, 64]}
    (project / "dim.yaml").write_text(yaml.safe_dump(config))
    out = run_ok(project, "--dry-run", "--printshellcmds", config="dim.yaml")
    jobs = planned_jobs(out)
    assert jobs["hull_dimension"] == 3 and jobs["hull_dimension_table"] == 1 and jobs["plot_hull_dimension"] == 1, jobs
    assert "--hidden-space hidden_3x128_real_s0_l3" in out and "results/figures/hull_inside_vs_dim.png" in out
    assert "--dimension results/tables/hull_dimension.csv" in out  # the claims table takes its rows


def dimension_table(high_inside: float, latent_inside: float, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for space in ("pixels", "random", "hidden_3x128_real_s0_l3"):
            for d in (2, 8, 32, 128):
                inside = (latent_inside if d <= 8 else high_inside) if space.startswith("hidden") else (
                    0.9 if d == 2 else 0.3 if d == 8 else high_inside)
                rows.append({"space": space, "d": d, "seed": seed, "inside": inside})
    return pd.DataFrame(rows)


def test_claims_rows_of_the_dimension_table():
    from gisweep.claims import FAILS, HOLDS, UNMEASURED, verdict
    from gisweep.hull_claims import dimension_claims

    rows = {c.id: c for c in dimension_claims(dimension_table(0.0, 0.8))}
    assert set(rows) == {"no_inside_high_dim_pixels", "no_inside_high_dim_random",
                         "no_inside_high_dim_hidden_3x128_real_s0_l3", "inside_latent_low_dim"}
    assert verdict(rows["no_inside_high_dim_pixels"])[0] == HOLDS
    assert "below 50% from d = 8" in rows["no_inside_high_dim_pixels"].detail
    assert "below 1% from d = 32" in rows["no_inside_high_dim_pixels"].detail
    assert verdict(rows["inside_latent_low_dim"])[0] == HOLDS and rows["inside_latent_low_dim"].per_seed == {
        0: 0.8, 1: 0.8, 2: 0.8}
    rows = {c.id: c for c in dimension_claims(dimension_table(0.2, 0.1))}
    assert verdict(rows["no_inside_high_dim_pixels"])[0] == FAILS
    assert verdict(rows["inside_latent_low_dim"])[0] == FAILS
    no_hidden = dimension_table(0.0, 0.8)
    rows = {c.id: c for c in dimension_claims(no_hidden[~no_hidden["space"].str.startswith("hidden")])}
    assert verdict(rows["inside_latent_low_dim"])[0] == UNMEASURED
    assert dimension_claims(None) == []
