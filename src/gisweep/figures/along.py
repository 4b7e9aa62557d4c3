"""Figures 1-3: every class's output (logit) along directions through input space.

Reads the `along.parquet` of gisweep.along (long format: direction, t, class, output, ...) and
draws one panel per direction of the figure; writes only the figure.
"""
from __future__ import annotations

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.io import read_parquet, read_provenance

# (figure, [(panel title, direction)]); titles use {a} and {b} for the two classes
FIGURE_PANELS = {
    "fig1": [("same class ({a} to {a})", "same_pair"), ("different class ({a} to {b})", "other_pair"),
             ("random direction", "random")],
    "fig2": [("first principal component (class {a})", "pc1"),
             ("mean {a} to mean {b}, perpendicular to pc1", "perp"), ("minor component (class {a})", "minor")],
    "fig3": [("two samples of random class {a}", "same_pair"), ("two samples of random class {b}", "same_pair_b"),
             ("first principal component (random class {a})", "pc1")],
}
# the columns of along.parquet drawn here
COLUMNS = ["direction", "t", "class", "output", "predicted", "anchor_label", "j", "scale"]


def plot_along(along_path, out, *, figure: str, title: str = "") -> None:
    """One panel per direction of `figure` (fig1, fig2 or fig3): every class's output against t."""
    if figure not in FIGURE_PANELS:
        raise GisweepError(f"unknown figure '{figure}'; known: {sorted(FIGURE_PANELS)}")
    df = read_parquet(along_path, required=COLUMNS)
    meta = read_provenance(along_path)
    a, b = meta.get("class_a", "a"), meta.get("class_b", "b")
    panels = FIGURE_PANELS[figure]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    n_classes = int(df["class"].max()) + 1
    colors = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")
    for ax, (panel, direction) in zip(axes[0], panels):
        sub = df[df.direction == direction]
        if sub.empty:
            plt.close(fig)
            raise GisweepError(f"{along_path}: no rows for direction '{direction}'")
        anchor = int(sub.anchor_label.iloc[0])
        for c, grp in sub.groupby("class"):
            ax.plot(grp.t, grp.output, color=colors(c % colors.N), lw=2.2 if c == anchor else 1.0,
                    label=f"class {c}" + (" (anchor)" if c == anchor else ""))
        pred = sub.groupby("t").predicted.first()
        share = (pred == anchor).mean()
        for t_mark in ([0.0, 1.0] if sub.j.iloc[0] >= 0 else [0.0]):
            ax.axvline(t_mark, color="0.6", lw=0.8, ls="--")
        ax.set_title(panel.format(a=a, b=b), fontsize=9)
        ax.set_xlabel(f"t  (|d| = {sub.scale.iloc[0]:.2f}; predicted {anchor} on {100 * share:.0f}%)", fontsize=8)
        ax.set_ylabel("output (logit)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    save_figure(fig, out)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-along", help="figures 1-3: outputs along directions")
    p.add_argument("--along", required=True, help="an along.parquet")
    p.add_argument("--figure", required=True, choices=sorted(FIGURE_PANELS))
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: plot_along(a.along, a.out, figure=a.figure, title=a.title))
