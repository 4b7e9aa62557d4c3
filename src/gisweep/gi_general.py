"""The general exact GI engine: any model gisweep.gi_graph reads (conv, pooling, batch norm in eval
mode, LeakyReLU, residual blocks). gisweep.gi.exact_intervals / grid_intervals call it for every model
that is not a plain Linear/ReLU nn.Sequential; the results mean the same (gisweep.gi's docstring).

The same flat knots as the MLP engine (gisweep.gi_knots), but every live tensor of the graph is kept
at the knots (vals: node name -> [N, *shape]); a knot added at one operation is added to all of them
by interpolation, so adding branches stays exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gisweep import GisweepError
from gisweep.gi_knots import (MAX_CHUNK_LINES, Intervals, Knots, budget_bytes, count_pieces, first_change, gather,
                              grid_gather, initial_knots, line_ranges, nbytes, rounding, sign_flips)
from gisweep.runtime import Progress


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
        return nbytes(self.T, self.line, self.crossing, self.start, self.count, self.k0, self.zero_break,
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
    zero = Z.abs().amax(1) * rounding(Z.dtype)  # [N] within this of 0 is 0
    # the activation pattern changes at t = 0 (as in _merge_crossings)
    interior, k0, kl, kr = _zero_sides(kn)
    z0, zl, zr = Z.index_select(0, k0), Z.index_select(0, kl), Z.index_select(0, kr)
    brk = (z0.abs() <= zero[k0, None]) & ((zl > zero[kl, None]) != (zr > zero[kr, None]))
    kn.zero_break = kn.zero_break | (brk.any(1) & interior)
    del z0, zl, zr, brk
    last = kn.start + kn.count - 1
    k, j = sign_flips(Z.contiguous(), last)
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
        stats["peak_bytes"] = max(stats["peak_bytes"], pending + kn.nbytes() + nbytes(Z, zero, k, j, za, zb))
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
        tol = Xf.abs().amax(1) * rounding(Xf.dtype)  # [N]
        M, arg = F.max_pool2d(X, op.pool.kernel_size, op.pool.stride, op.pool.padding, op.pool.dilation,
                              op.pool.ceil_mode, return_indices=True)  # [N, C, Ho, Wo], index in H*W
        C = X.shape[1]
        Xc = X.reshape(N, C, -1)
        at_next = Xc[1:].gather(2, arg[:-1].reshape(N - 1, C, -1))  # [N-1, C, L] left winner at the right knot
        flag = at_next < M[1:].reshape(N - 1, C, -1) - tol[1:, None, None]
        last = kn.start + kn.count - 1
        flag.index_fill_(0, last[:-1], False)  # no interval from one line to the next
        if stats is not None:
            stats["peak_bytes"] = max(stats["peak_bytes"], pending + kn.nbytes() + 3 * nbytes(M) + nbytes(arg))
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


def graph_sweep(graph, box: list, i: int, t_min, t_max, budget: int, stats, pending: int = 0):
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
            first = graph_sweep(graph, halves, i, t_min[:h], t_max[:h], budget, stats, pending + waiting)
            second = graph_sweep(graph, halves, i, t_min[h:], t_max[h:], budget, stats, pending + nbytes(*first))
            return tuple(torch.cat(p) for p in zip(first, second))
        kn.vals[op.name] = evaluate(op, graph.module, kn.vals)
        if stats is not None:
            stats["peak_bytes_estimate"] = max(stats["peak_bytes_estimate"], pending + kn.T.shape[0] * per_knot)
            if op.kind in ("relu", "maxpool"):
                stats["knots"][graph.refined.index(op.name)] += kn.T.shape[0]
        for name in op.drop_after:
            kn.vals.pop(name, None)
        i += 1
    last = Knots(kn.T, kn.line, kn.crossing, kn.vals[graph.output], kn.start, kn.count, kn.k0, kn.zero_break)
    class0, t_lo, t_hi = first_change(last, t_min, t_max)
    return class0, t_lo, t_hi, count_pieces(last, t_min, t_max)


def _check_graph_lines(x0, d):
    if x0.ndim < 2 or d.shape != x0.shape:
        raise GisweepError(f"x0 and d must both be [lines, *input shape] of one shape; got {tuple(x0.shape)} "
                           f"and {tuple(d.shape)}")
    if not (torch.isfinite(x0).all() and torch.isfinite(d).all()):
        raise GisweepError("x0 and d must be finite (found NaN or inf)")


def graph_intervals(model, x0, d, t_min, t_max, *, dtype, device, memory_mb, progress, stats) -> Intervals:
    """exact_intervals for any model gisweep.gi_graph reads (called inside exact_matmul and no_grad)."""
    from gisweep.gi_graph import check_graph, probe_points, read_graph

    x0, d = torch.as_tensor(x0), torch.as_tensor(d)
    _check_graph_lines(x0, d)
    graph = read_graph(model, tuple(x0.shape[1:]), dtype, device)  # checks the model and the shapes first
    n = x0.shape[0]
    t_min, t_max = line_ranges(t_min, t_max, n, dtype, device)
    check_graph(graph, probe_points(x0.to(device=device, dtype=dtype), d.to(device=device, dtype=dtype), t_min, t_max))
    budget = budget_bytes(memory_mb, device)
    # a typical line gains about half a layer's width in knots per ReLU layer (capped: conv layers are
    # wide and sparsely crossed); a chunk that outgrows the budget splits itself
    guess_knots = 3 + min(graph.relu_width // 2, 2048)
    cap = MAX_CHUNK_LINES if device.type == "cpu" else n
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
        kn = initial_knots(xs, ds, t_min[sl], t_max[sl])  # kn.Z: the input at t_min, 0, t_max
        N = kn.T.shape[0]
        box = [_GraphKnots(kn.T, kn.line, kn.crossing, kn.start, kn.count, kn.k0, kn.zero_break,
                           {name0: kn.Z.view(N, *x0.shape[1:])})]
        del xs, ds, kn
        if stats is not None:
            stats["chunks"] += 1
        out.append(graph_sweep(graph, box, 1, t_min[sl], t_max[sl], budget, stats))
        bar.update(sl.stop - sl.start)
    bar.close()
    return gather(out, dtype, device)


def graph_grid(model, x0, d, t_min, t_max, steps, *, dtype, device, memory_mb) -> Intervals:
    """grid_intervals for any model gisweep.gi_graph reads: its graph evaluated (float64) at the grid
    points as the exact engine evaluates it (gisweep.gi_graph.run_graph, checked
    against the model), walking out from t = 0 on each side to the first point of another class."""
    from gisweep.gi_graph import check_graph, probe_points, read_graph, run_graph

    x0, d = torch.as_tensor(x0), torch.as_tensor(d)
    _check_graph_lines(x0, d)
    if steps < 1:
        raise GisweepError(f"steps must be >= 1, got {steps}")
    graph = read_graph(model, tuple(x0.shape[1:]), dtype, device)
    n = x0.shape[0]
    t_min, t_max = line_ranges(t_min, t_max, n, dtype, device)
    check_graph(graph, probe_points(x0.to(device=device, dtype=dtype), d.to(device=device, dtype=dtype), t_min, t_max))
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
            cls.append(run_graph(graph, xs + tt * ds)[graph.output].argmax(-1))
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
    return grid_gather(class0, t_lo, t_hi, dtype, device)
