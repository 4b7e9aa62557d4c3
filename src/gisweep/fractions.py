"""Partial label randomisation (beyond the paper; after Zhang et al. 2017): GI and accuracy per fraction.

Labels for fraction f of n training samples, seed s (`fraction_labels`):
  k = floor(f·n + 1/2)  (f·n rounded half up);
  candidates = the first k entries of numpy.random.default_rng([s, 0xF4AC]).permutation(n), so the
               candidate sets are nested: every sample randomised at 25 % is also randomised at 50 %;
  the labels of the candidates (taken in row order) are permuted among themselves by
               numpy.random.default_rng([s, 0x5EED]).permutation, the stream the train stage's
               'random' mode uses; the other samples keep their true labels.
So f = 0 gives the true labels and f = 1 gives exactly gisweep.data.training_labels(y, 'random', s):
a model trained at 0 % (100 %) is the pipeline's real (random) model of that seed, bit for bit on a CPU.
Class counts never change. A candidate can draw its own label back (about one in ten for ten balanced
classes), so the share of labels that actually change (`changed`) is a little below f.

Per fraction and seed (`fraction_run`): train as the train stage does (gisweep.train.fit, with
`max_epochs` as the cap; a run that hits it is reported as not converged), then the exact GI of every
same-class pair line of the configured classes under the *training* labels. `fraction_table` gathers
the runs into results/tables/label_fractions.parquet; `plot_label_fractions` draws mean ± spread
(min-max over seeds, with the seed mean) of GI and accuracies against the fraction.
"""
from __future__ import annotations

import sys

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.data import load_table
from gisweep.gi import exact_intervals
from gisweep.io import provenance, read_parquet, write_csv, write_parquet
from gisweep.lines import materialize, same_class_pairs
from gisweep.models import save_model
from gisweep.runtime import pick_device, pick_dtype
from gisweep.train import add_training_args, fit, start_model, training_args

RUN_COLUMNS = ["percent", "seed", "n_train", "randomized", "changed", "epochs", "converged", "train_acc",
               "train_acc_true", "val_acc", "lines", "mean_gi", "median_gi", "std_gi", "full_range", "mean_pieces"]


def candidate_count(n: int, fraction: float) -> int:
    """floor(fraction·n + 1/2): fraction·n rounded half up."""
    if not 0.0 <= fraction <= 1.0:
        raise GisweepError(f"label fraction {fraction} is outside [0, 1]")
    return int(np.floor(fraction * n + 0.5))


def fraction_labels(y_true: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training labels [n], candidate mask [n]): the labels of a seeded subset permuted among themselves."""
    y_true = np.asarray(y_true)
    n = len(y_true)
    k = candidate_count(n, fraction)
    chosen = np.sort(np.random.default_rng([seed, 0xF4AC]).permutation(n)[:k])
    y = y_true.copy()
    y[chosen] = np.random.default_rng([seed, 0x5EED]).permutation(y_true[chosen])
    mask = np.zeros(n, bool)
    mask[chosen] = True
    return y, mask


def fraction_run(data_path, out_model, out_run, *, percent: int, arch: str, seed: int, classes=(5,),
                 t_min: float = -1.0, t_max: float = 2.0, lr: float = 0.01, momentum: float = 0.9, optimizer: str = "sgd",
                 batch_size: int = 32, max_epochs: int = 2000, init_scale: float = 0.05, device: str = "auto",
                 dtype: str = "float64", memory_mb: float = 1024.0, threads: int | None = None) -> pd.DataFrame:
    """Train one model on labels randomised at `percent` %, measure pair GI; write model and a one-row table."""
    if not 0 <= percent <= 100:
        raise GisweepError(f"fractions.percents: {percent} is outside 0..100")
    if threads:
        torch.set_num_threads(threads)
    dev, dt = pick_device(device), pick_dtype(dtype)
    # the train stage's set-up (gisweep.train.train), with the fraction's labels
    x_tr, y_true, x_val, y_val = load_table(data_path)
    y_tr, mask = fraction_labels(y_true, percent / 100, seed)
    model, n_classes, as_t = start_model(x_tr, y_true, y_val, arch=arch, seed=seed, init_scale=init_scale, dev=dev)
    xt, yt, xv, yv = as_t(x_tr), as_t(y_tr, torch.long), as_t(x_val), as_t(y_val, torch.long)
    history, converged = fit(model, xt, yt, xv, yv, optimizer=optimizer, lr=lr, momentum=momentum, batch_size=batch_size,
                             max_epochs=max_epochs, seed=seed)
    model.eval()
    last = history.iloc[-1]
    lines = same_class_pairs(y_tr, list(classes), t_min, t_max)
    x0, d, lo, hi = (v.to(dev) for v in materialize(lines, x_tr, dtype=dt))
    res = exact_intervals(model, x0, d, lo, hi, dtype=dt, memory_mb=memory_mb).to_frame()
    with torch.no_grad():
        true_acc = float((model(xt).argmax(1).cpu().numpy() == y_true).mean())
    row = {"percent": percent, "seed": seed, "n_train": len(y_tr), "randomized": int(mask.sum()),
           "changed": int((y_tr != y_true).sum()), "epochs": int(last.epoch), "converged": bool(converged),
           "train_acc": float(last.train_acc), "train_acc_true": true_acc, "val_acc": float(last.val_acc),
           "lines": len(res), "mean_gi": res.gi.mean(), "median_gi": res.gi.median(), "std_gi": res.gi.std(ddof=0),
           "full_range": float(np.mean(res.gi >= (hi - lo).cpu().numpy() * (1 - 1e-12))),
           "mean_pieces": res.pieces.mean()}
    df = pd.DataFrame([row])[RUN_COLUMNS]
    meta = provenance(stage="label_fraction_run", data=str(data_path), percent=percent, arch=arch, seed=seed,
                      classes=list(classes), t_min=t_min, t_max=t_max, optimizer=optimizer, lr=lr, momentum=momentum,
                      batch_size=batch_size, max_epochs=max_epochs, init_scale=init_scale, device=str(dev),
                      converged=bool(converged), epochs=int(last.epoch))
    save_model(model.cpu(), out_model, arch=arch, in_features=x_tr.shape[1], n_classes=n_classes, meta=meta)
    write_parquet(df, out_run, meta)
    print(df.to_string(index=False))
    if not converged:
        print(f"WARNING: NOT CONVERGED: {out_model}: {percent}% randomised labels, seed {seed}: epoch cap "
              f"{max_epochs} reached at training accuracy {last.train_acc:.4f} < 100% (raise fractions.max_epochs)",
              file=sys.stderr)
    return df


def fraction_table(run_paths, out) -> pd.DataFrame:
    """Concatenate per-run tables into label_fractions.parquet (and a .csv beside it); report non-converged runs."""
    if not run_paths:
        raise GisweepError("label fractions: no run files given")
    df = pd.concat([read_parquet(p, required=RUN_COLUMNS)[RUN_COLUMNS] for p in run_paths], ignore_index=True)
    df = df.sort_values(["percent", "seed"]).reset_index(drop=True)
    meta = provenance(stage="label_fractions", runs=[str(p) for p in run_paths],
                      not_converged=[f"{r.percent}% s{r.seed}" for r in df.itertuples() if not r.converged])
    write_parquet(df, out, meta)
    write_csv(df, Path(out).with_suffix(".csv"))
    print(df.to_string(index=False))
    bad = df[~df.converged]
    if len(bad):
        print(f"WARNING: {len(bad)} of {len(df)} label-fraction runs did NOT converge to 100% training accuracy: "
              + ", ".join(f"{r.percent}% seed {r.seed} (train acc {r.train_acc:.3f} after {r.epochs} epochs)"
                          for r in bad.itertuples()), file=sys.stderr)
    else:
        print(f"all {len(df)} label-fraction runs converged to 100% training accuracy")
    return df


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per percent: mean, min and max over seeds of mean_gi, train_acc_true, val_acc; runs and converged runs."""
    g = df.groupby("percent")
    out = g.agg(runs=("seed", "size"), converged=("converged", "sum"))
    for col in ["mean_gi", "median_gi", "train_acc", "train_acc_true", "val_acc"]:
        out[f"{col}_mean"], out[f"{col}_min"], out[f"{col}_max"] = g[col].mean(), g[col].min(), g[col].max()
    return out.reset_index()


