"""Fraction of test points certified inside the training hull against the PCA dimension d, from the
gathered CSV of gisweep.hull_dimension (results/tables/hull_dimension.csv): one line per space (the seed
mean), each seed faint, uniform random data dashed for reference."""
from __future__ import annotations

from matplotlib.ticker import NullFormatter

from gisweep import GisweepError
from gisweep.figures.common import plt, save_figure
from gisweep.io import read_csv

REQUIRED = ["space", "d", "seed", "inside"]


def _read(table_path):
    table = read_csv(table_path, REQUIRED, "written by hull-dimension-table")
    if table.empty:
        raise GisweepError(f"{table_path}: no rows")
    return table


def inside_vs_dim(table_path, out, title: str = "") -> None:
    table = _read(table_path)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, (space, s) in enumerate(table.groupby("space", sort=True)):
        random = space == "random"
        color = "0.4" if random else f"C{i}"
        for _, seed in s.groupby("seed"):
            seed = seed.sort_values("d")
            ax.plot(seed["d"], seed["inside"], color=color, alpha=0.25, lw=0.8)
        mean = s.groupby("d")["inside"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=color, lw=2, marker="o", ms=3, ls="--" if random else "-",
                label=f"{space} (uniform, reference)" if random else space)
    ax.set_xscale("log", base=2)
    ticks = sorted(int(d) for d in table["d"].unique())  # the measured d, written out
    ax.set_xticks(ticks, [str(d) for d in ticks], fontsize=7)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("d (first principal components)")
    ax.set_ylabel("fraction of test points certified inside")
    ax.set_title(title or "Hull membership against dimension")
    ax.legend(fontsize=7, frameon=False)
    save_figure(fig, out)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-hull-dimension", help="fraction of test points inside the hull against d")
    p.add_argument("--table", required=True, help="results/tables/hull_dimension.csv")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: inside_vs_dim(a.table, a.out, a.title))
