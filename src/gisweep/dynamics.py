"""GI during training (the paper's Figure 9): mean pair GI against training and validation accuracy.

The network is trained again exactly as the train stage trains it (same data, labels, seed,
initialisation, SGD order and stopping rule: gisweep.train.start_training), so on a CPU it is the same network
as the pipeline's model.pt, bit for bit; `gi_during_training` checks that against a reference model
file when given one and says so in its output. At each checkpoint epoch (epoch 0 = the
initialisation; the last epoch is always added) it measures, on the current weights: the exact GI of
every same-class pair line of the configured classes (training labels, as in the lines stage),
training and validation accuracy (as in the train stage) and the training loss.

Output `gi_during_training.parquet`, one row per checkpoint: epoch, train_acc, val_acc, train_loss,
lines, mean_gi, median_gi, std_gi, full_range (share of lines whose GI spans the whole range),
anchor_correct (share of lines whose class at t = 0 is their training label: a network that
predicts one class everywhere has GI at the full range on every line, so read mean_gi with it),
mean_pieces, final (the last epoch). Provenance: the training settings, converged, epochs and
same_as_reference (True / False / None when no reference was given).

`gi-vs-accuracy` turns those tables (one per seed) into results/tables/gi_vs_accuracy.csv: per seed,
Pearson and Spearman correlation of mean_gi with each accuracy. Figure 9 is drawn from both by
gisweep.figures.dynamics.
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
import torch

from gisweep import GisweepError
from gisweep.io import provenance, read_parquet, read_provenance, write_csv, write_parquet
from gisweep.models import load_record
from gisweep.pair_gi import add_pair_gi_args, pair_gi, pair_lines
from gisweep.runtime import pick_dtype
from gisweep.schema import schema_number
from gisweep.train import accuracy, add_training_args, start_training, training_args

DYNAMICS_COLUMNS = ["epoch", "train_acc", "val_acc", "train_loss", "lines", "mean_gi", "median_gi", "std_gi",
                    "full_range", "anchor_correct", "mean_pieces", "final"]
ACCURACIES = ("train_acc", "val_acc")  # correlated with mean_gi, in this order


def same_weights(model: torch.nn.Module, reference_path) -> bool:
    """True when model's parameters equal those stored in a gisweep model file, bit for bit."""
    ref = load_record(reference_path)["state_dict"]
    mine = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return set(ref) == set(mine) and all(
        ref[k].dtype == mine[k].dtype and ref[k].shape == mine[k].shape and torch.equal(ref[k], mine[k])
        for k in mine)


def gi_during_training(data_path, out, *, arch: str, seed: int, checkpoint_epochs, classes=(5,),
                       t_min: float = -1.0, t_max: float = 2.0, labels: str = "real", dtype: str = "float64",
                       memory_mb: float | None = None, reference_model=None, out_model=None, **options) -> pd.DataFrame:
    """Train as the train stage does, measuring GI and accuracy at each checkpoint; write `out`.

    options: the training options of gisweep.train.start_training (lr, batch_size, device, threads, ...).
    """
    checkpoint_epochs = sorted({int(e) for e in checkpoint_epochs})
    if not checkpoint_epochs or checkpoint_epochs[0] < 0:
        raise GisweepError(f"dynamics.checkpoint_epochs must be a non-empty list of epochs >= 0, got {checkpoint_epochs}")
    dt = pick_dtype(dtype)
    if reference_model is not None:
        load_record(reference_model)  # an unreadable reference fails now, not after the training
    run = start_training(data_path, arch=arch, seed=seed, labels=labels, **options)
    dev = run.device
    # the lines: same-class pairs under the training labels
    lines = pair_lines(run.x_tr, run.y_tr, classes, t_min, t_max, dt, dev)
    rows = []

    def measure(epoch: int, net) -> None:
        net.eval()
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(net(run.x), run.y))
        res, gi = pair_gi(net, lines, dt, memory_mb)
        rows.append({"epoch": epoch, "train_acc": accuracy(net, run.x, run.y),
                     "val_acc": accuracy(net, run.x_val, run.y_val), "train_loss": loss, **gi,
                     "anchor_correct": float(np.mean(res.class0.to_numpy() == lines.table.label.to_numpy())),
                     "final": False})
        print(f"epoch {epoch}: train {rows[-1]['train_acc']:.4f}, val {rows[-1]['val_acc']:.4f}, "
              f"mean GI {rows[-1]['mean_gi']:.4f} over {len(res)} lines", file=sys.stderr, flush=True)

    history, converged = run.fit(checkpoint_epochs=checkpoint_epochs, on_checkpoint=measure)
    last_epoch = int(history.epoch.iloc[-1]) if len(history) else 0
    if not rows or rows[-1]["epoch"] != last_epoch:
        measure(last_epoch, run.model)
    rows[-1]["final"] = True
    df = pd.DataFrame(rows)[DYNAMICS_COLUMNS]
    same = None if reference_model is None else same_weights(run.model.cpu(), reference_model)
    meta = provenance(stage="gi_during_training", data=str(data_path), converged=converged, epochs=last_epoch,
                      classes=list(classes), t_min=t_min, t_max=t_max, dtype=dtype,
                      checkpoint_epochs=checkpoint_epochs, reference_model=str(reference_model) if reference_model else None,
                      same_as_reference=same, labels=labels, **run.settings)
    if out_model:
        run.save(out_model, meta)
    write_parquet(df, out, meta)
    print(df.to_string(index=False))
    print(f"{out}: {len(df)} checkpoints, last epoch {last_epoch}, converged {converged}, "
          f"same weights as {reference_model}: {same}")
    if not converged:
        print(f"WARNING: {out}: epoch cap {run.settings['max_epochs']} reached before 100% training accuracy",
              file=sys.stderr)
    if same is False:
        print(f"WARNING: {out}: the retrained network differs from {reference_model}; the checkpoints do not "
              f"describe that model (different settings, or a non-deterministic device)", file=sys.stderr)
    return df


