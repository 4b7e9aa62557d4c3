"""A small ResNet-style CNN trained on the training rows; its 64 globally pooled features are a hull space.

The paper (Yousefzadeh 2021, section 2) measures hull distances in the 64-dimensional space just
after a ResNet's last pooling layer. Here: a 3x3 stride-2 stem conv to `width` channels, three residual blocks
(width, 2 width with stride 2, 64 with stride 2; each two 3x3 convs with batch norm and an identity or
1x1 projection shortcut), global average pooling to 64 features, and a linear classifier. Trained with
Adam on the real labels for a few epochs on the CPU, deterministically by seed.

Output of the `train-resnet` subcommand: a torch file {'side', 'width', 'n_classes', 'state_dict',
'meta'} (atomic), read back by `load_resnet`.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gisweep import GisweepError
from gisweep.io import load_torch, provenance, save_torch
from gisweep.runtime import seed_everything

POOLED = 64  # features after global average pooling


class Block(nn.Module):
    """Two 3x3 conv + batch-norm layers with a shortcut (1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                      if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class SmallResNet(nn.Module):
    """[n, side*side] flattened images -> logits [n, n_classes]; `features` gives the pooled [n, 64]."""

    def __init__(self, side: int, n_classes: int = 10, width: int = 16):
        super().__init__()
        self.side = side
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, POOLED, 2))
        self.head = nn.Linear(POOLED, n_classes)

    def features(self, x):
        h = self.blocks(self.stem(x.reshape(-1, 1, self.side, self.side)))  # [n, 64, s', s']
        return h.mean(dim=(2, 3))  # [n, 64]

    def forward(self, x):
        return self.head(self.features(x))


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


def pooled_features(model: SmallResNet, x, batch: int = 1024) -> np.ndarray:
    """The 64 pooled features of x [n, side*side] -> [n, 64] float64 (eval mode, no gradients)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if xt.shape[1] != model.side**2:
        raise GisweepError(f"rows have {xt.shape[1]} features but the CNN expects {model.side}x{model.side} images")
    model.eval()
    with torch.no_grad():
        out = [model.features(xt[i : i + batch]) for i in range(0, len(xt), batch)]
    return torch.cat(out).double().numpy()


def save_resnet(model: SmallResNet, path, *, width: int, n_classes: int, meta: dict) -> None:
    record = {"side": model.side, "width": width, "n_classes": n_classes,
              "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    save_torch(record, path)


def load_resnet(path) -> SmallResNet:
    """The CNN saved by train_resnet (CPU, eval mode); a missing or wrong file raises GisweepError naming it."""
    record = load_torch(path, "CNN model", required=("side", "n_classes", "width", "state_dict"))
    try:
        model = SmallResNet(int(record["side"]), int(record["n_classes"]), int(record["width"]))
        model.load_state_dict(record["state_dict"])
    except Exception as e:
        raise GisweepError(f"{path}: not a readable gisweep CNN file ({type(e).__name__}: {e})") from None
    return model.eval()


def train_resnet(data_path, out, *, seed: int = 0, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                 width: int = 16, threads: int | None = None) -> None:
    """Train the CNN on the training rows of data.parquet (real labels) and save it to `out`."""
    from gisweep.data import load_table
    from gisweep.spaces import image_side

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
