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
pooling, batch norm in eval mode, LeakyReLU, residual additions) is read as a graph with torch.fx
(gisweep.gi_graph) and swept by the general engine (gisweep.gi_general): every live tensor is kept
at the knots, affine operations are applied to the values there, ReLU/LeakyReLU add their zero
crossings and a max-pool adds, window by window, the first point where another candidate overtakes
the current maximum (repeated until no arg-max changes between knots); a knot added anywhere is
added to every live tensor by linear interpolation, so adding branches stays exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gisweep import GisweepError
from gisweep.gi_general import graph_grid, graph_intervals
from gisweep.gi_knots import (MAX_CHUNK_LINES, Intervals, Knots, budget_bytes, count_pieces, first_change, gather,
                              grid_gather, initial_knots, line_ranges, nbytes, rounding, sign_flips)
from gisweep.runtime import Progress, exact_matmul


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


def _check_lines(x0, d, layers):
    if x0.ndim != 2 or d.shape != x0.shape:
        raise GisweepError(f"x0 and d must both be [lines, features]; got {tuple(x0.shape)} and {tuple(d.shape)}")
    features = layers[0].weight.shape[1]
    if x0.shape[1] != features:
        raise GisweepError(f"lines have {x0.shape[1]} features but the network's first layer takes {features}")
    if not (torch.isfinite(x0).all() and torch.isfinite(d).all()):
        raise GisweepError("x0 and d must be finite (found NaN or inf)")


# ----------------------------------------------------------------------------------------------
# the exact engine on an MLP: the flat knots of gisweep.gi_knots, one affine map per layer

# every matrix product runs on a multiple of this many rows, so a row's result does not depend on how
# many rows share the call (MKL picks other kernels for leftover rows): chunking stays bit-identical
_ROW_BLOCK = 16


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


