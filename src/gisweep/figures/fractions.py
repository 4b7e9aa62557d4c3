"""GI and accuracies against the share of randomised training labels (gisweep.fractions).

Reads results/tables/label_fractions.parquet; draws the seed mean with a min-max band over seeds
(`summarize`, computed here for the figure only); writes only the figure.
"""
from __future__ import annotations

import pandas as pd

from gisweep.figures.common import plt, save_figure
from gisweep.io import read_parquet

# the columns of label_fractions.parquet drawn here
COLUMNS = ["percent", "seed", "converged", "mean_gi", "median_gi", "train_acc", "train_acc_true", "val_acc"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per percent: mean, min and max over seeds of the GI and accuracy columns; runs and converged runs."""
    g = df.groupby("percent")
    out = g.agg(runs=("seed", "size"), converged=("converged", "sum"))
    for col in ["mean_gi", "median_gi", "train_acc", "train_acc_true", "val_acc"]:
        out[f"{col}_mean"], out[f"{col}_min"], out[f"{col}_max"] = g[col].mean(), g[col].min(), g[col].max()
    return out.reset_index()


def plot_label_fractions(table_path, out, title: str = "") -> pd.DataFrame:
    """GI (left) and accuracies (right) against the randomised percent; seed mean with min-max band."""
    df = read_parquet(table_path, required=COLUMNS)
    s = summarize(df)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, cols in ((ax, [("mean_gi", "mean pair GI", "tab:blue"), ("median_gi", "median pair GI", "tab:purple")]),
                       (ax2, [("train_acc", "training acc. (training labels)", "tab:green"),
                              ("train_acc_true", "training acc. (true labels)", "tab:olive"),
                              ("val_acc", "validation acc.", "tab:orange")])):
        for col, label, color in cols:
            axis.plot(s.percent, s[f"{col}_mean"], "o-", color=color, label=label)
            axis.fill_between(s.percent, s[f"{col}_min"], s[f"{col}_max"], color=color, alpha=0.2)
            axis.plot(df.percent, df[col], ".", color=color, alpha=0.5, ms=4)
        axis.set_xlabel("labels randomised (%)")
        axis.legend(fontsize=8)
    ax.set_ylabel("GI (class pairs, training labels)")
    ax2.set_ylabel("accuracy")
    bad = df[~df.converged]
    note = "all runs converged" if bad.empty else "NOT converged: " + ", ".join(
        f"{r.percent}%/s{r.seed}" for r in bad.itertuples())
    ax.set_title(f"seeds {sorted(df.seed.unique().tolist())}; band = min-max over seeds", fontsize=9)
    ax2.set_title(note, fontsize=9, color="black" if bad.empty else "tab:red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)
    print(s.to_string(index=False))
    return s


def register_cli(sub) -> None:
    p = sub.add_parser("plot-label-fractions", help="GI and accuracy against the randomised fraction")
    p.add_argument("--table", required=True, help="label_fractions.parquet")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: plot_label_fractions(a.table, a.out, a.title))
