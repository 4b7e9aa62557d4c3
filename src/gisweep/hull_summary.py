"""The hull experiment at a glance: the per-space summaries stored in hull Parquet files, as one table.

Each hull table (gisweep.hull_stage) keeps its space's summary in its metadata; `read_summary` reads it
(also for the figures, without the engine), and the `hull-summary` command collects them, one row per
(file, kind of query), into results/{dataset}/d{dim}/hull/summary.parquet: the counts outside / inside /
undecided from the certificates, the distance distribution's shape, and for the ResNet spaces the
network's training and test accuracy (model_train_acc, model_test_acc).
"""
from __future__ import annotations

from gisweep import GisweepError
from gisweep.io import provenance, read_provenance, write_parquet


def read_summary(path) -> dict:
    """The per-space summary stored in a hull Parquet's metadata."""
    meta = read_provenance(path)
    if "summary" not in meta:
        raise GisweepError(f"{path}: no hull summary in its metadata (not written by the hull-distance stage)")
    return meta["summary"]


def summary_table(paths):
    """One row per (file, kind) with the summary's numbers: a pandas DataFrame."""
    import pandas as pd

    rows = []
    for path in paths:
        s = read_summary(path)
        for kind in ("test", "random"):
            if kind in s:
                rows.append({"file": str(path), "space": s["space"], "kind": kind, "features": s["features"],
                             "train_points": s["train_points"], "diameter": s["diameter"],
                             "model_train_acc": s.get("model_train_acc"), "model_test_acc": s.get("model_test_acc"),
                             **s[kind]})
    return pd.DataFrame(rows)


def write_summary(paths, out):
    import pandas as pd

    df = summary_table(paths)
    write_parquet(df, out, provenance(stage="hull_summary", inputs=[str(p) for p in paths]))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(df.drop(columns=["file"]).to_string(index=False))
    return df


def register_cli(sub) -> None:
    s = sub.add_parser("hull-summary", help="collect the summaries of hull Parquet files into one table")
    s.add_argument("--inputs", nargs="+", required=True, help="hull Parquet files (hull-distance outputs)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=lambda a: write_summary(a.inputs, a.out))
