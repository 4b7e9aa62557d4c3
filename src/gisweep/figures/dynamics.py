"""Figure 9: mean pair GI and accuracies over training epochs, and mean GI against accuracy.

Reads the checkpoints tables of gisweep.dynamics (gi_during_training.parquet, one per seed) and the
correlation table written by `gi-vs-accuracy` (results/tables/gi_vs_accuracy.csv); writes only the
figure. With one seed its curves are drawn strongly; with several, as the other seeded figures do,
each seed is drawn faintly and their mean (over the checkpoint epochs every seed has) strongly.
"""
from __future__ import annotations

import os

import pandas as pd

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.io import read_parquet, read_provenance

# accuracy column -> (legend label, marker, colour)
ACCURACY_STYLE = {"train_acc": ("training accuracy", "o", "tab:green"),
                  "val_acc": ("validation accuracy", "s", "tab:orange")}
GI_STYLE = ("mean pair GI", "^", "tab:blue")
CORRELATION_COLUMNS = ["accuracy", "pearson_r", "spearman_rho"]
FAINT = dict(alpha=0.35, lw=0.8, ms=2)


def _read_correlations(path, seeds: list) -> pd.DataFrame:
    try:
        corr = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise GisweepError(f"{path}: not a readable correlation table ({type(e).__name__}: {e})") from None
    missing = [c for c in CORRELATION_COLUMNS if c not in corr.columns]
    unknown = sorted(set(corr.get("accuracy", [])) - set(ACCURACY_STYLE))
    if missing or unknown:
        raise GisweepError(f"{path}: missing column(s) {missing} / unknown accuracies {unknown}")
    if "seed" not in corr.columns:  # a table of one seed
        corr = corr.assign(seed=seeds[0] if len(seeds) == 1 else None)
    absent = sorted(set(seeds) - set(corr.seed))
    if len(seeds) > 1 and absent:
        raise GisweepError(f"{path}: no correlations of seed(s) {absent}")
    return corr


def plot_gi_vs_accuracy(dynamics_paths, correlations_path, out, title: str = "") -> None:
    """Left: accuracies and mean GI against epoch; right: each accuracy against mean GI, with its correlations."""
    paths = [dynamics_paths] if isinstance(dynamics_paths, (str, os.PathLike)) else list(dynamics_paths)
    if not paths:
        raise GisweepError("plot-gi-vs-accuracy: no GI-during-training table given")
    tables, metas = [], []
    for path in paths:
        tables.append(read_parquet(path, required=["epoch", "mean_gi", *ACCURACY_STYLE]).sort_values("epoch"))
        metas.append(read_provenance(path))
    seeds = [m.get("seed") for m in metas]
    corr = _read_correlations(correlations_path, seeds)
    several = len(tables) > 1
    strong = dict(lw=1.5, ms=3)
    if several:  # the mean over seeds at the epochs every seed has (their final epochs differ)
        common = sorted(set.intersection(*(set(t.epoch) for t in tables)))
        stacked = pd.concat([t[t.epoch.isin(common)] for t in tables])
        mean = stacked.groupby("epoch", sort=True)[["mean_gi", *ACCURACY_STYLE]].mean().reset_index()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    right = ax.twinx()
    for axis, column, (label, marker, color) in [*((ax, a, s) for a, s in ACCURACY_STYLE.items()),
                                                 (right, "mean_gi", GI_STYLE)]:
        for t in tables:
            axis.plot(t.epoch, t[column], f"{marker}-", color=color, **(FAINT if several else strong),
                      label=None if several else label)
        if several:
            axis.plot(mean.epoch, mean[column], f"{marker}-", color=color, **strong, label=f"{label} (mean)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    right.set_ylabel("mean pair GI", color=GI_STYLE[2])
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="best")
    converged = [m.get("converged") for m in metas]
    ax.set_title(f"{len(tables[0])} checkpoints" if not several else
                 f"{len(tables)} seeds, {min(map(len, tables))}-{max(map(len, tables))} checkpoints each", fontsize=9)
    ax.set_title(f"converged: {'all' if all(converged) else converged}", fontsize=8, loc="right")
    for acc, (label, marker, color) in ACCURACY_STYLE.items():
        rows = corr[corr.accuracy == acc]
        if rows.empty:
            continue
        for t in tables:
            ax2.plot(t.mean_gi, t[acc], marker, color=color, ls="", **({"alpha": 0.5, "ms": 3} if several else {"ms": 4}))
        pear = "/".join(f"{r:.2f}" for r in rows.pearson_r)
        spear = "/".join(f"{r:.2f}" for r in rows.spearman_rho)
        ax2.plot([], [], marker, color=color, ls="",
                 label=f"{label}: Pearson {pear}, Spearman {spear}" + (" (seeds " + "/".join(
                     str(s) for s in rows.seed) + ")" if several else ""))
    ax2.set_xlabel("mean pair GI")
    ax2.set_ylabel("accuracy")
    if several:  # the seeds' points fill the panel: the legend goes below it
        ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)
    else:
        ax2.legend(fontsize=8, loc="best")
    same = {m.get("same_as_reference") for m in metas}
    word = {True: "yes, bit for bit", False: "NO", None: "not checked"}
    ax2.set_title("retrained = pipeline model: " + (word[same.pop()] if len(same) == 1 else
                                                   ", ".join(f"s{s} {word[m.get('same_as_reference')]}"
                                                             for s, m in zip(seeds, metas))), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-vs-accuracy", help="figure 9: GI and accuracy during training")
    p.add_argument("--dynamics", required=True, nargs="+", help="gi_during_training.parquet files, one per seed")
    p.add_argument("--correlations", required=True, help="their gi_vs_accuracy.csv")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: plot_gi_vs_accuracy(a.dynamics, a.correlations, a.out, a.title))
