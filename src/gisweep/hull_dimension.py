"""Hull membership against dimension: the hull study's data projected on its first d principal components.

For each d of a list, the training rows of the hull data table (results/{dataset}/d{dim}/hull/data.parquet)
are projected on their first d principal components (PCA fitted on the training rows only, float64), the
test rows with the same centring and basis, and the certified distances of the test rows to the hull of
the projected training rows are solved (gisweep.hull.hull_distance). Per d the table records the fractions
of test rows certified inside, certified outside and undecided, and the mean distance over the projected
training set's diameter. The same is measured for

  random   uniform data of the same size (n_train training, n_test query points) in the projected
           training set's bounding box at each d: the reference of Balestriero, Pesenti & LeCun (2021),
           for whom i.i.d. data in more than a few dozen dimensions is almost never inside;
  hidden   (with a model) a hidden layer of a trained MLP (gisweep.spaces), reduced the same way: a
           learned space, the setting of Bonnasse-Gahot (2022).

A d above the space's dimension is capped at it (so the largest d is the space itself). Where d exceeds
the rank of the centred training rows, the extra basis vectors span directions of zero training variance
(an orthonormal completion): the training hull is flat there and queries off it count as outside.

Output: one Parquet (COLUMNS), one row per space and d. `hull-dimension-table` gathers the seeds into
results/tables/hull_dimension.{md,csv}; figures.hull_dimension draws the figure from the CSV.
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
from gisweep.hull_geometry import hull_diameter
from gisweep.io import atomic_path, provenance, read_parquet, write_csv, write_parquet
from gisweep.hull_stage import load_space_model, test_sample
from gisweep.schema import integer, schema_default, schema_number
from gisweep import spaces

COLUMNS = ["space", "d", "seed", "n_train", "n_test", "inside", "outside", "undecided", "mean_dist_over_diameter",
           "variance_kept", "not_certified"]


def principal_basis(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre [D], basis [D, D] with columns by variance descending, variances [D]) of the rows.

    An eigendecomposition of the D x D scatter matrix gives a complete orthonormal basis, so d beyond the
    rank still projects on orthonormal directions (those of zero training variance). Signs are fixed
    (largest entry of each column positive) so that reruns and platforms agree.
    """
    x = np.asarray(train, dtype=np.float64)
    centre = x.mean(axis=0)
    xc = x - centre
    var, vec = np.linalg.eigh(xc.T @ xc / max(len(x) - 1, 1))  # ascending
    order = np.argsort(-var, kind="stable")
    var, vec = np.clip(var[order], 0.0, None), vec[:, order]
    flip = vec[np.abs(vec).argmax(axis=0), np.arange(vec.shape[1])] < 0
    vec[:, flip] *= -1
    return centre, vec, var


def project(x: np.ndarray, centre: np.ndarray, basis: np.ndarray, d: int) -> np.ndarray:
    """Rows x [n, D] in the first d principal coordinates: [n, d] float64."""
    return (np.asarray(x, dtype=np.float64) - centre) @ basis[:, :d]


def dimensions(dims, features: int) -> list[int]:
    """The dims to measure in a space of `features` dimensions: each capped at it, duplicates dropped."""
    if not dims or min(dims) < 1:
        raise GisweepError(f"hull.dimension.dims: need dimensions >= 1 (got {list(dims)})")
    return sorted({min(int(d), features) for d in dims})


def membership(train: np.ndarray, queries: np.ndarray, *, tol: float, max_iter: int) -> dict:
    """Fractions of the queries certified inside / outside / undecided and mean distance / diameter."""
    res = hull_distance(train, queries, tol=tol, max_iter=max_iter, device="cpu", dtype=torch.float64,
                        support_k=1, progress=False)
    inside = res.inside.numpy()
    outside = (res.lower.numpy() > float(res.atol)) & ~inside
    diameter = hull_diameter(train, device="cpu", dtype=torch.float64)[0]
    dist = res.distance.numpy()
    return {"n_train": len(train), "n_test": len(queries), "inside": float(inside.mean()),
            "outside": float(outside.mean()), "undecided": float((~inside & ~outside).mean()),
            "mean_dist_over_diameter": float(dist.mean() / diameter) if diameter > 0 else float("nan"),
            "not_certified": int((~res.certified.numpy()).sum())}


