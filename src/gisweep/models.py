"""ReLU MLPs named by architecture strings like '3x128' (3 hidden layers of 128 units)."""
from __future__ import annotations

import math
import re

import torch
from torch import nn

from gisweep import GisweepError
from gisweep.io import load_torch, save_torch

ARCH_PATTERN = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")


def parse_arch(arch: str) -> list[int]:
    """'3x128' -> [128, 128, 128] (hidden widths)."""
    m = ARCH_PATTERN.match(str(arch))
    if not m:
        raise GisweepError(
            f"unknown architecture '{arch}': expected LAYERSxWIDTH, e.g. 1x512, 2x256, 3x128, 4x128"
        )
    depth, width = int(m.group(1)), int(m.group(2))
    return [width] * depth


def build_mlp(arch: str, in_features: int, n_classes: int, init_scale: float = 0.05,
              generator: torch.Generator | None = None, *, init: str = "uniform",
              dtype: torch.dtype | None = None) -> nn.Sequential:
    """Linear-ReLU-...-Linear with hidden widths parse_arch(arch), drawing only from `generator`.

    init 'uniform': weights uniform in [-init_scale, init_scale], biases zero (the GI models).
    init 'fan_in': weights and biases uniform in +-init_scale / sqrt(fan_in), PyTorch's default
    Linear init times init_scale, drawn as (rand * 2 - 1) * bound, weight then bias, layer by layer
    (the toy 2-D networks of gisweep.toy2d)."""
    if init not in ("uniform", "fan_in"):
        raise GisweepError(f"unknown init '{init}': expected 'uniform' or 'fan_in'")
    widths = [in_features, *parse_arch(arch), n_classes]
    layers: list[nn.Module] = []
    for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(fan_in, fan_out, dtype=dtype)
        with torch.no_grad():
            if init == "uniform":
                lin.weight.uniform_(-init_scale, init_scale, generator=generator)
                lin.bias.zero_()
            else:
                bound = init_scale / math.sqrt(fan_in)
                lin.weight.copy_((torch.rand(fan_out, fan_in, generator=generator, dtype=lin.weight.dtype) * 2 - 1) * bound)
                lin.bias.copy_((torch.rand(fan_out, generator=generator, dtype=lin.bias.dtype) * 2 - 1) * bound)
        layers.append(lin)
        if k < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def save_model(model: nn.Sequential, path, *, arch: str, in_features: int, n_classes: int, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {"arch": arch, "in_features": in_features, "n_classes": n_classes, "state_dict": state, "meta": meta}
    save_torch(record, path)


def load_record(path) -> dict:
    """The saved record: arch, in_features, n_classes, state_dict and the training run's meta."""
    return load_torch(path, "model", required=("arch", "in_features", "n_classes", "state_dict"))


def load_model(path, record: dict | None = None) -> nn.Sequential:
    """The trained network, mapping the `x` column of data.parquet to logits (float32, CPU, eval mode).

    `record`: the file's record when the caller has already read it with load_record.
    """
    record = load_record(path) if record is None else record
    model = build_mlp(record["arch"], record["in_features"], record["n_classes"])
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as e:
        raise GisweepError(f"{path}: weights do not fit architecture {record['arch']}: {e}") from None
    return model.eval()


# ---------------------------------------------------------------------------------------------------
# Small CNNs (gisweep.cnn; exact GI through gisweep.gi's general engine). Additions for issue 15.

CNN_ARCH = "cnn"  # the `arch` of a CNN's record (and of its results folder)


class SmallCNN(nn.Module):
    """Flattened rows [n, side*side*channels] (data.parquet's H, W, C order) -> logits [n, n_classes]:
    conv 5x5 stride 2 padding 2 to `width` maps, ReLU, 2x2 max-pool, Linear to `hidden`, ReLU, Linear.
    At 28x28: [1, 28, 28] -> [width, 14, 14] -> [width, 7, 7] -> hidden -> classes."""

    def __init__(self, side: int, channels: int, n_classes: int, width: int = 4, hidden: int = 64):
        super().__init__()
        self.side, self.channels = side, channels
        pooled = ((side - 1) // 2 + 1) // 2  # after the stride-2 conv and the 2x2 pool
        if pooled < 1:
            raise GisweepError(f"a CNN needs images of side at least 4; got side {side}")
        self.conv = nn.Conv2d(channels, width, 5, stride=2, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(width * pooled * pooled, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x):
        x = x.reshape(-1, self.side, self.side, self.channels).permute(0, 3, 1, 2)  # [n, C, H, W]
        x = self.pool(torch.relu(self.conv(x)))
        return self.out(torch.relu(self.fc(torch.flatten(x, 1))))


def cnn_shape(in_features: int) -> tuple[int, int]:
    """(side, channels) of flattened square images: 1 channel if in_features is a square, else 3."""
    for channels in (1, 3):
        side = math.isqrt(in_features // channels)
        if in_features % channels == 0 and side * side * channels == in_features:
            return side, channels
    raise GisweepError(f"{in_features} features are not a square image of 1 or 3 channels")


def build_cnn(in_features: int, n_classes: int, *, width: int = 4, hidden: int = 64,
              generator: torch.Generator | None = None) -> SmallCNN:
    """A SmallCNN with PyTorch's default init, drawn from `generator` (seeded: the same network)."""
    side, channels = cnn_shape(in_features)
    model = SmallCNN(side, channels, n_classes, width, hidden)
    with torch.no_grad():
        for layer in (model.conv, model.fc, model.out):
            bound = 1.0 / math.sqrt(layer.weight[0].numel())
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    return model


def save_cnn(model: SmallCNN, path, *, in_features: int, n_classes: int, width: int, hidden: int, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {"arch": CNN_ARCH, "in_features": in_features, "n_classes": n_classes, "width": width,
              "hidden": hidden, "state_dict": state, "meta": meta}
    save_torch(record, path)


def load_cnn(path, record: dict | None = None) -> SmallCNN:
    """A saved SmallCNN (sibling of load_model: float32, CPU, eval mode)."""
    record = load_record(path) if record is None else record
    if record["arch"] != CNN_ARCH:
        raise GisweepError(f"{path}: arch '{record['arch']}' is not a CNN ('{CNN_ARCH}'); use load_model")
    model = build_cnn(record["in_features"], record["n_classes"], width=record["width"], hidden=record["hidden"])
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as e:
        raise GisweepError(f"{path}: weights do not fit the CNN: {e}") from None
    return model.eval()


OWN_SUFFIXES = (".pt", ".pth")  # the pipeline's own model files (save_model, save_cnn)


def load_network(path, record: dict | None = None, *, input_shape=None) -> nn.Module:
    """Any network file as an eval-mode torch module that gisweep.gi.exact_intervals accepts.

    By suffix: `.onnx` (converted with onnx2torch) and `.pt2` (torch.export.save; its
    ExportedProgram's module) are networks trained elsewhere (gisweep.networks); `.pt` (or `.pth`,
    or any file when `record` is given) is the pipeline's own record (torch.load with weights_only: no arbitrary objects are unpickled), a
    CNN (load_cnn) or an MLP (load_model) by its arch. `input_shape`: the data's shape per sample,
    checked against the file's declared input (an error names both).
    """
    from pathlib import Path

    from gisweep.networks import check_input_shape, load_outside

    if record is None and Path(path).suffix.lower() not in OWN_SUFFIXES:
        model = load_outside(path)  # .onnx, .pt2, or an error naming the file's unknown type
        declared = model.input_shape
    else:
        record = load_record(path) if record is None else record
        model = load_cnn(path, record) if record["arch"] == CNN_ARCH else load_model(path, record)
        declared = (int(record["in_features"]),)  # rows of data.parquet's `x`
    if input_shape is not None:
        check_input_shape(declared, input_shape, where=f"{path}: the data")
    return model
