"""Certified Euclidean distance from many query points to the convex hull of a training set.

For each query x the distance is  min over lambda in the simplex of ||x - train^T lambda||.
Queries are solved in chunks (sized to a memory budget), on CPU or CUDA; the training set is streamed
in row blocks, so no [N, N] matrix and no [B, N] x [N, D] product of dense weights is ever formed.

Method: screening plus Wolfe's nearest-point algorithm on a working set, certified by full passes.
  1. screening: one streamed pass finds each query's nearest training rows; they are its candidates,
     and the nearest one is the starting point (lambda = that vertex);
  2. restricted solve: Wolfe's method (several points added per round) on the candidates only. Pricing
     is in the candidates' Gram space, from the support rows: h_j = <g, y_j> (g = x - p) is kept up to
     date by h -= G delta after each step, O(K k) per query per round (k candidates, K support points).
     A Newton step on the support (the equality-constrained least squares min ||x - y_S^T mu||
     s.t. sum mu = 1, in delta form from the gradient h, so that it also refines the last point) gives
     mu; if mu >= 0 it is taken, otherwise lambda moves toward mu until a weight reaches 0, that point
     leaves S and the step is repeated (Wolfe's minor cycle). A row whose new points all left again adds
     only its single most violating point next round (Wolfe's own step, which always makes progress);
  3. certification: the primal point p = y_S^T lambda and g = x - p are formed from the support rows,
     and one streamed pass over the whole training set gives viol_i = <g, train_i - p> for every i.
     The hyperplane through p normal to g separates x from the hull, so
       lower = min_i <g, x - train_i> / ||g|| = (||g||^2 - max_i viol_i) / ||g||
     is a lower bound and ||g|| (attained by lambda) an upper bound; a query leaves when they agree to
     `tol` (see below). Otherwise the pass's most violating rows join its candidates (the pass also
     refreshes h on the candidates from the primal g) and steps 2-3 repeat.
Paths. Small training sets (N <= DENSE_MAX_N, the [N, N] Gram within a quarter of the budget) take a
dense path instead: every round prices all N rows in the primal, so each round is also a certificate,
and Wolfe's minor cycles read their Gram blocks from the full Gram matrix (few, cheap rounds). On the
device types in LOW_PRECISION_DEVICES (none by default) and from LOW_PRECISION_MIN_N rows, a float64
solve streams float32 products in its passes: each
query's largest float32 values are recomputed in float64, every other row is bounded by the smallest
kept value plus the float32 error bound (gamma_D ||g|| R), so the lower bound stays rigorous; where
that margin alone blocks a certificate, a float64 pass decides.
Passes serve all remaining queries of a chunk at once (one GEMM per training block); restricted solves
run in sub-batches sized so that the [b, K+1, K+1] Newton systems and the [b, k, k] candidate Gram
blocks stay within the budget; non-support candidates beyond what fits are evicted (least violating
first). A small proximal term (1.5e-11 R^2 in float64) keeps the Newton systems nonsingular for affinely
dependent supports (duplicates, collinear points). Distances and certificates always come from the
primal point, never from Gram quantities.

Certificate semantics. The true distance always lies in [lower, distance]. `certified` means this
interval is narrow: distance - lower <= max(tol * distance, atol), with atol = abs_tol * R and R the
largest distance of a training point from the training mean (the data scale). The absolute floor is
needed because in floating point the hyperplane normal g = x - p carries an error of about u * R
(u the unit roundoff), which costs the bound about u R^2 / distance: a relative gap of tol can only
be proven for distance >~ sqrt(u / tol) R (about 1e-5 R for tol = 1e-6 in float64). Closer queries
are certified to atol instead (default abs_tol 1e-7 in float64: the reachable floor is ~1e-8 R).
`inside` means distance <= atol: the query lies in the hull up to atol; it is certified (lower is then
usually 0) and `distance` keeps the attained value (at most atol), it is not rounded to 0.
`lower` includes an allowance for float rounding (2 (D + 2) u (||x - c|| + R)), so it stays a bound.
A query whose allowance alone exceeds the allowed gap even at its nearest-neighbour distance (float32
with one training point, identical points, or queries far from the data) cannot be certified unless
it is inside: it gets one pass (a valid lower bound) and stops, with a warning. `iterations` counts
pricing rounds, restricted (over candidates) and full passes alike; a query not certified when
`max_iter` rounds are spent is returned with certified=False (the last round is always a full pass).
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from gisweep import GisweepError
from gisweep.runtime import Progress, exact_matmul, pick_device, pick_dtype


ADD_GROWTH = 0.5  # a restricted round adds up to this fraction of the support size (at least add_per_iter)
SCREEN_K = 48  # candidates per query from the screening pass (nearest rows)
PASS_ADD = 48  # most violating rows a certification pass adds to a query's candidates
RESTRICTED_ROUNDS = 100  # restricted rounds between two passes, at most
KEEP_WIDTH = 64  # candidates kept across a pass, at least (support and new violators always stay)
RECHECK = 64  # rows per query that a float32 pass recomputes in float64 (its largest values)
DENSE_MAX_N = 3000  # up to this training size (and an [N, N] Gram within a quarter of the budget): dense path
LOW_PRECISION_MIN_N = 16384  # float32 streamed passes (float64 recheck) from this training size on
# ... and on these device types only. None by default: on the 2-core CPU measured here the float64
# recheck's gathers cost what the float32 products save (A/B at 60,000 x 784 and 50,000 x 3,072: no
# faster); on GPUs it is not measured yet ("cuda" here turns it on there)
LOW_PRECISION_DEVICES: tuple[str, ...] = ()


@dataclass
class HullResult:
    """Per query (Q of them); support slots padded to the largest support (index -1, weight 0)."""

    distance: torch.Tensor  # [Q] ||x - train^T lambda||, attained by the returned weights
    lower: torch.Tensor  # [Q] proven lower bound on the true distance
    certified: torch.Tensor  # [Q] bool: distance - lower <= max(tol * distance, atol)
    inside: torch.Tensor  # [Q] bool: distance <= atol (in the hull up to atol)
    iterations: torch.Tensor  # [Q] int64 pricing rounds used
    support_index: torch.Tensor  # [Q, k] int64 training rows, by weight descending, -1 padded
    support_weight: torch.Tensor  # [Q, k] weights (sum 1 unless truncated by support_k), 0 padded
    support_size: torch.Tensor  # [Q] int64 number of training points with positive weight
    tol: float
    atol: float
    stats: dict = field(default_factory=dict)  # engine figures: peak_bytes, budget_bytes, passes, ...

    def to_frame(self):
        """A pandas DataFrame, one row per query; support columns hold lists."""
        import pandas as pd

        idx, w = self.support_index.cpu().numpy(), self.support_weight.cpu().numpy()
        n = self.support_size.cpu().numpy()
        k = idx.shape[1]
        return pd.DataFrame({
            "distance": self.distance.cpu().numpy(),
            "lower": self.lower.cpu().numpy(),
            "certified": self.certified.cpu().numpy(),
            "inside": self.inside.cpu().numpy(),
            "iterations": self.iterations.cpu().numpy(),
            "support_size": n,
            "support_index": [idx[q, : min(n[q], k)].tolist() for q in range(len(n))],
            "support_weight": [w[q, : min(n[q], k)].tolist() for q in range(len(n))],
        })

    def nearest_points(self, train) -> torch.Tensor:
        """The points train^T lambda [Q, D] (exact only when support_k did not truncate)."""
        train = torch.as_tensor(train).to(self.support_weight)
        ok = self.support_index >= 0
        rows = train[self.support_index.clamp_min(0)]  # [Q, k, D]
        return torch.einsum("qk,qkd->qd", torch.where(ok, self.support_weight, 0), rows)


# ----------------------------------------------------------------------------- input handling


def _as_matrix(a, name: str, device, dtype) -> torch.Tensor:
    """A 2-D finite tensor [rows, D] on device/dtype, or a GisweepError naming `name`."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(a, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise GisweepError(f"{name}: not a numeric array ({e})") from None
    if t.ndim != 2:
        raise GisweepError(f"{name}: expected a 2-D array [rows, features], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise GisweepError(f"{name}: empty array of shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=dtype)
    if t.numel() and not (math.isfinite(float(t.max())) and math.isfinite(float(t.min()))):  # NaN propagates
        raise GisweepError(f"{name}: contains NaN or infinite values")
    return t


