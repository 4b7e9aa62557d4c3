"""Figures of the hull-distance stage (Yousefzadeh 2021, section 2), each from hull Parquet files.

- distance_distributions: per space, the histogram of test distances with the fitted normal density;
- test_vs_random: per space, distances / diameter of the test points and of uniform random points;
- nearest_points: for a few test images (pixel space), the image, its nearest point on the training
  hull, the difference (the shortest direction to the hull) and the heaviest training images of the support.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import NullFormatter

from gisweep import GisweepError
from gisweep.figures import plt, save_figure
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

    from gisweep.hull_stage import read_summary

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


def pick_examples(distance: np.ndarray, n: int) -> np.ndarray:
    """Positions of n queries spread over the distance quantiles (nearest to 1/(n+1), ..., n/(n+1))."""
    order = np.argsort(distance, kind="stable")
    n = min(n, len(order))
    return order[np.round(np.linspace(1, n, n) / (n + 1) * (len(order) - 1)).astype(int)]


def nearest_points(data_path, hull_path, out, n_examples: int = 4, n_support: int = 5, tol: float = 1e-6,
                   title: str = "") -> None:
    """For a few test images (pixel space): image, nearest hull point, difference, heaviest support images.

    The nearest points are solved again for the chosen queries with the full support (the Parquet keeps
    only the heaviest support_k); the re-solved distance must match the stored one.
    """
    import torch

    from gisweep.data import load_table
    from gisweep.hull import hull_distance
    from gisweep.hull_stage import read_summary
    from gisweep.spaces import image_side

    s = read_summary(hull_path)
    if s["space"] != "pixels":
        raise GisweepError(f"{hull_path}: nearest-point images need the pixel space, not '{s['space']}'")
    df = read_parquet(hull_path, required=["kind", "query", "distance", "certified"])
    x_tr, _, x_te, _ = load_table(data_path)
    test = df[df["kind"] == "test"].reset_index(drop=True)
    if len(test) == 0:
        raise GisweepError(f"{hull_path}: no test rows")
    if int(test["query"].max()) >= len(x_te):
        raise GisweepError(f"{hull_path}: query positions exceed the {len(x_te)} test rows of {data_path}")
    side = image_side(x_tr.shape[1])
    pick = pick_examples(test["distance"].to_numpy(), n_examples)
    q = test["query"].to_numpy()[pick]
    res = hull_distance(x_tr.astype(np.float64), x_te[q].astype(np.float64), tol=tol, device="cpu", progress=False)
    stored = test["distance"].to_numpy()[pick]
    if not np.allclose(res.distance.numpy(), stored, rtol=1e-4, atol=1e-6 * max(1.0, s["diameter"])):
        raise GisweepError(f"{hull_path}: stored distances {stored} do not match a re-solve {res.distance.numpy()}"
                           f" against {data_path} (different data file?)")
    near = res.nearest_points(torch.as_tensor(x_tr, dtype=torch.float64)).numpy()  # [n, F]
    cols = 3 + n_support
    fig, axes = plt.subplots(len(q), cols, figsize=(1.6 * cols, 1.75 * len(q)), squeeze=False)
    for r, qi in enumerate(q):
        img, hp = x_te[qi].reshape(side, side), near[r].reshape(side, side)
        diff = img - hp
        lim = float(np.abs(diff).max()) or 1.0
        panels = [(img, "gray_r", 0, 1, f"test {qi}\nd={res.distance[r]:.3g}"),
                  (hp, "gray_r", 0, 1, "nearest on hull"),
                  (diff, "RdBu_r", -lim, lim, "image − hull point")]
        idx, w = res.support_index[r].numpy(), res.support_weight[r].numpy()
        for k in range(n_support):
            if k < len(idx) and idx[k] >= 0:
                panels.append((x_tr[idx[k]].reshape(side, side), "gray_r", 0, 1, f"train {idx[k]}\nw={w[k]:.2f}"))
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
        axes[r][0].set_ylabel(f"support {int(res.support_size[r])}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, out)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-hull-distributions", help="test distances to the hull per space, with a fitted normal")
    p.add_argument("--series", nargs=2, action="append", metavar=("LABEL", "HULL_PARQUET"), required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: distance_distributions([tuple(s) for s in a.series], a.out, a.title))

    p = sub.add_parser("plot-hull-test-vs-random", help="distance / diameter of test vs uniform random points")
    p.add_argument("--series", nargs=2, action="append", metavar=("LABEL", "HULL_PARQUET"), required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: test_vs_random([tuple(s) for s in a.series], a.out, a.title))

    p = sub.add_parser("plot-hull-nearest", help="test images, their nearest hull points and support images")
    p.add_argument("--data", required=True)
    p.add_argument("--hull", required=True, help="the pixel-space hull Parquet of the same data")
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--support", type=int, default=5)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: nearest_points(a.data, a.hull, a.out, a.examples, a.support, a.tol, a.title))