def sweep_space(name: str, train: np.ndarray, test: np.ndarray, dims, seed: int, *, tol: float,
                max_iter: int) -> list[dict]:
    """One row per d: the test rows against the training hull, both on the first d components."""
    centre, basis, var = principal_basis(train)
    rows = []
    for d in dimensions(dims, train.shape[1]):
        t0 = time.monotonic()
        row = membership(project(train, centre, basis, d), project(test, centre, basis, d), tol=tol,
                         max_iter=max_iter)
        kept = float(var[:d].sum() / var.sum()) if var.sum() > 0 else 1.0
        rows.append({"space": name, "d": d, "seed": seed, **row, "variance_kept": kept})
        print(f"{name} d={d}: inside {row['inside']:.3f}, outside {row['outside']:.3f}, undecided "
              f"{row['undecided']:.3f}, dist/diameter {row['mean_dist_over_diameter']:.4g} "
              f"({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    return rows


def random_rows(train: np.ndarray, n_test: int, dims, seed: int, *, tol: float, max_iter: int) -> list[dict]:
    """The 'random' reference: per d, n_train + n_test points uniform in the projected training rows'
    bounding box (its own seeded stream per d), the first n_train the training set."""
    centre, basis, _ = principal_basis(train)
    rows = []
    for d in dimensions(dims, train.shape[1]):
        proj = project(train, centre, basis, d)
        lo, hi = proj.min(axis=0), proj.max(axis=0)
        rng = np.random.default_rng([seed, d, 0xB0C5])
        pts = lo + (hi - lo) * rng.random((len(train) + n_test, d))
        row = membership(pts[: len(train)], pts[len(train):], tol=tol, max_iter=max_iter)
        rows.append({"space": "random", "d": d, "seed": seed, **row, "variance_kept": float("nan")})
        print(f"random d={d}: inside {row['inside']:.3f}, outside {row['outside']:.3f}", file=sys.stderr, flush=True)
    return rows


def hidden_space(space: str, model_path, x_tr: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) features of a hidden-layer space of the MLP in model_path."""
    if spaces.parse_space(space)["kind"] != "hidden":
        raise GisweepError(f"--hidden-space '{space}': must name a hidden layer (hidden_<arch>_<labels>_s<seed>_l<k>)")
    model, _ = load_space_model(space, model_path, x_tr.shape[1])
    return spaces.features(space, x_tr, model=model), spaces.features(space, x_te, model=model)


def hull_dimension(data_path, out, *, dims=None, seed: int = 0, tol: float = 1e-6, max_iter: int = 500,
                   max_test: int = 0, model_path=None, hidden_space_name=None, threads: int | None = None) -> pd.DataFrame:
    """Membership of the test rows against d for pixels, random data and (with a model) a hidden layer.

    seed: the hull split's seed (recorded in the rows; it also seeds the random data and the test sample
    when max_test > 0). Writes `out` (COLUMNS) and returns the table.
    """
    t0 = time.monotonic()
    if threads:
        torch.set_num_threads(threads)
    if bool(model_path) != bool(hidden_space_name):
        raise GisweepError("--model and --hidden-space go together (the MLP file and the layer's space name)")
    dims = list(schema_default("hull.dimension.dims") if dims is None else dims)
    x_tr, _, x_te, _ = load_table(data_path)
    if len(x_te) == 0:
        raise GisweepError(f"{data_path}: no test rows")
    x_te = x_te[test_sample(len(x_te), max_test, seed)]  # the hull stage's sample for the same seed
    opts = dict(tol=tol, max_iter=max_iter)
    rows = sweep_space("pixels", x_tr.astype(np.float64), x_te.astype(np.float64), dims, seed, **opts)
    rows += random_rows(x_tr.astype(np.float64), len(x_te), dims, seed, **opts)
    if model_path:
        h_tr, h_te = hidden_space(hidden_space_name, model_path, x_tr, x_te)
        rows += sweep_space(hidden_space_name, h_tr, h_te, dims, seed, **opts)
    table = pd.DataFrame(rows)[COLUMNS]
    meta = provenance(stage="hull_dimension", data=str(data_path), dims=dims, seed=seed, tol=tol,
                      max_iter=max_iter, max_test=max_test, model=str(model_path or ""),
                      hidden_space=hidden_space_name or "")
    write_parquet(table, out, meta)
    print(f"{out}: {len(table)} rows, {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return table


# ----------------------------------------------------------------------------- the gathered table

FALLS_BELOW = (0.5, 0.01)  # the inside fractions whose crossing dimension the table reports


def crossing(by_d: pd.Series, level: float):
    """The smallest measured d at which the (seed-mean) inside fraction is below `level`; None if never."""
    below = by_d[by_d < level]
    return int(below.index.min()) if len(below) else None


def space_kind(space: str) -> str:
    """'hidden' for every hidden-layer space (they differ by arch, labels, seed and layer), else the name."""
    return "hidden" if space.startswith("hidden_") else space


def gather(paths) -> pd.DataFrame:
    frames = [read_parquet(p, required=COLUMNS) for p in paths]
    if not frames:
        raise GisweepError("hull-dimension-table: no input tables")
    return pd.concat(frames, ignore_index=True).sort_values(["space", "d", "seed"], kind="stable")


def to_markdown(table: pd.DataFrame) -> str:
    g = table.groupby(["space", "d"], sort=True)
    lines = ["# Hull membership against dimension", "",
             "Test points against the training hull on the first d principal components (PCA of the training",
             "rows); `random`: uniform data of the same size in the projected training box. Fractions are",
             "certified (undecided = neither proven inside nor outside). Mean over seeds, [min, max] over seeds.",
             "", "| space | d | seeds | inside | outside | undecided | dist / diameter |", "|---|---|---|---|---|---|---|"]
    for (space, d), s in g:
        cell = lambda c: f"{s[c].mean():.3f} [{s[c].min():.3f}, {s[c].max():.3f}]"  # noqa: E731
        lines.append(f"| {space} | {d} | {len(s)} | {cell('inside')} | {cell('outside')} | {cell('undecided')} "
                     f"| {cell('mean_dist_over_diameter')} |")
    lines += ["", "Smallest d at which the seed-mean inside fraction is below 50 % and below 1 % (none: never, "
              "up to the largest d measured):", "", "| space | below 50 % | below 1 % |", "|---|---|---|"]
    for space, s in table.groupby("space", sort=True):
        by_d = s.groupby("d")["inside"].mean()
        cross = [crossing(by_d, level) for level in FALLS_BELOW]
        lines.append(f"| {space} | {cross[0] if cross[0] is not None else 'none'} | "
                     f"{cross[1] if cross[1] is not None else 'none'} |")
    return "\n".join(lines) + "\n"


def write_table(paths, out_markdown, out_csv) -> pd.DataFrame:
    """The per-seed rows of every input as CSV (the figure's input) and their summary as Markdown."""
    table = gather(paths)
    write_csv(table, out_csv)
    with atomic_path(out_markdown) as tmp:
        tmp.write_text(to_markdown(table))
    print(f"{out_markdown}, {out_csv}: {len(table)} rows")
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("hull-dimension", help="hull membership of test points against the PCA dimension d")
    p.add_argument("--data", required=True, help="the hull data table of one split")
    p.add_argument("--dims", type=schema_number("hull.dimension.dims[]"), nargs="+",
                   default=schema_default("hull.dimension.dims"), help="dimensions d (capped at the space's)")
    p.add_argument("--seed", type=schema_number("hull.seeds[]"), default=0, help="the split's seed")
    p.add_argument("--tol", type=schema_number("hull.tol"), default=1e-6)
    p.add_argument("--max-iter", type=schema_number("hull.max_iter"), default=500)
    p.add_argument("--max-test", type=schema_number("hull.max_test"), default=0, help="0: every test row")
    p.add_argument("--model", default=None, help="model.pt of the MLP whose hidden layer is also measured")
    p.add_argument("--hidden-space", default=None, help="hidden_<arch>_<labels>_s<seed>_l<k> (with --model)")
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: hull_dimension(
        a.data, a.out, dims=a.dims, seed=a.seed, tol=a.tol, max_iter=a.max_iter, max_test=a.max_test,
        model_path=a.model, hidden_space_name=a.hidden_space, threads=a.threads))

    t = sub.add_parser("hull-dimension-table", help="gather hull-dimension tables into results/tables/hull_dimension")
    t.add_argument("--inputs", nargs="+", required=True, help="hull-dimension Parquet files (seeds, spaces)")
    t.add_argument("--out-markdown", required=True)
    t.add_argument("--out-csv", required=True)
    t.set_defaults(func=lambda a: write_table(a.inputs, a.out_markdown, a.out_csv))
