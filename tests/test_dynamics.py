"""GI during training (gisweep.dynamics): the retrained network is the pipeline's, checkpoints, correlations."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gisweep import GisweepError
from gisweep.data import load_table, prepare_data
from gisweep.cli import main
from gisweep.code_inputs import external_imports
from gisweep.dynamics import DYNAMICS_COLUMNS, gi_accuracy_correlations, gi_during_training, gi_vs_accuracy, same_weights
from gisweep.figures.dynamics import plot_gi_vs_accuracy
from gisweep.gi import exact_intervals
from gisweep.io import read_parquet, read_provenance
from gisweep.lines import materialize, same_class_pairs
from gisweep.models import build_mlp, load_model, load_record
from gisweep.runtime import seed_everything
from gisweep.train import train
from conftest import TINY_CONFIG, copy_project, snakemake

SETTINGS = dict(arch="1x16", seed=0, lr=0.01, momentum=0.9, batch_size=16, max_epochs=12, init_scale=0.05)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The tiny config's setting: MNIST 7×7, 10 per class, a 1x16 model trained by the train stage."""
    root = tmp_path_factory.mktemp("dynamics")
    data = root / "data.parquet"
    prepare_data("mnist", 7, data, seed=0, train_per_class=10)
    model = root / "model.pt"
    train(data, model, root / "history.parquet", labels="real", device="cpu", threads=1, **SETTINGS)
    out = root / "gi_during_training.parquet"
    retrained = root / "retrained.pt"
    df = gi_during_training(data, out, checkpoint_epochs=[0, 1, 3, 5, 500], classes=[5, 2], device="cpu",
                            threads=1, reference_model=model, out_model=retrained, **SETTINGS)
    return root, data, model, out, retrained, df


def test_retrained_model_equals_pipeline_model_bit_for_bit(pipeline):
    root, data, model, out, retrained, df = pipeline
    a, b = load_record(model)["state_dict"], load_record(retrained)["state_dict"]
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    meta = read_provenance(out)
    assert meta["same_as_reference"] is True
    assert meta["epochs"] == load_record(model)["meta"]["epochs"]


def test_same_weights_detects_a_different_model(pipeline, tmp_path):
    root, data, model, *_ = pipeline
    net = load_model(model)
    assert same_weights(net, model)
    with torch.no_grad():
        w = net[0].weight
        w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(1.0))  # one ulp
    assert not same_weights(net, model)
    assert not same_weights(build_mlp("2x16", 49, 10), model)


def test_checkpoints_epochs_and_final(pipeline):
    root, data, model, out, retrained, df = pipeline
    hist = read_parquet(root / "history.parquet")
    last = int(hist.epoch.iloc[-1])
    assert list(df.columns) == DYNAMICS_COLUMNS
    assert df.epoch.tolist() == [e for e in [0, 1, 3, 5] if e <= last] + ([last] if last not in (0, 1, 3, 5) else [])
    assert df.final.tolist() == [False] * (len(df) - 1) + [True]
    # accuracies at checkpoints >= 1 are the train stage's history values
    merged = df[df.epoch > 0].merge(hist, on="epoch", suffixes=("", "_hist"))
    assert len(merged) == (df.epoch > 0).sum()
    np.testing.assert_array_equal(merged.train_acc, merged.train_acc_hist)
    np.testing.assert_array_equal(merged.val_acc, merged.val_acc_hist)
    pd.testing.assert_frame_equal(read_parquet(out), df, check_exact=True)


def gi_of(net, data, classes=(5, 2)):
    x, y, _, _ = load_table(data)
    lines = same_class_pairs(y, list(classes))
    x0, d, lo, hi = materialize(lines, x)
    return exact_intervals(net, x0, d, lo, hi).to_frame(), x, y


