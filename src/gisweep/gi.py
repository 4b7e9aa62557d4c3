"""Exact generalization intervals (GI) of ReLU networks along lines, all lines in one batched sweep.

A line is x(t) = x0 + t·d for t in [t_min, t_max], with t_min <= 0 <= t_max. The network's class at
t = 0 is class0; t_hi is the supremum of e such that the class stays class0 on [0, e] (t_max if it
never changes), t_lo the same going backwards, and gi = t_hi - t_lo.

Exactness: a network of Linear and ReLU layers is piecewise linear along a line. Layer by layer we
keep, for every line, a sorted set of knots t_0 < t_1 < ... such that the current layer's
pre-activation is linear between consecutive knots. A neuron whose values at two consecutive knots
have strictly opposite signs crosses zero once in between, at a point found by linear interpolation;
those crossings are merged into the knots before the ReLU is applied, so the next layer is again
linear between knots. After the last layer the logits are linear between knots and the first class
change on each side of t = 0 is solved in closed form inside its interval. No grid, no tolerance.

Class convention: class(t) = argmax of the logits, ties going to the lowest class index (as
torch.argmax does). The class at a point where class0 ties with a lower index is not class0.

`pieces` is the number of linear pieces of the network restricted to [t_min, t_max]: one plus the
number of distinct interior points where the activation pattern (which neurons are > 0) differs on
the two sides.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from gisweep import GisweepError
from gisweep.runtime import Progress

# bytes per (line, knot, neuron) held at once while refining one layer: values, their sorted copy,
# the crossing and activity masks and the next layer's output, in float64
_BYTES_PER_ENTRY = 40


@dataclass
class Intervals:
    """Per-line result; all tensors have shape [lines]."""

    class0: torch.Tensor  # int64, predicted class at t = 0
    t_lo: torch.Tensor  # first class change going backwards from 0 (or t_min)
    t_hi: torch.Tensor  # first class change going forwards from 0 (or t_max)
    gi: torch.Tensor  # t_hi - t_lo
    pieces: torch.Tensor | None = None  # int64, linear pieces within [t_min, t_max] (exact engine only)

    def to_frame(self) -> pd.DataFrame:
        cols = {"class0": self.class0, "t_lo": self.t_lo, "t_hi": self.t_hi, "gi": self.gi}
        if self.pieces is not None:
            cols["pieces"] = self.pieces
        return pd.DataFrame({k: v.detach().cpu().numpy() for k, v in cols.items()})


# ----------------------------------------------------------------------------------------------
# the network as a list of affine maps


@dataclass
class Affine:
    weight: torch.Tensor  # [out, in]
    bias: torch.Tensor  # [out]
    relu: bool  # ReLU applied to the output


def affine_layers(model: nn.Module, dtype=torch.float64, device=None) -> list[Affine]:
    """The network as affine maps with ReLU flags; consecutive affine maps are composed.

    Accepts an nn.Sequential (nested allowed) of Linear, ReLU, Flatten and Identity layers; anything
    else is an error naming the layer, because its output would not be piecewise linear in a way this
    engine knows.
    """
    if not isinstance(model, nn.Sequential):
        raise GisweepError(
            f"exact GI needs an nn.Sequential of Linear/ReLU/Flatten layers; got {type(model).__name__}"
        )
    layers: list[Affine] = []

    def walk(module: nn.Sequential, prefix: str):
        for name, layer in module.named_children():
            where = f"{prefix}{name}"
            if isinstance(layer, nn.Sequential):
                walk(layer, where + ".")
            elif isinstance(layer, nn.Linear):
                w = layer.weight.detach().to(device=device, dtype=dtype)
                b = (
                    layer.bias.detach().to(device=device, dtype=dtype)
                    if layer.bias is not None
                    else torch.zeros(w.shape[0], dtype=dtype, device=device)
                )
                if layers and not layers[-1].relu:  # compose with the previous affine map
                    prev = layers.pop()
                    b = w @ prev.bias + b
                    w = w @ prev.weight
                layers.append(Affine(w, b, relu=False))
            elif isinstance(layer, nn.ReLU):
                if not layers:
                    raise GisweepError(f"layer '{where}' (ReLU) comes before any Linear layer")
                layers[-1].relu = True
            elif isinstance(layer, (nn.Flatten, nn.Identity)):
                if layers and isinstance(layer, nn.Flatten):
                    raise GisweepError(f"layer '{where}' (Flatten) after a Linear layer is not supported")
            else:
                raise GisweepError(
                    f"layer '{where}' is {type(layer).__name__}; exact GI supports only "
                    "Linear, ReLU, Flatten and Identity layers"
                )

    walk(model, "")
    if not layers:
        raise GisweepError("the model has no Linear layer")
    return layers


# ----------------------------------------------------------------------------------------------
# argument checks


def _line_ranges(t_min, t_max, n, dtype, device):
    t_min = torch.as_tensor(t_min, dtype=dtype, device=device).expand(n).clone()
    t_max = torch.as_tensor(t_max, dtype=dtype, device=device).expand(n).clone()
    if not (torch.isfinite(t_min).all() and torch.isfinite(t_max).all()):
        raise GisweepError("t_min and t_max must be finite")
    bad = (t_min > 0) | (t_max < 0)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise GisweepError(
            f"line {i}: range [{float(t_min[i])}, {float(t_max[i])}] does not contain t = 0; "
            "a generalization interval is measured around the line's start point"
        )
    return t_min, t_max


def _check_lines(x0, d, layers):
    if x0.ndim != 2 or d.shape != x0.shape:
        raise GisweepError(f"x0 and d must both be [lines, features]; got {tuple(x0.shape)} and {tuple(d.shape)}")
    features = layers[0].weight.shape[1]
    if x0.shape[1] != features:
        raise GisweepError(f"lines have {x0.shape[1]} features but the network's first layer takes {features}")
    if not (torch.isfinite(x0).all() and torch.isfinite(d).all()):
        raise GisweepError("x0 and d must be finite (found NaN or inf)")


# ----------------------------------------------------------------------------------------------
# the exact engine


def _refine(T, Z, flags):
    """Add the zero crossings of Z between knots, and mark knots where the ReLU pattern changes.

    T: [n, K] sorted knots, +inf padding; Z: [n, K, w] pre-activations at the knots (0 at padding),
    linear between consecutive knots; flags: [n, K] bool, knots already known to be breakpoints.
    Returns T, Z, flags with the crossings merged in (still sorted).
    """
    n, K, w = Z.shape
    valid = torch.isfinite(T)  # [n, K]
    interval_ok = valid[:, :-1] & valid[:, 1:]  # [n, K-1]
    za, zb = Z[:, :-1], Z[:, 1:]  # [n, K-1, w]
    cross = ((za > 0) & (zb < 0)) | ((za < 0) & (zb > 0))
    cross &= interval_ok[..., None]
    hit = cross.nonzero()  # [m, 3]: line, interval, neuron (sorted by line first)
    if hit.shape[0]:
        line, iv, neuron = hit.unbind(1)
        fa, fb = za[line, iv, neuron], zb[line, iv, neuron]  # [m]
        frac = fa / (fa - fb)  # in (0, 1)
        ta, tb = T[line, iv], T[line, iv + 1]
        t_new = ta + (tb - ta) * frac  # [m]
        z_new = torch.lerp(za[line, iv], zb[line, iv], frac[:, None])  # [m, w]
        z_new[torch.arange(len(neuron), device=Z.device), neuron] = 0.0  # the crossing neuron is exactly 0
        counts = torch.bincount(line, minlength=n)  # [n]
        start = torch.cumsum(counts, 0) - counts
        pos = torch.arange(len(line), device=Z.device) - start[line]  # slot within its line
        m_max = int(counts.max())
        T_new = torch.full((n, m_max), math.inf, dtype=T.dtype, device=T.device)
        T_new[line, pos] = t_new
        Z_new = torch.zeros((n, m_max, w), dtype=Z.dtype, device=Z.device)
        Z_new[line, pos] = z_new
        T, order = torch.cat([T, T_new], 1).sort(1)
        Z = torch.cat([Z, Z_new], 1).gather(1, order[..., None].expand(-1, -1, w))
        flags = torch.cat([flags, torch.zeros_like(T_new, dtype=torch.bool)], 1).gather(1, order)
        keep = int(torch.isfinite(T).sum(1).max())  # drop all-padding columns
        T, Z, flags = T[:, :keep], Z[:, :keep], flags[:, :keep]
        valid = torch.isfinite(T)
        interval_ok = valid[:, :-1] & valid[:, 1:]
    # ReLU pattern on each interval, read at its midpoint (Z is linear there and keeps its sign)
    active = (Z[:, :-1] + Z[:, 1:]) > 0  # [n, K-1, w]
    changed = (active[:, :-1] != active[:, 1:]).any(-1)  # [n, K-2], interior knots 1..K-2
    changed &= interval_ok[:, :-1] & interval_ok[:, 1:]
    flags = flags.clone()
    flags[:, 1:-1] |= changed
    return T, Z, flags


def _count_pieces(T, flags, t_min, t_max):
    interior = flags & (T > t_min[:, None]) & (T < t_max[:, None])
    tb = torch.where(interior, T, torch.full_like(T, math.inf)).sort(1).values  # [n, K]
    first = torch.ones_like(tb, dtype=torch.bool)
    first[:, 1:] = tb[:, 1:] != tb[:, :-1]
    return 1 + (torch.isfinite(tb) & first).sum(1)


def _violates(margin, class0):
    """margin: [..., C] = logit[class0] - logit[k]; True where class k beats class0 (ties to lower index)."""
    C = margin.shape[-1]
    k = torch.arange(C, device=margin.device)
    lower = k < class0.view(-1, *([1] * (margin.ndim - 1)))  # [n, 1.., C]
    return torch.where(lower, margin <= 0, margin < 0)


def _first_change(T, logits, t_min, t_max):
    """Solve for the first class change on each side of t = 0; logits [n, K, C] linear between knots."""
    n, K, C = logits.shape
    rows = torch.arange(n, device=T.device)
    valid = torch.isfinite(T)
    k0 = (T == 0).to(torch.int8).argmax(1)  # the knot at t = 0 (always present)
    class0 = logits[rows, k0].argmax(1)  # [n]
    margin = logits.gather(2, class0.view(n, 1, 1).expand(n, K, 1)) - logits  # [n, K, C]
    viol_k = _violates(margin, class0) & valid[..., None]  # [n, K, C]
    viol = viol_k.any(-1)  # [n, K]
    idx = torch.arange(K, device=T.device)

    def side(after: bool):
        mask = viol & ((idx > k0[:, None]) if after else (idx < k0[:, None]))
        found = mask.any(1)
        # the violating knot nearest to 0, and its neighbour towards 0 (which does not violate)
        kv = mask.to(torch.int8).argmax(1) if after else (K - 1 - mask.flip(1).to(torch.int8).argmax(1))
        kn = (kv - 1 if after else kv + 1).clamp(0, K - 1)
        gv, gn = margin[rows, kv], margin[rows, kn]  # [n, C]
        tv, tn = T[rows, kv], T[rows, kn]
        frac = gn / (gn - gv)  # where class k first ties class0, from the non-violating end
        t_cross = tn[:, None] + (tv - tn)[:, None] * frac.nan_to_num(0.0)
        t_cross = torch.where(viol_k[rows, kv], t_cross, torch.full_like(t_cross, math.nan))
        t_edge = t_cross.nan_to_num(math.inf).amin(1) if after else t_cross.nan_to_num(-math.inf).amax(1)
        return torch.where(found, t_edge, t_max if after else t_min)

    t_hi = side(after=True)
    t_lo = side(after=False)
    return class0, t_lo, t_hi


def _sweep_chunk(layers: list[Affine], x0, d, t_min, t_max, budget_bytes: int):
    """Exact GI for one chunk of lines; splits itself further if the knots outgrow the budget."""
    n = x0.shape[0]
    first = layers[0]
    a = x0 @ first.weight.T + first.bias  # [n, w1], pre-activation at t = 0
    s = d @ first.weight.T  # [n, w1], its slope along the line
    inf = torch.full_like(t_min, math.inf)
    # knots t_min, 0, t_max, each kept once when the range starts or ends at 0
    mid = torch.where((t_min == 0) | (t_max == 0), inf, torch.zeros_like(t_min))
    end = torch.where(t_max == t_min, inf, t_max)
    T = torch.stack([t_min, mid, end], 1).sort(1).values  # [n, 3]
    finite = torch.isfinite(T)
    Z = torch.where(finite[..., None], a[:, None, :] + T.nan_to_num(posinf=0.0)[..., None] * s[:, None, :], 0.0)
    flags = torch.zeros_like(T, dtype=torch.bool)
    return _sweep_from(layers, 0, T, Z, flags, t_min, t_max, budget_bytes)


def _sweep_from(layers, i, T, Z, flags, t_min, t_max, budget_bytes):
    """Continue the sweep at layer i, where Z holds layer i's pre-activations at the knots T."""
    while True:
        n, K, w = Z.shape
        if n > 1 and n * K * max(w, layers[i].weight.shape[0]) * _BYTES_PER_ENTRY > budget_bytes:
            h = n // 2
            parts = [
                _sweep_from(layers, i, T[sl], Z[sl], flags[sl], t_min[sl], t_max[sl], budget_bytes)
                for sl in (slice(0, h), slice(h, n))
            ]
            return tuple(torch.cat(p) for p in zip(*parts))
        layer = layers[i]
        if layer.relu:
            T, Z, flags = _refine(T, Z, flags)
            Z = Z.clamp_min(0.0)
        if i + 1 == len(layers):
            break
        nxt = layers[i + 1]
        Z = Z @ nxt.weight.T + nxt.bias  # [n, K, w_next]
        Z = torch.where(torch.isfinite(T)[..., None], Z, 0.0)
        i += 1
    class0, t_lo, t_hi = _first_change(T, Z, t_min, t_max)
    pieces = _count_pieces(T, flags, t_min, t_max)
    return class0, t_lo, t_hi, pieces


