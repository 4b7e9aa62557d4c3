"""Figures of the toy 2-D sweeps, drawn from their saved tables (gisweep.toy2d.polynomial, .sweep).

plot-polynomial-boundaries    every regime's Legendre boundary per degree, with the hulls
plot-polynomial-disagreement  boundary gaps and test disagreement inside vs outside, per coefficients
plot-network-regions          MLP decision regions per width (columns) and regime (rows)
plot-network-disagreement     grid error, regime disagreement and test error vs parameter count
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.io import read_parquet
from gisweep.toy2d.data import hull_polygon

POSITIVE, NEGATIVE = "#1f4fbf", "#c0392b"                                     # point colours, class +1 / -1


def _require(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise GisweepError(f"{what} table: missing column(s) {missing}; found {list(df.columns)}")


def draw_hull(ax, train_xy: np.ndarray, **kw) -> None:
    """The convex hull of the training points, dashed."""
    poly = hull_polygon(train_xy)
    ax.plot(poly[:, 0], poly[:, 1], **{"color": "k", "lw": 0.8, "ls": "--", **kw})


def _train_and_curve(df: pd.DataFrame):
    train = df[df["kind"] == "train"]
    curve = df[df["kind"] == "true_curve"].sort_values("x1")
    return train[["x1", "x2"]].to_numpy(), train["label"].to_numpy(), curve


def plot_disagreement_panels(metrics_df: pd.DataFrame, xcol: str, xlabel: str, panels: list, path, title: str) -> None:
    """One panel per (column pair, reference selector): x = parameter count (log), one curve per
    comparison; solid = outside the hull, dashed = inside. panels: list of dicts with keys
    title, inside (column name or None: outside only), outside (column name), which ('truth' or
    'reference'), ylabel, ylog (bool), floor (values drawn at least this), hline (optional
    (y, label): a horizontal threshold line)."""
    regs = list(dict.fromkeys(metrics_df["regime"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, panel in zip(axes[0], panels):
        if panel["which"] == "truth":
            sel = metrics_df[metrics_df["reference"] == "truth"]
            keys = [(r, f"{r} vs truth") for r in regs]
        else:
            sel = metrics_df[metrics_df["reference"] == regs[0]]
            keys = [(r, f"{r} vs {regs[0]}") for r in regs[1:]]
        floor = panel.get("floor")
        for k, (reg, label) in enumerate(keys):
            g = sel[sel["regime"] == reg].sort_values(xcol)
            if g.empty:
                continue
            for col, ls, where in ((panel["outside"], "-", "outside"), (panel.get("inside"), "--", "inside")):
                if col is None:
                    continue
                y = g[col].to_numpy(dtype=float)
                if floor is not None:
                    y = np.maximum(y, floor)
                ax.plot(g[xcol], y, ls=ls, marker="o", ms=3, color=colors[k % 10],
                        label=f"{label} ({where})")
        if panel.get("hline") is not None:
            level, text = panel["hline"]
            ax.axhline(level, color="k", lw=0.8, ls="-.", label=text)
        n_train = metrics_df["n_train"].iloc[0]
        ax.axvline(n_train, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        if panel.get("ylog"):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel + f" (dotted: n_train = {n_train})", fontsize=8)
        ax.set_ylabel(panel["ylabel"], fontsize=8)
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        if keys:
            ax.legend(fontsize=5.5, ncol=1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)  # closes the figure


# ---------------------------------------------------------------- polynomial boundaries


def plot_polynomial_boundaries(curves_df: pd.DataFrame, metrics_df: pd.DataFrame, path) -> None:
    """One panel per degree: every regime's boundary over Legendre's interval [-1, 1], the true
    curve, the training points, the 2-D hull (dashed) and the x1-hull (shaded); the legend marks
    fits that do not separate the training data, those that control the boundary outside the
    hull, and ([lsq]) least-squares fits (fit: interpolate, or no separator at that degree). Values
    far outside the frame are clipped for drawing only."""
    _require(curves_df, ["kind", "degree", "regime", "x1", "x2", "label"], "curves")
    _require(metrics_df, ["degree", "regime", "reference", "n_coef", "separates", "controls_outside"], "metrics")
    bnd = curves_df[curves_df["kind"] == "boundary"]
    train_xy, train_y, curve = _train_and_curve(curves_df)
    degrees = sorted(bnd["degree"].unique())
    regimes = list(dict.fromkeys(bnd["regime"]))
    own = metrics_df[metrics_df["reference"] == "truth"].set_index(["degree", "regime"])
    ncol = min(4, len(degrees))
    nrow = -(-len(degrees) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    lo = min(train_xy[:, 1].min(), curve["x2"].min())
    hi = max(train_xy[:, 1].max(), curve["x2"].max())
    ylim = (lo - 0.75 * (hi - lo), hi + 0.75 * (hi - lo))
    colors = plt.get_cmap("tab10").colors
    for ax, degree in zip(axes.ravel(), degrees):
        ax.axvspan(train_xy[:, 0].min(), train_xy[:, 0].max(), color="0.92", zorder=0)
        draw_hull(ax, train_xy, color="0.5")
        ax.plot(curve["x1"], curve["x2"], color="k", lw=1.2, label="true curve")
        for k, reg in enumerate(regimes):
            g = bnd[(bnd["degree"] == degree) & (bnd["regime"] == reg)].sort_values("x1")
            y = np.clip(g["x2"].to_numpy(), ylim[0] - 10 * (hi - lo), ylim[1] + 10 * (hi - lo))
            sep, ctrl = own.loc[(degree, reg), ["separates", "controls_outside"]]
            mark = " (not sep.)" if not sep else (" (controls outside)" if ctrl else "")
            if own.loc[(degree, reg)].get("fit_method", "") == "least_squares":
                mark += " [lsq]"
            ax.plot(g["x1"], y, color=colors[k % 10], lw=0.9, label=f"{reg}{mark}")
        ax.scatter(train_xy[:, 0], train_xy[:, 1], c=np.where(train_y > 0, POSITIVE, NEGATIVE), s=7, zorder=3)
        ax.set_ylim(*ylim)
        ax.set_title(f"degree {degree}: {degree + 1} coefficients / {len(train_xy)} points", fontsize=8)
        ax.set_xlabel("x1", fontsize=7)
        ax.set_ylabel("x2", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="lower left")
    for ax in axes.ravel()[len(degrees):]:
        ax.axis("off")
    fig.suptitle("Legendre boundaries on [-1, 1]; shaded: x1-range of the training data (outside it: "
                 "outside the hull), dashed: 2-D hull", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)  # closes the figure


def plot_polynomial_disagreement(metrics_df: pd.DataFrame, path) -> None:
    """Against the number of coefficients: deviation from the true curve inside vs outside the hull
    (RMS, log scale; floored at 1e-12); the outside deviation relative to the true curve's own RMS
    there, with the control threshold (control_fraction); boundary gaps and test-point disagreement
    between regimes (vs the first regime), inside vs outside."""
    _require(metrics_df, ["n_coef", "n_train", "regime", "reference", "boundary_gap_inside_rms",
                          "boundary_gap_outside_rms", "test_disagree_inside", "test_disagree_outside",
                          "outside_ratio", "control_fraction"], "metrics")
    fraction = float(metrics_df["control_fraction"].iloc[0])
    plot_disagreement_panels(metrics_df, "n_coef", "coefficients", [
        {"title": "boundary vs true curve (RMS deviation)", "inside": "boundary_gap_inside_rms",
         "outside": "boundary_gap_outside_rms", "which": "truth", "ylog": True, "floor": 1e-12,
         "ylabel": "RMS of p(x1) - g(x1)"},
        {"title": "outside deviation / true curve's RMS outside", "inside": None,
         "outside": "outside_ratio", "which": "truth", "ylog": True, "floor": 1e-12,
         "hline": (fraction, f"control threshold {fraction:g}"), "ylabel": "outside_ratio"},
        {"title": "boundary between regimes (RMS gap)", "inside": "boundary_gap_inside_rms",
         "outside": "boundary_gap_outside_rms", "which": "reference", "ylog": True, "floor": 1e-12,
         "ylabel": "RMS of p_a(x1) - p_b(x1)"},
        {"title": "test points classified differently, between regimes", "inside": "test_disagree_inside",
         "outside": "test_disagree_outside", "which": "reference", "ylabel": "fraction of test points"},
    ], path, "Polynomial boundary: inside (dashed) vs outside (solid) the training hull")


# ---------------------------------------------------------------- networks


def plot_network_regions(regions_df: pd.DataFrame, metrics_df: pd.DataFrame, path) -> None:
    """Decision regions per width (columns) and regime (rows), with the training hull (dashed),
    the training points and the true curve (black); axes x1, x2, and a legend naming the class
    colours of the regions and of the points."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    _require(regions_df, ["kind", "width", "regime", "x1", "x2", "label", "inside_hull"], "regions")
    _require(metrics_df, ["width", "regime", "reference", "n_params", "train_acc", "test_acc_outside"], "metrics")
    grid = regions_df[regions_df["kind"] == "grid"]
    train_xy, train_y, curve = _train_and_curve(regions_df)
    widths = sorted(grid["width"].unique())
    regimes = list(dict.fromkeys(grid["regime"]))
    own = metrics_df[metrics_df["reference"] == "truth"].set_index(["width", "regime"])
    region_colors = {-1: "#f4b6b6", 1: "#b6cdf4"}  # predicted class -1 / +1
    cmap = ListedColormap([region_colors[-1], region_colors[1]])
    fig, axes = plt.subplots(len(regimes), len(widths), figsize=(2.6 * len(widths), 2.7 * len(regimes)),
                             squeeze=False, sharex=True, sharey=True)
    for i, reg in enumerate(regimes):
        for j, w in enumerate(widths):
            ax = axes[i, j]
            g = grid[(grid["width"] == w) & (grid["regime"] == reg)].sort_values(["x2", "x1"])
            x1s, x2s = np.unique(g["x1"]), np.unique(g["x2"])
            z = g["label"].to_numpy().reshape(len(x2s), len(x1s))
            ax.pcolormesh(x1s, x2s, z, cmap=cmap, vmin=-1, vmax=1, shading="nearest", rasterized=True)
            draw_hull(ax, train_xy)
            ax.plot(curve["x1"], curve["x2"], color="k", lw=0.8)
            ax.scatter(train_xy[:, 0], train_xy[:, 1], c=np.where(train_y > 0, POSITIVE, NEGATIVE),
                       s=6, linewidths=0)
            m = own.loc[(w, reg)]
            ax.set_title(f"w={w} ({int(m.n_params)} p) {reg}\ntrain {m.train_acc:.2f}, out-test {m.test_acc_outside:.2f}",
                         fontsize=7)
            ax.tick_params(labelsize=6)
    for ax in axes[-1, :]:
        ax.set_xlabel("x1", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("x2", fontsize=7)
    handles = [Patch(color=region_colors[1], label="predicted +1"),
               Patch(color=region_colors[-1], label="predicted -1"),
               Line2D([], [], ls="", marker="o", ms=4, color=POSITIVE, label="training point, class +1"),
               Line2D([], [], ls="", marker="o", ms=4, color=NEGATIVE, label="training point, class -1"),
               Line2D([], [], color="k", lw=0.8, label="true boundary"),
               Line2D([], [], color="k", lw=0.8, ls="--", label="training convex hull")]
    fig.suptitle("MLP decision regions; dashed: training convex hull, black: true boundary", fontsize=9)
    fig.tight_layout()
    # below the panels, after tight_layout (which does not place figure legends)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=6,
               frameon=False)
    save_figure(fig, path)  # closes the figure


