"""Figures of the hull-distance stage (Yousefzadeh 2021, section 2), each from saved tables only.

- distance_distributions: per space, the histogram of test distances with the fitted normal density
  (from hull Parquet files of `hull-distance`);
- test_vs_random: per space, distances / diameter of the test points and of uniform random points;
- nearest_points: for a few test images (pixel space), the image, its nearest point on the training
  hull, the difference (the shortest direction to the hull) and the heaviest training images of the
  support (from the table of `hull-nearest`, gisweep.hull_stage);
- train_size: distance / diameter, fraction outside and nearest-neighbour distance against the
  training-set size N, with the fitted trend and its extrapolation (from the CSV of `hull-train-size`,
  gisweep.hull_sweep).
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import NullFormatter

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.hull_summary import read_summary
from gisweep.io import read_csv, read_parquet

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
        ax.set_ylabel("density")
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
    shape = _image_shape(features, nearest_path)
    n_support = max(len(s) for s in df["support_index"])
    cols = 3 + n_support
    fig, axes = plt.subplots(len(df), cols, figsize=(1.6 * cols, 1.75 * len(df)), squeeze=False)
    for r, row in enumerate(df.itertuples(index=False)):
        img = np.asarray(row.image, dtype=np.float64).reshape(shape)
        hp = np.asarray(row.nearest, dtype=np.float64).reshape(shape)
        diff = (img - hp) if len(shape) == 2 else (img - hp).mean(axis=2)  # RGB: the channel mean
        lim = float(np.abs(diff).max()) or 1.0
        panels = [(img, "gray_r", 0, 1, f"test {row.query}\nd={row.distance:.3g}"),
                  (hp, "gray_r", 0, 1, "nearest on hull"),
                  (diff, "RdBu_r", -lim, lim, "image − hull point")]
        for k in range(n_support):
            if k < len(row.support_index):
                panels.append((np.asarray(row.support_image[k], dtype=np.float64).reshape(shape), "gray_r", 0, 1,
                               f"train {row.support_index[k]}\nw={row.support_weight[k]:.2f}"))
            else:
                panels.append((None, None, 0, 0, ""))
        for ax, (im, cmap, lo, hi, label) in zip(axes[r], panels):
            ax.set_xticks([])
            ax.set_yticks([])
            if im is None:
                ax.set_visible(False)
                continue
            ax.imshow(np.clip(im, 0, 1) if im.ndim == 3 else im, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(label, fontsize=7)
        axes[r][0].set_ylabel(f"support {int(row.support_size)}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, out)


def _image_shape(features: int, path) -> tuple[int, ...]:
    """(side, side) for grey or (side, side, 3) for RGB images of `features` values."""
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if features % channels == 0 and side * side * channels == features:
            return (side, side) if channels == 1 else (side, side, 3)
    raise GisweepError(f"{path}: images of {features} values are not square grey or RGB images")


TRAIN_SIZE_COLUMNS = ["kind", "train_points", "seed", "statistic", "value", "lower", "upper", "pred_lower",
                      "pred_upper", "slope", "slope_se", "extrapolated"]


def _measured(df, stat):
    m = df[(df["kind"] == "measured") & (df["statistic"] == stat)]
    agg = m.groupby("train_points")["value"].agg(["mean", "min", "max"])
    return m, agg


def _trend(ax, df, stat, color, label, logit=False):
    """The fitted trend of `stat`: solid over the measured N, dashed beyond, with its 95 % bands."""
    f = df[(df["kind"] == "fit") & (df["statistic"] == stat)].sort_values("train_points")
    if f.empty:
        return None
    for extra, style in ((False, "-"), (True, "--")):
        part = f[f["extrapolated"] == extra] if not extra else f[f["extrapolated"] | (f["train_points"] ==
                                                                                      f.loc[~f["extrapolated"], "train_points"].max())]
        if part.empty:
            continue
        slope = f"{f['slope'].iloc[0]:.3f}±{f['slope_se'].iloc[0]:.3f}"
        ax.plot(part["train_points"], part["value"], style, color=color, lw=1.2,
                label=None if extra else (f"{label} fit: logit ∝ {slope}·log N" if logit else f"{label} fit ∝ N^{slope}"))
        ax.fill_between(part["train_points"], part["lower"], part["upper"], color=color, alpha=0.25 if extra else 0.15,
                        lw=0)
        ax.plot(part["train_points"], part["pred_lower"], ":", color=color, lw=0.8)
        ax.plot(part["train_points"], part["pred_upper"], ":", color=color, lw=0.8)
    return f


def _mark_extrapolation(ax, df):
    f = df[df["kind"] == "fit"]
    top_measured = df.loc[df["kind"] == "measured", "train_points"].max()
    if f.empty or f["train_points"].max() <= top_measured:
        return
    ax.axvspan(top_measured, f["train_points"].max(), color="0.85", alpha=0.5, lw=0, zorder=0)
    ax.text(np.sqrt(top_measured * f["train_points"].max()), 0.98, "EXTRAPOLATION\n(fitted trend, not measured)",
            transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=6.5, color="0.3")


def train_size(table_path, out, title: str = "") -> None:
    """Distance / diameter (mean, quartiles), fraction outside / undecided and nearest-neighbour distance
    against the training-set size N (log axes): per seed (dots), the seed mean (line), the fitted trend
    with its 95 % confidence band (shaded) and prediction band (dotted), extrapolated (dashed, grey area)."""
    df = read_csv(table_path, TRAIN_SIZE_COLUMNS, "written by hull-train-size")
    if (df["kind"] == "measured").sum() == 0:
        raise GisweepError(f"{table_path}: no measured rows to plot")
    df["extrapolated"] = df["extrapolated"].astype(str).str.lower().isin(["true", "1"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")

    ax = axes[0]
    for stat, color, label in (("rel_distance_mean", "tab:blue", "mean"), ("rel_distance_q25", "tab:green", "25 %"),
                               ("rel_distance_q75", "tab:purple", "75 %")):
        m, agg = _measured(df, stat)
        ax.scatter(m["train_points"], m["value"], s=9, color=color, alpha=0.6)
        ax.plot(agg.index, agg["mean"], "o-", color=color, ms=3, lw=0.8, label=f"distance/diameter {label}")
        _trend(ax, df, stat, color, label)
    ax.set_ylabel("test distance to the hull / hull diameter")

    ax = axes[1]
    for stat, color, label in (("fraction_outside", "tab:red", "outside (certified)"),
                               ("fraction_undecided", "tab:orange", "undecided"),
                               ("fraction_inside", "tab:blue", "inside")):
        m, agg = _measured(df, stat)
        if len(m) and (stat == "fraction_outside" or agg["max"].max() > 0):
            ax.plot(agg.index, agg["mean"], "o-", color=color, ms=3, lw=0.8, label=label)
            ax.fill_between(agg.index, agg["min"], agg["max"], color=color, alpha=0.15, lw=0)
    _trend(ax, df, "fraction_outside", "tab:red", "outside", logit=True)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("fraction of test points")

    ax = axes[2]
    for stat, color, label in (("nn_distance_mean", "tab:brown", "nearest-neighbour distance"),
                               ("distance_mean", "tab:blue", "hull distance")):
        m, agg = _measured(df, stat)
        ax.scatter(m["train_points"], m["value"], s=9, color=color, alpha=0.6)
        ax.plot(agg.index, agg["mean"], "o-", color=color, ms=3, lw=0.8, label=f"{label} (mean)")
        _trend(ax, df, stat, color, label)
    ax.set_ylabel("distance (pixel space)")

    for ax in axes:
        ax.set_xscale("log")
        if ax is not axes[1]:
            ax.set_yscale("log")
        ax.set_xlabel("training points N")
        _mark_extrapolation(ax, df)
        ax.legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
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

    p = sub.add_parser("plot-hull-train-size", help="hull distance, fraction outside and trend against N")
    p.add_argument("--table", required=True, help="the CSV of `hull-train-size`")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: train_size(a.table, a.out, a.title))