def plot_label_fractions(table_path, out, title: str = "") -> pd.DataFrame:
    """GI (left) and accuracies (right) against the randomised percent; seed mean with min-max band."""
    import matplotlib.pyplot as plt

    from gisweep.figures import save_figure

    df = read_parquet(table_path, required=RUN_COLUMNS)
    s = summarize(df)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, cols in ((ax, [("mean_gi", "mean pair GI", "tab:blue"), ("median_gi", "median pair GI", "tab:purple")]),
                       (ax2, [("train_acc", "training acc. (training labels)", "tab:green"),
                              ("train_acc_true", "training acc. (true labels)", "tab:olive"),
                              ("val_acc", "validation acc.", "tab:orange")])):
        for col, label, color in cols:
            axis.plot(s.percent, s[f"{col}_mean"], "o-", color=color, label=label)
            axis.fill_between(s.percent, s[f"{col}_min"], s[f"{col}_max"], color=color, alpha=0.2)
            axis.plot(df.percent, df[col], ".", color=color, alpha=0.5, ms=4)
        axis.set_xlabel("labels randomised (%)")
        axis.legend(fontsize=8)
    ax.set_ylabel("GI (class pairs, training labels)")
    ax2.set_ylabel("accuracy")
    bad = df[~df.converged]
    note = "all runs converged" if bad.empty else "NOT converged: " + ", ".join(
        f"{r.percent}%/s{r.seed}" for r in bad.itertuples())
    ax.set_title(f"seeds {sorted(df.seed.unique().tolist())}; band = min-max over seeds", fontsize=9)
    ax2.set_title(note, fontsize=9, color="black" if bad.empty else "tab:red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)
    print(s.to_string(index=False))
    return s


def register_cli(sub) -> None:
    p = sub.add_parser("label-fraction-run", help="train on partly randomised labels; pair GI and accuracy")
    p.add_argument("--data", required=True)
    p.add_argument("--percent", type=int, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--classes", type=int, nargs="+", default=[5])
    p.add_argument("--t-min", type=float, default=-1.0)
    p.add_argument("--t-max", type=float, default=2.0)
    add_training_args(p)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--memory-mb", type=float, default=1024.0)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: fraction_run(
        a.data, a.out_model, a.out, percent=a.percent, arch=a.arch, seed=a.seed, classes=a.classes, t_min=a.t_min,
        t_max=a.t_max, dtype=a.dtype, memory_mb=a.memory_mb, **training_args(a)))

    p = sub.add_parser("label-fractions-table", help="gather label-fraction runs into one table")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: fraction_table(a.runs, a.out))

    p = sub.add_parser("plot-label-fractions", help="GI and accuracy against the randomised fraction")
    p.add_argument("--table", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: plot_label_fractions(a.table, a.out, a.title))
