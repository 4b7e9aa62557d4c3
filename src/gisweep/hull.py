"""Certified Euclidean distance from many query points to the convex hull of a training set.

For each query x the distance is  min over lambda in the simplex of ||x - train^T lambda||.
All queries are solved together (one batched solve, chunked only to bound memory), on CPU or CUDA.

Method: a batched active-set method (Wolfe's nearest-point algorithm, several points added per round).
Every query keeps a small support S (padded slots) and feasible weights lambda on it (lambda >= 0,
sum 1), starting from its nearest training point. A round is
  1. pricing, in the primal: p = train^T lambda, g = x - p, and viol_i = <g, train_i - p> for all i
     (two [B, N] x [N, D]-sized matrix products);
  2. certification: the hyperplane through p normal to g separates x from the hull, so
       lower = min_i <g, x - train_i> / ||g|| = (||g||^2 - max_i viol_i) / ||g||
     is a lower bound and ||g|| (attained by lambda) an upper bound; a query leaves the batch when they
     agree to `tol` (see below);
  3. the most violating points (viol_i > 0; up to max(add_per_iter, |S| / 2)) join S; a Newton step on
     S (the equality-constrained least squares min ||x - train_S^T mu|| s.t. sum mu = 1, in Gram space,
     in delta form from the primal gradient so that it also refines the last round) gives mu; if mu >= 0
     it is taken, otherwise lambda moves toward mu until a weight reaches 0, that point leaves S, and the
     step is repeated (Wolfe's minor cycle). A row whose new points all left again adds only its single
     most violating point next round (Wolfe's own step, which always makes progress).
A small proximal term (1.5e-11 R^2 in float64) keeps the Newton systems nonsingular for affinely
dependent supports (duplicates, collinear points). The Gram matrix train train^T is precomputed when it
fits in a quarter of the memory budget, otherwise support Gram blocks come from gathered rows.
Distances and certificates always come from the primal point, never from Gram quantities.

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
A query not certified when `max_iter` rounds are spent is returned with certified=False.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gisweep import GisweepError
from gisweep.runtime import Progress, exact_matmul, pick_device, pick_dtype


ADD_GROWTH = 0.5  # a round adds up to this fraction of the support size (at least add_per_iter)


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
    if not torch.isfinite(t).all():
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


# ----------------------------------------------------------------------------- engine pieces


def _price(train, idx, lam, x):
    """Primal point and violations for a batch.

    train [N, D], idx/lam [B, K], x [B, D] -> gg [B] = ||g||^2, viol [B, N] with viol_i = <g, train_i - p>,
    where p = train^T lambda and g = x - p are formed in the primal (no Gram cancellation in ||g||).
    """
    B, N = x.shape[0], train.shape[0]
    weights = torch.zeros(B, N, dtype=x.dtype, device=x.device)
    weights.scatter_add_(1, idx, lam)  # [B, N] dense lambda (unused slots carry weight 0)
    p = weights @ train  # [B, D]
    g = x - p  # [B, D]
    viol = g @ train.T - (g * p).sum(1, keepdim=True)  # [B, N]
    gg = (g * g).sum(1)  # [B]
    return gg, viol


def _support_gram(train, gram, idx):
    """Gram matrix of the support rows: idx [B, K] -> [B, K, K]."""
    if gram is not None:
        return gram[idx.unsqueeze(2), idx.unsqueeze(1)]
    rows = train[idx]  # [B, K, D]
    return rows @ rows.transpose(1, 2)


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


def _add_points(idx, lam, used, cand, ok):
    """Put candidate training rows cand [B, m] (where ok [B, m]) into free slots, growing K if needed.

    ok must be a prefix in each row (candidates come sorted by violation), so the first ok.sum() free
    slots take them. Returns (idx, lam, used, new) with new [B, K] marking the slots just filled.
    """
    B, K = idx.shape
    need = int((used.sum(1) + ok.sum(1)).max())  # host sync: the new width
    if need > K:
        pad = need - K
        idx = torch.cat([idx, torch.zeros(B, pad, dtype=idx.dtype, device=idx.device)], 1)
        lam = torch.cat([lam, torch.zeros(B, pad, dtype=lam.dtype, device=lam.device)], 1)
        used = torch.cat([used, torch.zeros(B, pad, dtype=used.dtype, device=used.device)], 1)
    free_first = torch.argsort(used.to(torch.int8), dim=1, stable=True)[:, : cand.shape[1]]  # [B, m]
    idx = idx.scatter(1, free_first, torch.where(ok, cand, idx.gather(1, free_first)))
    new = torch.zeros_like(used).scatter(1, free_first, ok)
    return idx, lam, used | new, new


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
    at which a query is certified. max_iter: pricing rounds per query before giving up (the query is
    then flagged certified=False). add_per_iter: most violating points added per round. abs_tol:
    atol = abs_tol * R (R: data radius) is the absolute gap that also certifies, and the distance
    below which a query counts as inside (default 1e-7 for float64, 1e-3 for float32). support_k:
    keep only the k heaviest support points in the result (None: all). memory_mb / chunk_size: queries
    are solved in chunks sized to stay near this working memory (default: 1 GiB on CPU, 40% of the free
    memory on CUDA). progress: log lines to stderr every few seconds. Results are on the CPU.
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
    radius = float(X.norm(dim=1).max())  # R, the data scale
    unit = torch.finfo(dtype).eps / 2
    if abs_tol is None:
        abs_tol = 1e-7 if dtype == torch.float64 else 1e-3
    if not abs_tol >= 0:
        raise GisweepError(f"abs_tol={abs_tol}: must be >= 0")
    atol = abs_tol * radius
    reg_rel = math.sqrt(unit) * 1e-3  # proximal term, relative to R^2

    itemsize = torch.finfo(dtype).bits // 8
    budget = _memory_budget(memory_mb, dev)
    gram = X @ X.T if N * N * itemsize <= budget / 4 else None  # [N, N] when it fits
    if chunk_size is None:
        per_query = itemsize * (4 * N + 4 * D + (0 if gram is not None else 32 * D) + 2 * 64 * 64)
        chunk_size = max(1, int(budget // per_query))
    chunk_size = min(chunk_size, Q)

    out_d = torch.empty(Q, dtype=dtype)
    out_lo = torch.empty(Q, dtype=dtype)
    out_it = torch.empty(Q, dtype=torch.int64)
    out_idx: list[torch.Tensor] = []
    out_w: list[torch.Tensor] = []
    log = Progress(label="hull_distance", enabled=progress)
    starts = list(range(0, Q, chunk_size))
    for c, s0 in enumerate(starts):
        s1 = min(s0 + chunk_size, Q)
        d, lo, it, idx, w = _solve_chunk(
            X, gram, Xq[s0:s1], tol, atol, radius, unit, reg_rel, max_iter, add_per_iter,
            lambda msg, c=c: log.note(lambda: f"chunk {c + 1}/{len(starts)}, {msg()}"),
        )
        out_d[s0:s1], out_lo[s0:s1], out_it[s0:s1] = d.cpu(), lo.cpu(), it.cpu()
        out_idx.append(idx.cpu())
        out_w.append(w.cpu())

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
    return HullResult(out_d, out_lo, certified, inside, out_it, sup_idx, sup_w, sizes, tol, atol)


def _solve_chunk(X, gram, x, tol, atol, radius, unit, reg_rel, max_iter, add_per_iter, log):
    """All queries of one chunk. X [N, D] centred train, gram [N, N] or None, x [B, D] centred queries.

    Returns distance [B], lower [B], iterations [B], support idx [B, K], weights [B, K].
    """
    N, D = X.shape
    B = x.shape[0]
    dev, dt = x.device, x.dtype
    # rounding allowance for the lower bound (dot products of length D, centring)
    slack = 2 * (D + 2) * unit * (x.norm(dim=1) + radius)  # [B]
    scale2 = radius**2 if radius > 0 else 1.0  # Gram scale (R = 0: all training points coincide)

    # start from each query's nearest training point
    nn = _nearest_rows(X, x)  # [B]
    K0 = K = min(N, max(16, 2 * add_per_iter))  # support slots (grow and shrink with the need)
    idx = torch.zeros(B, K, dtype=torch.int64, device=dev)
    idx[:, 0] = nn
    lam = torch.zeros(B, K, dtype=dt, device=dev)
    lam[:, 0] = 1
    used = torch.zeros(B, K, dtype=torch.bool, device=dev)
    used[:, 0] = True
    stalled = torch.zeros(B, dtype=torch.bool, device=dev)  # [b] last round gained nothing: add 1 point

    res_d = torch.zeros(B, dtype=dt, device=dev)
    res_lo = torch.zeros(B, dtype=dt, device=dev)
    res_it = torch.full((B,), max_iter, dtype=torch.int64, device=dev)
    res_idx: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (rows, idx, lam) as finished
    rows = torch.arange(B, device=dev)  # the chunk rows still being solved
    for it in range(1, max_iter + 1):
        gg, viol = _price(X, idx, lam, x[rows])  # [b], [b, N]
        dist = gg.sqrt()
        gap = viol.max(1).values.clamp_min(0)  # [b] = distance * (distance - lower bound)
        lower = torch.where(dist > 0, ((gg - gap) / dist.clamp_min(torch.finfo(dt).tiny) - slack[rows]), 0)
        lower = lower.clamp_min(0)
        done = (dist - lower <= torch.clamp(tol * dist, min=atol)) | (it == max_iter)  # [b]
        # a row adds up to max(add_per_iter, |S| * grow) points: few rounds also for large supports
        size = used.sum(1)  # [b]
        per_row = torch.clamp((size * ADD_GROWTH).long(), min=add_per_iter)
        per_row = torch.where(stalled, 1, per_row)  # a stalled row takes only its best point (Wolfe's step)
        # one host sync for the round's bookkeeping: how many rows finished, and the most points a
        # remaining row adds (the width of the candidate search)
        n_done, m = torch.stack([done.sum(), torch.where(done, 0, per_row).max()]).tolist()
        n_going = done.shape[0] - n_done
        if n_done:
            # going rows first, then the finished ones, each in row order (as boolean masks would give)
            split = torch.argsort(done.to(torch.int8), stable=True)  # [b]
            fin_at, keep = split[n_going:], split[:n_going]
            fin = rows[fin_at]
            res_d[fin], res_lo[fin] = dist[fin_at], lower[fin_at]
            res_it[fin] = it
            res_idx.append((fin, idx[fin_at], torch.where(used[fin_at], lam[fin_at], 0)))
            if not n_going:
                break
            rows, idx, lam, used = rows[keep], idx[keep], lam[keep], used[keep]
            viol, gg, stalled, per_row = viol[keep], gg[keep], stalled[keep], per_row[keep]
        log(lambda: f"round {it}: {rows.numel()}/{B} queries not yet certified")

        # candidates: the most violating points outside the support
        in_support = torch.zeros_like(viol).scatter_add_(1, idx, used.to(dt)) > 0  # [b, N]
        outside = viol.masked_fill(in_support, -math.inf)
        m = min(m, N)
        top_v, top_i = outside.topk(m, dim=1)  # [b, m]
        ok = (top_v > 0) & (torch.arange(m, device=dev) < per_row.unsqueeze(1))
        idx, lam, used, new = _add_points(idx, lam, used, top_i, ok)
        K = idx.shape[1]

        gss = _support_gram(X, gram, idx)  # [b, K, K]
        rhs = viol.gather(1, idx)  # [b, K] <g, train_j - p>: the primal gradient on the support
        lam, used = _minor_cycles(gss, rhs, lam, used, reg_rel * scale2, scale2, max_steps=K + 2)
        # pack the support into the first slots and trim the padding to what the next round needs
        order = torch.argsort((~used).to(torch.int8), dim=1, stable=True)  # used slots first
        idx, lam, used, new = idx.gather(1, order), lam.gather(1, order), used.gather(1, order), new.gather(1, order)
        K = min(N, max(int(used.sum(1).max()) + add_per_iter, K0))  # next round may grow it (host sync)
        idx, lam, used, new = idx[:, :K], lam[:, :K], used[:, :K], new[:, :K]
        stalled = ok.any(1) & ~(new & used & (lam > 0)).any(1)

    # assemble the support tensors in chunk row order
    width = max(t[1].shape[1] for t in res_idx)
    out_idx = torch.zeros(B, width, dtype=torch.int64, device=dev)
    out_w = torch.zeros(B, width, dtype=dt, device=dev)
    for fin, i, w in res_idx:
        out_idx[fin, : i.shape[1]] = i
        out_w[fin, : w.shape[1]] = w
    return res_d, res_lo, res_it, out_idx, out_w


def _nearest_rows(X, x, candidates: int = 4):
    """Index of the nearest row of X [N, D] for each row of x [B, D] -> [B].

    The Gram expansion picks a few candidates; their distances are recomputed directly (no cancellation).
    """
    sq = (X * X).sum(1)  # [N]
    approx = sq.unsqueeze(0) - 2 * (x @ X.T)  # [B, N] = ||x - X_i||^2 - ||x||^2
    k = min(candidates, X.shape[0])
    cand = approx.topk(k, dim=1, largest=False).indices  # [B, k]
    exact = ((x.unsqueeze(1) - X[cand]) ** 2).sum(2)  # [B, k]
    return cand.gather(1, exact.argmin(1, keepdim=True)).squeeze(1)


@exact_matmul()
def nearest_neighbor_distance(train, queries, device="auto", dtype: torch.dtype = torch.float64,
                              memory_mb: float | None = None):
    """Euclidean distance from each query to its nearest training row.

    train [N, D], queries [Q, D] -> (distance [Q], index [Q] int64), on the CPU.
    """
    dev, dtype = pick_device(str(device)), pick_dtype(dtype)
    X = _as_matrix(train, "train", dev, dtype)
    Xq = _as_matrix(queries, "queries", dev, dtype)
    if Xq.shape[1] != X.shape[1]:
        raise GisweepError(f"queries have {Xq.shape[1]} features but train has {X.shape[1]}")
    centre = X.mean(0, keepdim=True)  # the search runs centred; the distances come from the raw rows
    Xc, Xqc = X - centre, Xq - centre
    itemsize = torch.finfo(dtype).bits // 8
    chunk = max(1, int(_memory_budget(memory_mb, dev) // (itemsize * (2 * X.shape[0] + 8 * X.shape[1]))))
    dist, index = [], []
    for s in range(0, Xq.shape[0], chunk):
        i = _nearest_rows(Xc, Xqc[s : s + chunk])  # [b]
        dist.append((Xq[s : s + chunk] - X[i]).norm(dim=1).cpu())
        index.append(i.cpu())
    return torch.cat(dist), torch.cat(index)


@exact_matmul()
def hull_diameter(train, device="auto", dtype: torch.dtype = torch.float64, memory_mb: float | None = None):
    """Largest distance between two training rows (the diameter of their convex hull).

    train [N, D] -> (diameter, i, j) with diameter = ||train_i - train_j|| computed directly.
    Row blocks of the pairwise squared distances (Gram expansion) pick a few candidate pairs per block;
    the candidates are then measured exactly.
    """
    dev, dtype = pick_device(str(device)), pick_dtype(dtype)
    raw = _as_matrix(train, "train", dev, dtype)
    X = raw - raw.mean(0, keepdim=True)
    N = X.shape[0]
    if N == 1:
        return 0.0, 0, 0
    sq = (X * X).sum(1)  # [N]
    itemsize = torch.finfo(dtype).bits // 8
    block = max(1, int(_memory_budget(memory_mb, dev) // (itemsize * 2 * N)))
    cand_i, cand_j = [], []
    for s in range(0, N, block):
        d2 = sq[s : s + block].unsqueeze(1) + sq.unsqueeze(0) - 2 * (X[s : s + block] @ X.T)  # [b, N]
        k = min(8, d2.numel())  # a few candidates: the expansion's rounding may reorder near-ties
        top = d2.flatten().topk(k).indices
        cand_i.append(top // N + s)
        cand_j.append(top % N)
    ci, cj = torch.cat(cand_i), torch.cat(cand_j)
    exact = (raw[ci] - raw[cj]).norm(dim=1)
    best = int(exact.argmax())
    i, j = sorted((int(ci[best]), int(cj[best])))
    return float(exact[best]), i, j
