"""The data stage on CIFAR-10, full MNIST (tiny files in the official formats, made here) and two moons,
and the workflow's clear error when a configured source directory is missing."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import load_table, prepare_data
from gisweep.datasets import average_pool
from test_datasets import write_cifar, write_mnist

ROOT = Path(__file__).resolve().parents[1]


def balanced_labels(rng, n_per_class):
    return rng.permutation(np.repeat(np.arange(10), n_per_class))


def test_cifar10_to_data_table(tmp_path):
    rng = np.random.default_rng(0)
    parts = write_cifar(tmp_path / "cifar", rng, sizes=(6, 6, 6, 6, 6), n_test=4)
    # rewrite the labels so every class has 3 training images
    labels = balanced_labels(rng, 3)
    for b in range(5):
        path = tmp_path / "cifar" / f"data_batch_{b + 1}"
        batch = pickle.loads(path.read_bytes(), encoding="bytes")
        batch[b"labels"] = [int(v) for v in labels[6 * b:6 * b + 6]]
        path.write_bytes(pickle.dumps(batch, protocol=2))
    for dim, features in ((32, 3072), (16, 768)):
        out = tmp_path / f"d{dim}.parquet"
        prepare_data("cifar10", dim, out, seed=1, train_per_class=2, source_dir=str(tmp_path / "cifar"))
        x, y, xt, yt = load_table(out)
        assert x.shape == (20, features) and xt.shape == (4, features)
        assert np.bincount(y).tolist() == [2] * 10
        np.testing.assert_array_equal(yt, parts["test_y"])  # validation: the official test batch
        expected = parts["test_x"].astype(np.float64) if dim == 32 else average_pool(parts["test_x"], dim)
        np.testing.assert_allclose(xt, (expected.reshape(4, -1) / 255).astype(np.float32), rtol=1e-6)


def test_mnist_idx_to_data_table(tmp_path):
    rng = np.random.default_rng(1)
    write_mnist(tmp_path / "mnist", rng, n_train=40, n_test=5)
    # labels balanced by rewriting the labels file in the official layout
    from test_datasets import idx_labels_bytes
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_labels_bytes(balanced_labels(rng, 4)))
    out = tmp_path / "d7.parquet"
    assert main(["prepare-data", "--dataset", "mnist_idx", "--dim", "7", "--train-per-class", "3",
                 "--source-dir", str(tmp_path / "mnist"), "--out", str(out)]) == 0
    x, y, xt, _ = load_table(out)
    assert x.shape == (30, 49) and xt.shape == (5, 49) and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("dataset", ["cifar10", "mnist_idx"])
def test_missing_or_malformed_directory(tmp_path, dataset, capsys):
    with pytest.raises(GisweepError, match="nowhere.*does not exist"):
        prepare_data(dataset, 7 if dataset == "mnist_idx" else 32, tmp_path / "o.parquet",
                     source_dir=str(tmp_path / "nowhere"))
    with pytest.raises(GisweepError, match=f"datasets.{dataset}.dir"):
        prepare_data(dataset, 28, tmp_path / "o.parquet", source_dir=None)
    bad = tmp_path / "bad"
    if dataset == "cifar10":
        write_cifar(bad, np.random.default_rng(2))
        (bad / "test_batch").write_bytes(b"not a pickle")
        name = "test_batch"
    else:
        write_mnist(bad, np.random.default_rng(2))
        (bad / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00")
        name = "t10k-images-idx3-ubyte"
    rc = main(["prepare-data", "--dataset", dataset, "--dim", "8" if dataset == "cifar10" else "7",
               "--source-dir", str(bad), "--out", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and name in err and not (tmp_path / "o.parquet").exists()


def test_moons_table(tmp_path):
    out = tmp_path / "moons.parquet"
    prepare_data("moons", 2, out, seed=3, moons={"n_train": 300, "n_test": 100, "noise": 0.2, "seed": 3})
    x, y, xt, yt = load_table(out)
    assert x.shape == (300, 2) and xt.shape == (100, 2)
    assert np.bincount(y).tolist() == [150, 150] and np.bincount(yt).tolist() == [50, 50]
    again = tmp_path / "again.parquet"
    prepare_data("moons", 2, again, seed=3, moons={"n_train": 300, "n_test": 100, "noise": 0.2, "seed": 3})
    np.testing.assert_array_equal(load_table(again)[0], x)
    with pytest.raises(GisweepError, match="dim must be 2"):
        prepare_data("moons", 28, tmp_path / "x.parquet", moons={})


def test_workflow_names_missing_cifar_dir(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text((ROOT / "tests/configs/tiny.yaml").read_text()
                      + "\n# appended by the test\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--configfile", str(config),
         "--directory", str(tmp_path), "--config", f"datasets={{cifar10: {{dir: {tmp_path / 'nowhere'}}}}}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "datasets.cifar10.dir" in proc.stdout + proc.stderr and "nowhere" in proc.stdout + proc.stderr


def test_figure7_builds_from_a_cifar10_directory(tmp_path):
    """Figure 7 end to end through Snakemake on a tiny CIFAR-10 directory in the official format."""
    from conftest import copy_project, run_ok

    parts = write_cifar(tmp_path / "cifar", np.random.default_rng(4), sizes=(20, 20, 20, 20, 20), n_test=10)
    assert np.bincount(parts["train_y"], minlength=10).min() >= 3  # 3 training samples of every class
    project = copy_project(tmp_path / "project")
    (project / "cifar.yaml").write_text(f"""
