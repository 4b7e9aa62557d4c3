"""The hull-distance stage: certified distances of test and random points to the training hull, per space.

Input: the hull study's data table `results/{dataset}/d{dim}/hull/data.parquet` (gisweep.data.
prepare_hull_data; any table with data.parquet's columns works). Output
`results/{dataset}/d{dim}/hull/{space}.parquet` (space names: gisweep.spaces), one row per query:

  query           position among the queries of its kind (test: among the test rows of the data table,
                  in their order; random: 0..n_random-1)
  kind            'test' or 'random' (uniform in the pixel domain [0, 1]^F, then mapped into the space)
  source_index    the test sample's index in its source dataset (-1 for random points)
  label           the test sample's true label (-1 for random points)
  distance        distance to the training hull, attained by the stored convex combination
  lower           proven lower bound (the true distance lies in [lower, distance])
  certified       distance - lower <= max(tol * distance, atol); False = NOT certified (iteration cap)
  inside          distance <= atol (in the hull up to atol, atol = abs_tol * data radius)
  outside         lower > atol: certified to lie outside the hull. A query neither inside nor outside
                  is undecided (its interval [lower, distance] straddles atol: the iteration cap), and
                  is never counted as outside
  rel_distance    distance / hull diameter
  nn_distance     distance to the nearest training point; nn_index its training row
  iterations      pricing rounds of the solver
  support_size    training points with positive weight in the nearest hull point
  support_index   the support_k heaviest of them (training-row positions), by weight descending
  support_weight  their weights

The per-space summary is stored in the file's metadata (gisweep.io.read_provenance(path)['summary'],
read with gisweep.hull_summary.read_summary): space, features, train_points, diameter (exact largest
pairwise training distance) and its pair, tol, atol, model_train_acc / model_test_acc (resnet spaces:
the ResNet's accuracy on the hull's training and test rows; None elsewhere), and per kind ('test',
'random'): n, fraction_outside, fraction_inside, fraction_undecided (the three add up to 1),
fraction_certified, not_certified, distance mean/std/min/max, skewness, excess kurtosis, normaltest_p
(scipy.stats.normaltest, D'Agostino-Pearson; None below 8 points), rel_distance mean/max,
nn_distance mean, and the mean ratio distance / nn_distance. `hull-summary` (gisweep.hull_summary)
collects these into a table.

Command `hull-nearest` (pixel space): a few test images with their nearest points on the training hull
and the heaviest support images, re-solved with the full support, saved for the nearest-point figure
(`results/{dataset}/d{dim}/hull/nearest_pixels.parquet`, columns NEAREST_COLUMNS).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.data import load_table
from gisweep.hull import hull_distance
from gisweep.hull_geometry import hull_diameter, nearest_neighbor_distance
from gisweep.hull_summary import read_summary
from gisweep.io import provenance, read_parquet, write_parquet
from gisweep.runtime import pick_device, pick_dtype
from gisweep.schema import integer, number, schema_number
from gisweep import spaces

COLUMNS = ["query", "kind", "source_index", "label", "distance", "lower", "certified", "inside", "outside",
           "rel_distance",
           "nn_distance", "nn_index", "iterations", "support_size", "support_index", "support_weight"]
NEAREST_COLUMNS = ["query", "source_index", "label", "distance", "support_size", "image", "nearest",
                   "support_index", "support_weight", "support_image"]


def load_space_model(space: str, model_path, features: int):
    """(network, its meta record) a hidden or resnet space needs ((None, {}) for the others), checked
    against the data."""
    spec = spaces.parse_space(space)
    if spec["kind"] in ("pixels", "wavelet"):
        return None, {}
    if not model_path:
        raise GisweepError(f"space '{space}' needs --model (the trained network's file)")
    if spec["kind"] == "hidden":
        from gisweep.models import load_model, load_record

        record = load_record(model_path)
        if record["arch"] != spec["arch"]:
            raise GisweepError(f"{model_path}: architecture {record['arch']}, but space '{space}' names {spec['arch']}")
        if record["in_features"] != features:
            raise GisweepError(f"{model_path}: network takes {record['in_features']} inputs, the data has {features}")
        return load_model(model_path), {}
    from gisweep.resnet import load_resnet

    model, meta = load_resnet(model_path, with_meta=True)
    if model.side**2 * model.channels != features:
        raise GisweepError(f"{model_path}: the ResNet takes {model.side}x{model.side}x{model.channels} images, the "
                           f"data has {features} features")
    return model, meta


def test_sample(n_test: int, max_test: int, seed: int) -> np.ndarray:
    """Positions of the test rows used as queries: all, or a seeded sample of max_test (in file order)."""
    if max_test and max_test < n_test:
        return np.sort(np.random.default_rng([seed, 0x7E57]).choice(n_test, max_test, replace=False))
    return np.arange(n_test)


def moments(d: np.ndarray) -> dict:
    from scipy import stats

    out = {"mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
           "min": float(d.min()), "max": float(d.max())}
    spread = len(d) > 2 and float(np.ptp(d)) > 0
    out["skewness"] = float(stats.skew(d)) if spread else None
    out["kurtosis"] = float(stats.kurtosis(d)) if spread else None  # excess (normal: 0)
    out["normaltest_p"] = float(stats.normaltest(d).pvalue) if spread and len(d) >= 8 else None
    return out


def summarize(df: pd.DataFrame, diameter: float) -> dict:
    """Per kind of query: fraction outside and certified, and the shape of the distance distribution."""
    out = {}
    for kind, g in df.groupby("kind", sort=False):
        d = g["distance"].to_numpy()
        nn_ratio = d / np.where(g["nn_distance"].to_numpy() > 0, g["nn_distance"].to_numpy(), np.nan)
        out[kind] = {
            "n": int(len(g)),
            "fraction_outside": float(g["outside"].mean()),
            "fraction_inside": float(g["inside"].mean()),
            "fraction_undecided": float((~g["inside"] & ~g["outside"]).mean()),
            "fraction_certified": float(g["certified"].mean()),
            "not_certified": int((~g["certified"]).sum()),
            **moments(d),
            "rel_mean": float(d.mean() / diameter) if diameter > 0 else None,
            "rel_max": float(d.max() / diameter) if diameter > 0 else None,
            "nn_mean": float(g["nn_distance"].mean()),
            "distance_over_nn_mean": float(np.nanmean(nn_ratio)) if np.isfinite(nn_ratio).any() else None,
        }
    return out


def hull_space_distances(data_path, space: str, out, *, model_path=None, tol: float = 1e-6, max_iter: int = 500,
                         n_random: int = 500, random_seed: int = 0, max_test: int = 0, support_k: int = 10,
                         abs_tol: float | None = None, wavelet_mode: str = "periodization", wavelet_level: int = 0,
                         subset_levels: int = 2, device: str = "auto", dtype: str = "float64",
                         memory_mb: float | None = None, threads: int | None = None) -> pd.DataFrame:
    """Distances of the test rows (and n_random uniform random points) to the training hull in `space`.

    max_test > 0 keeps a seeded sample of that many test rows (in their file order). Writes `out` and
    returns the table; see the module docstring for its columns and the summary in its metadata.
    """
    t0 = time.monotonic()
    if threads:
        torch.set_num_threads(threads)
    if max_iter < 1 or not tol > 0 or support_k < 1 or max_test < 0:
        raise GisweepError(f"hull settings: need tol > 0, max_iter >= 1, support_k >= 1, max_test >= 0 "
                           f"(got tol={tol}, max_iter={max_iter}, support_k={support_k}, max_test={max_test})")
    spaces.parse_space(space)  # a bad name fails before any work
    x_tr, _, x_te, y_te = load_table(data_path)
    if not (np.isfinite(x_tr).all() and np.isfinite(x_te).all()):
        raise GisweepError(f"{data_path}: column 'x' holds NaN or infinite values")
    try:  # a space the rows' shape cannot support fails before any work
        spaces.check_space(space, x_tr.shape[1], subset_levels=subset_levels, wavelet_mode=wavelet_mode,
                           wavelet_level_=wavelet_level)
    except GisweepError as e:
        raise GisweepError(f"{data_path}: {e}") from None
    source = read_parquet(data_path, columns=["index", "split"], required=["index", "split"])
    src_te = source.loc[source["split"] != "train", "index"].to_numpy()
    keep = test_sample(len(x_te), max_test, random_seed)
    x_te, y_te, src_te = x_te[keep], y_te[keep], src_te[keep]
    n_features = x_tr.shape[1]
    x_rand = spaces.random_points(n_random, n_features, random_seed)  # [n_random, F]

    model, model_meta = load_space_model(space, model_path, n_features)
    opts = dict(model=model, wavelet_mode=wavelet_mode, wavelet_level_=wavelet_level, subset_levels=subset_levels)
    try:
        train = spaces.features(space, x_tr, **opts)  # [n, D]
        queries = spaces.features(space, np.concatenate([x_te, x_rand]), **opts)  # [m + n_random, D]
    except GisweepError as e:
        raise GisweepError(f"{data_path}{f' with {model_path}' if model_path else ''}: {e}") from None
    print(f"{space}: {train.shape[0]} training points, {len(x_te)} test + {n_random} random queries, "
          f"D = {train.shape[1]}", file=sys.stderr, flush=True)

    dev = pick_device(device)
    dt = pick_dtype(dtype)
    diameter, di, dj = hull_diameter(train, device=dev, dtype=dt, memory_mb=memory_mb)
    res = hull_distance(train, queries, tol=tol, max_iter=max_iter, device=dev, dtype=dt, abs_tol=abs_tol,
                        support_k=support_k, memory_mb=memory_mb)
    nn_d, nn_i = nearest_neighbor_distance(train, queries, device=dev, dtype=dt, memory_mb=memory_mb)

    n_te = len(x_te)
    frame = res.to_frame()
    df = pd.DataFrame({
        "query": np.r_[keep, np.arange(n_random)].astype(np.int64),
        "kind": ["test"] * n_te + ["random"] * n_random,
        "source_index": np.r_[src_te, -np.ones(n_random, np.int64)].astype(np.int64),
        "label": np.r_[y_te, -np.ones(n_random, np.int64)].astype(np.int64),
        "distance": frame["distance"].to_numpy(np.float64),
        "lower": frame["lower"].to_numpy(np.float64),
        "certified": frame["certified"].to_numpy(bool),
        "inside": frame["inside"].to_numpy(bool),
        "outside": (frame["lower"].to_numpy(np.float64) > float(res.atol)) & ~frame["inside"].to_numpy(bool),
        "rel_distance": frame["distance"].to_numpy(np.float64) / diameter if diameter > 0 else np.nan,
        "nn_distance": nn_d.numpy().astype(np.float64),
        "nn_index": nn_i.numpy().astype(np.int64),
        "iterations": frame["iterations"].to_numpy(np.int64),
        "support_size": frame["support_size"].to_numpy(np.int64),
        "support_index": frame["support_index"],
        "support_weight": frame["support_weight"],
    })
    summary = {"space": space, "features": int(train.shape[1]), "train_points": int(train.shape[0]),
               "diameter": float(diameter), "diameter_pair": [di, dj], "tol": tol, "atol": float(res.atol),
               "model_train_acc": model_meta.get("train_acc"), "model_test_acc": model_meta.get("test_acc"),
               **summarize(df, diameter)}
    bad = int((~df["certified"]).sum())
    if bad:
        print(f"WARNING: {bad} of {len(df)} queries NOT certified to tol={tol} within max_iter={max_iter}; "
              "their rows have certified=False (distance is an upper bound, lower a lower bound)",
              file=sys.stderr, flush=True)
    meta = provenance(stage="hull_distance", data=str(data_path), space=space, model=str(model_path or ""),
                      tol=tol, max_iter=max_iter, n_random=n_random, random_seed=random_seed, max_test=max_test,
                      support_k=support_k, abs_tol=abs_tol, wavelet_mode=wavelet_mode, wavelet_level=wavelet_level,
                      subset_levels=subset_levels, device=str(dev), dtype=dtype, summary=summary)
    write_parquet(df[COLUMNS], out, meta)
    for kind in ("test", "random"):
        s = summary.get(kind)
        if s:
            print(f"{out} [{kind}]: n {s['n']}, outside {s['fraction_outside']:.3f}, inside {s['fraction_inside']:.3f},"
                  f" undecided {s['fraction_undecided']:.3f}, certified "
                  f"{s['fraction_certified']:.3f}, distance mean {s['mean']:.4g} (diameter {diameter:.4g}, "
                  f"rel {_sig(s['rel_mean'])}), normaltest p {_sig(s['normaltest_p'])}")
    print(f"{out}: {time.monotonic() - t0:.1f} s")
    return df


def _sig(value, digits: int = 4) -> str:
    """A log line's float to `digits` significant digits; 'n/a' where the statistic is undefined (None)."""
    return "n/a" if value is None else format(value, f".{digits}g")


