"""Pair-GI density of the MLP beside the CNN (gisweep.cnn) on the same lines, real vs random labels:
two panels drawn by gisweep.figures.gi.gi_density_panels from the saved GI tables."""
from __future__ import annotations

from gisweep import GisweepError
from gisweep.figures.gi import gi_density_panels


def plot_mlp_vs_cnn(mlp: list[str], cnn: list[str], modes: list[str], out, *, mlp_name: str = "MLP",
                    cnn_name: str = "CNN", title: str = ""):
    """mlp, cnn: GI files, one per label mode of `modes` (in order) -> the legend statistics."""
    if not (len(mlp) == len(cnn) == len(modes)):
        raise GisweepError(f"--mlp has {len(mlp)} files, --cnn {len(cnn)} and --modes {len(modes)}: give one GI "
                           "file of each network per label mode")
    series = [(mlp_name, mode, 0, path) for mode, path in zip(modes, mlp)]
    series += [(cnn_name, mode, 0, path) for mode, path in zip(modes, cnn)]
    return gi_density_panels(series, out, title)


def register_cli(sub) -> None:
    p = sub.add_parser("plot-gi-mlp-vs-cnn", help="pair-GI density of the MLP beside the CNN, real vs random")
    p.add_argument("--mlp", nargs="+", required=True, metavar="GI_PARQUET", help="the MLP's GI file per label mode")
    p.add_argument("--cnn", nargs="+", required=True, metavar="GI_PARQUET", help="the CNN's GI file per label mode")
    p.add_argument("--modes", nargs="+", required=True, help="the label modes, in the order of the files")
    p.add_argument("--mlp-name", default="MLP")
    p.add_argument("--cnn-name", default="CNN")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: print(plot_mlp_vs_cnn(a.mlp, a.cnn, a.modes, a.out, mlp_name=a.mlp_name,
                                                        cnn_name=a.cnn_name, title=a.title).to_string(index=False)))
