"""GI density figures (Figs 4-8 and the line-family panels): GI files in, one image out; each seed
faintly and the seeds pooled strongly when a panel has several."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from gisweep import GisweepError
from gisweep.figures.common import LABEL_COLORS, plt, save_figure
from gisweep.gi_stats import spans_full_range
from gisweep.io import read_parquet
from gisweep.schema import schema_number


def _series(entry) -> tuple[str, str, int, str]:
    """(panel, label mode, seed, path) from a 4-tuple, or a 3-tuple (panel, label mode, path) of seed 0."""
    if len(entry) == 3:
        panel, mode, path = entry
        return panel, mode, 0, path
    if len(entry) == 4:
        panel, mode, seed, path = entry
        return panel, mode, int(seed), path
    raise GisweepError(f"series entry {entry!r}: expected (panel, label mode, GI file) or (panel, label mode, seed, GI file)")


def _density(ax, gi: pd.Series, hi: float, color, label, *, strong: bool) -> None:
    """One density on `ax`: filled and thick when strong (the pooled seeds), a faint line otherwise."""
    if gi.nunique() > 1:
        style = dict(fill=True, alpha=0.25, linewidth=2) if strong else dict(fill=False, alpha=0.45, linewidth=0.8)
        sns.kdeplot(gi, ax=ax, label=label, color=color, clip=(0, hi), bw_adjust=0.5, warn_singular=False, **style)
    else:
        ax.axvline(gi.iloc[0], color=color, label=label, linewidth=3 if strong else 1, alpha=0.7 if strong else 0.45)


def gi_density_panels(series: list[tuple], out, title: str = "") -> pd.DataFrame:
    """One panel per distinct panel name; in each, the GI density of every label mode.

    series: (panel, label mode, seed, gi parquet path), or (panel, label mode, path) for seed 0.
    With one seed per (panel, label mode) its density is drawn as before (filled); with several,
    each seed's density is a faint line and the density of every seed's lines together (pooled) is
    drawn strongly, its legend giving the pooled mean and the sd of the per-seed means.
    Returns the statistics drawn in the legends, one row per (panel, label mode, seed) and, with
    several seeds, a pooled row (seed -1): lines, mean, median, full_range (share of lines whose
    GI spans the whole range), seeds, mean_sd (sample sd of the per-seed means; NaN for one seed).
    """
    if not series:
        raise GisweepError("no GI files given to plot")
    frames, seen = [], set()
    for entry in series:
        panel, mode, seed, path = _series(entry)
        if (panel, mode, seed) in seen:
            raise GisweepError(f"{path}: panel {panel!r}, label mode {mode!r}, seed {seed} is listed twice")
        seen.add((panel, mode, seed))
        df = read_parquet(path, required=["gi", "t_min", "t_max"])[["gi", "t_min", "t_max"]]
        if df.empty:
            raise GisweepError(f"{path}: no lines to plot")
        if not np.isfinite(df[["gi", "t_min", "t_max"]].to_numpy(np.float64)).all():
            raise GisweepError(f"{path}: non-finite GI or range values")
        frames.append(df.assign(panel=panel, labels=mode, seed=seed))
    data = pd.concat(frames, ignore_index=True)
    data["full"] = spans_full_range(data.gi, data.t_min, data.t_max)
    panels = list(dict.fromkeys(_series(e)[0] for e in series))
    ncols = min(4, len(panels))  # at most four panels a row
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False, sharey=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    rows = []

    def stats(grp, seed, **extra) -> dict:
        return dict(seed=seed, lines=len(grp), mean=grp.gi.mean(), median=grp.gi.median(), full_range=grp.full.mean(),
                    **extra)

    for ax, panel in zip(axes.ravel(), panels):
        sub = data[data.panel == panel]
        hi = float((sub.t_max - sub.t_min).max())
        for mode, grp in sub.groupby("labels", sort=False):
            color = LABEL_COLORS.get(mode)
            per_seed = [stats(g, seed, seeds=1, mean_sd=np.nan) for seed, g in grp.groupby("seed", sort=True)]
            rows += [dict(panel=panel, labels=mode, **r) for r in per_seed]
            if len(per_seed) == 1:
                r = per_seed[0]
                label = f"{mode}: mean {r['mean']:.2f}, full {100 * r['full_range']:.0f}%"
                _density(ax, grp.gi, hi, color, label, strong=True)
                continue
            means = np.array([r["mean"] for r in per_seed])
            pooled = stats(grp, -1, seeds=len(per_seed), mean_sd=means.std(ddof=1))
            rows.append(dict(panel=panel, labels=mode, **pooled))
            for seed, g in grp.groupby("seed", sort=True):
                _density(ax, g.gi, hi, color, None, strong=False)
            label = (f"{mode}, {len(per_seed)} seeds: mean {pooled['mean']:.2f} ± {pooled['mean_sd']:.2f}, "
                     f"full {100 * pooled['full_range']:.0f}%")
            _density(ax, grp.gi, hi, color, label, strong=True)
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
    seeds = args.seeds if args.seeds is not None else [0] * n
    if len(args.panels) != n or len(args.modes) != n or len(seeds) != n:
        raise GisweepError(f"--inputs has {n} files but --panels has {len(args.panels)}, --modes "
                           f"{len(args.modes)} and --seeds {len(seeds)} entries: give one panel, one label mode "
                           "and one seed per file (--seeds may be left out when every file is seed 0)")
    series = list(zip(args.panels, args.modes, seeds, args.inputs))
    print(gi_density_panels(series, args.out, args.title).to_string(index=False))


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-density", help="GI density panels, real vs random labels")
    p.add_argument("--inputs", nargs="+", required=True, metavar="GI_PARQUET", help="gi_{family}.parquet files")
    p.add_argument("--panels", nargs="+", required=True, help="the panel of each input file, in order")
    p.add_argument("--modes", nargs="+", required=True, help="the label mode (real, random) of each input file")
    p.add_argument("--seeds", nargs="+", type=schema_number("models.seeds[]"), default=None,
                   help="the model seed of each input file (default: 0 for every file); several seeds of one "
                        "panel and label mode are drawn faintly, their pooled density strongly")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_plot_cli)