device: cpu
data: {{seed: 0, train_per_class: 3}}
datasets: {{cifar10: {{dir: "{tmp_path / 'cifar'}", dims: [8]}}}}
models: {{architectures: ["1x8"], labels: [real, random], seeds: [0], compare_architectures: []}}
train: {{max_epochs: 20, batch_size: 8}}
lines: {{families: [pairs], pairs: {{classes: [5]}}}}
figures: {{arch: "1x8"}}
""")
    target = "results/figures/fig7_gi_cifar10_pairs.png"
    out = run_ok(project, target, "--cores", "2", config="cifar.yaml", timeout=300)
    assert (project / target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out[-3000:]
    x_tr, y_tr, _, _ = load_table(project / "results/cifar10/d8/data.parquet")
    assert x_tr.shape == (30, 8 * 8 * 3)  # 3 per class, 8×8 pooled, 3 channels
    for labels in ("real", "random"):
        gi = pd.read_parquet(project / f"results/cifar10/d8/1x8/{labels}/s0/gi_pairs.parquet")
        assert len(gi) == 3 and np.allclose(gi.gi, gi.t_hi - gi.t_lo)


# ---------------------------------------------------------------- the hull study's own data table


def test_bundled_mnist_hull_split(tmp_path):
    """4,000 training / 1,000 test images (400 / 100 per class) by seed; a number per class samples the pool."""
    from gisweep.data import prepare_hull_data
    from gisweep.io import read_parquet, read_provenance

    out = tmp_path / "hull.parquet"
    prepare_hull_data("mnist", 7, out, seed=0)
    df = read_parquet(out)
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    assert len(train) == 4000 and len(test) == 1000
    assert np.bincount(train["label"]).tolist() == [400] * 10 and np.bincount(test["label"]).tolist() == [100] * 10
    assert not set(train["index"]) & set(test["index"]) and len(set(df["index"])) == 5000
    assert train["label"].is_monotonic_increasing  # ordered by class, then index
    assert read_provenance(out)["image_shape"] == [7, 7, 1]
    again, other = tmp_path / "again.parquet", tmp_path / "other.parquet"
    prepare_hull_data("mnist", 7, again, seed=0)
    pd.testing.assert_frame_equal(read_parquet(again), df)
    prepare_hull_data("mnist", 7, other, seed=1)
    assert set(read_parquet(other).query("split == 'test'")["index"]) != set(test["index"])
    few = tmp_path / "few.parquet"
    prepare_hull_data("mnist", 7, few, seed=0, train_per_class=30)
    f = read_parquet(few)
    assert np.bincount(f.query("split == 'train'")["label"]).tolist() == [30] * 10
    assert set(f.query("split == 'train'")["index"]) <= set(train["index"])  # drawn from the 400 per class
    assert set(f.query("split == 'test'")["index"]) == set(test["index"])
    with pytest.raises(GisweepError, match="hull.train_per_class=401, but the training split has only 400"):
        prepare_hull_data("mnist", 7, tmp_path / "no.parquet", train_per_class=401)
    with pytest.raises(GisweepError, match="hull.train_per_class='many'"):
        prepare_hull_data("mnist", 7, tmp_path / "no.parquet", train_per_class="many")
    assert not (tmp_path / "no.parquet").exists()


def test_gi_data_table_unchanged_by_the_hull_table(tmp_path):
    """The GI data path does not move: 100 per class, validation = every other image, as before."""
    out = tmp_path / "gi.parquet"
    prepare_data("mnist", 7, out, seed=0, train_per_class=100)
    x, y, xt, _ = load_table(out)
    assert x.shape == (1000, 49) and xt.shape == (4000, 49)


def test_cifar10_hull_table_official_split(tmp_path):
    from gisweep.data import prepare_hull_data

    parts = write_cifar(tmp_path / "cifar", np.random.default_rng(5), sizes=(4, 4, 4, 4, 4), n_test=6)
    out = tmp_path / "hull.parquet"
    assert main(["prepare-hull-data", "--dataset", "cifar10", "--dim", "8", "--train-per-class", "all",
                 "--source-dir", str(tmp_path / "cifar"), "--out", str(out)]) == 0
    x, y, xt, yt = load_table(out)
    assert x.shape == (20, 8 * 8 * 3) and xt.shape == (6, 8 * 8 * 3)  # all training images, official test batch
    np.testing.assert_array_equal(np.sort(y), np.sort(parts["train_y"]))
    np.testing.assert_array_equal(yt, parts["test_y"])
    smallest = int(np.bincount(parts["train_y"], minlength=10).min())
    with pytest.raises(GisweepError, match=f"hull.train_per_class={smallest + 1}"):
        prepare_hull_data("cifar10", 8, tmp_path / "no.parquet", train_per_class=smallest + 1,
                          source_dir=str(tmp_path / "cifar"))
    with pytest.raises(GisweepError, match="the hull study needs images"):
        prepare_hull_data("moons", 2, tmp_path / "no.parquet")


def test_workflow_names_bad_hull_settings(tmp_path):
    """Hull settings the bundled data cannot support fail at parse time, naming the key."""
    import yaml

    base = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    for hull, dims, key in [({"train_per_class": 401}, [7], "hull.train_per_class"),
                            ({"train_sizes": [100, 5000], "train_size_dim": 7}, [7], "hull.train_sizes"),
                            ({"dims": [2], "pixel_dims": [], "spaces": ["resnet"]}, [7, 2], "hull.dims")]:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({**base, "datasets": {"mnist": {"dims": dims}}, "hull": hull}))
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--configfile", str(config),
             "--replace-workflow-config", "--directory", str(tmp_path)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and key in proc.stdout + proc.stderr, (hull, proc.stdout[-2000:])


def test_hull_study_builds_from_a_cifar10_directory(tmp_path):
    """The hull study end to end through Snakemake on a tiny CIFAR-10 directory in the official format: every
    space (pixels, wavelets per channel and their subset, MLP hidden layers, both ResNet-20 spaces), the summary
    with the ResNet's accuracy, and the N-sweep with its figure."""
    from conftest import copy_project, run_ok

    from gisweep.hull_summary import read_summary

    parts = write_cifar(tmp_path / "cifar", np.random.default_rng(4), sizes=(20, 20, 20, 20, 20), n_test=10)
    assert np.bincount(parts["train_y"], minlength=10).min() >= 3
    project = copy_project(tmp_path / "project")
    (project / "cifar.yaml").write_text(f"""
device: cpu
data: {{seed: 0, train_per_class: 3}}
datasets: {{cifar10: {{dir: "{tmp_path / 'cifar'}", dims: [8]}}}}
models: {{architectures: ["1x8"], labels: [real, random], seeds: [0], compare_architectures: []}}
train: {{max_epochs: 5, batch_size: 8}}
lines: {{families: [pairs], pairs: {{classes: [5]}}}}
figures: {{arch: "1x8"}}
along: {{enabled: false}}
dynamics: {{enabled: false}}
fractions: {{enabled: false}}
overparam: {{enabled: false}}
hull:
  dataset: cifar10
  dims: [8]
  pixel_dims: [8]
  wavelets: [haar]
  hidden_arch: "1x8"
  resnet_epochs: 1
  resnet_width: 2
  resnet_batch_size: 16
  n_random: 5
  train_sizes: [20, 50, 100]
  train_size_seeds: [0, 1]
  train_size_dim: 8
""")
    spaces = ["pixels", "wavelet_haar", "wavelet_haar_subset", "hidden_1x8_real_s0_l1", "hidden_1x8_random_s0_l1",
              "resnet_prepool_s0", "resnet_pool_s0"]
    targets = ["results/cifar10/d8/hull/summary.parquet", "results/figures/hull_distances_cifar10_d8.png",
               "results/tables/hull_vs_train_size.csv", "results/figures/hull_vs_train_size_cifar10.png"]
    out = run_ok(project, *targets, "--cores", "2", config="cifar.yaml", timeout=600)
    x_tr, _, x_te, _ = load_table(project / "results/cifar10/d8/hull/data.parquet")
    assert x_tr.shape == (100, 8 * 8 * 3) and x_te.shape == (10, 192)  # every training image, the test batch
    features = {}
    for space in spaces:
        s = read_summary(project / f"results/cifar10/d8/hull/{space}.parquet")
        features[space] = s["features"]
        assert s["train_points"] == 100 and s["test"]["n"] == 10, space
    assert features["pixels"] == features["wavelet_haar"] == 192
    assert features["wavelet_haar_subset"] == 3 * 4  # level 3 on 8x8: cA 1x1 + 3 details 1x1, per channel
    assert features["resnet_prepool_s0"] == 8 * 2 * 2 and features["resnet_pool_s0"] == 8  # width 2
    summary = pd.read_parquet(project / "results/cifar10/d8/hull/summary.parquet")
    assert set(summary["space"]) == set(spaces)
    resnet = summary[summary["space"].str.startswith("resnet")]
    assert resnet["model_train_acc"].between(0, 1).all() and resnet["model_test_acc"].between(0, 1).all()
    sweep = pd.read_csv(project / "results/tables/hull_vs_train_size.csv")
    assert sorted(sweep.loc[sweep["kind"] == "measured", "train_points"].unique()) == [20, 50, 100]
    assert (project / "results/figures/hull_vs_train_size_cifar10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out[-2000:]
