"""Training the small CNN of gisweep.resnet (command `train-resnet`) on the training rows of data.parquet.

Adam on the real labels for a few epochs on the CPU, deterministically by seed. Output: the torch file
of gisweep.resnet (`save_resnet` / `load_resnet`).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from gisweep.io import provenance
from gisweep.resnet import SmallResNet, pooled_features, save_resnet
from gisweep.runtime import seed_everything
from gisweep.spaces import image_side


def fit_resnet(x, y, *, side: int, seed: int = 0, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
               width: int = 16, log_every: float = 5.0) -> tuple[SmallResNet, list[dict]]:
    """Train on x [n, side*side] (float, [0, 1]) and labels y [n]; returns (model in eval mode, history)."""
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    n_classes = int(yt.max()) + 1
    model = SmallResNet(side, n_classes, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, t0, last = [], time.monotonic(), time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(xt).argmax(1) == yt).float().mean())
        history.append({"epoch": epoch, "loss": total / len(xt), "train_acc": acc})
        if time.monotonic() - last > log_every or epoch == epochs:
            last = time.monotonic()
            print(f"resnet epoch {epoch}: loss {total / len(xt):.4f}, train acc {acc:.4f}, {last - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return model.eval(), history


def train_resnet(data_path, out, *, seed: int = 0, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                 width: int = 16, threads: int | None = None) -> None:
    """Train the CNN on the training rows of data.parquet (real labels) and save it to `out`."""
    from gisweep.data import load_table

    if threads:
        torch.set_num_threads(threads)
    x_tr, y_tr, x_te, y_te = load_table(data_path)
    side = image_side(x_tr.shape[1])
    t0 = time.monotonic()
    model, history = fit_resnet(x_tr, y_tr, side=side, seed=seed, epochs=epochs, lr=lr, batch_size=batch_size,
                                width=width)
    with torch.no_grad():
        logits = model.head(torch.as_tensor(pooled_features(model, x_te), dtype=torch.float32)) if len(x_te) else None
    test_acc = float((logits.argmax(1) == torch.as_tensor(y_te)).float().mean()) if len(x_te) else float("nan")
    meta = provenance(stage="train_resnet", data=str(data_path), seed=seed, epochs=epochs, lr=lr,
                      batch_size=batch_size, width=width, history=history, test_acc=test_acc,
                      seconds=time.monotonic() - t0)
    save_resnet(model, out, width=width, n_classes=model.head.out_features, meta=meta)
    print(f"{out}: train acc {history[-1]['train_acc']:.4f}, test acc {test_acc:.4f}, "
          f"{time.monotonic() - t0:.1f} s")


def register_cli(sub) -> None:
    p = sub.add_parser("train-resnet", help="train the small CNN whose pooled features are a hull space")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=lambda a: train_resnet(a.data, a.out, seed=a.seed, epochs=a.epochs, lr=a.lr,
                                               batch_size=a.batch_size, width=a.width, threads=a.threads))
