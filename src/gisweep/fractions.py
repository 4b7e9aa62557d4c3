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

Per fraction and seed (`fraction_run`): train as the train stage does (gisweep.train.start_training, with
`max_epochs` as the cap; a run that hits it is reported as not converged), then the exact GI of every
same-class pair line of the configured classes under the *training* labels. `fraction_table` gathers
the runs into results/tables/label_fractions.parquet (and a CSV copy); gisweep.figures.fractions
draws mean ± spread (min-max over seeds, with the seed mean) of GI and accuracies against the fraction.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.io import provenance, read_parquet, write_csv, write_parquet
from gisweep.pair_gi import add_pair_gi_args, pair_gi, pair_lines
from gisweep.runtime import pick_dtype
from gisweep.schema import schema_number
from gisweep.train import accuracy, add_training_args, start_training, training_args

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
                 t_min: float = -1.0, t_max: float = 2.0, dtype: str = "float64", memory_mb: float | None = None,
                 **options) -> pd.DataFrame:
    """Train one model on labels randomised at `percent` %, measure pair GI; write model and a one-row table.

    options: the training options of gisweep.train.start_training (lr, batch_size, device, threads, ...).
    """
    if not 0 <= percent <= 100:
        raise GisweepError(f"fractions.percents: {percent} is outside 0..100")
    dt = pick_dtype(dtype)
    run = start_training(data_path, arch=arch, seed=seed,
                         labels=lambda y: fraction_labels(y, percent / 100, seed)[0], **options)
    history, converged = run.fit()
    model, y_tr, y_true = run.model.eval(), run.y_tr, run.y_true
    last = history.iloc[-1]
    lines = pair_lines(run.x_tr, y_tr, classes, t_min, t_max, dt, run.device)
    _, gi = pair_gi(model, lines, dt, memory_mb)
    true_acc = accuracy(model, run.x, torch.as_tensor(y_true, dtype=torch.long, device=run.device))
    row = {"percent": percent, "seed": seed, "n_train": len(y_tr), "randomized": candidate_count(len(y_tr), percent / 100),
           "changed": int((y_tr != y_true).sum()), "epochs": int(last.epoch), "converged": bool(converged),
           "train_acc": float(last.train_acc), "train_acc_true": true_acc, "val_acc": float(last.val_acc),
           **gi}
    df = pd.DataFrame([row])[RUN_COLUMNS]
    meta = provenance(stage="label_fraction_run", data=str(data_path), percent=percent, classes=list(classes),
                      t_min=t_min, t_max=t_max, converged=bool(converged), epochs=int(last.epoch), **run.settings)
    run.save(out_model, meta)
    write_parquet(df, out_run, meta)
    print(df.to_string(index=False))
    if not converged:
        print(f"WARNING: NOT CONVERGED: {out_model}: {percent}% randomised labels, seed {seed}: epoch cap "
              f"{run.settings['max_epochs']} reached at training accuracy {last.train_acc:.4f} < 100% "
              "(raise fractions.max_epochs)", file=sys.stderr)
    return df


def fraction_table(run_paths, out, out_csv=None) -> pd.DataFrame:
    """Concatenate per-run tables into label_fractions.parquet (`out`) and, when given, a readable copy
    `out_csv`; report non-converged runs."""
    if not run_paths:
        raise GisweepError("label fractions: no run files given")
    df = pd.concat([read_parquet(p, required=RUN_COLUMNS)[RUN_COLUMNS] for p in run_paths], ignore_index=True)
    df = df.sort_values(["percent", "seed"]).reset_index(drop=True)
    meta = provenance(stage="label_fractions", runs=[str(p) for p in run_paths],
                      not_converged=[f"{r.percent}% s{r.seed}" for r in df.itertuples() if not r.converged])
    write_parquet(df, out, meta)
    if out_csv:
        write_csv(df, out_csv)
    print(df.to_string(index=False))
    bad = df[~df.converged]
    if len(bad):
        print(f"WARNING: {len(bad)} of {len(df)} label-fraction runs did NOT converge to 100% training accuracy: "
              + ", ".join(f"{r.percent}% seed {r.seed} (train acc {r.train_acc:.3f} after {r.epochs} epochs)"
                          for r in bad.itertuples()), file=sys.stderr)
    else:
        print(f"all {len(df)} label-fraction runs converged to 100% training accuracy")
    return df


def register_cli(sub) -> None:
    p = sub.add_parser("label-fraction-run", help="train on partly randomised labels; pair GI and accuracy")
    p.add_argument("--data", required=True)
    p.add_argument("--percent", type=schema_number("fractions.percents[]"), required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--seed", type=schema_number("fractions.seeds[]"), required=True)
    add_pair_gi_args(p)
    add_training_args(p)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: fraction_run(
        a.data, a.out_model, a.out, percent=a.percent, arch=a.arch, seed=a.seed, classes=a.classes, t_min=a.t_min,
        t_max=a.t_max, dtype=a.dtype, memory_mb=a.memory_mb, **training_args(a)))

    p = sub.add_parser("label-fractions-table", help="gather label-fraction runs into one table")
    p.add_argument("--inputs", nargs="+", required=True, help="fraction_run.parquet files")
    p.add_argument("--out-table", required=True, help="label_fractions.parquet")
    p.add_argument("--out-csv", default=None, help="the same table as CSV")
    p.set_defaults(func=lambda a: fraction_table(a.inputs, a.out_table, a.out_csv))
