"""Figure 9: mean pair GI and accuracies over training epochs, and mean GI against accuracy.

Reads the checkpoints table of gisweep.dynamics (gi_during_training.parquet) and the correlation
table written by `gi-vs-accuracy` (results/tables/gi_vs_accuracy.csv); writes only the figure.
"""
from __future__ import annotations

import pandas as pd

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.io import read_parquet, read_provenance

# accuracy column -> (legend label, marker, colour)
ACCURACY_STYLE = {"train_acc": ("training accuracy", "o", "tab:green"),
                  "val_acc": ("validation accuracy", "s", "tab:orange")}
CORRELATION_COLUMNS = ["accuracy", "pearson_r", "spearman_rho"]


def plot_gi_vs_accuracy(dynamics_path, correlations_path, out, title: str = "") -> None:
    """Left: accuracies and mean GI against epoch; right: each accuracy against mean GI, with its correlations."""
    df = read_parquet(dynamics_path, required=["epoch", "mean_gi", *ACCURACY_STYLE]).sort_values("epoch")
    meta = read_provenance(dynamics_path)
    try:
        corr = pd.read_csv(correlations_path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise GisweepError(f"{correlations_path}: not a readable correlation table ({type(e).__name__}: {e})") from None
    missing = [c for c in CORRELATION_COLUMNS if c not in corr.columns]
    unknown = sorted(set(corr.get("accuracy", [])) - set(ACCURACY_STYLE))
    if missing or unknown:
        raise GisweepError(f"{correlations_path}: missing column(s) {missing} / unknown accuracies {unknown}")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for acc, (label, marker, color) in ACCURACY_STYLE.items():
        ax.plot(df.epoch, df[acc], f"{marker}-", color=color, ms=3, label=label)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    right = ax.twinx()
    right.plot(df.epoch, df.mean_gi, "^-", color="tab:blue", ms=3, label="mean pair GI")
    right.set_ylabel("mean pair GI", color="tab:blue")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title(f"{len(df)} checkpoints, converged: {meta.get('converged')}", fontsize=9)
    for _, r in corr.iterrows():
        label, marker, color = ACCURACY_STYLE[r.accuracy]
        ax2.plot(df.mean_gi, df[r.accuracy], marker, color=color, ms=4, ls="",
                 label=f"{label}: Pearson {r.pearson_r:.2f}, Spearman {r.spearman_rho:.2f}")
    ax2.set_xlabel("mean pair GI")
    ax2.set_ylabel("accuracy")
    ax2.legend(fontsize=8, loc="best")
    same = meta.get("same_as_reference")
    ax2.set_title("retrained = pipeline model: " + {True: "yes, bit for bit", False: "NO", None: "not checked"}[same],
                  fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-vs-accuracy", help="figure 9: GI and accuracy during training")
    p.add_argument("--dynamics", required=True, help="a gi_during_training.parquet")
    p.add_argument("--correlations", required=True, help="its gi_vs_accuracy.csv")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: plot_gi_vs_accuracy(a.dynamics, a.correlations, a.out, a.title))
