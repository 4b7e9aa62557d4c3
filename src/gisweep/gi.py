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
change on each side of t = 0 is solved in closed form inside its interval. No grid, and no
tolerance beyond rounding (see below).

Work per line: one matrix product per layer at that layer's knots (the knots of a line number about
one plus its pieces after the last layer), plus linear passes over the knots; nothing is padded to
the busiest line. Every line's numbers are computed independently of the other lines in its chunk,
so results do not depend on `memory_mb` or on how many lines are swept together (bit for bit on a
CPU), and CPU reruns are bit-identical.

Class convention: class(t) = argmax of the logits, ties going to the lowest class index (as
torch.argmax does). The class at a point where class0 ties with a lower index is not class0.

Rounding: values equal up to rounding are treated as equal, so that degenerate networks (a tie
holding along a whole segment, a neuron that is 0 along a segment, several neurons switching at one
point) are not decided by the rounding noise of how each value was computed. "Up to rounding" is
2^-39 = 1.8e-12 relative in float64 (about 8000 times its rounding error; 4 eps = 4.8e-7 in float32,
which has no such margin to spare): logits within that fraction of the line's largest |logit| tie; a
pre-activation within that fraction of the largest |pre-activation| of its layer at that knot is 0
(it touches 0 there, or crosses at the knot itself, and adds no knot); crossings that close together
(relative to the range) are one point when counting pieces. Generic networks never come near these
margins; the results are then those of exact arithmetic, up to rounding.

