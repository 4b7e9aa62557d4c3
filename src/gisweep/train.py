"""The train stage: an MLP on real or permuted labels, by SGD, until 100% training accuracy.

Outputs under results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/: `model.pt` (see models.load_model)
and `history.parquet` (per epoch: loss, train_acc, val_acc). Validation accuracy is measured against
the true labels of the validation rows, also for a model trained on permuted labels.
If the epoch cap is hit before 100% training accuracy, a warning is printed and the files say so
(`converged` = False in the model's meta and the history's provenance).

Every stage that trains (this one, gisweep.dynamics, gisweep.fractions) sets up and runs training
through `start_training` and `Training.fit`, so the same settings and seed give the same network,
bit for bit on a CPU, whichever stage trained it. gisweep.train_batched trains the seeds of one cell
as one stacked model, to the same networks and files (bit for bit on a CPU).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.io import provenance, write_parquet
from gisweep.models import build_mlp, save_model
from gisweep.runtime import pick_device, seed_everything
from gisweep.schema import integer, schema_number


def accuracy(model, x, y, batch: int = 8192) -> float:
    """Share of rows whose argmax class is y; x [n, F], y [n] on the model's device. One host sync."""
    hits = torch.zeros((), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            hits += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()
    return int(hits) / max(len(x), 1)


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, params, lr: float, momentum: float):
    """SGD with momentum (the paper's optimizer) or Adam (momentum unused)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise GisweepError(f"unknown optimizer '{name}': expected one of {', '.join(OPTIMIZERS)}")


def fit(model, x, y, x_val, y_val, *, lr, momentum, batch_size, max_epochs, seed, optimizer: str = "sgd",
        checkpoint_epochs=(), on_checkpoint=None, log_every: float = 5.0):
    """Minibatch training until training accuracy is 1.0 or max_epochs; returns (history DataFrame, converged).

    x [n, F], y [n], x_val [m, F], y_val [m] already on the model's device (copied there once). The
    batch order comes from a CPU generator seeded with `seed` (the same on every device); inside an
    epoch nothing waits for the device: the loss is summed there, in float64, and read once per epoch.
    """
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    rows, converged, last_log, t0 = [], False, time.monotonic(), time.monotonic()
    checkpoint_epochs = set(checkpoint_epochs)
    if 0 in checkpoint_epochs and on_checkpoint:
        on_checkpoint(0, model)
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)  # [n]
        total_t = torch.zeros((), dtype=torch.float64, device=x.device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total_t += loss.detach().to(torch.float64) * len(idx)  # = loss.item() * len(idx), without a sync
        total = float(total_t)
        model.eval()
        train_acc, val_acc = accuracy(model, x, y), accuracy(model, x_val, y_val)
        rows.append({"epoch": epoch, "loss": total / len(x), "train_acc": train_acc, "val_acc": val_acc})
        if epoch in checkpoint_epochs and on_checkpoint:
            on_checkpoint(epoch, model)
        if time.monotonic() - last_log > log_every:
            last_log = time.monotonic()
            print(f"epoch {epoch}: loss {total / len(x):.4f}, train {train_acc:.4f}, val {val_acc:.4f}, "
                  f"{last_log - t0:.0f} s", file=sys.stderr, flush=True)
        if train_acc == 1.0:
            converged = True
            break
    return pd.DataFrame(rows), converged


@dataclass
class Training:
    """A freshly initialised model and everything it trains on, as every training stage sets it up.

    x_tr [n, F] float32, y_true [n] true and y_tr [n] training labels (numpy); x, y, x_val, y_val the
    tensors on `device` (float32 / long, copied once); settings: the training options, for provenance.
    """
    model: nn.Sequential
    n_classes: int
    device: torch.device
    x_tr: np.ndarray
    y_true: np.ndarray
    y_tr: np.ndarray
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    seed: int
    settings: dict

    def fit(self, checkpoint_epochs=(), on_checkpoint=None) -> tuple[pd.DataFrame, bool]:
        """Train (gisweep.train.fit) with the settings given to start_training."""
        s = self.settings
        return fit(self.model, self.x, self.y, self.x_val, self.y_val, optimizer=s["optimizer"], lr=s["lr"],
                   momentum=s["momentum"], batch_size=s["batch_size"], max_epochs=s["max_epochs"], seed=self.seed,
                   checkpoint_epochs=checkpoint_epochs, on_checkpoint=on_checkpoint)

    def save(self, out_model, meta: dict) -> None:
        save_model(self.model.cpu(), out_model, arch=self.settings["arch"], in_features=self.x_tr.shape[1],
                   n_classes=self.n_classes, meta=meta)


def start_model(x_tr, y_true, y_val, *, arch: str, seed: int, init_scale: float, dev):
    """The seeded, freshly initialised model (start_training's model, for callers with arrays in hand).

    x_tr [n, F] float32, y_true [n] true training labels, y_val [m] (the class count comes from the true
    labels); returns (model, n_classes, as_tensor), as_tensor(a, dtype=float32) putting a on the device.
    """
    n_classes = int(max(y_true.max(), y_val.max() if len(y_val) else 0)) + 1
    gen = seed_everything(seed)
    model = build_mlp(arch, x_tr.shape[1], n_classes, init_scale, generator=gen).to(dev)

    def as_t(a, dt=torch.float32):
        return torch.as_tensor(a, dtype=dt, device=dev)

    return model, n_classes, as_t


def start_training(data_path, *, arch: str, seed: int, labels: str | Callable[[np.ndarray], np.ndarray] = "real",
                   optimizer: str = "sgd", lr: float = 0.01, momentum: float = 0.9, batch_size: int = 32,
                   max_epochs: int = 2000, init_scale: float = 0.05, device: str = "auto",
                   threads: int | None = None) -> Training:
    """Load data_path, derive the training labels, seed and build the model, copy the data to the device.

    labels: 'real' or 'random' (gisweep.data.training_labels with `seed`), or a function of the true
    labels [n] returning the training labels [n]. The class count comes from the true labels.
    """
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    x_tr, y_true, x_val, y_val = load_table(data_path)
    y_tr = training_labels(y_true, labels, seed) if isinstance(labels, str) else labels(y_true)
    model, n_classes, as_t = start_model(x_tr, y_true, y_val, arch=arch, seed=seed, init_scale=init_scale, dev=dev)
    settings = run_settings(arch=arch, seed=seed, optimizer=optimizer, lr=lr, momentum=momentum, batch_size=batch_size,
                            max_epochs=max_epochs, init_scale=init_scale, device=dev)
    return Training(model, n_classes, dev, x_tr, y_true, y_tr, as_t(x_tr), as_t(y_tr, torch.long), as_t(x_val),
                    as_t(y_val, torch.long), seed, settings)


def run_settings(*, arch, seed, optimizer, lr, momentum, batch_size, max_epochs, init_scale, device) -> dict:
    """The training options of one run, as its provenance records them."""
    return dict(arch=arch, seed=seed, optimizer=optimizer, lr=lr, momentum=momentum, batch_size=batch_size,
                max_epochs=max_epochs, init_scale=init_scale, device=str(device))


def save_run(out_model, out_history, model, history: pd.DataFrame, converged: bool, *, data_path, labels: str,
             settings: dict, in_features: int, n_classes: int) -> None:
    """Write a trained model's model.pt and history.parquet with the train stage's provenance, and say so."""
    last = history.iloc[-1]
    meta = provenance(stage="train", data=str(data_path), converged=converged, epochs=int(last.epoch), labels=labels,
                      **settings)
    save_model(model.cpu(), out_model, arch=settings["arch"], in_features=in_features, n_classes=n_classes, meta=meta)
    write_parquet(history, out_history, meta)
    print(f"{out_model}: {int(last.epoch)} epochs, train acc {last.train_acc:.4f}, val acc {last.val_acc:.4f}")
    if not converged:
        print(f"WARNING: {out_model}: epoch cap {settings['max_epochs']} reached at training accuracy "
              f"{last.train_acc:.4f} < 100%; the model is saved with converged=False", file=sys.stderr)


def train(data_path, out_model, out_history, *, arch: str, labels: str, seed: int, **options) -> None:
    """Train on `labels` ('real' or 'random'); options: those of start_training (lr, device, ...).

    gisweep.train_batched trains several seeds of one cell at once, to the same files.
    """
    run = start_training(data_path, arch=arch, seed=seed, labels=labels, **options)
    history, converged = run.fit()
    save_run(out_model, out_history, run.model, history, converged, data_path=data_path, labels=labels,
             settings=run.settings, in_features=run.x_tr.shape[1], n_classes=run.n_classes)


def add_training_args(p) -> None:
    """The SGD and device options every training subcommand shares."""
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS)
    p.add_argument("--lr", type=schema_number("train.lr"), default=0.01)
    p.add_argument("--momentum", type=schema_number("train.momentum"), default=0.9)
    p.add_argument("--batch-size", type=schema_number("train.batch_size"), default=32)
    p.add_argument("--max-epochs", type=schema_number("train.max_epochs"), default=2000)
    p.add_argument("--init-scale", type=schema_number("train.init_scale"), default=0.05)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=integer(minimum=1), default=None)


def training_args(a) -> dict:
    """The options added by add_training_args, as keyword arguments of start_training."""
    return dict(optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, batch_size=a.batch_size, max_epochs=a.max_epochs,
                init_scale=a.init_scale, device=a.device, threads=a.threads)


def register_cli(sub) -> None:
    p = sub.add_parser("train", help="train an MLP on real or permuted labels")
    p.add_argument("--data", required=True)
    p.add_argument("--arch", required=True, help="LAYERSxWIDTH, e.g. 3x128")
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=schema_number("models.seeds[]"), required=True)
    add_training_args(p)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-history", required=True)
    p.set_defaults(func=lambda a: train(
        a.data, a.out_model, a.out_history, arch=a.arch, labels=a.labels, seed=a.seed, **training_args(a)))
