"""Network outputs along directions through input space (the paper's Figures 1-3).

For one trained model, the logits of every class (the paper's "outputs from the penultimate layer":
the last linear layer's outputs, before any softmax) at `n_points` evenly spaced t in [t_min, t_max]
along lines x0 + t·d. The directions, all from training rows and their *training* labels (true
labels for a 'real' model, the seeded permutation for a 'random' one):

  same_pair    x0 = x_i, d = x_j - x_i; i, j two distinct samples of class `class_a` (t = 0 at x_i, 1 at x_j)
  same_pair_b  the same for two samples of class `class_b`
  other_pair   x0 = x_i (the same i), d = x_k - x_i; k a sample of class `class_b`
  random       x0 = x_i, d = scale · a Gaussian unit vector
  pc1          x0 = x_i, d = scale · first principal component of the class_a samples
  perp         x0 = x_i, d = scale · (mean of class_b - mean of class_a) made perpendicular to pc1
  minor        x0 = x_i, d = scale · the principal component of class_a at `minor_rank` (default -1,
               the smallest non-zero eigenvalue)

`scale` is the mean Euclidean distance between two distinct class_a samples, so that t means the same
along unit directions as along a typical same-class pair. Which samples: with
rng = numpy.random.default_rng([seed, 0xA10B]), i, j = rng.choice(rows of class_a, 2, replace=False),
then k = rng.choice(rows of class_b), then two rows of class_b = rng.choice(rows of class_b, 2,
replace=False); the random direction is gisweep.directions.random_directions(1, F, seed). Rows are
positions among the training rows of data.parquet, in its order.

Output `along.parquet`, long format: direction, t, class, output, plus predicted (argmax class at
that t), anchor_label (training label of x0), i, j (the training rows of x0 and of the pair's other
end; -1 for unit directions) and scale (|d|). Provenance holds the chosen rows and the scale.
Figures 1-3 are drawn from it by gisweep.figures.along.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.directions import class_directions, random_directions
from gisweep.io import provenance, write_parquet
from gisweep.models import load_model, load_record
from gisweep.schema import schema_number

DIRECTIONS = ("same_pair", "same_pair_b", "other_pair", "random", "pc1", "perp", "minor")
ALONG_COLUMNS = ["direction", "t", "class", "output", "predicted", "anchor_label", "i", "j", "scale"]


def outputs_along(model: torch.nn.Module, x0, d, ts) -> torch.Tensor:
    """Logits [S, C] of `model` at x0 + t·d for each t in ts [S]; x0, d [F]; computed in float64."""
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    d = torch.as_tensor(d, dtype=torch.float64)
    ts = torch.as_tensor(ts, dtype=torch.float64)
    if x0.ndim != 1 or d.shape != x0.shape or ts.ndim != 1:
        raise GisweepError(f"outputs_along: x0 and d must be vectors of one length and ts a vector; got "
                           f"{tuple(x0.shape)}, {tuple(d.shape)}, {tuple(ts.shape)}")
    m = _float64_copy(model)
    with torch.no_grad():
        return m(x0[None, :] + ts[:, None] * d[None, :])  # [S, F] -> [S, C]


def _float64_copy(model):
    import copy

    m = copy.deepcopy(model).to(torch.float64)
    return m.eval()


def pick_lines(x: np.ndarray, y: np.ndarray, *, class_a: int, class_b: int, seed: int,
               minor_rank: int = -1) -> dict[str, tuple[int, int, np.ndarray, np.ndarray]]:
    """{direction: (i, j, x0 [F], d [F])} for every name in DIRECTIONS (see the module docstring).

    x [n, F] training rows, y [n] their training labels.
    """
    x = np.asarray(x, dtype=np.float64)
    rows_a, rows_b = np.flatnonzero(y == class_a), np.flatnonzero(y == class_b)
    if class_a == class_b:
        raise GisweepError(f"along: class_a and class_b must differ (both {class_a})")
    for c, rows in ((class_a, rows_a), (class_b, rows_b)):
        if len(rows) < 3:
            raise GisweepError(f"along: class {c} has {len(rows)} training samples; at least 3 are needed "
                               f"(labels present: {sorted(set(np.unique(y).tolist()))})")
    rng = np.random.default_rng([seed, 0xA10B])
    i, j = (int(r) for r in rng.choice(rows_a, 2, replace=False))
    k = int(rng.choice(rows_b))
    ib, jb = (int(r) for r in rng.choice(rows_b, 2, replace=False))
    from scipy.spatial.distance import pdist

    xa = x[rows_a]
    scale = float(pdist(xa).mean())  # mean distance over all pairs of class_a samples
    unit = class_directions(xa, x[rows_b], minor_rank=minor_rank)
    rand = random_directions(1, x.shape[1], seed)[0]
    return {
        "same_pair": (i, j, x[i], x[j] - x[i]),
        "same_pair_b": (ib, jb, x[ib], x[jb] - x[ib]),
        "other_pair": (i, k, x[i], x[k] - x[i]),
        "random": (i, -1, x[i], scale * rand),
        "pc1": (i, -1, x[i], scale * unit["pc1"]),
        "perp": (i, -1, x[i], scale * unit["perp"]),
        "minor": (i, -1, x[i], scale * unit["minor"]),
    }


def along_table(model, x, y, *, class_a: int, class_b: int, seed: int, n_points: int, t_min: float,
                t_max: float, minor_rank: int = -1) -> tuple[pd.DataFrame, dict]:
    """The long table of outputs along every direction, and a record of the chosen rows and scales."""
    if n_points < 2:
        raise GisweepError(f"along.n_points must be at least 2, got {n_points}")
    if not t_min < t_max:
        raise GisweepError(f"along: t_min {t_min} must be below t_max {t_max}")
    ts = np.linspace(t_min, t_max, n_points)
    lines = pick_lines(x, y, class_a=class_a, class_b=class_b, seed=seed, minor_rank=minor_rank)
    frames, record = [], {}
    for name, (i, j, x0, d) in lines.items():
        out = outputs_along(model, x0, d, ts).numpy()  # [S, C]
        s, c = out.shape
        scale = float(np.linalg.norm(d))
        frames.append(pd.DataFrame({
            "direction": name, "t": np.repeat(ts, c), "class": np.tile(np.arange(c), s),
            "output": out.ravel(), "predicted": np.repeat(out.argmax(1), c),
            "anchor_label": int(y[i]), "i": i, "j": j, "scale": scale}))
        record[name] = {"i": i, "j": j, "scale": scale}
    df = pd.concat(frames, ignore_index=True)
    df = df.astype({"class": "int64", "predicted": "int64", "anchor_label": "int64", "i": "int64", "j": "int64"})
    return df[ALONG_COLUMNS], record


def outputs_along_directions(model_path, data_path, out, *, labels: str, seed: int, class_a: int = 9,
                             class_b: int = 1, n_points: int = 601, t_min: float = -1.0, t_max: float = 2.0,
                             minor_rank: int = -1) -> pd.DataFrame:
    """Write `along.parquet` for the model at model_path (trained on `labels` with `seed`)."""
    model = load_model(model_path)
    x, y_true, _, _ = load_table(data_path)
    if model[0].in_features != x.shape[1]:
        raise GisweepError(f"{model_path}: model takes {model[0].in_features} features, {data_path} has {x.shape[1]}")
    y = training_labels(y_true, labels, seed)
    df, record = along_table(model, x, y, class_a=class_a, class_b=class_b, seed=seed, n_points=n_points,
                             t_min=t_min, t_max=t_max, minor_rank=minor_rank)
    train_meta = load_record(model_path).get("meta", {})
    meta = provenance(stage="outputs_along", model=str(model_path), data=str(data_path), labels=labels, seed=seed,
                      class_a=class_a, class_b=class_b, n_points=n_points, t_min=t_min, t_max=t_max,
                      minor_rank=minor_rank, lines=record, converged=train_meta.get("converged"))
    write_parquet(df, out, meta)
    for name, r in record.items():
        sub = df[(df.direction == name)]
        share = (sub.groupby("t").predicted.first() == int(y[r["i"]])).mean()
        print(f"{out}: {name:11s} rows {r['i']}->{r['j']}, |d| {r['scale']:.3f}, "
              f"predicted = anchor label on {100 * share:.0f}% of the line")
    return df


def register_cli(sub) -> None:
    p = sub.add_parser("outputs-along", help="network outputs along pair, random and class directions")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=schema_number("along.seed"), required=True,
                   help="the model's seed; also picks the samples")
    p.add_argument("--class-a", type=schema_number("along.class_a"), default=9)
    p.add_argument("--class-b", type=schema_number("along.class_b"), default=1)
    p.add_argument("--n-points", type=schema_number("along.n_points"), default=601)
    p.add_argument("--t-min", type=schema_number("along.t_min"), default=-1.0)
    p.add_argument("--t-max", type=schema_number("along.t_max"), default=2.0)
    p.add_argument("--minor-rank", type=schema_number("along.minor_rank"), default=-1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: outputs_along_directions(
        a.model, a.data, a.out, labels=a.labels, seed=a.seed, class_a=a.class_a, class_b=a.class_b,
        n_points=a.n_points, t_min=a.t_min, t_max=a.t_max, minor_rank=a.minor_rank))