def test_final_and_initial_checkpoints_measure_the_right_networks(pipeline):
    root, data, model, out, retrained, df = pipeline
    # final: the pipeline's model.pt through the batched-GI path; 45 pairs per class, 2 classes
    res, x, y = gi_of(load_model(model), data)
    final = df[df.final].iloc[0]
    assert final.lines == len(res) == 90
    assert final.mean_gi == res.gi.mean() and final.median_gi == res.gi.median()
    assert final.mean_pieces == res.pieces.mean()
    with torch.no_grad():
        assert final.train_acc == float((load_model(model)(torch.as_tensor(x)).argmax(1).numpy() == y).mean())
    # epoch 0: the initialisation, built independently with the same seed
    init = build_mlp("1x16", 49, 10, 0.05, generator=seed_everything(0)).eval()
    res0, _, _ = gi_of(init, data)
    first = df[df.epoch == 0].iloc[0]
    assert first.mean_gi == res0.gi.mean()
    assert first.full_range == float(np.mean(res0.gi >= 3.0 * (1 - 1e-12)))
    x, y, _, _ = load_table(data)
    labels = same_class_pairs(y, [5, 2]).label.to_numpy()
    assert first.anchor_correct == float(np.mean(res0.class0.to_numpy() == labels))
    assert final.anchor_correct == float(np.mean(res.class0.to_numpy() == labels))


def test_gi_during_training_rejects_bad_checkpoints(pipeline, tmp_path):
    root, data, *_ = pipeline
    for bad in ([], [-1, 2]):
        with pytest.raises(GisweepError, match="checkpoint_epochs"):
            gi_during_training(data, tmp_path / "x.parquet", checkpoint_epochs=bad, **SETTINGS)
    with pytest.raises(GisweepError, match="class"):
        gi_during_training(data, tmp_path / "x.parquet", checkpoint_epochs=[0], classes=[12], **SETTINGS)
    with pytest.raises(GisweepError, match="file not found"):
        gi_during_training(tmp_path / "none.parquet", tmp_path / "x.parquet", checkpoint_epochs=[0], **SETTINGS)
    assert not (tmp_path / "x.parquet").exists()


def test_correlations_equal_independent_computation():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"mean_gi": rng.random(9), "train_acc": rng.random(9), "val_acc": rng.random(9)})
    df.loc[4, "val_acc"] = df.loc[5, "val_acc"]  # a tie, so Spearman's average ranks matter
    got = gi_accuracy_correlations(df).set_index("accuracy")
    for acc in ("train_acc", "val_acc"):
        g, a = df.mean_gi.to_numpy(), df[acc].to_numpy()
        assert got.loc[acc, "pearson_r"] == pytest.approx(np.corrcoef(g, a)[0, 1], abs=1e-12)
        rg, ra = pd.Series(g).rank().to_numpy(), pd.Series(a).rank().to_numpy()  # average ranks for ties
        assert got.loc[acc, "spearman_rho"] == pytest.approx(np.corrcoef(rg, ra)[0, 1], abs=1e-12)
        assert 0 <= got.loc[acc, "pearson_p"] <= 1 and 0 <= got.loc[acc, "spearman_p"] <= 1
        assert got.loc[acc, "checkpoints"] == 9
    # a perfectly monotone but non-linear relation: Spearman 1, Pearson below 1
    mono = pd.DataFrame({"mean_gi": np.arange(6.0), "train_acc": np.exp(np.arange(6.0)), "val_acc": -np.arange(6.0)})
    c = gi_accuracy_correlations(mono).set_index("accuracy")
    assert c.loc["train_acc", "spearman_rho"] == pytest.approx(1.0) and c.loc["train_acc", "pearson_r"] < 0.99
    assert c.loc["val_acc", "pearson_r"] == pytest.approx(-1.0)


