"""The paper's network: a CIFAR-style ResNet-20, whose pre-pool and pooled features are hull spaces.

Yousefzadeh (2021, section 2) measures hull distances in the feature spaces of a CIFAR ResNet: the
layer before the last pooling (64 channels x 8 x 8 = 4,096 features at 32x32) and the 64 pooled
features. Here (He et al. 2016, section 4.2): a 3x3 stride-1 stem conv to `width` channels with batch
norm, three stages of 3 basic blocks each (width, 2 width, 4 width channels = 16 / 32 / 64; the first
block of stages 2 and 3 has stride 2), global average pooling and a linear classifier: 19 conv layers
and the classifier, 20 weighted layers. A basic block is two 3x3 conv + batch-norm layers with an
identity shortcut, or a 1x1 conv + batch-norm projection where the shape changes.

Input rows are flattened images [n, H*W*C], row-major H, W, C (data.parquet's layout), C = 1 or 3.
Trained by gisweep.resnet_features (command `train-resnet`); its file is a torch record
{'side', 'channels', 'width', 'n_classes', 'state_dict', 'meta'} (atomic), read back by `load_resnet`.
gisweep.spaces maps images to features with `resnet_features`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gisweep import GisweepError
from gisweep.io import load_torch, save_torch

BLOCKS_PER_STAGE = 3  # ResNet-20: 6 n + 2 layers with n = 3


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


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(Block(c_in, c_out, stride), *[Block(c_out, c_out, 1) for _ in range(BLOCKS_PER_STAGE - 1)])


class ResNet20(nn.Module):
    """[n, side*side*channels] flattened images -> logits [n, n_classes].

    `prepool(x)` gives the last stage's output [n, 4 width, ceil(side/4), ceil(side/4)],
    `pooled(x)` its global average [n, 4 width].
    """

    def __init__(self, side: int, channels: int = 1, n_classes: int = 10, width: int = 16):
        super().__init__()
        self.side, self.channels, self.width = side, channels, width
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(_stage(width, width, 1), _stage(width, 2 * width, 2),
                                    _stage(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, n_classes)

    def images(self, x):
        """Flattened rows [n, H*W*C] (H, W, C order) -> [n, C, H, W]."""
        return x.reshape(-1, self.side, self.side, self.channels).permute(0, 3, 1, 2)

    def prepool(self, x):
        return self.stages(self.stem(self.images(x)))  # [n, 4 width, ceil(side/4), ceil(side/4)]

    def pooled(self, x):
        return self.prepool(x).mean(dim=(2, 3))  # [n, 4 width]

    def forward(self, x):
        return self.head(self.pooled(x))


def prepool_side(side: int) -> int:
    """Side of the last stage's maps: two stride-2 convs (kernel 3, padding 1) of a side-long image."""
    return (((side - 1) // 2 + 1) - 1) // 2 + 1


def resnet_features(model: ResNet20, x, layer: str, batch: int = 512) -> np.ndarray:
    """x [n, side*side*C] -> 'prepool' [n, 4w * s' * s'] (flattened C, H, W) or 'pool' [n, 4w], float64
    (eval mode: batch norm uses its running statistics; no gradients)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    expect = model.side**2 * model.channels
    if xt.shape[1] != expect:
        raise GisweepError(f"rows have {xt.shape[1]} features but the ResNet expects {model.side}x{model.side}"
                           f"x{model.channels} images ({expect})")
    if layer not in ("prepool", "pool"):
        raise GisweepError(f"ResNet layer '{layer}': expected 'prepool' or 'pool'")
    take = model.pooled if layer == "pool" else (lambda b: model.prepool(b).flatten(1))
    model.eval()
    with torch.no_grad():
        out = [take(xt[i : i + batch]) for i in range(0, len(xt), batch)]
    return torch.cat(out).double().numpy()


def save_resnet(model: ResNet20, path, *, n_classes: int, meta: dict) -> None:
    record = {"side": model.side, "channels": model.channels, "width": model.width, "n_classes": n_classes,
              "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    save_torch(record, path)


def load_resnet(path, with_meta: bool = False):
    """The ResNet saved by train_resnet (CPU, eval mode), and its meta record if with_meta; a missing or
    wrong file raises GisweepError naming it."""
    record = load_torch(path, "ResNet model", required=("side", "channels", "n_classes", "width", "state_dict"))
    try:
        model = ResNet20(int(record["side"]), int(record["channels"]), int(record["n_classes"]), int(record["width"]))
        model.load_state_dict(record["state_dict"])
    except Exception as e:
        raise GisweepError(f"{path}: not a readable gisweep ResNet file ({type(e).__name__}: {e})") from None
    return (model.eval(), record.get("meta", {})) if with_meta else model.eval()