`pieces` is the number of linear pieces of the network restricted to [t_min, t_max]: one plus the
number of distinct interior points where the activation pattern (which neurons are > 0, and for a
max-pool which candidate is each window's maximum) differs on the two sides.

Two engines, one meaning: a plain nn.Sequential of Linear/ReLU/Flatten/Identity layers takes the
fast path (affine maps composed, one matmul per layer at the knots). Any other model (Conv2d,
pooling, batch norm in eval mode, LeakyReLU, residual additions; see gisweep.gi_graph) is read as a
graph with torch.fx and swept by the general engine at the end of this file: every live tensor is
kept at the knots, affine operations are applied to the values there, ReLU/LeakyReLU add their zero
crossings and a max-pool adds, window by window, the first point where another candidate overtakes
the current maximum (repeated until no arg-max changes between knots); a knot added anywhere is
added to every live tensor by linear interpolation, so adding branches stays exact.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from gisweep import GisweepError
from gisweep.runtime import Progress, exact_matmul

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Intervals:
    """Per-line result; all tensors have shape [lines]."""

    class0: torch.Tensor  # int64, predicted class at t = 0
    t_lo: torch.Tensor  # first class change going backwards from 0 (or t_min)
    t_hi: torch.Tensor  # first class change going forwards from 0 (or t_max)
    gi: torch.Tensor  # t_hi - t_lo
    pieces: torch.Tensor | None = None  # int64, linear pieces within [t_min, t_max] (exact engine only)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # lazily: the engine itself needs only torch

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


def _mlp_layers(model: nn.Module, dtype, device) -> list[Affine] | None:
    """The affine layers of a plain Linear/ReLU nn.Sequential (the fast path); None for any other model."""
    if not isinstance(model, nn.Sequential):
        return None
    try:
        return affine_layers(model, dtype=dtype, device=device)
    except GisweepError:
        return None


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
    ranges = []
    for name, value in (("t_min", t_min), ("t_max", t_max)):
        value = torch.as_tensor(value, dtype=dtype, device=device)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
            raise GisweepError(f"{name} must be a scalar or one value per line ({n}); got shape {tuple(value.shape)}")
        ranges.append(value.expand(n).clone())
    t_min, t_max = ranges
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
#
# All knots of all lines of a chunk live in flat arrays, line after line, each line's knots sorted:
#   T [N] knot positions, line [N] the line each knot belongs to, crossing [N] whether the knot is a
#   ReLU zero crossing (a breakpoint by construction), Z [N, w] the current layer's pre-activations.
# Per line: start [n] (flat index of its first knot), count [n], k0 [n] (flat index of its t = 0 knot).
# No padding, no sort of [N, w] rows: crossings are merged in by computing every row's new position.

# every matrix product runs on a multiple of this many rows, so a row's result does not depend on how
# many rows share the call (MKL picks other kernels for leftover rows): chunking stays bit-identical
_ROW_BLOCK = 16
# lines per chunk at most on a CPU, so that the working set stays in cache (measured on the MNIST pair
# lines: 32-128 alike on one thread, 128 best on two; 256 is 15-25% slower, 512 35%)
_MAX_CHUNK_LINES = 128


def _matmul(x, wt, bias):
    """x [M, a] @ wt [a, b] + bias [b] -> [M, b], each row's value independent of M."""
    M = x.shape[0]
    out = torch.empty((M, wt.shape[1]), dtype=x.dtype, device=x.device)
    full = M - M % _ROW_BLOCK
    if full:
        torch.addmm(bias, x[:full], wt, out=out[:full])
    if full < M:
        tail = x.new_zeros((_ROW_BLOCK, x.shape[1]))
        tail[: M - full] = x[full:]
        out[full:] = torch.addmm(bias, tail, wt)[: M - full]
    return out


def _rounding(dtype) -> float:
    """Relative difference below which values count as equal (see the module docstring): 2^-39
    (1.8e-12, some 8000 times float64's rounding) in float64; in float32 only 4 eps (4.8e-7), since
    float32 leaves no such margin and a wider allowance would shift results more than its rounding."""
    return 2.0**-39 if dtype == torch.float64 else 4 * torch.finfo(dtype).eps


def _entry_bytes(dtype) -> int:
    """Bytes held per (knot, neuron) while one layer is refined, at most, counting the knots after the
    layer's crossings are added: Z, its sign-flip bytes, the crossings' rows and the next layer's
    values before and after the merge (see _merge_crossings, which measures what it holds)."""
    return 8 * (torch.finfo(dtype).bits // 8) + 4


def _budget_bytes(memory_mb: float | None, device: torch.device) -> int:
    """The working-set budget in bytes: `memory_mb` (default 1024 on a CPU); on CUDA at most half of
    the memory free on the device now (torch.cuda.mem_get_info), which is also the default there."""
    if memory_mb is not None and not memory_mb > 0:
        raise GisweepError(f"memory_mb={memory_mb}: must be > 0")
    if device.type != "cuda":
        return int((1024.0 if memory_mb is None else memory_mb) * 2**20)
    free, _ = torch.cuda.mem_get_info(device)
    cap = free // 2
    return int(cap if memory_mb is None else min(memory_mb * 2**20, cap))


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class _Knots:
    T: torch.Tensor  # [N] knot positions, sorted within each line
    line: torch.Tensor  # [N] int64 line of each knot
    crossing: torch.Tensor  # [N] bool, knot is a ReLU zero crossing
    Z: torch.Tensor  # [N, w] current pre-activations at the knots
    start: torch.Tensor  # [n] int64 flat index of each line's first knot
    count: torch.Tensor  # [n] int64 knots per line
    k0: torch.Tensor  # [n] int64 flat index of each line's t = 0 knot
    zero_break: torch.Tensor  # [n] bool, the activation pattern changes at t = 0 (0 interior)

    def clone(self) -> "_Knots":
        return _Knots(*(v.clone() for v in (self.T, self.line, self.crossing, self.Z, self.start, self.count,
                                            self.k0, self.zero_break)))

    def split(self, h: int) -> tuple["_Knots", "_Knots"]:
        """Lines [0, h) and [h, n), as two independent sets of knots."""
        cut = int(self.start[h]) if h < len(self.start) else len(self.T)
        a = _Knots(self.T[:cut], self.line[:cut], self.crossing[:cut], self.Z[:cut], self.start[:h],
                   self.count[:h], self.k0[:h], self.zero_break[:h])
        b = _Knots(self.T[cut:], self.line[cut:] - h, self.crossing[cut:], self.Z[cut:], self.start[h:] - cut,
                   self.count[h:], self.k0[h:] - cut, self.zero_break[h:])
        return a, b


def _initial_knots(a, s, t_min, t_max) -> _Knots:
    """Knots t_min, 0, t_max (each once) and the first layer's pre-activations a + t·s there."""
    n = a.shape[0]
    dev = a.device
    zero = torch.zeros_like(t_min)
    cand = torch.stack([t_min, zero, t_max], 1)  # [n, 3]
    keep = torch.stack([torch.ones_like(t_min, dtype=torch.bool), (t_min < 0) & (t_max > 0), t_max > t_min], 1)
    line = torch.arange(n, device=dev)[:, None].expand(n, 3)[keep]  # [N]
    T = cand[keep]  # [N], sorted within each line
    count = keep.sum(1)
    start = torch.cumsum(count, 0) - count
    k0 = start + (t_min < 0).long()  # t = 0 is the first knot when t_min = 0, else the second
    Z = a[line] + T[:, None] * s[line]  # [N, w1]; exactly a at t = 0
    return _Knots(T, line, torch.zeros_like(T, dtype=torch.bool), Z, start, count, k0,
                  torch.zeros(n, dtype=torch.bool, device=dev))


def _sign_flips(Z, last):
    """(interval, neuron) pairs where Z's sign bit differs between knots i and i + 1 of one line.

    Z: [N, w]; last: [n] flat index of each line's last knot. Reads only the sign bits: the top byte
    of every value, XOR-ed between consecutive rows, then scanned eight neurons at a time. A superset
    of the strict sign changes (+0 and -0 differ here); the caller keeps the strict ones.
    """
    N, w = Z.shape
    if sys.byteorder == "little" and Z.is_contiguous():
        size = Z.element_size()
        top = Z.view(torch.uint8)[:, size - 1 :: size]  # [N, w] top byte of each value: sign bit 0x80
        flips = top[1:] ^ top[:-1]  # [N-1, w]
        flips &= 0x80
    else:
        sign = torch.signbit(Z).view(torch.uint8)
        flips = sign[1:] ^ sign[:-1]
    # no interval from a line's last knot to the next line's first (the last line's last knot is N - 1,
    # which has no row here; every other line's is below it): no boolean mask, so no host sync
    flips.index_fill_(0, last[:-1], 0)
    if w % 8 or not flips.is_contiguous():
        k, j = flips.nonzero(as_tuple=True)
        return k, j
    words = flips.view(torch.int64)  # [N-1, w/8]: eight neurons per word, most words zero
    hit = (words != 0).view(-1).nonzero()[:, 0]  # [h] flat word index
    bytes_ = flips.view(-1, 8).index_select(0, hit)  # [h, 8]
    h, b = bytes_.nonzero(as_tuple=True)
    word = hit[h]
    per_row = w // 8
    return word // per_row, (word % per_row) * 8 + b


@dataclass
class _Crossings:
    """A layer's ReLU zero crossings, one per (interval, neuron) with strictly opposite signs."""

    k: torch.Tensor  # [m] int64 the interval (flat index of its left knot)
    j: torch.Tensor  # [m] int64 the neuron
    za: torch.Tensor  # [m] the neuron's value at knot k
    zb: torch.Tensor  # [m] ... and at knot k + 1
    zero: torch.Tensor  # [N] per knot: |z| at most this is 0
    held: int  # bytes held while they were found (Z, its sign flips, these)


def _crossings(kn: _Knots) -> _Crossings:
    """Find the current layer's crossings; their count m sizes the layer's working set before the merge.

    On entry kn.Z holds the current layer's pre-activations, linear between consecutive knots of a line.
    A neuron with strictly opposite signs at two consecutive knots crosses zero once in between.
    """
    Z = kn.Z
    N, w = Z.shape
    last = kn.start + kn.count - 1  # [n] each line's last knot
    # a value within rounding of 0 is 0: |z| <= 2^-39 (float64) of the largest |z| of its layer at that knot
    zero = Z.abs().amax(1) * _rounding(Z.dtype)  # [N]
    k, j = _sign_flips(Z, last)  # [m] interval (its left knot), neuron
    flat = Z.view(-1)
    za, zb = flat.index_select(0, k * w + j), flat.index_select(0, (k + 1) * w + j)
    # a neuron that is 0 at a knot only touches 0 there, or crosses at the knot itself: no new knot
    strict = (za.abs() > zero.index_select(0, k)) & (zb.abs() > zero.index_select(0, k + 1))
    held = _nbytes(Z, zero, k, j, za, zb, strict) + max(N - 1, 0) * w  # + the sign-flip bytes
    if not bool(strict.all()):  # (host syncs: this one, and one nonzero for the four selections)
        keep = strict.nonzero()[:, 0]
        k, j, za, zb = (v.index_select(0, keep) for v in (k, j, za, zb))
    return _Crossings(k, j, za, zb, zero, held)


def _merge_crossings(kn: _Knots, cr: _Crossings, nxt: Affine, stats: dict | None, pending: int = 0) -> _Knots:
    """Add the crossings as knots, apply the ReLU and the next affine map.

    Each crossing is found by linear interpolation; there every neuron's value is interpolated too
    (the crossing neuron's set to exactly 0). Then the next layer is again linear between
    consecutive knots. Records in stats["peak_bytes"] the bytes of the tensors it holds at its peak,
    plus `pending` (bytes held by the callers meanwhile).
    """
    T, line, Z = kn.T, kn.line, kn.Z
    k, j, za, zb, zero = cr.k, cr.j, cr.za, cr.zb, cr.zero
    N, w = Z.shape
    n = kn.start.shape[0]
    dev = Z.device
    last = kn.start + kn.count - 1  # [n]

    # the activation pattern changes at t = 0 if a neuron is 0 there and on the two sides is active
    # on one and not on the other (0 is a knot, so on each side the neuron is linear up to it)
    # (computed for every line and masked, rather than selected: no host sync)
    interior = (kn.k0 > kn.start) & (kn.k0 < last)  # [n]
    k0 = kn.k0
    kl, kr = torch.where(interior, k0 - 1, k0), torch.where(interior, k0 + 1, k0)
    z0, zl, zr = Z.index_select(0, k0), Z.index_select(0, kl), Z.index_select(0, kr)  # [n, w]
    brk = (z0.abs() <= zero[k0, None]) & ((zl > zero[kl, None]) != (zr > zero[kr, None]))
    kn.zero_break |= brk.any(1) & interior
    del z0, zl, zr, brk

    wt = nxt.weight.T  # [w, w']
    w2 = wt.shape[1]
    m = k.shape[0]
    if stats is not None:
        stats["matmul_flops"] = stats.get("matmul_flops", 0) + 2 * (N + m) * w * w2
        stats["peak_bytes"] = max(stats.get("peak_bytes", 0), pending + cr.held)
    if m == 0:
        Y = _matmul(Z.clamp_min_(0.0), wt, nxt.bias)  # [N, w']
        if stats is not None:
            stats["peak_bytes"] = max(stats["peak_bytes"], pending + _nbytes(Z, zero, Y, T, line, kn.crossing))
        return _Knots(T, line, kn.crossing, Y, kn.start, kn.count, kn.k0, kn.zero_break)

    # the crossings, sorted by interval and then position (stable, so ties keep neuron order)
    f = za / (za - zb)  # [m] in [0, 1]
    ta, tb = T.index_select(0, k), T.index_select(0, k + 1)
    t = torch.minimum(torch.maximum(ta + (tb - ta) * f, ta), tb)
    order = torch.argsort(t, stable=True)
    order = order.index_select(0, torch.argsort(k.index_select(0, order), stable=True))
    k, j, f, t = (v.index_select(0, order) for v in (k, j, f, t))
    Za = Z.index_select(0, k)  # [m, w]
    # every neuron at the crossing; separate ops, not lerp/addcmul, whose fused multiply-add could
    # depend on where a row falls in the array (and so on the chunking)
    Zc = Z.index_select(0, k + 1).sub_(Za).mul_(f[:, None]).add_(Za)
    Zc.view(-1)[torch.arange(m, device=dev) * w + j] = 0.0  # the crossing neuron: exactly 0

    # merge: old knot i moves down by the crossings in intervals before it; crossing r of interval
    # k lands right after knot k, behind the r crossings sorted before it
    per_interval = torch.zeros(N, dtype=torch.int64, device=dev).index_add_(0, k, torch.ones_like(k))  # [N]
    # (index_add_, not bincount, which syncs with the host on CUDA to size its output)
    new_old = torch.arange(N, device=dev) + (torch.cumsum(per_interval, 0) - per_interval)  # [N]
    new_cross = k + 1 + torch.arange(m, device=dev)  # [m]
    M_ = N + m
    if w2 <= w:  # merge the narrower of the layer's input and output rows
        Y_old = _matmul(Z.clamp_min_(0.0), wt, nxt.bias)  # [N, w']
        Y = Y_old.new_empty((M_, w2)).index_copy_(0, new_old, Y_old)
        Yc = _matmul(Zc.clamp_min_(0.0), wt, nxt.bias)  # [m, w']
        Y.index_copy_(0, new_cross, Yc)
        merged = _nbytes(Y_old, Yc)
        del Y_old, Yc
    else:
        Zm = Z.new_empty((M_, w)).index_copy_(0, new_old, Z).index_copy_(0, new_cross, Zc)
        Y = _matmul(Zm.clamp_min_(0.0), wt, nxt.bias)  # [N + m, w']
        merged = _nbytes(Zm)
        del Zm
    T = T.new_empty(M_).index_copy_(0, new_old, T).index_copy_(0, new_cross, t)
    cline = line.index_select(0, k)
    line = line.new_empty(M_).index_copy_(0, new_old, line).index_copy_(0, new_cross, cline)
    crossing = torch.ones(M_, dtype=torch.bool, device=dev).index_copy_(0, new_old, kn.crossing)
    if stats is not None:  # everything this layer holds at once, at most (kn's tensors stay with the caller)
        held = merged + _nbytes(Z, zero, Za, Zc, Y, T, line, crossing, kn.T, kn.line, kn.crossing,
                                k, j, f, t, per_interval, new_old, new_cross, cline)
        stats["peak_bytes"] = max(stats["peak_bytes"], pending + held)
    count = kn.count.index_add(0, cline, torch.ones_like(cline))
    start = torch.cumsum(count, 0) - count
    k0 = new_old.index_select(0, kn.k0)
    return _Knots(T, line, crossing, Y, start, count, k0, kn.zero_break)


def _first_change(kn: _Knots, t_min, t_max):
    """class0 and the first class change on each side of t = 0; kn.Z are logits, linear between knots."""
    T, line, L = kn.T, kn.line, kn.Z
    N, C = L.shape
    n = kn.start.shape[0]
    dev = L.device
    k0 = kn.k0
    # a tie is equality up to rounding: within 2^-39 (float64) of the line's largest |logit|
    scale = torch.zeros(n, dtype=L.dtype, device=dev).scatter_reduce_(0, line, L.abs().amax(1), "amax")
    tol = (scale * _rounding(L.dtype))[line, None]  # [N, 1]
    L0, tol0 = L[k0], tol[k0]  # [n, C], [n, 1]
    class0 = (L0 >= L0.amax(1, keepdim=True) - tol0).to(torch.int8).argmax(1)  # [n] lowest of the tied
    c0 = class0[line]  # [N]
    margin = L.gather(1, c0[:, None]) - L  # [N, C] logit[class0] - logit[k]
    lower = torch.arange(C, device=dev)[None, :] < c0[:, None]
    viol_k = torch.where(lower, margin <= tol, margin < -tol)  # [N, C] class k beats (or ties) class0
    viol = viol_k.any(1)  # [N]
    idx = torch.arange(N, device=dev)
    k0k = k0[line]
    first_after = torch.full((n,), N, device=dev).scatter_reduce_(
        0, line, torch.where(viol & (idx > k0k), idx, N), "amin")
    last_before = torch.full((n,), -1, device=dev).scatter_reduce_(
        0, line, torch.where(viol & (idx < k0k), idx, -1), "amax")

    def side(kv, found, step, limit, pick):
        # kv: the violating knot nearest to 0; its neighbour towards 0 does not violate
        kv = torch.where(found, kv, k0)
        kn_ = torch.where(found, kv - step, k0)
        gv, gn = margin[kv], margin[kn_]  # [n, C]
        tv, tn = T[kv], T[kn_]
        frac = gn / (gn - gv)  # where class k first ties class0, counted from the non-violating end
        t_cross = tn[:, None] + (tv - tn)[:, None] * frac
        t_cross = torch.minimum(torch.maximum(t_cross, torch.minimum(tn, tv)[:, None]), torch.maximum(tn, tv)[:, None])
        fill = math.inf if step > 0 else -math.inf
        t_cross = torch.where(viol_k[kv], t_cross, torch.full_like(t_cross, fill))
        return torch.where(found, pick(t_cross), limit)

    t_hi = side(first_after, first_after < N, 1, t_max, lambda x: x.amin(1))
    t_lo = side(last_before, last_before >= 0, -1, t_min, lambda x: x.amax(1))
    return class0, t_lo, t_hi


def _count_pieces(kn: _Knots, t_min, t_max):
    """1 + distinct interior points where the activation pattern changes: the crossings and maybe t = 0.

    Crossings closer than 2^-39·max(1, |t_min|, |t_max|) (float64) are one point: two
    neurons switching at the same point (several hyperplanes meeting on the line) reach it along
    different arithmetic and land an ulp or so apart.
    """
    n = kn.start.shape[0]
    inside = kn.crossing & (kn.T > t_min[kn.line]) & (kn.T < t_max[kn.line])
    at = inside.nonzero()[:, 0]
    tf, lf = kn.T[at], kn.line[at]  # sorted within each line
    scale = torch.maximum(torch.maximum(t_min.abs(), t_max.abs()), torch.ones_like(t_min))  # [n]
    tol = (scale * _rounding(kn.T.dtype))[lf]
    new = torch.ones_like(tf, dtype=torch.bool)
    new[1:] = (tf[1:] - tf[:-1] > tol[1:]) | (lf[1:] != lf[:-1])
    distinct = torch.bincount(lf[new], minlength=n)
    zero_counted = torch.bincount(lf[tf.abs() <= tol], minlength=n) > 0
    return 1 + distinct + (kn.zero_break & ~zero_counted).long()


def _knots_bytes(kn: _Knots) -> int:
    return _nbytes(kn.T, kn.line, kn.crossing, kn.Z, kn.start, kn.count, kn.k0, kn.zero_break)


def _sweep(layers, box: list, i: int, t_min, t_max, budget_bytes: int, stats, pending: int = 0):
    """Continue at layer i with the knots box.pop() (kn.Z = its pre-activations) -> (class0, t_lo,
    t_hi, pieces); split the lines in two when over budget.

    The budget is checked twice per layer: with the knots as they are, then with the layer's
    crossings added (a layer may multiply the knots), before anything of that size is allocated.
    `pending`: bytes held meanwhile by the callers (the other halves of earlier splits, waiting),
    counted in the budget. The knots come in a box that this call empties, and a split copies its
    halves, so that no caller keeps a chunk's knots alive while its halves are swept.
    """
    kn = box.pop()
    entry = _entry_bytes(kn.Z.dtype)
    while True:
        n = kn.start.shape[0]
        N, w = kn.Z.shape
        widest = max(w, layers[i + 1].weight.shape[0]) if i + 1 < len(layers) else w
        need = N * widest * entry
        cr = None
        if pending + need <= budget_bytes and layers[i].relu:
            cr = _crossings(kn)
            need = (N + cr.k.shape[0]) * widest * entry  # the knots after this layer's refinement
        if n > 1 and pending + need > budget_bytes:  # (a single line over budget goes on regardless)
            del cr
            h = n // 2
            halves = [part.clone() for part in reversed(kn.split(h))]  # [b, a], own storage
            if stats is not None:
                stats["splits"] = stats.get("splits", 0) + 1
                stats["peak_bytes"] = max(stats.get("peak_bytes", 0), pending + 2 * _knots_bytes(kn))
            del kn
            waiting = _knots_bytes(halves[0])  # b waits while a is swept
            first = _sweep(layers, halves, i, t_min[:h], t_max[:h], budget_bytes, stats, pending + waiting)
            second = _sweep(layers, halves, i, t_min[h:], t_max[h:], budget_bytes, stats,
                            pending + _nbytes(*first))
            return tuple(torch.cat(p) for p in zip(first, second))
        if stats is not None:
            stats["peak_bytes_estimate"] = max(stats.get("peak_bytes_estimate", 0), pending + need)
        if not layers[i].relu:  # the last layer: logits
            break
        if cr is None:
            cr = _crossings(kn)
        kn = _merge_crossings(kn, cr, layers[i + 1], stats, pending)
        del cr
        i += 1
        if stats is not None:
            stats.setdefault("knots", [0] * (len(layers) - 1))[i - 1] += kn.T.shape[0]
    class0, t_lo, t_hi = _first_change(kn, t_min, t_max)
    return class0, t_lo, t_hi, _count_pieces(kn, t_min, t_max)


def _gather(out: list, dtype, device) -> Intervals:
    """The Intervals of all chunks: out holds (class0, t_lo, t_hi, pieces) per chunk, in line order."""
    if not out:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, empty.long())
    class0, t_lo, t_hi, pieces = (torch.cat(p) for p in zip(*out))
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, pieces)