def test_correlations_undefined_cases_are_nan():
    const = pd.DataFrame({"mean_gi": [1.0, 2.0, 3.0], "train_acc": [1.0, 1.0, 1.0], "val_acc": [0.1, 0.2, 0.4]})
    c = gi_accuracy_correlations(const).set_index("accuracy")
    assert np.isnan(c.loc["train_acc", "pearson_r"]) and np.isnan(c.loc["train_acc", "spearman_rho"])
    assert not np.isnan(c.loc["val_acc", "pearson_r"])
    two = pd.DataFrame({"mean_gi": [1.0, 2.0], "train_acc": [0.1, 0.3], "val_acc": [0.2, 0.1]})
    assert gi_accuracy_correlations(two)[["pearson_r", "spearman_rho"]].isna().all().all()
    with pytest.raises(GisweepError, match="val_acc"):
        gi_accuracy_correlations(pd.DataFrame({"mean_gi": [1.0], "train_acc": [1.0]}))


def test_table_by_compute_command_and_figure_from_tables(pipeline, tmp_path):
    root, data, model, out, *_ = pipeline
    fig, table = tmp_path / "fig9.png", tmp_path / "tables" / "gi_vs_accuracy.csv"
    assert main(["gi-vs-accuracy", "--dynamics", str(out), "--out", str(table)]) == 0
    csv = pd.read_csv(table)
    assert csv.accuracy.tolist() == ["train_acc", "val_acc"]
    np.testing.assert_allclose(csv.pearson_r, gi_accuracy_correlations(read_parquet(out)).pearson_r, rtol=1e-5)
    assert csv.same_as_pipeline_model.tolist() == [True, True]
    assert csv.source.tolist() == [str(out)] * 2
    assert len(gi_vs_accuracy(out, tmp_path / "again.csv")) == 2
    assert (tmp_path / "again.csv").read_bytes() == table.read_bytes()
    # the figure reads both tables and writes only the figure
    before = sorted(tmp_path.rglob("*"))
    assert main(["plot-gi-vs-accuracy", "--dynamics", str(out), "--correlations", str(table), "--title", "tiny",
                 "--out", str(fig)]) == 0
    assert fig.stat().st_size > 1000
    assert sorted(tmp_path.rglob("*")) == sorted([*before, fig])


