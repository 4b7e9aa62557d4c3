"""The flat knots both exact GI engines keep (gisweep.gi on MLPs, gisweep.gi_general on any graph),
and what they read from them at the end: the first class change on each side of t = 0 and the count
of linear pieces. The meaning of the results and of "equal up to rounding": gisweep.gi's docstring.

All knots of all lines of a chunk live in flat arrays, line after line, each line's knots sorted:
  T [N] knot positions, line [N] the line each knot belongs to, crossing [N] whether the knot is a
  ReLU zero crossing (a breakpoint by construction), Z [N, w] the current layer's pre-activations.
Per line: start [n] (flat index of its first knot), count [n], k0 [n] (flat index of its t = 0 knot).
No padding, no sort of [N, w] rows: crossings are merged in by computing every row's new position.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gisweep import GisweepError

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


def line_ranges(t_min, t_max, n, dtype, device):
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


# lines per chunk at most on a CPU, so that the working set stays in cache (measured on the MNIST pair
# lines: 32-128 alike on one thread, 128 best on two; 256 is 15-25% slower, 512 35%)
MAX_CHUNK_LINES = 128


def rounding(dtype) -> float:
    """Relative difference below which values count as equal (see the module docstring): 2^-39
    (1.8e-12, some 8000 times float64's rounding) in float64; in float32 only 4 eps (4.8e-7), since
    float32 leaves no such margin and a wider allowance would shift results more than its rounding."""
    return 2.0**-39 if dtype == torch.float64 else 4 * torch.finfo(dtype).eps


def budget_bytes(memory_mb: float | None, device: torch.device) -> int:
    """The working-set budget in bytes: `memory_mb` (default 1024 on a CPU); on CUDA at most half of
    the memory free on the device now (torch.cuda.mem_get_info), which is also the default there."""
    if memory_mb is not None and not memory_mb > 0:
        raise GisweepError(f"memory_mb={memory_mb}: must be > 0")
    if device.type != "cuda":
        return int((1024.0 if memory_mb is None else memory_mb) * 2**20)
    free, _ = torch.cuda.mem_get_info(device)
    cap = free // 2
    return int(cap if memory_mb is None else min(memory_mb * 2**20, cap))


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Knots:
    T: torch.Tensor  # [N] knot positions, sorted within each line
    line: torch.Tensor  # [N] int64 line of each knot
    crossing: torch.Tensor  # [N] bool, knot is a ReLU zero crossing
    Z: torch.Tensor  # [N, w] current pre-activations at the knots
    start: torch.Tensor  # [n] int64 flat index of each line's first knot
    count: torch.Tensor  # [n] int64 knots per line
    k0: torch.Tensor  # [n] int64 flat index of each line's t = 0 knot
    zero_break: torch.Tensor  # [n] bool, the activation pattern changes at t = 0 (0 interior)

    def clone(self) -> "Knots":
        return Knots(*(v.clone() for v in (self.T, self.line, self.crossing, self.Z, self.start, self.count,
                                            self.k0, self.zero_break)))

    def split(self, h: int) -> tuple["Knots", "Knots"]:
        """Lines [0, h) and [h, n), as two independent sets of knots."""
        cut = int(self.start[h]) if h < len(self.start) else len(self.T)
        a = Knots(self.T[:cut], self.line[:cut], self.crossing[:cut], self.Z[:cut], self.start[:h],
                   self.count[:h], self.k0[:h], self.zero_break[:h])
        b = Knots(self.T[cut:], self.line[cut:] - h, self.crossing[cut:], self.Z[cut:], self.start[h:] - cut,
                   self.count[h:], self.k0[h:] - cut, self.zero_break[h:])
        return a, b


def initial_knots(a, s, t_min, t_max) -> Knots:
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
    return Knots(T, line, torch.zeros_like(T, dtype=torch.bool), Z, start, count, k0,
                  torch.zeros(n, dtype=torch.bool, device=dev))


def sign_flips(Z, last):
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


def first_change(kn: Knots, t_min, t_max):
    """class0 and the first class change on each side of t = 0; kn.Z are logits, linear between knots."""
    T, line, L = kn.T, kn.line, kn.Z
    N, C = L.shape
    n = kn.start.shape[0]
    dev = L.device
    k0 = kn.k0
    # a tie is equality up to rounding: within 2^-39 (float64) of the line's largest |logit|
    scale = torch.zeros(n, dtype=L.dtype, device=dev).scatter_reduce_(0, line, L.abs().amax(1), "amax")
    tol = (scale * rounding(L.dtype))[line, None]  # [N, 1]
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


def count_pieces(kn: Knots, t_min, t_max):
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
    tol = (scale * rounding(kn.T.dtype))[lf]
    new = torch.ones_like(tf, dtype=torch.bool)
    new[1:] = (tf[1:] - tf[:-1] > tol[1:]) | (lf[1:] != lf[:-1])
    distinct = torch.bincount(lf[new], minlength=n)
    zero_counted = torch.bincount(lf[tf.abs() <= tol], minlength=n) > 0
    return 1 + distinct + (kn.zero_break & ~zero_counted).long()


def gather(out: list, dtype, device) -> Intervals:
    """The Intervals of all chunks: out holds (class0, t_lo, t_hi, pieces) per chunk, in line order."""
    if not out:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, empty.long())
    class0, t_lo, t_hi, pieces = (torch.cat(p) for p in zip(*out))
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, pieces)


def grid_gather(class0: list, t_lo: list, t_hi: list, dtype, device) -> Intervals:
    """The Intervals of a grid walk (no piece count): class0, t_lo, t_hi per chunk ([m]) or per line ([])."""
    if not class0:
        empty = torch.zeros(0, dtype=dtype, device=device)
        return Intervals(empty.long(), empty, empty, empty, None)
    class0, t_lo, t_hi = (torch.cat([v.reshape(-1) for v in p]) for p in (class0, t_lo, t_hi))
    return Intervals(class0, t_lo, t_hi, t_hi - t_lo, None)
