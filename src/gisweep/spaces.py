"""Feature spaces in which hull distances are measured (Yousefzadeh 2021, section 2).

A space maps the flattened images of a data table (rows [n, F], pixels in [0, 1], row-major
H, W, C: F = side * side grey or side * side * 3 RGB, told apart by `image_shape`) to feature rows
[n, D]. Space names (also the file names of the hull stage):

  pixels                      the images as they are (D = F)
  wavelet_{w}                 all 2-D wavelet coefficients of wavelet w (PyWavelets name: haar, db4, ...),
                              one transform per colour channel
  wavelet_{w}_subset          only the coarsest `subset_levels` entries of pywt.wavedec2's list, of every
                              channel: the approximation, then the coarsest detail level(s)
  hidden_{arch}_{labels}_s{seed}_l{k}
                              activations after the k-th ReLU of a trained MLP (1-based)
  resnet_prepool_s{seed}      the ResNet-20 of gisweep.resnet before its global pooling: 4 width x
                              ceil(H/4) x ceil(W/4) (64 x 7 x 7 = 3,136 at 28x28, 4,096 at 32x32)
  resnet_pool_s{seed}         its globally average-pooled features (4 width = 64)

Wavelets use mode 'periodization' by default: with an orthogonal wavelet (haar, dbN) and an image
side divisible by 2^level the transform is orthogonal, so the full coefficient set keeps every
Euclidean distance of pixel space (Parseval) and only the subset spaces differ from pixels.
Level 0 (auto) picks the deepest level that keeps that divisibility (at least 1, at most pywt's
maximum useful level).
"""
from __future__ import annotations

import math
import re
import sys

import numpy as np
import torch
from torch import nn

from gisweep import GisweepError

HIDDEN_PATTERN = re.compile(r"^hidden_([1-9][0-9]*x[1-9][0-9]*)_(real|random)_s([0-9]+)_l([1-9][0-9]*)$")
WAVELET_PATTERN = re.compile(r"^wavelet_([a-z0-9.]+?)(_subset)?$")
RESNET_PATTERN = re.compile(r"^resnet_(prepool|pool)_s([0-9]+)$")
RESNET_MIN_SIDE = 4  # two stride-2 stages: smaller images leave nothing to pool over


def parse_space(name: str) -> dict:
    """A space name -> {'kind': 'pixels'|'wavelet'|'hidden'|'resnet', ...its parameters}."""
    if name == "pixels":
        return {"kind": "pixels"}
    m = WAVELET_PATTERN.match(name)
    if m:
        import pywt

        if m.group(1) not in pywt.wavelist(kind="discrete"):
            raise GisweepError(f"space '{name}': '{m.group(1)}' is not a discrete PyWavelets wavelet")
        return {"kind": "wavelet", "wavelet": m.group(1), "subset": bool(m.group(2))}
    m = HIDDEN_PATTERN.match(name)
    if m:
        return {"kind": "hidden", "arch": m.group(1), "labels": m.group(2), "seed": int(m.group(3)),
                "layer": int(m.group(4))}
    m = RESNET_PATTERN.match(name)
    if m:
        return {"kind": "resnet", "layer": m.group(1), "seed": int(m.group(2))}
    raise GisweepError(
        f"unknown space '{name}': expected pixels, wavelet_<name>[_subset], "
        "hidden_<arch>_<real|random>_s<seed>_l<layer>, resnet_prepool_s<seed> or resnet_pool_s<seed>"
    )


def image_shape(features: int) -> tuple[int, int]:
    """(side, channels) of the square images whose flattened rows have `features` entries: grey
    (side * side) or RGB (side * side * 3; 3 k^2 is never a square, so the two cannot be confused)."""
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if features % channels == 0 and side * side * channels == features:
            return side, channels
    raise GisweepError(f"{features} features are not a square grey or RGB image: wavelet and ResNet spaces "
                       "need images")


def image_side(features: int) -> int:
    """Side of the square images whose flattened rows have `features` entries (grey or RGB)."""
    return image_shape(features)[0]


def check_space(space: str, features: int, *, subset_levels: int = 2, wavelet_mode: str = "periodization",
                wavelet_level_: int = 0) -> dict:
    """The parsed space, or a GisweepError when rows of `features` entries cannot support it (before any work)."""
    spec = parse_space(space)
    if spec["kind"] in ("wavelet", "resnet"):
        side, _ = image_shape(features)
        if spec["kind"] == "resnet" and side < RESNET_MIN_SIDE:
            raise GisweepError(f"space '{space}': {side}x{side} images are too small for the ResNet's two "
                               f"stride-2 stages (need a side of at least {RESNET_MIN_SIDE})")
        if spec["kind"] == "wavelet":
            if subset_levels < 1:
                raise GisweepError(f"wavelet subset_levels={subset_levels}: must be >= 1")
            if side < 2:
                raise GisweepError(f"space '{space}': {side}x{side} images are too small for a wavelet transform")
            wavelet_level(side, spec["wavelet"], wavelet_mode, wavelet_level_)
    return spec