def pick_examples(distance: np.ndarray, n: int) -> np.ndarray:
    """Positions of n queries spread over the distance quantiles (nearest to 1/(n+1), ..., n/(n+1))."""
    order = np.argsort(distance, kind="stable")
    n = min(n, len(order))
    return order[np.round(np.linspace(1, n, n) / (n + 1) * (len(order) - 1)).astype(int)]


def nearest_examples(data_path, hull_path, out, *, n_examples: int = 4, n_support: int = 5, tol: float = 1e-6,
                     threads: int | None = None) -> pd.DataFrame:
    """A few test images of a pixel-space hull table with their nearest points on the training hull.

    The examples are spread over the test distances (pick_examples). Their nearest points are solved
    again with the full support (the hull table keeps only the heaviest support_k); the re-solved
    distance must match the stored one. Writes `out`, one row per example (NEAREST_COLUMNS):
    query, source_index, label, distance (re-solved), support_size, image [F] (the test image),
    nearest [F] (the nearest hull point), support_index / support_weight (the n_support heaviest
    support points, by weight descending) and support_image [n_support][F] (their training images).
    """
    if threads:
        torch.set_num_threads(threads)
    if n_examples < 1 or n_support < 0:
        raise GisweepError(f"nearest examples: need examples >= 1 and support >= 0 (got {n_examples}, {n_support})")
    s = read_summary(hull_path)
    if s["space"] != "pixels":
        raise GisweepError(f"{hull_path}: nearest-point images need the pixel space, not '{s['space']}'")
    df = read_parquet(hull_path, required=["kind", "query", "source_index", "label", "distance"])
    x_tr, _, x_te, _ = load_table(data_path)
    test = df[df["kind"] == "test"].reset_index(drop=True)
    if len(test) == 0:
        raise GisweepError(f"{hull_path}: no test rows")
    if int(test["query"].max()) >= len(x_te):
        raise GisweepError(f"{hull_path}: query positions exceed the {len(x_te)} test rows of {data_path}")
    spaces.image_shape(x_tr.shape[1])  # square grey or RGB images, or a clear error
    pick = pick_examples(test["distance"].to_numpy(), n_examples)
    q = test["query"].to_numpy()[pick]
    res = hull_distance(x_tr.astype(np.float64), x_te[q].astype(np.float64), tol=tol, device="cpu", progress=False)
    stored = test["distance"].to_numpy()[pick]
    if not np.allclose(res.distance.numpy(), stored, rtol=1e-4, atol=1e-6 * max(1.0, s["diameter"])):
        raise GisweepError(f"{hull_path}: stored distances {stored} do not match a re-solve {res.distance.numpy()}"
                           f" against {data_path} (different data file?)")
    near = res.nearest_points(torch.as_tensor(x_tr, dtype=torch.float64)).numpy()  # [n, F]
    idx, w = res.support_index.numpy(), res.support_weight.numpy()  # [n, k] by weight descending, -1 padded
    keep = [[k for k in range(min(n_support, idx.shape[1])) if idx[r, k] >= 0] for r in range(len(q))]
    table = pd.DataFrame({
        "query": q.astype(np.int64),
        "source_index": test["source_index"].to_numpy(np.int64)[pick],
        "label": test["label"].to_numpy(np.int64)[pick],
        "distance": res.distance.numpy().astype(np.float64),
        "support_size": res.support_size.numpy().astype(np.int64),
        "image": [x_te[qi].tolist() for qi in q],
        "nearest": [near[r].tolist() for r in range(len(q))],
        "support_index": [idx[r, ks].tolist() for r, ks in enumerate(keep)],
        "support_weight": [w[r, ks].tolist() for r, ks in enumerate(keep)],
        "support_image": [[x_tr[idx[r, k]].tolist() for k in ks] for r, ks in enumerate(keep)],
    })
    meta = provenance(stage="hull_nearest", data=str(data_path), hull=str(hull_path), examples=n_examples,
                      support=n_support, tol=tol)
    write_parquet(table[NEAREST_COLUMNS], out, meta)
    print(f"{out}: {len(table)} examples, distances {np.round(table['distance'].to_numpy(), 4).tolist()}")
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("hull-distance", help="certified distances to the training hull in one feature space")
    p.add_argument("--data", required=True, help="the hull data table of one dataset and dimension")
    p.add_argument("--space", required=True, help="pixels | wavelet_<w>[_subset] | hidden_<arch>_<labels>_s<seed>_l<k>"
                   " | resnet_prepool_s<seed> | resnet_pool_s<seed>")
    p.add_argument("--model", default=None, help="model.pt (hidden spaces) or the ResNet file (resnet spaces)")
    p.add_argument("--out", required=True)
    p.add_argument("--tol", type=schema_number("hull.tol"), default=1e-6)
    p.add_argument("--max-iter", type=schema_number("hull.max_iter"), default=500)
    p.add_argument("--n-random", type=schema_number("hull.n_random"), default=500)
    p.add_argument("--random-seed", type=schema_number("hull.random_seed"), default=0)
    p.add_argument("--max-test", type=schema_number("hull.max_test"), default=0, help="0: every test row")
    p.add_argument("--support-k", type=schema_number("hull.support_k"), default=10)
    p.add_argument("--abs-tol", type=number(exclusive_minimum=0), default=None)
    p.add_argument("--wavelet-mode", default="periodization")
    p.add_argument("--wavelet-level", type=schema_number("hull.wavelet_level"), default=0,
                   help="0: deepest orthogonal level")
    p.add_argument("--subset-levels", type=schema_number("hull.subset_levels"), default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--memory-mb", type=schema_number("hull.memory_mb"), default=None)
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.set_defaults(func=lambda a: hull_space_distances(
        a.data, a.space, a.out, model_path=a.model, tol=a.tol, max_iter=a.max_iter, n_random=a.n_random,
        random_seed=a.random_seed, max_test=a.max_test, support_k=a.support_k, abs_tol=a.abs_tol,
        wavelet_mode=a.wavelet_mode, wavelet_level=a.wavelet_level, subset_levels=a.subset_levels,
        device=a.device, dtype=a.dtype, memory_mb=a.memory_mb, threads=a.threads))

    n = sub.add_parser("hull-nearest", help="test images of a pixel hull table with their nearest hull points")
    n.add_argument("--data", required=True, help="data.parquet the hull table was computed from")
    n.add_argument("--hull", required=True, help="the pixel-space hull Parquet of the same data")
    n.add_argument("--examples", type=schema_number("hull.figure_examples"), default=4,
                   help="test images, spread over the distance quantiles")
    n.add_argument("--support", type=schema_number("hull.figure_support"), default=5,
                   help="heaviest support training images kept per example")
    n.add_argument("--tol", type=schema_number("hull.tol"), default=1e-6)
    n.add_argument("--threads", type=integer(minimum=1), default=None)
    n.add_argument("--out", required=True)
    n.set_defaults(func=lambda a: nearest_examples(a.data, a.hull, a.out, n_examples=a.examples,
                                                   n_support=a.support, tol=a.tol, threads=a.threads))