def test_several_seeds_one_table_and_a_figure_with_each_seed(pipeline, tmp_path):
    """dynamics.seeds: one checkpoints table per seed; gi-vs-accuracy gives each seed's correlations
    (a seed column), and Figure 9 draws every seed faintly and their mean."""
    root, data, model, out, *_ = pipeline
    tables = {0: out}
    for seed in (1, 2):
        ref = root / f"model_s{seed}.pt"
        settings = {**SETTINGS, "seed": seed}
        train(data, ref, root / f"history_s{seed}.parquet", labels="real", device="cpu", threads=1, **settings)
        tables[seed] = root / f"s{seed}" / "gi_during_training.parquet"
        gi_during_training(data, tables[seed], checkpoint_epochs=[0, 1, 3, 5, 500], classes=[5, 2], device="cpu",
                           threads=1, reference_model=ref, **settings)
        assert read_provenance(tables[seed])["same_as_reference"] is True
    csv = tmp_path / "gi_vs_accuracy.csv"
    assert main(["gi-vs-accuracy", "--dynamics", *map(str, tables.values()), "--out", str(csv)]) == 0
    corr = pd.read_csv(csv)
    assert corr.seed.tolist() == [0, 0, 1, 1, 2, 2] and corr.accuracy.tolist() == ["train_acc", "val_acc"] * 3
    for seed, path in tables.items():
        want = gi_accuracy_correlations(read_parquet(path)).pearson_r.to_numpy()
        np.testing.assert_allclose(corr[corr.seed == seed].pearson_r, want, rtol=1e-6)
    with pytest.raises(GisweepError, match="a second GI-during-training table of seed 1"):
        gi_vs_accuracy([tables[1], tables[1]], tmp_path / "x.csv")
    fig = tmp_path / "fig9.png"
    assert main(["plot-gi-vs-accuracy", "--dynamics", *map(str, tables.values()), "--correlations", str(csv),
                 "--out", str(fig)]) == 0
    assert fig.stat().st_size > 1000
    # a correlation table that lacks a plotted seed is refused
    corr[corr.seed != 2].to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(GisweepError, match=r"no correlations of seed\(s\) \[2\]"):
        plot_gi_vs_accuracy(list(tables.values()), tmp_path / "two.csv", tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_figure_rejects_a_table_that_is_not_a_correlation_table(pipeline, tmp_path):
    root, data, model, out, *_ = pipeline
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"accuracy": ["train_acc"], "pearson_r": [0.1]}).to_csv(bad, index=False)
    with pytest.raises(GisweepError, match="spearman_rho"):
        plot_gi_vs_accuracy(out, bad, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_compute_modules_import_no_plotting():
    # the import closures, function-level imports included
    for module in ("gisweep.dynamics", "gisweep.train"):
        assert not {"matplotlib", "seaborn"} & external_imports(module), module


def reference_fit(model, x, y, *, lr, momentum, batch_size, epochs, seed):
    """The training loop as it was before the per-batch host syncs were removed: loss.item() per batch."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return losses


def test_fit_equals_the_per_batch_item_loop_bit_for_bit(pipeline):
    """fit sums the loss on the device (float64) and syncs once per epoch; the history and the weights
    are exactly those of the loop that called loss.item() per batch."""
    from gisweep.train import fit

    root, data, *_ = pipeline
    x, y, xv, yv = load_table(data)
    x, y, xv, yv = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long), torch.as_tensor(xv), torch.as_tensor(yv, dtype=torch.long)
    mine, ref = (build_mlp("1x16", 49, 10, 0.05, generator=torch.Generator().manual_seed(4)) for _ in range(2))
    hist, _ = fit(mine, x, y, xv, yv, lr=0.05, momentum=0.9, batch_size=7, max_epochs=6, seed=3)  # a ragged last batch
    want = reference_fit(ref, x, y, lr=0.05, momentum=0.9, batch_size=7, epochs=len(hist), seed=3)
    assert hist.loss.tolist() == want
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), ref.state_dict().values()))


def test_tiny_config_plans_one_dynamics_job_per_seed(tmp_path):
    """dynamics.seeds in the workflow: one gi_during_training job per seed, each checked against that seed's
    pipeline model; the correlation table, Figure 9 and the claims read every seed's table."""
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"]["seeds"] = [0, 1]
    config["dynamics"]["seeds"] = [0, 1, 2]  # seed 2 is not in models.seeds: its reference is trained alone
    project = copy_project(tmp_path / "project")
    (project / "seeds.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(project, "--dry-run", "--printshellcmds", config="seeds.yaml")
    assert res.returncode == 0, res.stdout[-3000:]
    shell = [line for line in res.stdout.splitlines() if "python -m gisweep" in line]
    tables = [f"results/mnist/d7/1x16/real/s{seed}/gi_during_training.parquet" for seed in (0, 1, 2)]
    for seed, table in zip((0, 1, 2), tables):
        jobs = [c for c in shell if "gi-during-training" in c and f"--seed {seed} " in c]
        assert len(jobs) == 1 and f"--out {table}" in jobs[0], jobs
        assert f"--reference-model results/mnist/d7/1x16/real/s{seed}/model.pt" in jobs[0]
    assert any("train --data" in c and "--seed 2 " in c and "--labels real" in c for c in shell)
    for command in ("gi-vs-accuracy", "plot-gi-vs-accuracy", "gi-claims"):
        line = next(c for c in shell if f"gisweep {command} " in c)
        assert "--dynamics " + " ".join(tables) in line, line
    assert "seeds 0, 1, 2 (faint) and mean" in next(c for c in shell if "plot-gi-vs-accuracy" in c)