def plot_network_disagreement(metrics_df: pd.DataFrame, path) -> None:
    """Grid error vs the true boundary and region disagreement vs the first regime, inside vs
    outside the training hull, against parameter count."""
    _require(metrics_df, ["n_params", "n_train", "regime", "reference", "region_disagree_inside",
                          "region_disagree_outside", "test_acc_inside", "test_acc_outside"], "metrics")
    m = metrics_df.assign(test_err_inside=1 - metrics_df["test_acc_inside"],
                          test_err_outside=1 - metrics_df["test_acc_outside"])
    plot_disagreement_panels(m, "n_params", "parameters", [
        {"title": "decision regions vs true boundary (grid)", "inside": "region_disagree_inside",
         "outside": "region_disagree_outside", "which": "truth", "ylabel": "fraction of grid points differing"},
        {"title": "decision regions between regimes (grid)", "inside": "region_disagree_inside",
         "outside": "region_disagree_outside", "which": "reference", "ylabel": "fraction of grid points differing"},
        {"title": "test error (points drawn beyond the data)", "inside": "test_err_inside",
         "outside": "test_err_outside", "which": "truth", "ylabel": "test error"},
    ], path, "ReLU MLPs: inside (dashed) vs outside (solid) the training convex hull")


# ---------------------------------------------------------------- CLI