def exact_intervals(
    model: nn.Module,
    x0,
    d,
    t_min=-1.0,
    t_max=2.0,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    memory_mb: float | None = None,
    progress: bool | str = False,
    stats: dict | None = None,
) -> Intervals:
    """Exact generalization intervals of `model` along the lines x0 + t·d, t in [t_min, t_max].

    `model`: a plain nn.Sequential of Linear/ReLU/Flatten/Identity layers takes the fast path below;
    any other model is read as a graph (gisweep.gi_graph: conv, pooling, batch norm in eval mode,
    residual additions, ...) and swept by the general engine, with the same results' meaning.
    x0, d: [lines, *input shape] ([lines, features] for an MLP; [lines, C, H, W] or flattened rows,
    whatever the model takes); t_min, t_max: scalars or [lines]. The lines are swept in chunks whose
    working set stays under `memory_mb` (default 1024 on a CPU; on CUDA at most half the free device
    memory, which is also the default there); a chunk that would outgrow it, counting the knots a
    layer's crossings add, splits itself first. `device` defaults to x0's device; x0 and d stay
    where they are and go to `device` one chunk at a time. Results are on `device`. CUDA matmuls run
    without TF32 (runtime.exact_matmul). `progress`: False, True, or a label for progress lines on
    stderr. `stats`: a dict to fill with work counters, for benchmarks: knots (after each ReLU layer,
    summed over lines), matmul_flops, chunks, splits (chunks halved mid-sweep to stay in budget),
    peak_bytes_estimate (the largest working set by the count of knots times widths, the number the
    budget is checked against) and peak_bytes (the largest sum of the bytes of the tensors the
    engine held at once while refining a layer, measured from the tensors themselves).
    """
    device = torch.device(device) if device is not None else torch.as_tensor(x0).device
    with exact_matmul(), torch.no_grad():
        layers = _mlp_layers(model, dtype, device)
        if layers is None:  # conv, pooling, batch norm, residual blocks: the general engine
            return _graph_intervals(model, x0, d, t_min, t_max, dtype=dtype, device=device, memory_mb=memory_mb,
                                    progress=progress, stats=stats)
        x0, d = torch.as_tensor(x0), torch.as_tensor(d)
        _check_lines(x0, d, layers)
        n = x0.shape[0]
        t_min, t_max = _line_ranges(t_min, t_max, n, dtype, device)
        if layers[-1].relu:  # ReLU on the logits: refine it like any other, then read the logits as they are
            w = layers[-1].weight.shape[0]
            layers.append(Affine(torch.eye(w, dtype=dtype, device=device),
                                 torch.zeros(w, dtype=dtype, device=device), False))
        budget = _budget_bytes(memory_mb, device)
        widths = [layer.weight.shape[0] for layer in layers]
        # a typical line gains about half a layer's width in knots per ReLU layer; a chunk that grows
        # past the budget splits itself, so the guess only sets the starting size
        guess_knots = 3 + sum(w for w, layer in zip(widths, layers) if layer.relu) // 2
        cap = _MAX_CHUNK_LINES if device.type == "cpu" else n  # a GPU wants the biggest chunk that fits
        chunk = max(1, min(n, cap, budget // (guess_knots * max(widths) * _entry_bytes(dtype))))
        if stats is not None:
            stats.update(knots=[0] * (len(layers) - 1), matmul_flops=0, chunks=0, splits=0,
                         peak_bytes_estimate=0, peak_bytes=0)
        out = []
        bar = Progress(n, label=progress if isinstance(progress, str) else "exact GI", enabled=bool(progress))
        first = layers[0]
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            xs = x0[sl].to(device=device, dtype=dtype)  # [c, F]
            ds = d[sl].to(device=device, dtype=dtype)
            a = _matmul(xs, first.weight.T, first.bias)  # [c, w1] pre-activation at t = 0
            s = _matmul(ds, first.weight.T, torch.zeros_like(first.bias))  # [c, w1] its slope in t
            del xs, ds
            if stats is not None:
                stats["matmul_flops"] += 4 * a.shape[0] * first.weight.numel()
                stats["chunks"] += 1
            box = [_initial_knots(a, s, t_min[sl], t_max[sl])]
            del a, s
            out.append(_sweep(layers, box, 0, t_min[sl], t_max[sl], budget, stats))
            bar.update(sl.stop - sl.start)
        bar.close()
    return _gather(out, dtype, device)


# ----------------------------------------------------------------------------------------------
# the grid baseline (for comparison only)


@exact_matmul()  # no TF32 on CUDA, as in the exact engine
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
    The first layer is evaluated as (x0 W + b) + t (d W), the rest of the network at every point.
    """
    device = torch.device(device) if device is not None else torch.as_tensor(x0).device
    layers = _mlp_layers(model, dtype, device)
    if layers is None:  # any other model: its forward pass at the grid points
        return _graph_grid(model, x0, d, t_min, t_max, steps, dtype=dtype, device=device, memory_mb=memory_mb)
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

    first, rest = layers[0], layers[1:]

    def classify(a, s, ts):  # a, s [m, w1]: first layer at t = 0 and its slope; ts [m, S] -> classes [m, S]
        z = a[:, None, :] + ts[..., None] * s[:, None, :]  # the first layer at the grid points, [m, S, w1]
        if first.relu:
            z = z.clamp_min_(0.0)
        return _forward(rest, z).argmax(-1)

    # one direction's points at a time: the widest layer's values, twice, plus their matmul input
    widest = max(layer.weight.shape[0] for layer in layers)
    per_line = (steps + 1) * widest * torch.finfo(dtype).bits // 8 * 4
    chunk = max(1, min(n, int(memory_mb * 2**20) // per_line))
    t_lo, t_hi, class0 = [], [], []
    with torch.no_grad():
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            a = _matmul(x0[sl], first.weight.T, first.bias)  # [m, w1]
            s = _matmul(d[sl], first.weight.T, torch.zeros_like(first.bias))
            cf = classify(a, s, fwd[sl])  # [m, S]
            c0 = cf[:, 0]
            for ts, out, end in ((fwd[sl], t_hi, t_max[sl]), (bwd[sl], t_lo, t_min[sl])):
                cl = cf if out is t_hi else classify(a, s, ts)
                off = cl != c0[:, None]
                first_off = off.to(torch.int8).argmax(1)
                last_in = ts.gather(1, (first_off - 1).clamp_min(0)[:, None])[:, 0]
                out.append(torch.where(off.any(1), last_in, end))
            class0.append(c0)
    if not class0:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, None)
    t_lo, t_hi, class0 = torch.cat(t_lo), torch.cat(t_hi), torch.cat(class0)
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, None)


def _forward(layers: list[Affine], x):
    for layer in layers:
        x = x @ layer.weight.T + layer.bias
        if layer.relu:
            x = x.clamp_min(0.0)
    return x


# ----------------------------------------------------------------------------------------------
# the general engine: any model gisweep.gi_graph reads (conv, pooling, batch norm, residual blocks)
#
# The same flat knots as above, but every live tensor of the graph is kept at the knots (vals:
# node name -> [N, *shape]); a knot added at one operation is added to all of them by interpolation.


@dataclass
class _GraphKnots:
    T: torch.Tensor  # [N] knot positions, sorted within each line
    line: torch.Tensor  # [N] int64 line of each knot
    crossing: torch.Tensor  # [N] bool, knot added by a ReLU or max-pool (a breakpoint by construction)
    start: torch.Tensor  # [n] int64 flat index of each line's first knot
    count: torch.Tensor  # [n] int64 knots per line
    k0: torch.Tensor  # [n] int64 flat index of each line's t = 0 knot
    zero_break: torch.Tensor  # [n] bool, the activation pattern changes at t = 0 (0 interior)
    vals: dict  # node name -> [N, *shape] the node's values at the knots

    def nbytes(self) -> int:
        return _nbytes(self.T, self.line, self.crossing, self.start, self.count, self.k0, self.zero_break,
                       *self.vals.values())

    def split(self, h: int) -> tuple["_GraphKnots", "_GraphKnots"]:
        """Lines [0, h) and [h, n), each with its own storage."""
        cut = int(self.start[h]) if h < len(self.start) else len(self.T)
        a = _GraphKnots(self.T[:cut], self.line[:cut], self.crossing[:cut], self.start[:h], self.count[:h],
                        self.k0[:h], self.zero_break[:h], {k: v[:cut] for k, v in self.vals.items()})
        b = _GraphKnots(self.T[cut:], self.line[cut:] - h, self.crossing[cut:], self.start[h:] - cut,
                        self.count[h:], self.k0[h:] - cut, self.zero_break[h:],
                        {k: v[cut:] for k, v in self.vals.items()})
        return tuple(_GraphKnots(*(v.clone() for v in (p.T, p.line, p.crossing, p.start, p.count, p.k0,
                                                       p.zero_break)), {k: v.clone() for k, v in p.vals.items()})
                     for p in (a, b))


def _sorted_new_knots(kn: _GraphKnots, k, f):
    """Positions of new knots in intervals k (left knot) at fractions f, sorted by interval then
    position, exact duplicates (same interval, same t) dropped. -> (k, f, t, row): `row` [m] maps each
    input crossing to its knot among the kept ones."""
    ta, tb = kn.T.index_select(0, k), kn.T.index_select(0, k + 1)
    t = torch.minimum(torch.maximum(ta + (tb - ta) * f, ta), tb)
    order = torch.argsort(t, stable=True)
    order = order.index_select(0, torch.argsort(k.index_select(0, order), stable=True))
    ks, fs, ts = k.index_select(0, order), f.index_select(0, order), t.index_select(0, order)
    new = torch.ones_like(ks, dtype=torch.bool)
    new[1:] = (ks[1:] != ks[:-1]) | (ts[1:] != ts[:-1])
    rank = torch.cumsum(new.long(), 0) - 1  # [m] kept knot of each sorted crossing
    row = torch.empty_like(rank).index_copy_(0, order, rank)
    keep = new.nonzero()[:, 0]
    return ks.index_select(0, keep), fs.index_select(0, keep), ts.index_select(0, keep), row


def _insert_knots(kn: _GraphKnots, k, f, t) -> tuple[_GraphKnots, torch.Tensor]:
    """Knots at t (in intervals k at fractions f, sorted) added to every live tensor by linear
    interpolation -> (knots, new_cross [m] the new knots' flat indices)."""
    N, m = kn.T.shape[0], k.shape[0]
    dev = kn.T.device
    per_interval = torch.zeros(N, dtype=torch.int64, device=dev).index_add_(0, k, torch.ones_like(k))
    new_old = torch.arange(N, device=dev) + (torch.cumsum(per_interval, 0) - per_interval)  # [N]
    new_cross = k + 1 + torch.arange(m, device=dev)  # [m]
    M_ = N + m
    vals = {}
    for name, V in kn.vals.items():
        Vf = V.reshape(N, -1)
        Va = Vf.index_select(0, k)  # [m, F]; separate ops, as in _merge_crossings
        Vc = Vf.index_select(0, k + 1).sub_(Va).mul_(f[:, None]).add_(Va)
        out = Vf.new_empty((M_, Vf.shape[1])).index_copy_(0, new_old, Vf).index_copy_(0, new_cross, Vc)
        vals[name] = out.view(M_, *V.shape[1:])
    T = kn.T.new_empty(M_).index_copy_(0, new_old, kn.T).index_copy_(0, new_cross, t)
    cline = kn.line.index_select(0, k)
    line = kn.line.new_empty(M_).index_copy_(0, new_old, kn.line).index_copy_(0, new_cross, cline)
    crossing = torch.ones(M_, dtype=torch.bool, device=dev).index_copy_(0, new_old, kn.crossing)
    count = kn.count.index_add(0, cline, torch.ones_like(cline))
    start = torch.cumsum(count, 0) - count
    k0 = new_old.index_select(0, kn.k0)
    return _GraphKnots(T, line, crossing, start, count, k0, kn.zero_break, vals), new_cross


def _zero_sides(kn: _GraphKnots):
    """(interior [n], k0, kl, kr): lines whose t = 0 is an interior knot, and its neighbours."""
    last = kn.start + kn.count - 1
    interior = (kn.k0 > kn.start) & (kn.k0 < last)
    k0 = kn.k0
    return interior, k0, torch.where(interior, k0 - 1, k0), torch.where(interior, k0 + 1, k0)


def _refine_relu(kn: _GraphKnots, source: str, budget: int, pending: int, per_knot: int, stats):
    """Zero crossings of vals[source] added as knots -> (knots, True), or (kn, False) when the
    refined chunk would not fit the budget (the caller splits it first)."""
    X = kn.vals[source]
    N = X.shape[0]
    Z = X.reshape(N, -1)
    zero = Z.abs().amax(1) * _rounding(Z.dtype)  # [N] within this of 0 is 0
    # the activation pattern changes at t = 0 (as in _merge_crossings)
    interior, k0, kl, kr = _zero_sides(kn)
    z0, zl, zr = Z.index_select(0, k0), Z.index_select(0, kl), Z.index_select(0, kr)
    brk = (z0.abs() <= zero[k0, None]) & ((zl > zero[kl, None]) != (zr > zero[kr, None]))
    kn.zero_break = kn.zero_break | (brk.any(1) & interior)
    del z0, zl, zr, brk
    last = kn.start + kn.count - 1
    k, j = _sign_flips(Z.contiguous(), last)
    flat = Z.reshape(-1)
    w = Z.shape[1]
    za, zb = flat.index_select(0, k * w + j), flat.index_select(0, (k + 1) * w + j)
    strict = (za.abs() > zero.index_select(0, k)) & (zb.abs() > zero.index_select(0, k + 1))
    keep = strict.nonzero()[:, 0]
    k, j, za, zb = (v.index_select(0, keep) for v in (k, j, za, zb))
    if k.shape[0] == 0:
        return kn, True
    ks, fs, ts, row = _sorted_new_knots(kn, k, za / (za - zb))
    need = (N + ks.shape[0]) * per_knot
    if stats is not None:
        stats["peak_bytes"] = max(stats["peak_bytes"], pending + kn.nbytes() + _nbytes(Z, zero, k, j, za, zb))
    if kn.start.shape[0] > 1 and pending + need > budget:
        return kn, False
    if stats is not None:
        stats["peak_bytes_estimate"] = max(stats["peak_bytes_estimate"], pending + need)
    out, new_cross = _insert_knots(kn, ks, fs, ts)
    M_ = out.T.shape[0]
    out.vals[source].reshape(M_, -1)[new_cross.index_select(0, row), j] = 0.0  # the crossing neuron: exactly 0
    if stats is not None:
        stats["peak_bytes"] = max(stats["peak_bytes"], pending + kn.nbytes() + out.nbytes())
    return out, True


def _pool_crossings(Va, Vb, valid, ta, tb):
    """The current maximum's first crossing by another candidate, per (interval, window).

    Va, Vb [m, K]: a window's candidates at an interval's left and right knots (invalid ones -inf);
    valid [m, K]; ta, tb [m] equality up to rounding at each knot. -> f [m], the fraction of the
    interval where the arg-max first changes (inf: it does not)."""
    ta, tb = ta[:, None], tb[:, None]
    # the maximum just right of the left knot: among the (nearly) tied maxima, the largest at the right knot
    tied = Va >= Va.amax(-1, keepdim=True) - ta
    win = torch.where(tied, Vb, -torch.inf).argmax(-1, keepdim=True)  # [m, 1] (lowest index of equals)
    ga = Va.gather(-1, win) - Va  # >= 0 up to rounding: the winner's lead at the left knot
    gb = Vb.gather(-1, win) - Vb
    cross = valid & (ga > ta) & (gb < -tb)  # strictly ahead at the left knot, strictly behind at the right
    f = torch.where(cross, ga / (ga - gb), torch.inf)
    return f.amin(-1)


def _pool_winner(v, valid, tol):
    """Arg-max of each window (v [n, W, K]) with ties (up to rounding, tol [n]) to the lowest index."""
    v = torch.where(valid, v, -torch.inf)
    return (v >= v.amax(-1, keepdim=True) - tol[:, None, None]).to(torch.int8).argmax(-1)


def _pool_zero_break(kn: _GraphKnots, Xf, tol, index, valid) -> _GraphKnots:
    """Mark the lines where some window's arg-max differs on the two sides of t = 0 (the knots are
    refined: on each piece next to 0 the arg-max is that of the piece's midpoint)."""
    interior, k0, kl, kr = _zero_sides(kn)
    ca, cb, cc = (torch.where(valid, Xf.index_select(0, rows)[:, index], -torch.inf) for rows in (kl, k0, kr))
    left, right = (ca + cb) / 2, (cb + cc) / 2  # [n, W, K] the two pieces' midpoints
    tl = tol.index_select(0, kl) + tol.index_select(0, k0)
    tr = tol.index_select(0, k0) + tol.index_select(0, kr)
    brk = (_pool_winner(left, valid, tl) != _pool_winner(right, valid, tr)).any(1)
    kn.zero_break = kn.zero_break | (brk & interior)
    return kn


def _refine_maxpool(kn: _GraphKnots, op, budget: int, pending: int, per_knot: int, stats):
    """Knots where a window's arg-max changes, until none does between two knots -> (knots, done).

    Screen: a candidate that is the maximum at both ends of an interval (up to rounding) is the
    maximum throughout (the others are linear and below it at both ends), so only the (interval,
    window) pairs where the left knot's arg-max is not (nearly) maximal at the right knot are solved.
    """
    index, valid = op.index, op.valid  # [W, K]
    rounds = 4 * index.shape[1] + 8
    for r in range(rounds):
        X = kn.vals[op.source]  # [N, C, H, W]
        N = X.shape[0]
        Xf = X.reshape(N, -1)
        F_ = Xf.shape[1]
        tol = Xf.abs().amax(1) * _rounding(Xf.dtype)  # [N]
        M, arg = F.max_pool2d(X, op.pool.kernel_size, op.pool.stride, op.pool.padding, op.pool.dilation,
                              op.pool.ceil_mode, return_indices=True)  # [N, C, Ho, Wo], index in H*W
        C = X.shape[1]
        Xc = X.reshape(N, C, -1)
        at_next = Xc[1:].gather(2, arg[:-1].reshape(N - 1, C, -1))  # [N-1, C, L] left winner at the right knot
        flag = at_next < M[1:].reshape(N - 1, C, -1) - tol[1:, None, None]
        last = kn.start + kn.count - 1
        flag.index_fill_(0, last[:-1], False)  # no interval from one line to the next
        if stats is not None:
            stats["peak_bytes"] = max(stats["peak_bytes"], pending + kn.nbytes() + 3 * _nbytes(M) + _nbytes(arg))
        del M, arg, at_next
        k, w = flag.reshape(N - 1, -1).nonzero(as_tuple=True)  # [m] interval, window
        if k.shape[0] == 0:
            return _pool_zero_break(kn, Xf, tol, index, valid), True
        flat = Xf.reshape(-1)
        cand_w = index.index_select(0, w)  # [m, K]
        ok = valid.index_select(0, w)
        Va = torch.where(ok, flat[k[:, None] * F_ + cand_w], -torch.inf)
        Vb = torch.where(ok, flat[(k + 1)[:, None] * F_ + cand_w], -torch.inf)
        f = _pool_crossings(Va, Vb, ok, tol.index_select(0, k), tol.index_select(0, k + 1))
        hit = torch.isfinite(f).nonzero()[:, 0]
        if hit.shape[0] == 0:
            return _pool_zero_break(kn, Xf, tol, index, valid), True
        ks, fs, ts, _ = _sorted_new_knots(kn, k.index_select(0, hit), f.index_select(0, hit))
        need = (N + ks.shape[0]) * per_knot
        if kn.start.shape[0] > 1 and pending + need > budget:
            return kn, False
        if stats is not None:
            stats["peak_bytes_estimate"] = max(stats["peak_bytes_estimate"], pending + need)
        kn, _ = _insert_knots(kn, ks, fs, ts)
    raise GisweepError(f"max-pool '{op.name}': arg-max changes did not settle after {rounds} rounds "
                       "(a rounding loop; please report the model)")


def _graph_sweep(graph, box: list, i: int, t_min, t_max, budget: int, stats, pending: int = 0):
    """Operations i, i+1, ... on the knots box.pop() -> (class0, t_lo, t_hi, pieces); the lines split
    in two before a refinement would take the chunk over budget."""
    from gisweep.gi_graph import evaluate

    kn = box.pop()
    ops, per_knot = graph.ops, graph.per_knot_bytes
    while i < len(ops):
        op = ops[i]
        n, N = kn.start.shape[0], kn.T.shape[0]
        done = True
        if op.kind in ("relu", "maxpool"):
            if n > 1 and pending + N * per_knot > budget:
                done = False
            elif op.kind == "relu":
                kn, done = _refine_relu(kn, op.source, budget, pending, per_knot, stats)
            else:
                kn, done = _refine_maxpool(kn, op, budget, pending, per_knot, stats)
        if not done:
            h = n // 2
            halves = list(reversed(kn.split(h)))  # [b, a], own storage
            if stats is not None:
                stats["splits"] += 1
                stats["peak_bytes"] = max(stats["peak_bytes"], pending + 2 * kn.nbytes())
            del kn
            waiting = halves[0].nbytes()
            first = _graph_sweep(graph, halves, i, t_min[:h], t_max[:h], budget, stats, pending + waiting)
            second = _graph_sweep(graph, halves, i, t_min[h:], t_max[h:], budget, stats, pending + _nbytes(*first))
            return tuple(torch.cat(p) for p in zip(first, second))
        kn.vals[op.name] = evaluate(op, graph.module, kn.vals)
        if stats is not None:
            stats["peak_bytes_estimate"] = max(stats["peak_bytes_estimate"], pending + kn.T.shape[0] * per_knot)
            if op.kind in ("relu", "maxpool"):
                stats["knots"][graph.refined.index(op.name)] += kn.T.shape[0]
        for name in op.drop_after:
            kn.vals.pop(name, None)
        i += 1
    last = _Knots(kn.T, kn.line, kn.crossing, kn.vals[graph.output], kn.start, kn.count, kn.k0, kn.zero_break)
    class0, t_lo, t_hi = _first_change(last, t_min, t_max)
    return class0, t_lo, t_hi, _count_pieces(last, t_min, t_max)


def _check_graph_lines(x0, d):
    if x0.ndim < 2 or d.shape != x0.shape:
        raise GisweepError(f"x0 and d must both be [lines, *input shape] of one shape; got {tuple(x0.shape)} "
                           f"and {tuple(d.shape)}")
    if not (torch.isfinite(x0).all() and torch.isfinite(d).all()):
        raise GisweepError("x0 and d must be finite (found NaN or inf)")


def _graph_intervals(model, x0, d, t_min, t_max, *, dtype, device, memory_mb, progress, stats) -> Intervals:
    """exact_intervals for any model gisweep.gi_graph reads (called inside exact_matmul and no_grad)."""
    from gisweep.gi_graph import read_graph

    x0, d = torch.as_tensor(x0), torch.as_tensor(d)
    _check_graph_lines(x0, d)
    graph = read_graph(model, tuple(x0.shape[1:]), dtype, device)  # checks the model and the shapes first
    n = x0.shape[0]
    t_min, t_max = _line_ranges(t_min, t_max, n, dtype, device)
    budget = _budget_bytes(memory_mb, device)
    # a typical line gains about half a layer's width in knots per ReLU layer (capped: conv layers are
    # wide and sparsely crossed); a chunk that outgrows the budget splits itself
    guess_knots = 3 + min(graph.relu_width // 2, 2048)
    cap = _MAX_CHUNK_LINES if device.type == "cpu" else n
    chunk = max(1, min(n, cap, budget // (guess_knots * graph.per_knot_bytes)))
    if stats is not None:
        stats.update(knots=[0] * len(graph.refined), matmul_flops=0, chunks=0, splits=0, peak_bytes_estimate=0,
                     peak_bytes=0, per_knot_bytes=graph.per_knot_bytes)
    out = []
    bar = Progress(n, label=progress if isinstance(progress, str) else "exact GI", enabled=bool(progress))
    name0 = graph.ops[0].name
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        xs = x0[sl].to(device=device, dtype=dtype).reshape(sl.stop - sl.start, -1)  # [c, F]
        ds = d[sl].to(device=device, dtype=dtype).reshape(sl.stop - sl.start, -1)
        kn = _initial_knots(xs, ds, t_min[sl], t_max[sl])  # kn.Z: the input at t_min, 0, t_max
        N = kn.T.shape[0]
        box = [_GraphKnots(kn.T, kn.line, kn.crossing, kn.start, kn.count, kn.k0, kn.zero_break,
                           {name0: kn.Z.view(N, *x0.shape[1:])})]
        del xs, ds, kn
        if stats is not None:
            stats["chunks"] += 1
        out.append(_graph_sweep(graph, box, 1, t_min[sl], t_max[sl], budget, stats))
        bar.update(sl.stop - sl.start)
    bar.close()
    return _gather(out, dtype, device)


def _graph_grid(model, x0, d, t_min, t_max, steps, *, dtype, device, memory_mb) -> Intervals:
    """grid_intervals for any model gisweep.gi_graph reads: its forward pass (float64 copy) at the
    grid points, walking out from t = 0 on each side to the first point of another class."""
    from gisweep.gi_graph import read_graph

    x0, d = torch.as_tensor(x0), torch.as_tensor(d)
    _check_graph_lines(x0, d)
    if steps < 1:
        raise GisweepError(f"steps must be >= 1, got {steps}")
    graph = read_graph(model, tuple(x0.shape[1:]), dtype, device)
    net = graph.module
    n = x0.shape[0]
    t_min, t_max = _line_ranges(t_min, t_max, n, dtype, device)
    h = (t_max - t_min) / steps
    k = torch.arange(steps + 1, dtype=dtype, device=device)
    fwd = torch.minimum(k[None] * h[:, None], t_max[:, None])  # [n, S], 0 first
    bwd = torch.maximum(-k[None] * h[:, None], t_min[:, None])
    # points per forward call: the largest live set per point (graph.per_knot_bytes) within the budget
    points = max(1, int(memory_mb * 2**20) // graph.per_knot_bytes)
    shape = x0.shape[1:]

    def classify(xs, ds, ts):  # xs, ds [1, *shape], ts [S] -> classes [S]
        cls = []
        for a in range(0, ts.shape[0], points):
            tt = ts[a:a + points].reshape(-1, *([1] * len(shape)))
            cls.append(net(xs + tt * ds).argmax(-1))
        return torch.cat(cls)

    t_lo, t_hi, class0 = [], [], []
    with torch.no_grad():
        for i in range(n):
            xs = x0[i:i + 1].to(device=device, dtype=dtype)
            ds = d[i:i + 1].to(device=device, dtype=dtype)
            cf = classify(xs, ds, fwd[i])
            c0 = cf[0]
            for ts, cl, out, end in ((fwd[i], cf, t_hi, t_max[i]), (bwd[i], None, t_lo, t_min[i])):
                cl = classify(xs, ds, ts) if cl is None else cl
                off = cl != c0
                first_off = int(off.to(torch.int8).argmax())
                out.append(ts[first_off - 1] if bool(off.any()) else end)
            class0.append(c0)
    if not class0:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, None)
    t_lo, t_hi, class0 = torch.stack(t_lo), torch.stack(t_hi), torch.stack(class0)
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, None)
