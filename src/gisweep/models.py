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
