"""GI density figures (Figs 4-8 and the line-family panels): GI files in, one image out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from gisweep import GisweepError
from gisweep.figures.common import LABEL_COLORS, plt, save_figure
from gisweep.gi_stats import spans_full_range
from gisweep.io import read_parquet


def gi_density_panels(series: list[tuple[str, str, str]], out, title: str = "") -> pd.DataFrame:
    """One panel per distinct panel name; in each, the GI density of every (label mode, file).

    series: (panel, label mode, gi parquet path). Returns the per-series summary that is drawn in
    the legends (lines, mean, median, fraction of lines whose GI spans the whole range).
    """
    if not series:
        raise GisweepError("no GI files given to plot")
    frames = []
    for entry in series:
        if len(entry) != 3:
            raise GisweepError(f"series entry {entry!r}: expected (panel, label mode, GI file)")
        panel, mode, path = entry
        df = read_parquet(path, required=["gi", "t_min", "t_max"])[["gi", "t_min", "t_max"]]
        if df.empty:
            raise GisweepError(f"{path}: no lines to plot")
        if not np.isfinite(df[["gi", "t_min", "t_max"]].to_numpy(np.float64)).all():
            raise GisweepError(f"{path}: non-finite GI or range values")
        frames.append(df.assign(panel=panel, labels=mode))
    data = pd.concat(frames, ignore_index=True)
    data["full"] = spans_full_range(data.gi, data.t_min, data.t_max)
    panels = list(dict.fromkeys(p for p, _, _ in series))
    ncols = min(4, len(panels))  # at most four panels a row
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False, sharey=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    rows = []
    for ax, panel in zip(axes.ravel(), panels):
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
                ax.axvline(grp.gi.iloc[0], color=color, label=label, linewidth=3, alpha=0.7)
        ax.set_title(panel)
        ax.set_xlim(0, hi * 1.02)  # a spike at the full range stays visible
        ax.set_xlabel("generalization interval")
        ax.legend(fontsize=8)
    fig.tight_layout()
    if title:
        fig.suptitle(title, y=1.02)
    save_figure(fig, out)
    return pd.DataFrame(rows)


def _plot_cli(args) -> None:
    n = len(args.inputs)
    if len(args.panels) != n or len(args.modes) != n:
        raise GisweepError(f"--inputs has {n} files but --panels has {len(args.panels)} and --modes "
                           f"{len(args.modes)} entries: give one panel and one label mode per file")
    series = list(zip(args.panels, args.modes, args.inputs))
    print(gi_density_panels(series, args.out, args.title).to_string(index=False))


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-density", help="GI density panels, real vs random labels")
    p.add_argument("--inputs", nargs="+", required=True, metavar="GI_PARQUET", help="gi_{family}.parquet files")
    p.add_argument("--panels", nargs="+", required=True, help="the panel of each input file, in order")
    p.add_argument("--modes", nargs="+", required=True, help="the label mode (real, random) of each input file")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_plot_cli)
