"""The small ResNet-style CNN whose 64 globally pooled features are a hull space, and those features.

The paper (Yousefzadeh 2021, section 2) measures hull distances in the 64-dimensional space just
after a ResNet's last pooling layer. Here: a 3x3 stride-2 stem conv to `width` channels, three residual blocks
(width, 2 width with stride 2, 64 with stride 2; each two 3x3 convs with batch norm and an identity or
1x1 projection shortcut), global average pooling to 64 features, and a linear classifier.
Trained by gisweep.resnet_features (command `train-resnet`); its file is a torch record
{'side', 'width', 'n_classes', 'state_dict', 'meta'} (atomic), read back by `load_resnet`.
gisweep.spaces maps images to the pooled features with `pooled_features`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gisweep import GisweepError
from gisweep.io import load_torch, save_torch

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
