"""Figures: each a plain function from result files to one image file (written atomically)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gisweep import GisweepError  # noqa: E402
from gisweep.io import atomic_path, read_parquet  # noqa: E402

LABEL_COLORS = {"real": "tab:blue", "random": "tab:red"}


def save_figure(fig, out) -> None:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def gi_density_panels(series: list[tuple[str, str, str]], out, title: str = "") -> pd.DataFrame:
    """One panel per distinct panel name; in each, the GI density of every (label mode, file).

    series: (panel, label mode, gi parquet path). Returns the per-series summary that is drawn in
    the legends (lines, mean, median, fraction of lines whose GI spans the whole range).
    """
    if not series:
        raise GisweepError("no GI files given to plot")
    frames = []
    for panel, mode, path in series:
        df = read_parquet(path, columns=["gi", "t_min", "t_max"], required=["gi", "t_min", "t_max"])
        frames.append(df.assign(panel=panel, labels=mode))
    data = pd.concat(frames, ignore_index=True)
    data["full"] = data.gi >= (data.t_max - data.t_min) * (1 - 1e-12)
    panels = list(dict.fromkeys(p for p, _, _ in series))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False, sharey=False)
    rows = []
    for ax, panel in zip(axes[0], panels):
        sub = data[data.panel == panel]
        hi = float((sub.t_max - sub.t_min).max())
        for mode, grp in sub.groupby("labels", sort=False):
            stats = dict(panel=panel, labels=mode, lines=len(grp), mean=grp.gi.mean(), median=grp.gi.median(),
                         full_range=grp.full.mean())
            rows.append(stats)
            label = f"{mode}: mean {stats['mean']:.2f}, full {100 * stats['full_range']:.0f}%"
            color = LABEL_COLORS.get(mode)
            if grp.gi.nunique() > 1:
                sns.kdeplot(grp.gi, ax=ax, label=label, color=color, clip=(0, hi), fill=True, alpha=0.25,
                            bw_adjust=0.5, warn_singular=False)
            else:
                ax.axvline(grp.gi.iloc[0], color=color, label=label)
        ax.set_title(panel)
        ax.set_xlim(0, hi)
        ax.set_xlabel("generalization interval")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, out)
    return pd.DataFrame(rows)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-density", help="GI density panels, real vs random labels")
    p.add_argument("--series", nargs=3, action="append", metavar=("PANEL", "LABELS", "GI_PARQUET"), required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: print(gi_density_panels([tuple(s) for s in a.series], a.out, a.title)
                                        .to_string(index=False)))
