"""Figures of the hull-distance stage (Yousefzadeh 2021, section 2), each from saved tables only.

- distance_distributions: per space, the histogram of test distances with the fitted normal density
  (from hull Parquet files of `hull-distance`);
- test_vs_random: per space, distances / diameter of the test points and of uniform random points;
- nearest_points: for a few test images (pixel space), the image, its nearest point on the training
  hull, the difference (the shortest direction to the hull) and the heaviest training images of the
  support (from the table of `hull-nearest`, gisweep.hull_stage).
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import NullFormatter

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.hull_summary import read_summary
from gisweep.io import read_parquet

HULL_COLUMNS = ["kind", "distance", "rel_distance", "certified", "inside"]


def _panels(n: int, per_row: int = 4, size=(3.6, 2.9)):
    cols = min(n, per_row)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def distance_distributions(series: list[tuple[str, str]], out, title: str = "") -> None:
    """series: (panel label, hull parquet). Test-point distances, density histogram and fitted normal."""
    from scipy import stats

    if not series:
        raise GisweepError("no hull files given to plot")
    fig, axes = _panels(len(series))
    for ax, (label, path) in zip(axes, series):
        df = read_parquet(path, columns=HULL_COLUMNS, required=HULL_COLUMNS)
        s = read_summary(path)
        d = df.loc[df["kind"] == "test", "distance"].to_numpy()
        if len(d) == 0:
            raise GisweepError(f"{path}: no test rows to plot")
        ax.hist(d, bins=40, density=True, color="tab:blue", alpha=0.55)
        mu, sd = d.mean(), d.std(ddof=1) if len(d) > 1 else 0.0
        if sd > 0:
            grid = np.linspace(d.min(), d.max(), 200)
            ax.plot(grid, stats.norm.pdf(grid, mu, sd), color="k", lw=1.2, label=f"normal({mu:.3g}, {sd:.3g})")
        t = s.get("test", {})
        p = t.get("normaltest_p")
        uncert = t.get("not_certified", 0)
        ax.set_title(f"{label} (D={s['features']})", fontsize=9)
        ax.text(0.98, 0.97, f"outside {100 * t.get('fraction_outside', float('nan')):.0f}%\n"
                f"diam {s['diameter']:.3g}\nskew {t.get('skewness') or float('nan'):.2f}\n"
                f"p(normal) {p if p is None else f'{p:.2g}'}" + (f"\n{uncert} NOT certified" if uncert else ""),
                transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_xlabel("distance to training hull")
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    save_figure(fig, out)


def test_vs_random(series: list[tuple[str, str]], out, title: str = "") -> None:
    """series: (panel label, hull parquet). Distance / diameter of test points and of random points."""
    if not series:
        raise GisweepError("no hull files given to plot")
    fig, axes = _panels(len(series))
    for ax, (label, path) in zip(axes, series):
        df = read_parquet(path, columns=HULL_COLUMNS, required=HULL_COLUMNS)
        rel = df["rel_distance"].to_numpy()
        pos = rel[np.isfinite(rel) & (rel > 0)]
        if len(pos) == 0:
            ax.set_title(f"{label}: no positive distances", fontsize=9)
            continue
        bins = np.geomspace(pos.min(), pos.max() * 1.001, 50) if pos.max() > pos.min() else 10
        for kind, color in (("test", "tab:blue"), ("random", "tab:red")):
            r = df.loc[df["kind"] == kind, "rel_distance"].to_numpy()
            r = r[np.isfinite(r) & (r > 0)]
            if len(r):
                ax.hist(r, bins=bins, density=True, color=color, alpha=0.55, label=f"{kind} (n={len(r)}, median {np.median(r):.3g})")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("distance / hull diameter")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, out)


NEAREST_COLUMNS = ["query", "distance", "support_size", "image", "nearest", "support_index", "support_weight",
                   "support_image"]


def nearest_points(nearest_path, out, title: str = "") -> None:
    """Per example of a `hull-nearest` table: image, nearest hull point, difference, heaviest support images."""
    df = read_parquet(nearest_path, columns=NEAREST_COLUMNS, required=NEAREST_COLUMNS)
    if len(df) == 0:
        raise GisweepError(f"{nearest_path}: no examples to plot")
    features = len(df["image"].iloc[0])
    side = math.isqrt(features)
    if side * side != features:
        raise GisweepError(f"{nearest_path}: images of {features} pixels are not square")
    n_support = max(len(s) for s in df["support_index"])
    cols = 3 + n_support
    fig, axes = plt.subplots(len(df), cols, figsize=(1.6 * cols, 1.75 * len(df)), squeeze=False)
    for r, row in enumerate(df.itertuples(index=False)):
        img = np.asarray(row.image, dtype=np.float64).reshape(side, side)
        hp = np.asarray(row.nearest, dtype=np.float64).reshape(side, side)
        diff = img - hp
        lim = float(np.abs(diff).max()) or 1.0
        panels = [(img, "gray_r", 0, 1, f"test {row.query}\nd={row.distance:.3g}"),
                  (hp, "gray_r", 0, 1, "nearest on hull"),
                  (diff, "RdBu_r", -lim, lim, "image − hull point")]
        for k in range(n_support):
            if k < len(row.support_index):
                panels.append((np.asarray(row.support_image[k], dtype=np.float64).reshape(side, side), "gray_r", 0, 1,
                               f"train {row.support_index[k]}\nw={row.support_weight[k]:.2f}"))
            else:
                panels.append((None, None, 0, 0, ""))
        for ax, (im, cmap, lo, hi, label) in zip(axes[r], panels):
            ax.set_xticks([])
            ax.set_yticks([])
            if im is None:
                ax.set_visible(False)
                continue
            ax.imshow(im, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(label, fontsize=7)
        axes[r][0].set_ylabel(f"support {int(row.support_size)}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, out)


def _series(args) -> list[tuple[str, str]]:
    """(panel name, hull Parquet) pairs from the parallel --names and --inputs lists."""
    if len(args.names) != len(args.inputs):
        raise GisweepError(f"--inputs has {len(args.inputs)} files but --names has {len(args.names)} entries: "
                           "give one panel name per input file, in the same order")
    return list(zip(args.names, args.inputs))


def register_cli(sub) -> None:
    for command, func, help_text in [
        ("plot-hull-distributions", distance_distributions, "test distances to the hull per space, with a fitted normal"),
        ("plot-hull-test-vs-random", test_vs_random, "distance / diameter of test vs uniform random points"),
    ]:
        p = sub.add_parser(command, help=help_text)
        p.add_argument("--inputs", nargs="+", required=True, metavar="HULL_PARQUET", help="hull-distance tables")
        p.add_argument("--names", nargs="+", required=True, help="the panel name of each input file, in order")
        p.add_argument("--title", default="")
        p.add_argument("--out", required=True)
        p.set_defaults(func=lambda a, func=func: func(_series(a), a.out, a.title))

    p = sub.add_parser("plot-hull-nearest", help="test images, their nearest hull points and support images")
    p.add_argument("--nearest", required=True, help="the table of `hull-nearest` (pixel space)")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: nearest_points(a.nearest, a.out, a.title))
