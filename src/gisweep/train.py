"""The train stage: an MLP on real or permuted labels, by SGD, until 100% training accuracy.

Outputs under results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/: `model.pt` (see models.load_model)
and `history.parquet` (per epoch: loss, train_acc, val_acc). Validation accuracy is measured against
the true labels of the validation rows, also for a model trained on permuted labels.
If the epoch cap is hit before 100% training accuracy, a warning is printed and the files say so
(`converged` = False in the model's meta and the history's provenance).
"""
from __future__ import annotations

import sys
import time

import pandas as pd
import torch
from torch import nn

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.io import provenance, write_parquet
from gisweep.models import build_mlp, save_model
from gisweep.runtime import pick_device, seed_everything


def accuracy(model, x, y, batch: int = 8192) -> float:
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / max(len(x), 1)


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
    """Minibatch training until training accuracy is 1.0 or max_epochs; returns (history DataFrame, converged)."""
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    rows, converged, last_log, t0 = [], False, time.monotonic(), time.monotonic()
    checkpoint_epochs = set(checkpoint_epochs)
    if 0 in checkpoint_epochs and on_checkpoint:
        on_checkpoint(0, model)
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
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


def start_model(x_tr, y_true, y_val, *, arch: str, seed: int, init_scale: float, dev):
    """The freshly initialised model and the float32/long tensors it trains on, exactly as every
    training stage sets them up (so the same seed gives the same network in each).

    x_tr [n, F] float32, y_true [n] true training labels, y_val [m] (the class count comes from the true
    labels); returns (model, n_classes, as_tensor), as_tensor(a, dtype=float32) putting a on the device.
    """
    n_classes = int(max(y_true.max(), y_val.max() if len(y_val) else 0)) + 1
    gen = seed_everything(seed)
    model = build_mlp(arch, x_tr.shape[1], n_classes, init_scale, generator=gen).to(dev)
    as_t = lambda a, dt=torch.float32: torch.as_tensor(a, dtype=dt, device=dev)  # noqa: E731
    return model, n_classes, as_t


def train(data_path, out_model, out_history, *, arch: str, labels: str, seed: int, lr: float = 0.01,
          momentum: float = 0.9, batch_size: int = 32, max_epochs: int = 2000, init_scale: float = 0.05,
          device: str = "auto", threads: int | None = None, optimizer: str = "sgd") -> None:
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    x_tr, y_true, x_val, y_val = load_table(data_path)
    y_tr = training_labels(y_true, labels, seed)
    model, n_classes, as_t = start_model(x_tr, y_true, y_val, arch=arch, seed=seed, init_scale=init_scale, dev=dev)
    history, converged = fit(
        model, as_t(x_tr), as_t(y_tr, torch.long), as_t(x_val), as_t(y_val, torch.long),
        lr=lr, momentum=momentum, batch_size=batch_size, max_epochs=max_epochs, seed=seed, optimizer=optimizer)
    last = history.iloc[-1]
    settings = dict(arch=arch, labels=labels, seed=seed, optimizer=optimizer, lr=lr, momentum=momentum, batch_size=batch_size,
                    max_epochs=max_epochs, init_scale=init_scale, device=str(dev))
    meta = provenance(stage="train", data=str(data_path), converged=converged, epochs=int(last.epoch), **settings)
    save_model(model.cpu(), out_model, arch=arch, in_features=x_tr.shape[1], n_classes=n_classes, meta=meta)
    write_parquet(history, out_history, meta)
    print(f"{out_model}: {int(last.epoch)} epochs, train acc {last.train_acc:.4f}, val acc {last.val_acc:.4f}")
    if not converged:
        print(f"WARNING: {out_model}: epoch cap {max_epochs} reached at training accuracy "
              f"{last.train_acc:.4f} < 100%; the model is saved with converged=False", file=sys.stderr)


def add_training_args(p) -> None:
    """The SGD and device options every training subcommand shares."""
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-epochs", type=int, default=2000)
    p.add_argument("--init-scale", type=float, default=0.05)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)


def training_args(a) -> dict:
    """The options added by add_training_args, as keyword arguments."""
    return dict(optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, batch_size=a.batch_size, max_epochs=a.max_epochs,
                init_scale=a.init_scale, device=a.device, threads=a.threads)


def register_cli(sub) -> None:
    p = sub.add_parser("train", help="train an MLP on real or permuted labels")
    p.add_argument("--data", required=True)
    p.add_argument("--arch", required=True, help="LAYERSxWIDTH, e.g. 3x128")
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=int, required=True)
    add_training_args(p)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-history", required=True)
    p.set_defaults(func=lambda a: train(
        a.data, a.out_model, a.out_history, arch=a.arch, labels=a.labels, seed=a.seed, **training_args(a)))
