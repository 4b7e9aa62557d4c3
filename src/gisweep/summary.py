"""The summary table: one row per GI file (dataset, dim, arch, label mode, seed, line family).

Columns: the six keys, then `lines`, `gi_mean`, `gi_median`, `gi_std` (sample, ddof=1), `gi_q25`,
`gi_q75`, `gi_iqr`, `full_range` (fraction of lines whose GI spans their whole range t_max - t_min),
`pieces_mean`, the model's final `train_acc`, `val_acc`, `epochs` and `converged` (last row of the
history.parquet beside the GI file and its provenance), and `ks_real_random`, `ks_pvalue`: the
two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp) between the GIs of the real-label
and the random-label model with the same dataset, dim, arch, seed and family (the same value on
both rows; NaN when one of the two is missing).

The keys come from the GI file's path, results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/gi_{family}.parquet.

Seeds: after the per-seed rows of each (dataset, dim, arch, labels, family) comes one pooled row with
`seed` = -1: the statistics above over the lines of every seed together (so `lines` is their sum), the
mean `train_acc` and `val_acc` over the seeds, the largest `epochs`, `converged` when every seed
converged, and the KS distance between the pooled real-label and the pooled random-label GIs (the
seeds both label modes share). Columns `seeds` (how many seeds the row covers: 1 on a per-seed row),
`gi_mean_sd` (sample sd, ddof=1, of the per-seed means; NaN with one seed), `gi_mean_min` and
`gi_mean_max` (the lowest and highest per-seed mean; a per-seed row's own mean) give the spread.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gisweep import GisweepError
from gisweep.gi_stats import spans_full_range
from gisweep.io import atomic_path, provenance, read_parquet, read_provenance, write_csv, write_parquet

KEYS = ["dataset", "dim", "arch", "labels", "seed", "family"]
PATH_PATTERN = re.compile(
    r"(?P<dataset>[a-z0-9_]+)/d(?P<dim>[0-9]+)/(?P<arch>[1-9][0-9]*x[1-9][0-9]*|cnn)/(?P<labels>real|random)"
    r"/s(?P<seed>[0-9]+)/gi_(?P<family>[a-z0-9]+)\.parquet$"
)


def run_keys(path) -> dict:
    """dataset, dim, arch, labels, seed, family from a GI file's path."""
    m = PATH_PATTERN.search(Path(path).as_posix())
    if not m:
        raise GisweepError(f"{path}: not a GI file path of the form "
                           "results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/gi_{family}.parquet")
    keys = m.groupdict()
    keys["dim"], keys["seed"] = int(keys["dim"]), int(keys["seed"])
    return keys


def gi_stats(df: pd.DataFrame) -> dict:
    """Statistics of one GI table (columns gi, t_min, t_max, pieces)."""
    gi = df["gi"].to_numpy(np.float64)
    if len(gi) == 0:
        return dict(lines=0, gi_mean=np.nan, gi_median=np.nan, gi_std=np.nan, gi_q25=np.nan, gi_q75=np.nan,
                    gi_iqr=np.nan, full_range=np.nan, pieces_mean=np.nan)
    q25, q75 = np.quantile(gi, [0.25, 0.75])
    return dict(
        lines=len(gi), gi_mean=gi.mean(), gi_median=float(np.median(gi)),
        gi_std=gi.std(ddof=1) if len(gi) > 1 else np.nan, gi_q25=q25, gi_q75=q75, gi_iqr=q75 - q25,
        full_range=float(np.mean(spans_full_range(gi, df["t_min"], df["t_max"]))), pieces_mean=df["pieces"].mean(),
    )


def final_training(history_path) -> dict:
    """Final train/validation accuracy, epochs and convergence of a model, from its history.parquet."""
    hist = read_parquet(history_path, required=["epoch", "train_acc", "val_acc"])
    if hist.empty:
        raise GisweepError(f"{history_path}: the training history is empty")
    last = hist.iloc[-1]
    converged = read_provenance(history_path).get("converged")
    return dict(train_acc=float(last.train_acc), val_acc=float(last.val_acc), epochs=int(last.epoch),
                converged=bool(converged) if converged is not None else None)


POOLED = -1  # the `seed` of a pooled row