def exact_intervals(
    model: nn.Module,
    x0,
    d,
    t_min=-1.0,
    t_max=2.0,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    memory_mb: float = 1024.0,
    progress: bool | str = False,
) -> Intervals:
    """Exact generalization intervals of `model` along the lines x0 + t·d, t in [t_min, t_max].

    x0, d: [lines, features]; t_min, t_max: scalars or [lines]. The lines are swept in chunks whose
    working set stays under `memory_mb`; a chunk whose knots outgrow it splits itself. `device`
    defaults to x0's device. `progress`: False, True, or a label for progress lines on stderr.
    """
    device = torch.device(device) if device is not None else torch.as_tensor(x0).device
    layers = affine_layers(model, dtype=dtype, device=device)
    x0 = torch.as_tensor(x0).to(device=device, dtype=dtype)
    d = torch.as_tensor(d).to(device=device, dtype=dtype)
    _check_lines(x0, d, layers)
    n = x0.shape[0]
    t_min, t_max = _line_ranges(t_min, t_max, n, dtype, device)
    budget = int(memory_mb * 2**20)
    widths = [layer.weight.shape[0] for layer in layers]
    guess_knots = 3 + sum(w for w, layer in zip(widths, layers) if layer.relu)
    chunk = max(1, min(n, budget // (guess_knots * max(widths) * _BYTES_PER_ENTRY)))
    out = []
    bar = Progress(n, label=progress if isinstance(progress, str) else "exact GI", enabled=bool(progress))
    with torch.no_grad():
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            out.append(_sweep_chunk(layers, x0[sl], d[sl], t_min[sl], t_max[sl], budget))
            bar.update(sl.stop - sl.start)
    bar.close()
    if not out:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, empty.long())
    class0, t_lo, t_hi, pieces = (torch.cat(p) for p in zip(*out))
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, pieces)