def _entry_bytes(dtype) -> int:
    """Bytes held per (knot, neuron) while one layer is refined, at most, counting the knots after the
    layer's crossings are added: Z, its sign-flip bytes, the crossings' rows and the next layer's
    values before and after the merge (see _merge_crossings, which measures what it holds)."""
    return 8 * (torch.finfo(dtype).bits // 8) + 4


@dataclass
class _Crossings:
    """A layer's ReLU zero crossings, one per (interval, neuron) with strictly opposite signs."""

    k: torch.Tensor  # [m] int64 the interval (flat index of its left knot)
    j: torch.Tensor  # [m] int64 the neuron
    za: torch.Tensor  # [m] the neuron's value at knot k
    zb: torch.Tensor  # [m] ... and at knot k + 1
    zero: torch.Tensor  # [N] per knot: |z| at most this is 0
    held: int  # bytes held while they were found (Z, its sign flips, these)


def _crossings(kn: Knots) -> _Crossings:
    """Find the current layer's crossings; their count m sizes the layer's working set before the merge.

    On entry kn.Z holds the current layer's pre-activations, linear between consecutive knots of a line.
    A neuron with strictly opposite signs at two consecutive knots crosses zero once in between.
    """
    Z = kn.Z
    N, w = Z.shape
    last = kn.start + kn.count - 1  # [n] each line's last knot
    # a value within rounding of 0 is 0: |z| <= 2^-39 (float64) of the largest |z| of its layer at that knot
    zero = Z.abs().amax(1) * rounding(Z.dtype)  # [N]
    k, j = sign_flips(Z, last)  # [m] interval (its left knot), neuron
    flat = Z.view(-1)
    za, zb = flat.index_select(0, k * w + j), flat.index_select(0, (k + 1) * w + j)
    # a neuron that is 0 at a knot only touches 0 there, or crosses at the knot itself: no new knot
    strict = (za.abs() > zero.index_select(0, k)) & (zb.abs() > zero.index_select(0, k + 1))
    held = nbytes(Z, zero, k, j, za, zb, strict) + max(N - 1, 0) * w  # + the sign-flip bytes
    if not bool(strict.all()):  # (host syncs: this one, and one nonzero for the four selections)
        keep = strict.nonzero()[:, 0]
        k, j, za, zb = (v.index_select(0, keep) for v in (k, j, za, zb))
    return _Crossings(k, j, za, zb, zero, held)


def _merge_crossings(kn: Knots, cr: _Crossings, nxt: Affine, stats: dict | None, pending: int = 0) -> Knots:
    """Add the crossings as knots, apply the ReLU and the next affine map.

    Each crossing is found by linear interpolation; there every neuron's value is interpolated too
    (the crossing neuron's set to exactly 0). Then the next layer is again linear between
    consecutive knots. Records in stats["peak_bytes"] the bytes of the tensors it holds at its peak,
    plus `pending` (bytes held by the callers meanwhile).
    """
    T, line, Z = kn.T, kn.line, kn.Z
    k, j, za, zb, zero = cr.k, cr.j, cr.za, cr.zb, cr.zero
    N, w = Z.shape
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
            stats["peak_bytes"] = max(stats["peak_bytes"], pending + nbytes(Z, zero, Y, T, line, kn.crossing))
        return Knots(T, line, kn.crossing, Y, kn.start, kn.count, kn.k0, kn.zero_break)

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
        merged = nbytes(Y_old, Yc)
        del Y_old, Yc
    else:
        Zm = Z.new_empty((M_, w)).index_copy_(0, new_old, Z).index_copy_(0, new_cross, Zc)
        Y = _matmul(Zm.clamp_min_(0.0), wt, nxt.bias)  # [N + m, w']
        merged = nbytes(Zm)
        del Zm
    T = T.new_empty(M_).index_copy_(0, new_old, T).index_copy_(0, new_cross, t)
    cline = line.index_select(0, k)
    line = line.new_empty(M_).index_copy_(0, new_old, line).index_copy_(0, new_cross, cline)
    crossing = torch.ones(M_, dtype=torch.bool, device=dev).index_copy_(0, new_old, kn.crossing)
    if stats is not None:  # everything this layer holds at once, at most (kn's tensors stay with the caller)
        held = merged + nbytes(Z, zero, Za, Zc, Y, T, line, crossing, kn.T, kn.line, kn.crossing,
                                k, j, f, t, per_interval, new_old, new_cross, cline)
        stats["peak_bytes"] = max(stats["peak_bytes"], pending + held)
    count = kn.count.index_add(0, cline, torch.ones_like(cline))
    start = torch.cumsum(count, 0) - count
    k0 = new_old.index_select(0, kn.k0)
    return Knots(T, line, crossing, Y, start, count, k0, kn.zero_break)


def _knots_bytes(kn: Knots) -> int:
    return nbytes(kn.T, kn.line, kn.crossing, kn.Z, kn.start, kn.count, kn.k0, kn.zero_break)


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
                            pending + nbytes(*first))
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
    class0, t_lo, t_hi = first_change(kn, t_min, t_max)
    return class0, t_lo, t_hi, count_pieces(kn, t_min, t_max)


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
    residual additions, networks loaded from ONNX or torch.export files by
    gisweep.models.load_network, ...), checked against the model's own forward pass on points of
    the first lines (gisweep.gi_graph.check_graph), and swept by the general engine, with the same
    results' meaning.
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
            return graph_intervals(model, x0, d, t_min, t_max, dtype=dtype, device=device, memory_mb=memory_mb,
                                    progress=progress, stats=stats)
        x0, d = torch.as_tensor(x0), torch.as_tensor(d)
        _check_lines(x0, d, layers)
        n = x0.shape[0]
        t_min, t_max = line_ranges(t_min, t_max, n, dtype, device)
        if layers[-1].relu:  # ReLU on the logits: refine it like any other, then read the logits as they are
            w = layers[-1].weight.shape[0]
            layers.append(Affine(torch.eye(w, dtype=dtype, device=device),
                                 torch.zeros(w, dtype=dtype, device=device), False))
        budget = budget_bytes(memory_mb, device)
        widths = [layer.weight.shape[0] for layer in layers]
        # a typical line gains about half a layer's width in knots per ReLU layer; a chunk that grows
        # past the budget splits itself, so the guess only sets the starting size
        guess_knots = 3 + sum(w for w, layer in zip(widths, layers) if layer.relu) // 2
        cap = MAX_CHUNK_LINES if device.type == "cpu" else n  # a GPU wants the biggest chunk that fits
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
            box = [initial_knots(a, s, t_min[sl], t_max[sl])]
            del a, s
            out.append(_sweep(layers, box, 0, t_min[sl], t_max[sl], budget, stats))
            bar.update(sl.stop - sl.start)
        bar.close()
    return gather(out, dtype, device)


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
        return graph_grid(model, x0, d, t_min, t_max, steps, dtype=dtype, device=device, memory_mb=memory_mb)
    x0 = torch.as_tensor(x0).to(device=device, dtype=dtype)
    d = torch.as_tensor(d).to(device=device, dtype=dtype)
    _check_lines(x0, d, layers)
    if steps < 1:
        raise GisweepError(f"steps must be >= 1, got {steps}")
    n = x0.shape[0]
    t_min, t_max = line_ranges(t_min, t_max, n, dtype, device)
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
    return grid_gather(class0, t_lo, t_hi, dtype, device)


def _forward(layers: list[Affine], x):
    for layer in layers:
        x = x @ layer.weight.T + layer.bias
        if layer.relu:
            x = x.clamp_min(0.0)
    return x
