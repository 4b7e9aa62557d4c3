"""The lines stage: which lines through input space each family measures GI on.

A lines table has one row per line: `line` (id), `family`, `i` and `j` (row positions among the
training rows of data.parquet: the line is x_i + t (x_j - x_i)), `label` (the training label the
line's samples share), `t_min`, `t_max`. Lines depend on the training labels (real or permuted by
seed), not on the architecture, so every architecture is measured on the same lines.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.io import provenance, read_parquet, write_parquet

LINE_COLUMNS = ["line", "family", "i", "j", "label", "t_min", "t_max"]


def same_class_pairs(labels: np.ndarray, classes, t_min: float = -1.0, t_max: float = 2.0) -> pd.DataFrame:
    """All pairs i < j of training rows whose (training) label is in `classes` and equal."""
    if not t_min <= 0 <= t_max:
        raise GisweepError(f"pair lines: range [{t_min}, {t_max}] must contain 0")
    present = set(np.unique(labels).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise GisweepError(f"pair lines: class(es) {missing} have no training samples (labels present: {sorted(present)})")
    parts = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        i, j = np.triu_indices(len(rows), k=1)
        parts.append(pd.DataFrame({"i": rows[i], "j": rows[j], "label": c}))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"i": [], "j": [], "label": []})
    df = df.astype({"i": "int64", "j": "int64", "label": "int64"})
    df.insert(0, "family", "pairs")
    df.insert(0, "line", np.arange(len(df), dtype=np.int64))
    df["t_min"], df["t_max"] = float(t_min), float(t_max)
    return df[LINE_COLUMNS]


def materialize(lines: pd.DataFrame, x_train: np.ndarray, dtype=torch.float64):
    """Start points and directions of the lines: x0 [n, F], d [n, F], t_min [n], t_max [n]."""
    x = torch.as_tensor(x_train, dtype=dtype)
    i = torch.as_tensor(lines["i"].to_numpy())
    j = torch.as_tensor(lines["j"].to_numpy())
    n = len(x)
    if len(lines) and (int(i.min()) < 0 or int(j.min()) < 0 or int(i.max()) >= n or int(j.max()) >= n):
        raise GisweepError(f"lines name training rows outside 0..{n - 1}: the lines and data files do not match")
    x0 = x[i]
    d = x[j] - x0
    t_min = torch.as_tensor(lines["t_min"].to_numpy(), dtype=dtype)
    t_max = torch.as_tensor(lines["t_max"].to_numpy(), dtype=dtype)
    return x0, d, t_min, t_max


def read_lines(path) -> pd.DataFrame:
    return read_parquet(path, required=LINE_COLUMNS)


def sample_pairs(data_path, out, *, labels: str, seed: int, classes, t_min: float, t_max: float) -> None:
    _, y_true, _, _ = load_table(data_path)
    y = training_labels(y_true, labels, seed)
    df = same_class_pairs(y, classes, t_min, t_max)
    meta = provenance(stage="sample_pairs", data=str(data_path), labels=labels, seed=seed,
                      classes=list(classes), t_min=t_min, t_max=t_max)
    write_parquet(df, out, meta)
    print(f"{out}: {len(df)} lines")


def register_cli(sub) -> None:
    p = sub.add_parser("sample-pairs", help="same-class pair lines x_i + t (x_j - x_i)")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--classes", type=int, nargs="+", required=True)
    p.add_argument("--t-min", type=float, default=-1.0)
    p.add_argument("--t-max", type=float, default=2.0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: sample_pairs(a.data, a.out, labels=a.labels, seed=a.seed, classes=a.classes,
                                               t_min=a.t_min, t_max=a.t_max))
