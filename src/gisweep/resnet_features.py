"""Training the ResNet-20 of gisweep.resnet (command `train-resnet`) on the training rows of a data table.

The hull study trains it on the hull's own training set (results/{dataset}/d{dim}/hull/data.parquet).
Adam on the real labels for a few epochs with a cosine learning-rate decay, deterministically by seed
(on the CPU). The accuracy on the
training and test rows (eval mode, after training) is stored in the file's meta record, and from there
in the hull summary. Output: the torch file of gisweep.resnet (`save_resnet` / `load_resnet`).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from gisweep import GisweepError
from gisweep.io import provenance
from gisweep.resnet import ResNet20, resnet_features, save_resnet
from gisweep.runtime import seed_everything
from gisweep.schema import integer, schema_number
from gisweep.spaces import RESNET_MIN_SIDE, image_shape


def check_images(features: int, where: str) -> tuple[int, int]:
    """(side, channels) of rows with `features` entries, or a clear error when the ResNet cannot take them."""
    side, channels = image_shape(features)
    if side < RESNET_MIN_SIDE:
        raise GisweepError(f"{where}: {side}x{side} images are too small for the ResNet's two stride-2 stages "
                           f"(need a side of at least {RESNET_MIN_SIDE})")
    return side, channels


def fit_resnet(x, y, *, side: int, channels: int = 1, seed: int = 0, epochs: int = 5, lr: float = 3e-3,
               batch_size: int = 64, width: int = 16, log_every: float = 5.0) -> tuple[ResNet20, list[dict]]:
    """Train on x [n, side*side*channels] (float, [0, 1]) and labels y [n]; returns (model in eval mode,
    history: per epoch the mean loss and the running minibatch accuracy (train mode); no timings, so that
    the model file, which stores it, has the same bytes on every run; the progress lines print them)."""
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    n_classes = int(yt.max()) + 1
    model = ResNet20(side, channels, n_classes, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)  # lr decays to 0 over the epochs
    history, t0, last, cpu0 = [], time.monotonic(), time.monotonic(), time.process_time()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, correct = 0.0, 0
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:  # batch norm needs two samples; the last single sample waits for the next epoch
                continue
            opt.zero_grad(set_to_none=True)
            logits = model(xt[idx])
            loss = F.cross_entropy(logits, yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
        sched.step()
        seconds = time.monotonic() - t0
        history.append({"epoch": epoch, "loss": total / len(xt), "running_acc": correct / len(xt)})
        if time.monotonic() - last > log_every or epoch == epochs:
            last = time.monotonic()
            print(f"resnet epoch {epoch}: loss {total / len(xt):.4f}, running train acc {correct / len(xt):.4f}, "
                  f"{seconds:.0f} s ({seconds / epoch:.1f} s/epoch; CPU {(time.process_time() - cpu0) / epoch:.1f} s/epoch)",
                  file=sys.stderr, flush=True)
    return model.eval(), history


def accuracy(model: ResNet20, x, y) -> float | None:
    """Fraction of rows classified correctly in eval mode (None for no rows)."""
    if len(x) == 0:
        return None
    logits = model.head(torch.as_tensor(resnet_features(model, x, "pool"), dtype=torch.float32))
    return float((logits.argmax(1) == torch.as_tensor(np.asarray(y, dtype=np.int64))).float().mean())


def train_resnet(data_path, out, *, seed: int = 0, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                 width: int = 16, threads: int | None = None) -> None:
    """Train the ResNet on the training rows of a data table (real labels) and save it to `out`."""
    from gisweep.data import load_table

    if threads:
        torch.set_num_threads(threads)
    if epochs < 1 or batch_size < 2 or width < 1 or not lr > 0:
        raise GisweepError(f"ResNet settings: need epochs >= 1, batch_size >= 2, width >= 1, lr > 0 (got epochs="
                           f"{epochs}, batch_size={batch_size}, width={width}, lr={lr})")
    x_tr, y_tr, x_te, y_te = load_table(data_path)
    side, channels = check_images(x_tr.shape[1], str(data_path))
    if not (np.isfinite(x_tr).all() and np.isfinite(x_te).all()):
        raise GisweepError(f"{data_path}: column 'x' holds NaN or infinite values")
    t0 = time.monotonic()
    model, history = fit_resnet(x_tr, y_tr, side=side, channels=channels, seed=seed, epochs=epochs, lr=lr,
                                batch_size=batch_size, width=width)
    train_seconds = time.monotonic() - t0
    train_acc, test_acc = accuracy(model, x_tr, y_tr), accuracy(model, x_te, y_te)
    meta = provenance(stage="train_resnet", data=str(data_path), seed=seed, epochs=epochs, lr=lr,
                      batch_size=batch_size, width=width, history=history, train_acc=train_acc, test_acc=test_acc,
                      train_points=int(len(x_tr)), test_points=int(len(x_te)))
    save_resnet(model, out, n_classes=model.head.out_features, meta=meta)
    print(f"{out}: ResNet-20 (width {width}) on {len(x_tr)} {side}x{side}x{channels} images, {epochs} epochs in "
          f"{train_seconds:.1f} s ({train_seconds / epochs:.1f} s/epoch); train acc {train_acc:.4f}, test acc "
          f"{test_acc if test_acc is None else round(test_acc, 4)}")


def register_cli(sub) -> None:
    p = sub.add_parser("train-resnet", help="train the ResNet-20 whose features are hull spaces")
    p.add_argument("--data", required=True, help="a data table (the hull study's: .../hull/data.parquet)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=schema_number("hull.resnet_seed"), default=0)
    p.add_argument("--epochs", type=schema_number("hull.resnet_epochs"), default=10)
    p.add_argument("--lr", type=schema_number("hull.resnet_lr"), default=3e-3)
    p.add_argument("--batch-size", type=schema_number("hull.resnet_batch_size"), default=64)
    p.add_argument("--width", type=schema_number("hull.resnet_width"), default=16,
                   help="channels of the first stage (then 2x and 4x)")
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.set_defaults(func=lambda a: train_resnet(a.data, a.out, seed=a.seed, epochs=a.epochs, lr=a.lr,
                                               batch_size=a.batch_size, width=a.width, threads=a.threads))