# ----------------------------------------------------------------------------------------------
# the grid baseline (for comparison only)


def grid_intervals(
    model: nn.Module,
    x0,
    d,
    t_min=-1.0,
    t_max=2.0,
    steps: int = 1000,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    memory_mb: float = 1024.0,
) -> Intervals:
    """The paper's way: walk a grid of step (t_max - t_min)/steps out from t = 0 on each side and
    stop at the first grid point whose class differs; t_hi (t_lo) is the last grid point still in
    class0. It misses class changes that fit between two grid points; kept as a baseline only.
    """
    device = torch.device(device) if device is not None else torch.as_tensor(x0).device
    layers = affine_layers(model, dtype=dtype, device=device)  # validates the model
    x0 = torch.as_tensor(x0).to(device=device, dtype=dtype)
    d = torch.as_tensor(d).to(device=device, dtype=dtype)
    _check_lines(x0, d, layers)
    if steps < 1:
        raise GisweepError(f"steps must be >= 1, got {steps}")
    n = x0.shape[0]
    t_min, t_max = _line_ranges(t_min, t_max, n, dtype, device)
    h = (t_max - t_min) / steps  # [n]
    k = torch.arange(steps + 1, dtype=dtype, device=device)  # [S]
    fwd = torch.minimum(k[None] * h[:, None], t_max[:, None])  # [n, S], 0 first
    bwd = torch.maximum(-k[None] * h[:, None], t_min[:, None])

    def classify(ts):  # [m, S] -> [m, S] classes
        return _forward(layers, x0_c[:, None, :] + ts[..., None] * d_c[:, None, :]).argmax(-1)

    per_line = 2 * (steps + 1) * max(max(l.weight.shape) for l in layers) * 8 * 4
    chunk = max(1, min(n, int(memory_mb * 2**20) // per_line))
    t_lo, t_hi, class0 = [], [], []
    with torch.no_grad():
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            x0_c, d_c = x0[sl], d[sl]
            cf, cb = classify(fwd[sl]), classify(bwd[sl])  # [m, S]
            c0 = cf[:, 0]
            for ts, cl, out, end in ((fwd[sl], cf, t_hi, t_max[sl]), (bwd[sl], cb, t_lo, t_min[sl])):
                off = cl != c0[:, None]
                first = off.to(torch.int8).argmax(1)
                last_in = ts.gather(1, (first - 1).clamp_min(0)[:, None])[:, 0]
                out.append(torch.where(off.any(1), last_in, end))
            class0.append(c0)
    t_lo, t_hi, class0 = torch.cat(t_lo), torch.cat(t_hi), torch.cat(class0)
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, None)


def _forward(layers: list[Affine], x):
    for layer in layers:
        x = x @ layer.weight.T + layer.bias
        if layer.relu:
            x = x.clamp_min(0.0)
    return x