def _memory_budget(memory_mb: float | None, dev: torch.device) -> float:
    """Working memory in bytes: memory_mb if given, else 1 GiB on CPU and 40% of the free memory of the
    CUDA device (torch.cuda.mem_get_info, read when the solve starts)."""
    if memory_mb is not None:
        if not memory_mb > 0:
            raise GisweepError(f"memory_mb={memory_mb}: must be > 0")
        return memory_mb * 2**20
    if dev.type == "cuda":
        return 0.4 * torch.cuda.mem_get_info(dev)[0]
    return 2.0**30


class _Memory:
    """The engine's own account of its working memory (tensors beyond the centred inputs), in bytes."""

    def __init__(self, budget: float):
        self.budget, self.peak = budget, 0

    def note(self, *tensors, extra: float = 0) -> None:
        """Record the bytes of these tensors (plus extra bytes) as in use together."""
        used = extra + sum(t.numel() * t.element_size() for t in tensors if t is not None)
        self.peak = max(self.peak, used)

    def fit(self, per_item: float, share: float = 1.0) -> int:
        """How many items of per_item bytes fit into share of the budget (at least 1)."""
        return max(1, int(share * self.budget // max(per_item, 1)))


# ----------------------------------------------------------------------------- Newton steps


def _newton_step(gss, rhs, used, reg: float, beta: float):
    """Newton step on the support: min_delta 1/2 delta^T (G + reg I) delta - rhs^T delta, sum delta = 0.

    gss [B, K, K], rhs [B, K], used [B, K] bool -> delta [B, K] (0 on unused slots).
    Solves the bordered system [[G + reg I, beta 1], [beta 1^T, 0]] [delta; nu] = [rhs; 0] by LU
    (unused slots: identity rows); beta, the data scale R^2, keeps the system well scaled. The proximal
    term reg keeps it nonsingular when the support is affinely dependent (duplicates, collinear points,
    more points than dimensions + 1).
    """
    B, K = rhs.shape
    u = used.to(gss.dtype)  # [B, K]
    a = torch.zeros(B, K + 1, K + 1, dtype=gss.dtype, device=gss.device)  # [B, K+1, K+1]
    a[:, :K, :K] = gss * (u.unsqueeze(2) * u.unsqueeze(1))
    a[:, :K, :K].diagonal(dim1=1, dim2=2).add_(torch.where(used, reg, 1.0))
    a[:, :K, K] = beta * u
    a[:, K, :K] = beta * u
    b = torch.zeros(B, K + 1, 1, dtype=gss.dtype, device=gss.device)  # [B, K+1, 1]
    b[:, :K, 0] = torch.where(used, rhs, 0)
    delta = torch.linalg.solve(a, b)[:, :K, 0]  # [B, K]
    return torch.where(used, delta, 0)


def _minor_cycles(gss, rhs, lam, used, reg: float, beta: float, max_steps: int):
    """Move lambda to the nearest point of the affine hull of the support, dropping points whose
    weight reaches 0 on the way (Wolfe's minor cycle), for all rows in parallel.

    gss [B, K, K], rhs [B, K] (<g, train_j> up to a per-row constant), lam [B, K], used [B, K] bool.
    Returns updated (lam, used); lambda stays feasible throughout.
    """
    going = torch.ones(lam.shape[0], dtype=torch.bool, device=lam.device)  # [B]
    for step in range(max_steps):
        # every row takes the first step (a view, no gather); later ones only the rows still going
        # (one host sync a step: the number of rows sets the shapes)
        rows = slice(None) if step == 0 else going.nonzero().squeeze(1)
        if step and rows.numel() == 0:
            break
        g_r, rhs_r, lam_r, used_r = gss[rows], rhs[rows], lam[rows], used[rows]
        delta = _newton_step(g_r, rhs_r, used_r, reg, beta)  # [b, K]
        mu = lam_r + delta
        neg = used_r & (mu <= 0)  # [b, K]
        any_neg = neg.any(1)  # [b]
        ratio = torch.where(neg, lam_r / (lam_r - mu).clamp_min(torch.finfo(lam.dtype).tiny), math.inf)
        theta = torch.where(any_neg, ratio.min(1).values.clamp(0, 1), 1.0)  # [b]
        drop = neg & (ratio <= theta.unsqueeze(1))  # the blocking points leave the support
        new = (lam_r + theta.unsqueeze(1) * delta).clamp_min(0)
        used_r = used_r & ~drop
        new = torch.where(used_r, new, 0)
        new = new / new.sum(1, keepdim=True)
        # gradient at the new point: <g_new, train_j> = <g, train_j> - theta (G delta)_j
        rhs[rows] = rhs_r - theta.unsqueeze(1) * (g_r @ delta.unsqueeze(2)).squeeze(2)
        lam[rows], used[rows] = new, used_r
        going[rows] = any_neg
    return lam, used


# ----------------------------------------------------------------------------- streamed passes


@dataclass
class _Train:
    """The centred training rows as the passes read them.

    X [N, D] in the working dtype and sq [N] = ||X_i||^2; X32 [N, D] a float32 copy (or None) for the
    streamed products of a float64 solve, with err_coef: for every row, |fl32(<g, X_i>) - <g, X_i>|
    <= err_coef * ||g|| * radius (the float32 rounding of g, X_i and of a length-D dot product, summed
    in any order: gamma_D (1 + u)^2 + 2 u + u^2 with u = 2^-24, plus a 1% margin).
    """

    X: torch.Tensor
    sq: torch.Tensor
    radius: float
    X32: torch.Tensor | None = None
    err_coef: float = 0.0

    @classmethod
    def build(cls, X, low_precision: bool):
        sq = (X * X).sum(1)
        radius = float(sq.max().sqrt())
        t = cls(X, sq, radius)
        if low_precision and X.dtype == torch.float64 and radius < 1e15:
            t.X32 = X.to(torch.float32)
            u, D = 2.0**-24, X.shape[1]
            gamma = D * u / (1 - D * u)
            t.err_coef = 1.01 * (gamma * (1 + u) ** 2 + 2 * u + u * u)
        return t

    def stream(self, x):
        """(matrix, queries) for the streamed products: float32 when X32 exists."""
        return (self.X32, x.to(torch.float32)) if self.X32 is not None else (self.X, x)


def _screen(T: _Train, x, k: int, block: int, mem: _Memory):
    """The k nearest training rows of each query, by one streamed pass (Gram expansion).

    x [b, D] -> cand [b, k] int64, nearest first (the first 4 re-ranked by their distances computed
    directly in the working dtype, no cancellation), and their exact distances d0 [b] to cand[:, 0].
    The pass may run in float32 (T.X32): it only chooses candidates; every distance is recomputed.
    """
    X = T.X
    N = X.shape[0]
    b = x.shape[0]
    Xs, xs = T.stream(x)
    sq = T.sq.to(Xs.dtype)
    best_v = torch.empty(b, 0, dtype=xs.dtype, device=x.device)
    best_i = torch.empty(b, 0, dtype=torch.int64, device=x.device)
    for s0 in range(0, N, block):
        s1 = min(s0 + block, N)
        approx = torch.addmm(sq[s0:s1].unsqueeze(0), xs, Xs[s0:s1].T, alpha=-2)  # ||x - X_i||^2 - ||x||^2
        mem.note(approx, approx, best_v, best_i)
        blk = approx.topk(min(k, s1 - s0), dim=1, largest=False)  # the block's best, then a small merge
        vals = torch.cat([best_v, blk.values], 1)
        idx = torch.cat([best_i, blk.indices + s0], 1)
        top = vals.topk(min(k, vals.shape[1]), dim=1, largest=False)  # sorted, nearest first
        best_v, best_i = top.values, idx.gather(1, top.indices)
    head = min(4, best_i.shape[1])
    exact = ((x.unsqueeze(1) - X[best_i[:, :head]]) ** 2).sum(2)  # [b, head]
    order = torch.cat([exact.argsort(dim=1, stable=True),
                       torch.arange(head, best_i.shape[1], device=x.device).expand(b, -1)], 1)
    cand = best_i.gather(1, order)
    return cand, exact.min(1).values.sqrt()


def _gathered_dots(X, idx, g, sub: int):
    """<g_b, X_idx[b, j]> [b, m] in the working dtype, from gathered rows in sub-batches of queries."""
    out = torch.empty(idx.shape, dtype=g.dtype, device=g.device)
    for s in range(0, idx.shape[0], sub):
        out[s : s + sub] = (X[idx[s : s + sub].clamp_min(0)] @ g[s : s + sub].unsqueeze(2)).squeeze(2)
    return out


def _price_low(T: _Train, g, gp, cand, valid, m: int, recheck: int, block: int, sub: int, mem: _Memory):
    """A certification pass with float32 streamed products and a float64 recheck, for a batch.

    Same returns as _price, plus loose [b] bool. The pass keeps each query's `recheck` largest float32
    values <g, X_i> outside its candidates; those rows and the candidates are recomputed in float64.
    Every other row's float32 value is at most the smallest kept one, and the float32 error is at most
    err = err_coef ||g|| R, so max_i <g, X_i> <= max(float64 values, smallest kept + err): a rigorous
    bound. loose marks the queries where the second term decides it (a float64 pass may do better).
    """
    X32 = T.X32
    N = X32.shape[0]
    b, k = cand.shape
    dev = g.device
    g32 = g.to(torch.float32)
    top_v = torch.empty(b, 0, dtype=torch.float32, device=dev)
    top_i = torch.empty(b, 0, dtype=torch.int64, device=dev)
    for s0 in range(0, N, block):
        s1 = min(s0 + block, N)
        nb = s1 - s0
        V = g32 @ X32[s0:s1].T  # [b, nb]
        local = cand - s0
        here = valid & (local >= 0) & (local < nb)
        spot = torch.where(here, local, nb)
        taken = torch.zeros(b, nb + 1, dtype=torch.bool, device=dev).scatter_(1, spot, True)[:, :nb]
        V.masked_fill_(taken, -math.inf)  # candidates are recomputed in float64 below
        mem.note(V, taken, top_v, top_i)
        blk = V.topk(min(recheck, nb), dim=1)
        vals = torch.cat([top_v, blk.values], 1)
        idx = torch.cat([top_i, blk.indices + s0], 1)
        top = vals.topk(min(recheck, vals.shape[1]), dim=1)
        top_v, top_i = top.values, idx.gather(1, top.indices)
    err = T.err_coef * g.norm(dim=1) * T.radius * (1 + 1e-12)  # [b]
    rest = top_v[:, -1].to(g.dtype) + err  # bound on every row not kept (-inf: all were kept)
    v64 = torch.where(top_v > -math.inf, _gathered_dots(T.X, top_i, g, sub), -math.inf)  # [b, M]
    h = torch.where(valid, _gathered_dots(T.X, cand, g, sub), 0)
    exact_max = torch.maximum(v64.max(1).values, torch.where(valid, h, -math.inf).max(1).values)
    vmax = torch.maximum(exact_max, rest)
    order = v64.topk(min(m, v64.shape[1]), dim=1)
    return vmax - gp, order.values - gp.unsqueeze(1), top_i.gather(1, order.indices), h, rest > exact_max


def _price(X, g, gp, cand, valid, m: int, block: int, mem: _Memory):
    """One certification pass over all training rows for a batch (streamed in row blocks).

    X [N, D], g [b, D] = x - p, gp [b] = <g, p>, cand [b, k] candidate rows (valid [b, k]).
    Returns vmax [b] = max_i <g, X_i - p> over all rows, top_v/top_i [b, m'] the most violating rows
    outside the candidates (m' = min(m, N), descending), h [b, k] = <g, X_cand> (0 on invalid slots).
    """
    N = X.shape[0]
    b, k = cand.shape
    dev, dt = g.device, g.dtype
    vmax = torch.full((b,), -math.inf, dtype=dt, device=dev)
    h = torch.zeros(b, k, dtype=dt, device=dev)
    top_v = torch.empty(b, 0, dtype=dt, device=dev)
    top_i = torch.empty(b, 0, dtype=torch.int64, device=dev)
    for s0 in range(0, N, block):
        s1 = min(s0 + block, N)
        nb = s1 - s0
        V = g @ X[s0:s1].T  # [b, nb] <g, X_i>
        vmax = torch.maximum(vmax, V.max(1).values)
        local = cand - s0
        here = valid & (local >= 0) & (local < nb)  # [b, k] candidates in this block
        spot = torch.where(here, local, nb)  # [b, k]; nb: a spare column for the others
        h = torch.where(here, V.gather(1, spot.clamp_max(nb - 1)), h)
        if m:
            taken = torch.zeros(b, nb + 1, dtype=torch.bool, device=dev).scatter_(1, spot, True)[:, :nb]
            V.masked_fill_(taken, -math.inf)
            mem.note(V, taken, h, top_v, top_i)
            blk = V.topk(min(m, nb), dim=1)  # the block's best, then a small merge
            vals = torch.cat([top_v, blk.values], 1)
            idx = torch.cat([top_i, blk.indices + s0], 1)
            top = vals.topk(min(m, vals.shape[1]), dim=1)
            top_v, top_i = top.values, idx.gather(1, top.indices)
    return vmax - gp, top_v - gp.unsqueeze(1), top_i, h


def _primal(X, x, cand, lam, used, sub: int):
    """p = sum_j lam_j X_cand_j from the support rows only, in sub-batches of rows.

    X [N, D], x [b, D], cand/lam/used [b, k] -> g [b, D] = x - p, gg [b] = ||g||^2, gp [b] = <g, p>.
    """
    b = x.shape[0]
    K = int(used.sum(1).max())  # host sync: the support width
    order = torch.argsort((~used).to(torch.int8), dim=1, stable=True)[:, :K]  # used slots first
    idx = cand.gather(1, order).clamp_min(0)
    w = torch.where(used, lam, 0).gather(1, order)  # [b, K]
    p = torch.empty_like(x)
    for s in range(0, b, sub):
        p[s : s + sub] = torch.einsum("bk,bkd->bd", w[s : s + sub], X[idx[s : s + sub]])
    g = x - p
    return g, (g * g).sum(1), (g * p).sum(1)


# ----------------------------------------------------------------------------- restricted solve


@contextmanager
def _few_threads(dev):
    """One CPU thread inside: the restricted solve is many small ops, for which a thread pool mostly waits
    (on a busy machine each op waits for the slowest thread). Restored after; nothing changes on CUDA."""
    if dev.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)



def _restricted(gram, h, lam, used, valid, eps, rounds, refine, reg: float, beta: float, add_per_iter: int):
    """Wolfe's method on each row's candidates, all rows in parallel, in their Gram space.

    gram [b, k, k] candidate Gram blocks, h [b, k] = <g, y_j> (accurate on entry), lam [b, k] feasible
    weights, used [b, k] support, valid [b, k] real slots, eps [b] stop when no candidate violates by
    more, rounds [b] int64 most rounds per row, refine [b] bool: take a first step even without violators
    (a Newton step on the support from the accurate h refines the point below Gram rounding). Returns (h, lam, used, rounds used [b]); h is kept up to
    date by h -= G delta (pricing from the support, O(k K) per row per round).
    """
    b, k = h.shape
    dev = h.device
    spent = torch.zeros(b, dtype=torch.int64, device=dev)
    stalled = torch.zeros(b, dtype=torch.bool, device=dev)
    rows = torch.arange(b, device=dev)
    limit = int(rounds.max()) if b else 0  # host sync
    cols = torch.arange(k, device=dev)
    for r in range(limit):
        hr, lr, ur, vr = h[rows], lam[rows], used[rows], valid[rows]
        viol = hr - (lr * hr).sum(1, keepdim=True)  # [b', k] <g, y_j - p>
        outside = viol.masked_fill(ur | ~vr, -math.inf)
        best = outside.max(1).values
        going = ((best > eps[rows]) | (refine[rows] & (r == 0))) & (spent[rows] < rounds[rows])  # [b']
        size = ur.sum(1)
        per_row = torch.where(stalled[rows], 1, torch.clamp((size * ADD_GROWTH).long(), min=add_per_iter))
        n_going, m = torch.stack([going.sum(), torch.where(going, per_row, 0).max()]).tolist()  # host sync
        if not n_going:
            break
        if n_going < rows.numel():
            keep = going.nonzero().squeeze(1)
            rows, hr, lr, ur, outside, per_row = rows[keep], hr[keep], lr[keep], ur[keep], outside[keep], per_row[keep]
        top_v, top_i = outside.topk(min(m, k), dim=1)
        ok = (top_v > eps[rows].unsqueeze(1)) & (torch.arange(top_i.shape[1], device=dev) < per_row.unsqueeze(1))
        new = torch.zeros_like(ur).scatter_(1, top_i, ok)
        un = ur | new
        K = int(un.sum(1).max())  # host sync: the Newton system's width
        pos = torch.argsort((~un).to(torch.int8), dim=1, stable=True)[:, :K]  # [b', K] support slots first
        at = rows[:, None, None]
        gss = gram[at, pos[:, :, None], pos[:, None, :]]  # [b', K, K] support Gram block (no [b', k, k] copy)
        lam_0 = lr.gather(1, pos)
        lam_s, used_s = _minor_cycles(gss, hr.gather(1, pos), lam_0.clone(), un.gather(1, pos),
                                      reg, beta, max_steps=K + 2)
        lam_s = torch.where(used_s, lam_s, 0)
        lam_new = torch.zeros_like(lr).scatter_(1, pos, lam_s)
        used_new = torch.zeros_like(ur).scatter_(1, pos, used_s)
        g_cols = gram[at, cols[None, :, None], pos[:, None, :]]  # [b', k, K] columns of the support slots
        h[rows] = hr - (g_cols @ (lam_s - lam_0).unsqueeze(2)).squeeze(2)  # pricing from the support: O(k K)
        lam[rows], used[rows] = lam_new, used_new
        spent[rows] += 1
        stalled[rows] = ok.any(1) & ~(new & used_new & (lam_new > 0)).any(1)
    return h, lam, used, spent


def _extend(X, cand, valid, lam, used, h, gram, add_i, add_ok, add_h, width: int):
    """Add rows add_i [b, m] (where add_ok) to the candidates and keep the best `width` slots.

    Kept: the support, then the valid candidates by violation h - <g, p>, then the new rows (they
    violate). The Gram blocks of the new rows come from gathered rows, O(m k D) per query.
    """
    b, k = cand.shape
    m = add_i.shape[1]
    dev, dt = h.device, h.dtype
    cand2 = torch.cat([cand, torch.where(add_ok, add_i, -1)], 1)  # [b, k + m]
    valid2 = torch.cat([valid, add_ok], 1)
    lam2 = torch.cat([lam, torch.zeros(b, m, dtype=dt, device=dev)], 1)
    used2 = torch.cat([used, torch.zeros(b, m, dtype=torch.bool, device=dev)], 1)
    h2 = torch.cat([h, add_h], 1)
    gp = (lam * h).sum(1, keepdim=True)
    score = torch.where(valid2, h2 - gp, -math.inf)  # old candidates by violation
    score[:, k:] = torch.where(add_ok, math.inf, -math.inf)  # new rows are kept (they violate)
    score = torch.where(used2, math.inf, score)  # the support is kept
    width = min(width, k + m)
    keep = score.topk(width, dim=1).indices.sort(1).values  # [b, w] slot order preserved
    old = keep < k  # [b, w]
    cand_w = cand2.gather(1, keep)
    rows_all = X[cand_w.clamp_min(0)]  # [b, w, D]
    cross = X[add_i.clamp_min(0)] @ rows_all.transpose(1, 2)  # [b, m, w] new rows x kept rows
    cross = cross.gather(1, (keep - k).clamp_min(0).unsqueeze(2).expand(-1, -1, width))  # [b, w, w] by slot
    oldk = keep.clamp_max(k - 1)
    g_old = gram.gather(1, oldk.unsqueeze(2).expand(-1, -1, k)).gather(2, oldk.unsqueeze(1).expand(-1, width, -1))
    both_old = old.unsqueeze(2) & old.unsqueeze(1)
    gram_w = torch.where(both_old, g_old, torch.where(old.unsqueeze(2), cross.transpose(1, 2), cross))
    v = valid2.gather(1, keep)
    gram_w = gram_w * (v.unsqueeze(2) & v.unsqueeze(1))
    return cand_w, v, lam2.gather(1, keep), used2.gather(1, keep), h2.gather(1, keep), gram_w


def _candidate_gram(X, cand, valid, sub: int):
    """[b, k, k] Gram blocks of the candidate rows, in sub-batches of queries (0 on invalid slots)."""
    b, k = cand.shape
    out = torch.empty(b, k, k, dtype=X.dtype, device=X.device)
    for s in range(0, b, sub):
        rows = X[cand[s : s + sub].clamp_min(0)]  # [s', k, D]
        out[s : s + sub] = rows @ rows.transpose(1, 2)
    v = valid.unsqueeze(2) & valid.unsqueeze(1)
    return out * v


# ----------------------------------------------------------------------------- public API


@exact_matmul()
def hull_distance(
    train,
    queries,
    tol: float = 1e-6,
    max_iter: int = 500,
    device="auto",
    dtype: torch.dtype = torch.float64,
    add_per_iter: int = 8,
    abs_tol: float | None = None,
    support_k: int | None = None,
    memory_mb: float | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> HullResult:
    """Certified distance of every query row to the convex hull of the train rows.

    train [N, D], queries [Q, D] (numpy or torch). tol: relative gap (distance - lower <= tol * distance)
    at which a query is certified. max_iter: pricing rounds per query (restricted and full passes) before
    giving up (the query is then flagged certified=False). add_per_iter: most violating points added per
    restricted round. abs_tol: atol = abs_tol * R (R: data radius) is the absolute gap that also
    certifies, and the distance below which a query counts as inside (default 1e-7 for float64, 1e-3 for
    float32). support_k: keep only the k heaviest support points in the result (None: all).
    memory_mb / chunk_size: working memory beyond the inputs (default: 1 GiB on CPU, 40% of the free
    memory on CUDA); queries are solved in chunks sized to it (or of chunk_size). progress: log lines to
    stderr every few seconds. Results are on the CPU; result.stats has the engine's accounted peak
    working memory (peak_bytes), the budget, the full passes and the chunk size.
    """
    dev = pick_device(str(device))
    dtype = pick_dtype(dtype)
    if not tol > 0:
        raise GisweepError(f"tol={tol}: must be > 0")
    if max_iter < 1 or add_per_iter < 1:
        raise GisweepError(f"max_iter={max_iter}, add_per_iter={add_per_iter}: both must be >= 1")
    X = _as_matrix(train, "train", dev, dtype)  # [N, D]
    Xq = _as_matrix(queries, "queries", dev, dtype)  # [Q, D]
    N, D = X.shape
    Q = Xq.shape[0]
    if Xq.shape[1] != D:
        raise GisweepError(f"queries have {Xq.shape[1]} features but train has {D}")

    # centre on the training mean: distances do not change, Gram entries and rounding shrink
    centre = X.mean(0, keepdim=True)  # [1, D]
    X = X - centre
    Xq = Xq - centre
    low = (dev.type in LOW_PRECISION_DEVICES and N >= LOW_PRECISION_MIN_N
           and torch.get_float32_matmul_precision() == "highest")
    T = _Train.build(X, low_precision=low)
    radius = T.radius  # R, the data scale
    unit = torch.finfo(dtype).eps / 2
    if abs_tol is None:
        abs_tol = 1e-7 if dtype == torch.float64 else 1e-3
    if not abs_tol >= 0:
        raise GisweepError(f"abs_tol={abs_tol}: must be >= 0")
    atol = abs_tol * radius
    reg_rel = math.sqrt(unit) * 1e-3  # proximal term, relative to R^2

    itemsize = torch.finfo(dtype).bits // 8
    mem = _Memory(_memory_budget(memory_mb, dev))
    dense = N <= DENSE_MAX_N and N * N * itemsize <= mem.budget / 4
    k_est = min(N, SCREEN_K + 4 * PASS_ADD)  # candidates a query typically holds
    if chunk_size is None and dense:  # [B, N] weights and violations, the query vectors, the supports
        chunk_size = mem.fit(itemsize * (4 * N + 4 * D + 2 * 64 * 64), share=0.75)
    elif chunk_size is None:  # persistent state (Gram blocks, candidate vectors, query vectors) per query
        chunk_size = mem.fit(itemsize * (k_est * k_est + 8 * k_est + 8 * D), share=0.5)
    chunk_size = min(chunk_size, Q)
    gram = T.X @ T.X.T if dense else None  # [N, N]
    if dense:
        mem.note(gram)

    out_d = torch.empty(Q, dtype=dtype)
    out_lo = torch.empty(Q, dtype=dtype)
    out_it = torch.empty(Q, dtype=torch.int64)
    out_idx: list[torch.Tensor] = []
    out_w: list[torch.Tensor] = []
    log = Progress(label="hull_distance", enabled=progress)
    starts = list(range(0, Q, chunk_size))
    passes, hopeless, exact_passes = 0, 0, 0
    for c, s0 in enumerate(starts):
        s1 = min(s0 + chunk_size, Q)
        note = lambda msg, c=c: log.note(lambda: f"chunk {c + 1}/{len(starts)}, {msg()}")  # noqa: E731
        if dense:
            out = _solve_dense(T, gram, Xq[s0:s1], tol, atol, unit, reg_rel, max_iter, add_per_iter, mem, note)
        else:
            out = _solve_chunk(T, Xq[s0:s1], tol, atol, unit, reg_rel, max_iter, add_per_iter, mem, note)
        d, lo, it, idx, w, n_pass, n_hopeless, n_exact = out
        out_d[s0:s1], out_lo[s0:s1], out_it[s0:s1] = d.cpu(), lo.cpu(), it.cpu()
        out_idx.append(idx.cpu())
        out_w.append(w.cpu())
        passes, hopeless, exact_passes = passes + n_pass, hopeless + n_hopeless, exact_passes + n_exact
    if hopeless:
        warnings.warn(
            f"hull_distance: {hopeless} of {Q} queries cannot be certified to tol={tol:g} / atol={atol:.3g} in "
            f"{str(dtype).replace('torch.', '')}: the float rounding allowance 2 (D + 2) u (||x - c|| + R) "
            f"already exceeds the allowed gap (one training point, identical points or queries far from the "
            f"data); they stopped after one pass with a valid lower bound (certified=False unless inside). "
            f"Use float64, or a larger tol / abs_tol.", RuntimeWarning, stacklevel=3)

    width = max(t.shape[1] for t in out_idx)
    if support_k is not None:
        width = min(width, max(1, int(support_k)))
    sup_idx = torch.full((Q, width), -1, dtype=torch.int64)
    sup_w = torch.zeros(Q, width, dtype=dtype)
    sizes = torch.empty(Q, dtype=torch.int64)
    for s0, idx, w in zip(starts, out_idx, out_w):
        order = torch.argsort(w, dim=1, descending=True, stable=True)
        idx, w = idx.gather(1, order), w.gather(1, order)
        k = min(width, idx.shape[1])
        sup_idx[s0 : s0 + idx.shape[0], :k] = torch.where(w[:, :k] > 0, idx[:, :k], -1)
        sup_w[s0 : s0 + idx.shape[0], :k] = w[:, :k]
        sizes[s0 : s0 + idx.shape[0]] = (w > 0).sum(1)
    inside = out_d <= atol
    certified = out_d - out_lo <= torch.clamp(tol * out_d, min=atol)
    stats = {"peak_bytes": mem.peak, "budget_bytes": mem.budget, "passes": passes, "chunk_size": chunk_size,
             "hopeless": hopeless, "path": "dense" if dense else ("streamed-f32" if T.X32 is not None else "streamed"),
             "exact_rechecks": exact_passes}
    return HullResult(out_d, out_lo, certified, inside, out_it, sup_idx, sup_w, sizes, tol, atol, stats)


def _solve_chunk(T, x, tol, atol, unit, reg_rel, max_iter, add_per_iter, mem, log):
    """All queries of one chunk. T the centred training rows (_Train), x [B, D] centred queries.

    Returns distance [B], lower [B], iterations [B], support idx [B, K], weights [B, K], passes, hopeless.
    """
    X, radius = T.X, T.radius
    N, D = X.shape
    B = x.shape[0]
    dev, dt = x.device, x.dtype
    item = torch.finfo(dt).bits // 8
    # rounding allowance for the lower bound (dot products of length D, centring)
    slack = 2 * (D + 2) * unit * (x.norm(dim=1) + radius)  # [B]
    scale2 = radius**2 if radius > 0 else 1.0  # Gram scale (R = 0: all training points coincide)
    noise = 64 * unit * scale2  # Gram-space rounding: violations below it are not resolved there

    def block_rows(b):  # training rows per streamed block: [b, nb] products and the top-m merge
        return max(PASS_ADD, min(N, mem.fit(item * 4 * max(b, 1), share=0.25)))

    # 1. screening: nearest rows are the first candidates; the nearest is the starting point
    k = min(N, SCREEN_K)
    cand, d_nn = _screen(T, x, k, block_rows(B), mem)  # [B, k], [B]
    valid = torch.ones(B, k, dtype=torch.bool, device=dev)
    lam = torch.zeros(B, k, dtype=dt, device=dev)
    lam[:, 0] = 1
    used = torch.zeros(B, k, dtype=torch.bool, device=dev)
    used[:, 0] = True

    def sub_rows(b, width):  # rows per sub-batch: gathered rows [s, w, D], Gram / Newton blocks [s, w, w]
        return mem.fit(item * (3 * width * D + 6 * (width + 1) ** 2), share=0.25)

    gram = _candidate_gram(X, cand, valid, sub_rows(B, k))  # [B, k, k]
    mem.note(gram, x, extra=item * sub_rows(B, k) * k * D)
    g0 = x - X[cand[:, 0]]  # [B, D]
    h = torch.zeros(B, k, dtype=dt, device=dev)
    for s in range(0, B, sub_rows(B, k)):
        e = s + sub_rows(B, k)
        h[s:e] = (X[cand[s:e]] @ g0[s:e].unsqueeze(2)).squeeze(2)  # <g, y_j>, primal
    # queries whose rounding allowance exceeds the allowed gap even at the nearest-neighbour distance
    # (an upper bound on the distance) can only be certified as inside: one pass for their lower bound
    hopeless = (slack > torch.clamp(tol * d_nn, min=atol)) & (d_nn > atol)  # [B]
    it = torch.zeros(B, dtype=torch.int64, device=dev)

    res_d = torch.zeros(B, dtype=dt, device=dev)
    res_lo = torch.zeros(B, dtype=dt, device=dev)
    res_it = torch.zeros(B, dtype=torch.int64, device=dev)
    res_idx: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    rows = torch.arange(B, device=dev)  # chunk rows still being solved
    gg = (g0 * g0).sum(1)
    refine = torch.zeros(B, dtype=torch.bool, device=dev)  # certified to atol only: refine, pass again
    retries = torch.zeros(B, dtype=torch.int64, device=dev)
    n_pass, n_exact = 0, 0
    while True:
        # 2. restricted solve on the candidates (the last allowed round is kept for the pass)
        budget_r = torch.where(hopeless[rows], 0, (max_iter - 1 - it).clamp(0, RESTRICTED_ROUNDS))
        target = 0.25 * tol * gg  # aim at the relative certificate (atol is the fallback)
        eps = torch.clamp(target, min=noise)
        sub = sub_rows(rows.numel(), cand.shape[1])
        spent = torch.empty_like(it)
        with _few_threads(dev):
            for s in range(0, rows.numel(), sub):
                sl = slice(s, s + sub)
                mem.note(gram, h, lam, cand, x, gram[sl], gram[sl], gram[sl])
                h[sl], lam[sl], used[sl], spent[sl] = _restricted(
                    gram[sl], h[sl], lam[sl], used[sl], valid[sl], eps[sl], budget_r[sl], refine[sl],
                    reg_rel * scale2, scale2, add_per_iter)
        it += spent
        # 3. certification pass from the primal point
        sub = sub_rows(rows.numel(), int(used.sum(1).max()))
        mem.note(gram, h, lam, cand, x, extra=item * sub * int(used.sum(1).max()) * D)
        g, gg, gp = _primal(X, x[rows], cand, lam, used, sub)
        dist = gg.sqrt()

        def bound(vmax):  # the hyperplane's lower bound and the gap it leaves
            lower = torch.where(dist > 0, (gg - vmax.clamp_min(0)) / dist.clamp_min(torch.finfo(dt).tiny)
                                - slack[rows], 0).clamp_min(0)
            return lower, dist - lower

        vmax, top_v, top_i, h, n64 = _certify(T, g, gp, cand, valid, dist, tol, atol, bound, block_rows,
                                              lambda w: sub_rows(rows.numel(), w), mem)
        lower, gap = bound(vmax)
        n_exact += n64
        it += 1
        n_pass += 1
        # certified to atol but not to tol, where tol looks reachable (tol d^2 above the Gram rounding):
        # up to two refinement passes more (a Newton step from the primal gradient), as the old engine's
        # every round was; the certificate rule itself is unchanged
        refine = (gap > tol * dist) & (gap <= atol) & (tol * gg >= 0.5 * unit * scale2) & (retries < 2)
        retries += refine.long()
        done = ((gap <= torch.clamp(tol * dist, min=atol)) & ~refine) | (it >= max_iter) | hopeless[rows]
        n_done = int(done.sum())  # host sync: one a pass
        n_going = rows.numel() - n_done
        if n_done:
            fin_at = done.nonzero().squeeze(1)
            fin = rows[fin_at]
            res_d[fin], res_lo[fin], res_it[fin] = dist[fin_at], lower[fin_at], it[fin_at]
            res_idx.append((fin, cand[fin_at].clamp_min(0), torch.where(used[fin_at], lam[fin_at], 0)))
        log(lambda: f"round {n_pass}: {n_going}/{B} queries not yet certified")
        if not n_going:
            break
        keep = (~done).nonzero().squeeze(1)
        rows, cand, valid, lam, used, h, gram, it = (rows[keep], cand[keep], valid[keep], lam[keep], used[keep],
                                                     h[keep], gram[keep], it[keep])
        refine, retries = refine[keep], retries[keep]
        gg, gp, top_v, top_i = gg[keep], gp[keep], top_v[keep], top_i[keep]
        # the pass's violators join the candidates; non-support candidates beyond the budget leave
        add_ok = top_v > 0
        b = rows.numel()
        width = int((valid.sum(1) + add_ok.sum(1)).max())  # host sync
        fits = int(math.isqrt(max(1, int(0.25 * mem.budget // (item * 2 * b)))))  # [b, w, w] twice
        width = min(width, max(min(fits, KEEP_WIDTH), int(used.sum(1).max()) + PASS_ADD))
        sub = sub_rows(b, width)
        parts = [_extend(X, cand[s : s + sub], valid[s : s + sub], lam[s : s + sub], used[s : s + sub],
                         h[s : s + sub], gram[s : s + sub], top_i[s : s + sub], add_ok[s : s + sub],
                         top_v[s : s + sub] + gp[s : s + sub, None], width)
                 for s in range(0, b, sub)]
        cand, valid, lam, used, h, gram = (torch.cat([p[i] for p in parts]) for i in range(6))
        # the old and new state together, plus one sub-batch's gathered rows [sub, w, D] and [sub, m, D]
        mem.note(gram, h, lam, cand, x, gram, h, lam, extra=item * sub * (width + PASS_ADD) * D * 2)

    out_idx, out_w = _padded_supports(res_idx, B, dt, dev)
    return res_d, res_lo, res_it, out_idx, out_w, n_pass, int(hopeless.sum()), n_exact


def _padded_supports(res_idx, B: int, dt, dev):
    """The supports retired chunk by chunk ((rows, idx [b, w], weights [b, w]) each) as one [B, width]
    index and weight pair, zero-padded to the widest."""
    width = max(t[1].shape[1] for t in res_idx)
    out_idx = torch.zeros(B, width, dtype=torch.int64, device=dev)
    out_w = torch.zeros(B, width, dtype=dt, device=dev)
    for fin, i, w in res_idx:
        out_idx[fin, : i.shape[1]] = i
        out_w[fin, : w.shape[1]] = w
    return out_idx, out_w


def _certify(T, g, gp, cand, valid, dist, tol, atol, bound, block_rows, sub_for, mem):
    """The certification pass of a batch: float32 products with a float64 recheck (T.X32), and a float64
    pass for the rows where the float32 margin alone blocks the certificate; float64 throughout without
    T.X32. Returns vmax [b], top_v / top_i [b, m], h [b, k] as _price does, and the float64 re-passes."""
    X = T.X
    m = min(PASS_ADD, X.shape[0])
    if T.X32 is None:
        return (*_price(X, g, gp, cand, valid, m, block_rows(g.shape[0]), mem), 0)
    vmax, top_v, top_i, h, loose = _price_low(T, g, gp, cand, valid, m, RECHECK, block_rows(g.shape[0]),
                                              sub_for(max(RECHECK, cand.shape[1])), mem)
    top_v, top_i = _fit_width(top_v, m, -math.inf), _fit_width(top_i, m, 0)
    _, gap = bound(vmax)
    redo = (loose & (gap > torch.clamp(tol * dist, min=atol))).nonzero().squeeze(1)
    if redo.numel():
        r64 = _price(X, g[redo], gp[redo], cand[redo], valid[redo], m, block_rows(redo.numel()), mem)
        vmax[redo], h[redo] = r64[0], r64[3]
        top_v[redo], top_i[redo] = _fit_width(r64[1], m, -math.inf), _fit_width(r64[2], m, 0)
    return vmax, top_v, top_i, h, int(redo.numel())


def _fit_width(t, width: int, fill):
    """t [b, m] cut or padded (with fill) to [b, width]."""
    if t.shape[1] >= width:
        return t[:, :width]
    return torch.cat([t, torch.full((t.shape[0], width - t.shape[1]), fill, dtype=t.dtype, device=t.device)], 1)


# ----------------------------------------------------------------------------- dense path (small N)


def _dense_price(X, idx, lam, x):
    """Primal point and violations over all N rows: gg [B] = ||g||^2, viol [B, N] = <g, X_i - p>."""
    weights = torch.zeros(x.shape[0], X.shape[0], dtype=x.dtype, device=x.device)
    weights.scatter_add_(1, idx, lam)  # [B, N] dense lambda (unused slots carry weight 0)
    g = x - weights @ X  # [B, D], formed in the primal
    p = x - g
    return (g * g).sum(1), g @ X.T - (g * p).sum(1, keepdim=True)


def _add_points(idx, lam, used, cand, ok):
    """Put rows cand [B, m] (where ok, a prefix of each row) into free slots, growing K if needed.

    Returns (idx, lam, used, new) with new [B, K] marking the slots just filled.
    """
    B, K = idx.shape
    need = int((used.sum(1) + ok.sum(1)).max())
    if need > K:
        pad = need - K
        idx = torch.cat([idx, idx.new_zeros(B, pad)], 1)
        lam = torch.cat([lam, lam.new_zeros(B, pad)], 1)
        used = torch.cat([used, used.new_zeros(B, pad)], 1)
    free_first = torch.argsort(used.to(torch.int8), dim=1, stable=True)[:, : cand.shape[1]]  # [B, m]
    idx = idx.scatter(1, free_first, torch.where(ok, cand, idx.gather(1, free_first)))
    new = torch.zeros_like(used).scatter(1, free_first, ok)
    return idx, lam, used | new, new


@dataclass
class _DenseState:
    """The rows of a dense chunk still being solved: supports (idx, lam, used [b, K]), chunk rows [b]."""

    rows: torch.Tensor
    idx: torch.Tensor
    lam: torch.Tensor
    used: torch.Tensor
    stalled: torch.Tensor  # [b] the last round gained nothing: add one point (Wolfe's step)

    def keep(self, keep):
        return _DenseState(self.rows[keep], self.idx[keep], self.lam[keep], self.used[keep], self.stalled[keep])

    def grow(self, viol, add_per_iter: int):
        """The most violating rows outside the support join it (up to max(add_per_iter, |S| / 2))."""
        N = viol.shape[1]
        in_support = torch.zeros_like(viol).scatter_add_(1, self.idx, self.used.to(viol.dtype)) > 0
        outside = viol.masked_fill(in_support, -math.inf)
        per_row = torch.clamp((self.used.sum(1) * ADD_GROWTH).long(), min=add_per_iter)
        per_row = torch.where(self.stalled, 1, per_row)
        m = min(int(per_row.max()), N)
        top_v, top_i = outside.topk(m, dim=1)
        ok = (top_v > 0) & (torch.arange(m, device=viol.device) < per_row.unsqueeze(1))
        self.idx, self.lam, self.used, new = _add_points(self.idx, self.lam, self.used, top_i, ok)
        return ok, new

    def step(self, gram, viol, reg: float, beta: float):
        """Wolfe's minor cycles on the support from the primal gradient (the Gram entries are exact rows)."""
        gss = gram[self.idx.unsqueeze(2), self.idx.unsqueeze(1)]  # [b, K, K]
        self.lam, self.used = _minor_cycles(gss, viol.gather(1, self.idx), self.lam, self.used, reg, beta,
                                            max_steps=self.idx.shape[1] + 2)

    def pack(self, new, ok, width: int):
        """Support slots first, padding trimmed to width; records which rows stalled."""
        order = torch.argsort((~self.used).to(torch.int8), dim=1, stable=True)
        self.idx, self.lam, self.used, new = (t.gather(1, order)[:, :width] for t in
                                              (self.idx, self.lam, self.used, new))
        self.stalled = ok.any(1) & ~(new & self.used & (self.lam > 0)).any(1)


def _solve_dense(T: _Train, gram, x, tol, atol, unit, reg_rel, max_iter, add_per_iter, mem, log):
    """All queries of one chunk with the [N, N] Gram matrix at hand (small N): every round prices all N
    rows in the primal (one [B, N] product each way), so a round is also a certification; Wolfe's
    minor cycles run on the support. Same returns as _solve_chunk."""
    X = T.X
    N, D = X.shape
    B = x.shape[0]
    dev, dt = x.device, x.dtype
    slack = 2 * (D + 2) * unit * (x.norm(dim=1) + T.radius)  # [B]
    scale2 = T.radius**2 if T.radius > 0 else 1.0
    K0 = min(N, max(16, 2 * add_per_iter))
    cand, _ = _screen(T, x, min(N, 4), max(4, mem.fit(8 * 4 * B, share=0.25)), mem)
    st = _DenseState(torch.arange(B, device=dev), torch.zeros(B, K0, dtype=torch.int64, device=dev),
                     torch.zeros(B, K0, dtype=dt, device=dev), torch.zeros(B, K0, dtype=torch.bool, device=dev),
                     torch.zeros(B, dtype=torch.bool, device=dev))
    st.idx[:, 0], st.lam[:, 0], st.used[:, 0] = cand[:, 0], 1, True
    res_d = torch.zeros(B, dtype=dt, device=dev)
    res_lo = torch.zeros(B, dtype=dt, device=dev)
    res_it = torch.full((B,), max_iter, dtype=torch.int64, device=dev)
    res_idx = []
    hopeless = torch.zeros(B, dtype=torch.bool, device=dev)
    for it in range(1, max_iter + 1):
        gg, viol = _dense_price(X, st.idx, st.lam, x[st.rows])  # [b], [b, N]
        mem.note(viol, viol, gram)
        dist = gg.sqrt()
        lower = torch.where(dist > 0, (gg - viol.max(1).values.clamp_min(0)) / dist.clamp_min(torch.finfo(dt).tiny)
                            - slack[st.rows], 0).clamp_min(0)
        allowed = torch.clamp(tol * dist, min=atol)
        if it == 1:  # at the nearest training point: the rounding allowance alone may exceed the gap
            hopeless = (slack > allowed) & (dist > atol)
        done = (dist - lower <= allowed) | (it == max_iter) | hopeless[st.rows]
        if done.any():
            fin = st.rows[done]
            res_d[fin], res_lo[fin], res_it[fin] = dist[done], lower[done], it
            res_idx.append((fin, st.idx[done], torch.where(st.used[done], st.lam[done], 0)))
        keep = ~done
        if not keep.any():
            break
        st, viol = st.keep(keep), viol[keep]
        log(lambda: f"round {it}: {st.rows.numel()}/{B} queries not yet certified")
        ok, new = st.grow(viol, add_per_iter)
        st.step(gram, viol, reg_rel * scale2, scale2)
        st.pack(new, ok, min(N, max(int(st.used.sum(1).max()) + add_per_iter, K0)))
    out_idx, out_w = _padded_supports(res_idx, B, dt, dev)
    return res_d, res_lo, res_it, out_idx, out_w, it, int(hopeless.sum()), 0