def _cmd_polynomial_boundaries(args) -> None:
    plot_polynomial_boundaries(read_parquet(args.curves), read_parquet(args.metrics), args.out)


def _cmd_polynomial_disagreement(args) -> None:
    plot_polynomial_disagreement(read_parquet(args.metrics), args.out)


def _cmd_network_regions(args) -> None:
    plot_network_regions(read_parquet(args.regions), read_parquet(args.metrics), args.out)


def _cmd_network_disagreement(args) -> None:
    plot_network_disagreement(read_parquet(args.metrics), args.out)


def register_cli(subparsers) -> None:
    commands = [
        ("plot-polynomial-boundaries", "figure: boundaries per degree and regime", _cmd_polynomial_boundaries,
         [("--metrics", "polynomial-sweep metrics Parquet"), ("--curves", "polynomial-sweep curves Parquet")]),
        ("plot-polynomial-disagreement", "figure: gaps inside vs outside vs coefficients",
         _cmd_polynomial_disagreement, [("--metrics", "polynomial-sweep metrics Parquet")]),
        ("plot-network-regions", "figure: decision regions per width and regime", _cmd_network_regions,
         [("--metrics", "network-sweep metrics Parquet"), ("--regions", "network-sweep regions Parquet")]),
        ("plot-network-disagreement", "figure: disagreement inside vs outside vs parameters",
         _cmd_network_disagreement, [("--metrics", "network-sweep metrics Parquet")]),
    ]
    for name, help_text, func, inputs in commands:
        p = subparsers.add_parser(name, help=help_text)
        for flag, text in inputs:
            p.add_argument(flag, required=True, help=f"input: {text}")
        p.add_argument("--out", required=True, help="output figure (format from the suffix)")
        p.set_defaults(func=func)
