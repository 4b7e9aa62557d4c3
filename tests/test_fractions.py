"""Partial label randomisation (gisweep.fractions), and the config sections of along/dynamics/fractions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gisweep import GisweepError
from gisweep.data import load_table, prepare_data, training_labels
from gisweep.cli import main
from gisweep.code_inputs import external_imports
from gisweep.figures.fractions import plot_label_fractions, summarize
from gisweep.fractions import RUN_COLUMNS, candidate_count, fraction_labels, fraction_run, fraction_table
from gisweep.gi import exact_intervals
from gisweep.io import read_parquet, write_parquet
from gisweep.lines import materialize, same_class_pairs
from gisweep.models import load_model, load_record
from gisweep.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n, f, k", [(1000, 0.25, 250), (10, 0.25, 3), (2, 0.25, 1), (6, 0.25, 2), (7, 0.5, 4),
                                     (100, 0.0, 0), (100, 1.0, 100), (3, 1 / 3, 1), (0, 0.5, 0)])
def test_candidate_count_rounds_half_up(n, f, k):
    assert candidate_count(n, f) == k


@pytest.mark.parametrize("f", [-0.01, 1.01, float("nan")])
def test_fraction_outside_unit_interval_is_an_error(f):
    with pytest.raises(GisweepError, match="outside"):
        fraction_labels(np.arange(10) % 3, f, 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 80), classes=st.integers(1, 6), f=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_fraction_labels_properties(n, classes, f, seed):
    y = np.random.default_rng(seed).integers(0, classes, n)
    lab, mask = fraction_labels(y, f, seed)
    assert mask.sum() == candidate_count(n, f) == int(np.floor(f * n + 0.5))
    np.testing.assert_array_equal(lab[~mask], y[~mask])  # non-candidates keep their labels
    assert sorted(lab[mask]) == sorted(y[mask])  # candidates' labels are permuted among themselves
    np.testing.assert_array_equal(np.bincount(lab, minlength=classes), np.bincount(y, minlength=classes))
    lab2, mask2 = fraction_labels(y, f, seed)  # reproducible
    np.testing.assert_array_equal(lab, lab2)
    np.testing.assert_array_equal(mask, mask2)
    assert lab.dtype == y.dtype and lab is not y


@pytest.mark.parametrize("seed", [0, 1, 2, 17])
def test_extremes_equal_real_and_the_pipelines_random_labels(seed):
    y = np.repeat(np.arange(10), 100)
    np.random.default_rng(seed + 100).shuffle(y)  # not sorted, to make index bookkeeping matter
    lab0, mask0 = fraction_labels(y, 0.0, seed)
    np.testing.assert_array_equal(lab0, y)
    assert not mask0.any()
    lab1, mask1 = fraction_labels(y, 1.0, seed)
    np.testing.assert_array_equal(lab1, training_labels(y, "random", seed))
    assert mask1.all()


def test_fraction_subsets_are_nested_and_seeds_differ():
    y = np.repeat(np.arange(10), 100)
    masks = [fraction_labels(y, f, 3)[1] for f in (0.25, 0.5, 0.75)]
    assert (masks[0] <= masks[1]).all() and (masks[1] <= masks[2]).all()
    other = fraction_labels(y, 0.5, 4)[1]
    assert (other != masks[1]).any()
    lab, mask = fraction_labels(y, 0.5, 3)
    changed = (lab != y).mean()
    assert 0.35 < changed <= 0.5  # a candidate may draw its own label back


TINY = dict(arch="1x16", lr=0.01, momentum=0.9, batch_size=16, max_epochs=8, init_scale=0.05, device="cpu", threads=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("fractions")
    data = root / "data.parquet"
    prepare_data("mnist", 7, data, seed=0, train_per_class=10)
    runs = {}
    for pct in (0, 50, 100):
        runs[pct] = root / f"frac{pct}" / "run.parquet"
        fraction_run(data, root / f"frac{pct}" / "model.pt", runs[pct], percent=pct, seed=1, classes=[5], **TINY)
    return root, data, runs


@pytest.mark.parametrize("pct, labels", [(0, "real"), (100, "random")])
def test_fraction_models_at_0_and_100_are_the_pipelines_models(tiny, pct, labels):
    root, data, runs = tiny
    ref = root / f"{labels}.pt"
    train(data, ref, root / f"{labels}_history.parquet", labels=labels, seed=1, **TINY)
    a, b = load_record(ref)["state_dict"], load_record(root / f"frac{pct}" / "model.pt")["state_dict"]
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_fraction_run_row_matches_independent_recomputation(tiny):
    root, data, runs = tiny
    row = read_parquet(runs[50]).iloc[0]
    assert list(read_parquet(runs[50]).columns) == RUN_COLUMNS
    x, y_true, xv, yv = load_table(data)
    y, mask = fraction_labels(y_true, 0.5, 1)
    assert row.randomized == 50 == mask.sum() and row.changed == (y != y_true).sum() and row.n_train == 100
    model = load_model(root / "frac50" / "model.pt")
    with torch.no_grad():
        pred = model(torch.as_tensor(x)).argmax(1).numpy()
        pred_v = model(torch.as_tensor(xv)).argmax(1).numpy()
    assert row.train_acc == (pred == y).mean() and row.train_acc_true == (pred == y_true).mean()
    assert row.val_acc == (pred_v == yv).mean()
    lines = same_class_pairs(y, [5])  # class 5 under the training labels
    res = exact_intervals(model, *materialize(lines, x)).to_frame()
    assert row.lines == len(res) and row.mean_gi == res.gi.mean() and row.median_gi == res.gi.median()
    assert row.converged == (row.train_acc == 1.0)
    assert row.epochs == 8 or row.converged  # the cap, unless it converged earlier


def test_table_summary_and_figure(tiny, tmp_path, capsys):
    root, data, runs = tiny
    out, csv = tmp_path / "tables" / "label_fractions.parquet", tmp_path / "tables" / "copy.csv"
    df = fraction_table([runs[p] for p in (100, 0, 50)], out, csv)
    assert df.percent.tolist() == [0, 50, 100]
    assert pd.read_csv(csv).percent.tolist() == [0, 50, 100]
    err = capsys.readouterr().err
    if not df.converged.all():
        assert "did NOT converge" in err
    # a second seed, made by hand, to check the spread
    extra = read_parquet(runs[50]).assign(seed=7, mean_gi=lambda d: d.mean_gi + 1.0, converged=True)
    write_parquet(extra, tmp_path / "extra.parquet")
    both = fraction_table([runs[0], runs[50], tmp_path / "extra.parquet"], tmp_path / "t2.parquet")
    s = summarize(both).set_index("percent")
    g50 = both[both.percent == 50].mean_gi
    assert s.loc[50, "runs"] == 2 and s.loc[50, "mean_gi_mean"] == pytest.approx(g50.mean())
    assert s.loc[50, "mean_gi_min"] == g50.min() and s.loc[50, "mean_gi_max"] == g50.max()
    assert not (tmp_path / "t2.csv").exists()  # only the files asked for
    fig = tmp_path / "fig.png"
    plot_label_fractions(tmp_path / "t2.parquet", fig, title="tiny")
    assert fig.stat().st_size > 1000


def test_table_command_writes_exactly_its_outputs(tiny, tmp_path):
    root, data, runs = tiny
    table, csv = tmp_path / "t.parquet", tmp_path / "t.csv"
    assert main(["label-fractions-table", "--inputs", *map(str, runs.values()), "--out-table", str(table),
                 "--out-csv", str(csv)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]
    pd.testing.assert_frame_equal(pd.read_csv(csv), read_parquet(table)[RUN_COLUMNS], check_dtype=False, rtol=1e-5)
    fig = tmp_path / "fig.png"
    assert main(["plot-label-fractions", "--table", str(table), "--out", str(fig)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "t.csv", "t.parquet"]


def test_compute_module_imports_no_plotting():
    assert not {"matplotlib", "seaborn"} & external_imports("gisweep.fractions")


def test_fraction_errors(tiny, tmp_path):
    root, data, runs = tiny
    with pytest.raises(GisweepError, match="outside 0..100"):
        fraction_run(data, tmp_path / "m.pt", tmp_path / "r.parquet", percent=120, seed=0, **TINY)
    with pytest.raises(GisweepError, match="no run files"):
        fraction_table([], tmp_path / "t.parquet")
    pd.DataFrame({"percent": [0]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(GisweepError, match="missing column"):
        fraction_table([tmp_path / "bad.parquet"], tmp_path / "t.parquet")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "t.parquet").exists()


# ---------------------------------------------------------------- config sections (schema)


def validated(cfg: dict) -> dict:
    from snakemake.utils import validate

    validate(cfg, str(REPO / "src" / "gisweep" / "config.schema.yaml"))
    return cfg


def test_config_files_validate_and_get_defaults():
    default = validated(yaml.safe_load(open(REPO / "config.yaml")))
    assert default["fractions"]["percents"] == [0, 25, 50, 75, 100]
    tiny = validated(yaml.safe_load(open(REPO / "tests" / "configs" / "tiny.yaml")))
    assert tiny["dynamics"]["classes"] == [5] and tiny["along"]["class_a"] == 9  # defaults filled in
    assert tiny["along"]["dim"] in tiny["datasets"]["mnist"]["dims"]
    bare = validated(yaml.safe_load(open(REPO / "tests" / "configs" / "tiny.yaml")) | {"along": {}})
    assert bare["along"]["n_points"] == 601 and bare["along"]["enabled"] is True


@pytest.mark.parametrize("section, value", [
    ("fractions", {"percents": [150]}),
    ("fractions", {"seeds": []}),
    ("fractions", {"max_epochs": 0}),
    ("dynamics", {"checkpoint_epochs": []}),
    ("dynamics", {"checkpoint_epochs": [-1]}),
    ("along", {"n_points": 1}),
    ("along", {"arch": "3by128"}),
    ("along", {"colour": "red"}),
])
def test_bad_config_values_fail_validation(section, value):
    from snakemake.exceptions import WorkflowError

    cfg = yaml.safe_load(open(REPO / "tests" / "configs" / "tiny.yaml"))
    cfg[section] = value
    with pytest.raises(WorkflowError):
        validated(cfg)