def gi_accuracy_correlations(df: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation (scipy.stats) of mean_gi with train_acc and with val_acc.

    One row per accuracy: accuracy, checkpoints, pearson_r, pearson_p, spearman_rho, spearman_p.
    NaN where it is undefined (fewer than 3 checkpoints, or a constant series).
    """
    from scipy import stats

    missing = [c for c in ["mean_gi", *ACCURACIES] if c not in df.columns]
    if missing:
        raise GisweepError(f"GI-during-training table lacks column(s) {missing}")
    out = []
    for acc in ACCURACIES:
        a, g = df[acc].to_numpy(float), df["mean_gi"].to_numpy(float)
        row = {"accuracy": acc, "checkpoints": len(df), "pearson_r": np.nan, "pearson_p": np.nan,
               "spearman_rho": np.nan, "spearman_p": np.nan}
        if len(df) >= 3 and np.ptp(a) > 0 and np.ptp(g) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, s = stats.pearsonr(g, a), stats.spearmanr(g, a)
            row.update(pearson_r=float(p.statistic), pearson_p=float(p.pvalue),
                       spearman_rho=float(s.statistic), spearman_p=float(s.pvalue))
        out.append(row)
    return pd.DataFrame(out)


def gi_vs_accuracy(dynamics_paths, out) -> pd.DataFrame:
    """results/tables/gi_vs_accuracy.csv: the correlations of each GI-during-training table (one per seed),
    with its seed, source, whether training converged and whether the retrained network is the pipeline's model."""
    paths = [dynamics_paths] if isinstance(dynamics_paths, (str, os.PathLike)) else list(dynamics_paths)
    if not paths:
        raise GisweepError("gi-vs-accuracy: no GI-during-training table given")
    frames, seeds = [], set()
    for path in paths:
        df = read_parquet(path, required=DYNAMICS_COLUMNS).sort_values("epoch")
        meta = read_provenance(path)
        seed = meta.get("seed")
        if seed in seeds:
            raise GisweepError(f"{path}: a second GI-during-training table of seed {seed}")
        seeds.add(seed)
        corr = gi_accuracy_correlations(df)
        corr.insert(0, "seed", seed)
        corr.insert(1, "source", str(path))
        corr["converged"], corr["same_as_pipeline_model"] = meta.get("converged"), meta.get("same_as_reference")
        frames.append(corr)
    table = pd.concat(frames, ignore_index=True)
    write_csv(table, out)
    print(table.to_string(index=False))
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("gi-during-training", help="retrain with checkpoints; pair GI and accuracy at each")
    p.add_argument("--data", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--labels", default="real", choices=["real", "random"])
    p.add_argument("--seed", type=schema_number("dynamics.seeds[]"), required=True)
    p.add_argument("--checkpoint-epochs", type=schema_number("dynamics.checkpoint_epochs[]"), nargs="+", required=True)
    add_pair_gi_args(p)
    add_training_args(p)
    p.add_argument("--reference-model", default=None, help="model.pt the retrained network must equal")
    p.add_argument("--out-model", default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: gi_during_training(
        a.data, a.out, arch=a.arch, seed=a.seed, checkpoint_epochs=a.checkpoint_epochs, classes=a.classes,
        t_min=a.t_min, t_max=a.t_max, labels=a.labels, dtype=a.dtype, memory_mb=a.memory_mb,
        reference_model=a.reference_model, out_model=a.out_model, **training_args(a)))

    p = sub.add_parser("gi-vs-accuracy", help="correlations of GI with train and validation accuracy")
    p.add_argument("--dynamics", required=True, nargs="+", help="gi_during_training.parquet files, one per seed")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: gi_vs_accuracy(a.dynamics, a.out))