def _ks(real: np.ndarray, rand: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test; NaN when one side is missing or empty."""
    if real is None or rand is None or not len(real) or not len(rand):
        return np.nan, np.nan
    from scipy.stats import ks_2samp

    res = ks_2samp(real, rand)
    return float(res.statistic), float(res.pvalue)


def gi_summary(gi_paths, history_paths=None) -> pd.DataFrame:
    """The summary table of the given GI files; histories default to history.parquet beside each."""
    gi_paths = [Path(p) for p in gi_paths]
    if not gi_paths:
        raise GisweepError("no GI files to summarise")
    if history_paths is None:
        history_paths = [p.parent / "history.parquet" for p in gi_paths]
    if len(history_paths) != len(gi_paths):
        raise GisweepError(f"{len(gi_paths)} GI files but {len(history_paths)} histories")

    rows, frames = [], {}
    for path, hist in zip(gi_paths, history_paths):
        keys = run_keys(path)
        key = tuple(keys[k] for k in KEYS)
        if key in frames:
            raise GisweepError(f"{path}: the same run and family is listed twice")
        df = read_parquet(path, required=["gi", "t_min", "t_max", "pieces"])
        if not np.isfinite(df["gi"].to_numpy(np.float64)).all():
            raise GisweepError(f"{path}: column 'gi' has non-finite values")
        frames[key] = df
        rows.append({**keys, **gi_stats(df), **final_training(hist)})
    table = pd.DataFrame(rows)
    values = {key: df["gi"].to_numpy(np.float64) for key, df in frames.items()}
    ks, pv = np.full(len(table), np.nan), np.full(len(table), np.nan)
    for n, row in table.iterrows():
        key = tuple(row[k] for k in KEYS)
        other = tuple(("random" if row["labels"] == "real" else "real") if k == "labels" else row[k] for k in KEYS)
        pair = (values[key], values.get(other))
        ks[n], pv[n] = _ks(*(pair if row["labels"] == "real" else pair[::-1]))
    table["ks_real_random"], table["ks_pvalue"] = ks, pv
    table["seeds"] = 1
    table["gi_mean_sd"] = np.nan
    table["gi_mean_min"], table["gi_mean_max"] = table["gi_mean"], table["gi_mean"]
    table = pd.concat([table, pooled_rows(table, frames)], ignore_index=True)
    order = {"real": 0, "random": 1}  # real before random within a run; the pooled row after the seeds

    def sort_key(col):
        if col.name == "labels":
            return col.map(order)
        if col.name == "seed":
            return col.where(col != POOLED, np.iinfo(np.int64).max)
        return col

    group = ["dataset", "dim", "arch", "labels", "seed", "family"]
    return table.sort_values(group, key=sort_key, kind="stable").reset_index(drop=True)


def pooled_rows(table: pd.DataFrame, frames: dict) -> pd.DataFrame:
    """One row per (dataset, dim, arch, labels, family): the statistics of every seed's lines together."""
    group = [k for k in KEYS if k != "seed"]
    pooled, rows = {}, []
    for gkey, grp in table.groupby(group, sort=False):
        seeds = sorted(grp["seed"])
        keys = dict(zip(group, gkey))
        lines = pd.concat([frames[tuple(keys.get(k, s) if k != "seed" else s for k in KEYS)] for s in seeds],
                          ignore_index=True)
        pooled[gkey] = (set(seeds), lines["gi"].to_numpy(np.float64))
        means = grp["gi_mean"].to_numpy(np.float64)
        conv = grp["converged"]
        rows.append({
            **keys, "seed": POOLED, **gi_stats(lines),
            "train_acc": grp["train_acc"].mean(), "val_acc": grp["val_acc"].mean(), "epochs": int(grp["epochs"].max()),
            "converged": None if conv.isna().any() else bool(conv.all()),
            "seeds": len(seeds), "gi_mean_sd": means.std(ddof=1) if len(means) > 1 else np.nan,
            "gi_mean_min": means.min(), "gi_mean_max": means.max(),
        })
    out = pd.DataFrame(rows, columns=[*table.columns])
    for n, row in out.iterrows():
        gkey = tuple(row[k] for k in group)
        other = tuple(("random" if row["labels"] == "real" else "real") if k == "labels" else row[k] for k in group)
        if other not in pooled:
            continue
        (seeds, a), (other_seeds, b) = pooled[gkey], pooled[other]
        if seeds != other_seeds:  # compare like with like: both label modes over the same seeds
            continue
        real, rand = (a, b) if row["labels"] == "real" else (b, a)
        out.loc[n, "ks_real_random"], out.loc[n, "ks_pvalue"] = _ks(real, rand)
    return out.astype({"seed": "int64", "seeds": "int64", "lines": "int64", "dim": "int64", "epochs": "int64"})


def to_markdown(table: pd.DataFrame) -> str:
    """A plain Markdown table (no extra dependency), numbers rounded for reading."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_summary(gi_paths, out, markdown=None, csv=None, history_paths=None) -> pd.DataFrame:
    table = gi_summary(gi_paths, history_paths)
    write_parquet(table, out, provenance(stage="gi_summary", files=[str(p) for p in gi_paths]))
    if markdown:
        with atomic_path(markdown) as tmp:
            Path(tmp).write_text(to_markdown(table))
    if csv:
        write_csv(table, csv)
    print(to_markdown(table))
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("gi-summary", help="summary table of GI files (per run and family, with real-vs-random KS)")
    p.add_argument("--inputs", nargs="+", required=True, help="gi_{family}.parquet files under results/")
    p.add_argument("--histories", nargs="+", default=None,
                   help="the history.parquet of each GI file's model, in the same order (default: beside it)")
    p.add_argument("--out-table", required=True, help="Parquet table")
    p.add_argument("--out-markdown", default=None)
    p.add_argument("--out-csv", default=None)
    p.set_defaults(func=lambda a: write_summary(a.inputs, a.out_table, a.out_markdown, a.out_csv, a.histories))