# ----------------------------------------------------------------------------- wavelets


def wavelet_level(side: int, wavelet: str, mode: str = "periodization", level: int = 0) -> int:
    """The decomposition level: `level` if > 0, else the deepest that keeps the transform orthogonal."""
    import pywt

    if level > 0:
        return level
    top = max(1, pywt.dwt_max_level(side, pywt.Wavelet(wavelet).dec_len))
    if mode != "periodization":
        return top
    best = 1
    for lev in range(1, top + 1):
        if side % 2**lev == 0:
            best = lev
    return best


def wavelet_features(x, wavelet: str, *, subset_levels: int | None = None, mode: str = "periodization",
                     level: int = 0) -> np.ndarray:
    """2-D wavelet coefficients of flattened square images, one transform per channel.

    x [n, side*side*C] (row-major H, W, C) -> [n, D]: the flattened entries of pywt.wavedec2's list
    [cA_L, (cH_L, cV_L, cD_L), ..., (cH_1, cV_1, cD_1)] in that order, each entry [n, C, h, w] with its
    channels together; with subset_levels = s, only its first s entries of every channel (s = 1: the
    approximation alone, s = 2: plus the coarsest detail level). Grey images (C = 1) give the same
    numbers in the same order as a single-channel transform.
    """
    import pywt

    x = np.asarray(x, dtype=np.float64)
    side, channels = image_shape(x.shape[1])
    lev = wavelet_level(side, wavelet, mode, level)
    planes = x.reshape(-1, side, side, channels).transpose(0, 3, 1, 2)  # [n, C, side, side]
    coeffs = pywt.wavedec2(planes, wavelet, mode=mode, level=lev, axes=(-2, -1))
    if subset_levels is not None:
        if subset_levels < 1:
            raise GisweepError(f"wavelet subset_levels={subset_levels}: must be >= 1")
        if subset_levels >= len(coeffs):
            print(f"note: wavelet subset of {subset_levels} entries keeps all {len(coeffs)} of level {lev}: "
                  "the subset space equals the full one", file=sys.stderr)
        coeffs = coeffs[:subset_levels]
    parts = [coeffs[0].reshape(len(x), -1)]
    for details in coeffs[1:]:
        parts.extend(d.reshape(len(x), -1) for d in details)
    return np.concatenate(parts, axis=1)  # [n, D]


# ----------------------------------------------------------------------------- hidden layers


def hidden_features(model: nn.Sequential, x, layer: int, batch: int = 4096) -> np.ndarray:
    """Activations after the `layer`-th ReLU (1-based) of a Linear/ReLU Sequential: x [n, F] -> [n, width]."""
    relus = [i for i, m in enumerate(model) if isinstance(m, nn.ReLU)]
    if not 1 <= layer <= len(relus):
        raise GisweepError(f"hidden layer {layer} asked for, but the network has {len(relus)} hidden layer(s)")
    head = model[: relus[layer - 1] + 1]
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        out = [head(xt[i : i + batch]) for i in range(0, len(xt), batch)]
    return torch.cat(out).double().numpy()


# ----------------------------------------------------------------------------- random queries


def random_points(n: int, features: int, seed: int) -> np.ndarray:
    """n points uniform in the data's domain [0, 1]^features (float32, like the data): [n, features]."""
    if n < 0:
        raise GisweepError(f"number of random points {n}: must be >= 0")
    rng = np.random.default_rng([seed, 0xD0A1])  # its own stream
    return rng.random((n, features), dtype=np.float32)


# ----------------------------------------------------------------------------- dispatch


def features(space: str, x, *, model=None, wavelet_mode: str = "periodization", wavelet_level_: int = 0,
             subset_levels: int = 2) -> np.ndarray:
    """Rows x [n, F] of data.parquet's `x` in the named space -> [n, D] float64.

    model: the loaded MLP for hidden spaces, the loaded ResNet for resnet spaces (None otherwise).
    Non-finite features raise GisweepError naming the space.
    """
    out = _features(space, x, model=model, wavelet_mode=wavelet_mode, wavelet_level_=wavelet_level_,
                    subset_levels=subset_levels)
    if not np.isfinite(out).all():
        rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
        raise GisweepError(f"space '{space}': {len(rows)} row(s) have NaN or infinite features (first: row {rows[0]})")
    return out


def _features(space: str, x, *, model, wavelet_mode: str, wavelet_level_: int, subset_levels: int) -> np.ndarray:
    spec = parse_space(space)
    if spec["kind"] == "pixels":
        return np.asarray(x, dtype=np.float64)
    if spec["kind"] == "wavelet":
        return wavelet_features(x, spec["wavelet"], subset_levels=subset_levels if spec["subset"] else None,
                                mode=wavelet_mode, level=wavelet_level_)
    if model is None:
        raise GisweepError(f"space '{space}' needs a model file")
    if spec["kind"] == "hidden":
        return hidden_features(model, x, spec["layer"])
    from gisweep.resnet import resnet_features

    return resnet_features(model, x, spec["layer"])
