"""Exact geometry of a training set beside the hull engine: each query's nearest training row, and the
set's diameter (its farthest pair), both streamed over row blocks in bounded memory.

The diameter is exact without the all-pairs cost in practice: iterated farthest points give a first
pair, rows sorted by their distance r to the centre let the bound r_i + r_j skip whole tiles, and a
principal-subspace bound skips most of the rest; a full Gram product runs only where a pair can still
beat the best one, and entries within the rounding allowance are measured directly.
"""
from __future__ import annotations

import math

import torch

from gisweep import GisweepError
from gisweep.hull import _as_matrix, _memory_budget, _Memory, _screen, _Train
from gisweep.runtime import exact_matmul, pick_device, pick_dtype


def _nearest_rows(X, x, candidates: int = 4, mem: _Memory | None = None):
    """Index of the nearest row of X [N, D] for each row of x [B, D] -> [B], streamed over row blocks.

    The Gram expansion picks a few candidates; their distances are recomputed directly (no cancellation).
    """
    mem = mem or _Memory(2.0**30)
    block = max(candidates, mem.fit(x.element_size() * 4 * x.shape[0], share=0.5))
    cand, _ = _screen(_Train.build(X, low_precision=False), x, min(candidates, X.shape[0]), block, mem)
    return cand[:, 0]


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
    mem = _Memory(_memory_budget(memory_mb, dev))
    chunk = mem.fit(itemsize * (8 * X.shape[1] + 64), share=0.5)
    dist, index = [], []
    for s in range(0, Xq.shape[0], chunk):
        i = _nearest_rows(Xc, Xqc[s : s + chunk], mem=mem)  # [b]
        dist.append((Xq[s : s + chunk] - X[i]).norm(dim=1).cpu())
        index.append(i.cpu())
    return torch.cat(dist), torch.cat(index)


def _principal_basis(X, k: int, gen_seed: int = 0):
    """An orthonormal basis [D, k'] of (approximately) the top-k principal directions of the centred rows
    X, by a randomized range finder with one power step (O(N D k)). Any orthonormal basis keeps the
    diameter bound valid; a good one makes it tight."""
    D = X.shape[1]
    k = min(k, D, X.shape[0])
    g = torch.Generator(device="cpu").manual_seed(gen_seed)
    omega = torch.randn(D, k + 8, generator=g, dtype=X.dtype).to(X.device)
    Y = X.T @ (X @ omega)  # [D, k + 8]: one power step in the row space
    basis, _ = torch.linalg.qr(Y)
    _, _, vh = torch.linalg.svd(X @ basis, full_matrices=False)
    return (basis @ vh.T[:, :k]).contiguous()  # [D, k]


class _Sorted:
    """Rows of X in a given order without copying X: sorted[idx] = X[order[idx]]."""

    def __init__(self, X, order):
        self.X, self.order = X, order

    def __getitem__(self, idx):
        return self.X[self.order[idx]]


class _Farthest:
    """The best pair found so far, measured directly (no Gram cancellation)."""

    def __init__(self, raw):
        self.raw, self.d, self.i, self.j = raw, 0.0, 0, 0

    def measure(self, ci, cj):
        """Measure the pairs (ci, cj) [m] exactly; keep the largest."""
        for s in range(0, ci.numel(), 4096):
            a, b = ci[s : s + 4096], cj[s : s + 4096]
            exact = (self.raw[a] - self.raw[b]).norm(dim=1)
            best = int(exact.argmax())
            if float(exact[best]) > self.d:
                self.d, self.i, self.j = float(exact[best]), int(a[best]), int(b[best])


@exact_matmul()
def hull_diameter(train, device="auto", dtype: torch.dtype = torch.float64, memory_mb: float | None = None):
    """Largest distance between two training rows (the diameter of their convex hull), exactly.

    train [N, D] -> (diameter, i, j) with diameter = ||train_i - train_j|| computed directly, i <= j.
    A good pair first (iterated farthest points); then tiles of row pairs, rows sorted by their
    distance r to the mean, skip everything that provably cannot beat it:
      - a column range: ||X_i - X_j|| <= r_i + r_j, so row block I only needs columns with
        r_j > best - max_I r (a prefix of the sorted order; the whole scan stops when it is empty);
      - per tile, a projection bound: with A = X V (V an orthonormal [D, k] basis of the leading
        principal directions) and s the residual norms, ||X_i - X_j||^2 <= ||A_i - A_j||^2 + (s_i + s_j)^2,
        a [b, k] x [k, n] product; only rows and columns of the tile where it can beat the best pair
        get the full [b', n'] Gram product.
    Entries of the full product within its rounding allowance of the best are measured directly.
    Memory: a few [b, n] tiles within memory_mb (default 1 GiB on CPU).
    """
    dev, dtype = pick_device(str(device)), pick_dtype(dtype)
    raw = _as_matrix(train, "train", dev, dtype)
    N, D = raw.shape
    X = raw - raw.mean(0, keepdim=True)
    best = _Farthest(raw)
    if N == 1:
        return 0.0, 0, 0
    sqX = (X * X).sum(1)
    r = sqX.sqrt()  # [N]
    a = int(r.argmax())
    for _ in range(4):  # iterated farthest point: usually the diameter or close to it
        b = int((sqX - 2 * (X @ X[a])).argmax())  # the farthest from row a (Gram expansion: a choice only)
        best.measure(torch.tensor([a], device=dev), torch.tensor([b], device=dev))
        if b == a:
            break
        a = b
    u = torch.finfo(dtype).eps / 2
    R = float(r.max())
    if R == 0:
        return 0.0, 0, 0
    r_sorted, order = r.sort(descending=True)
    itemsize = torch.finfo(dtype).bits // 8
    budget = _memory_budget(memory_mb, dev)
    V = _principal_basis(X, 16)
    A = torch.empty(N, V.shape[1], dtype=dtype, device=dev)
    s_res = torch.empty(N, 1, dtype=dtype, device=dev)  # residual norms, computed directly
    step = max(1, int(budget // (4 * itemsize * D)))
    for s0 in range(0, N, step):
        rows = X[order[s0 : s0 + step]]
        A[s0 : s0 + step] = rows @ V
        s_res[s0 : s0 + step, 0] = (rows - A[s0 : s0 + step] @ V.T).norm(dim=1)
    # the projection bound ||A_i - A_j||^2 + (s_i + s_j)^2 as one product: left_i . right_j
    u_sum = (A * A).sum(1, keepdim=True) + s_res**2
    ones = torch.ones_like(u_sum)
    left = torch.cat([A, s_res, u_sum, ones], 1)  # [N, k + 3]
    right = torch.cat([-2 * A, 2 * s_res, ones, u_sum], 1)
    sqX = sqX[order]
    Xs = _Sorted(X, order)
    # rounding allowances (relative to (2R)^2): the projection bound and the Gram expansion
    slack_proj = 1e-9 * (2 * R) ** 2  # far above the rounding of A, s and the basis (~D u R^2)
    slack_gram = 4 * (D + 2) * u * (2 * R) ** 2
    tile = max(1, int(math.isqrt(max(1, int(budget // (itemsize * 6))))))
    rows_b, cols_b = min(N, tile, 2048), min(N, max(tile, 1), 8192)
    rs = r_sorted.cpu()
    for i0 in range(0, N, rows_b):
        i1 = min(i0 + rows_b, N)
        # columns j >= i0 with r_j > best - r_i0 (sorted descending: a prefix)
        limit = best.d - float(rs[i0])
        c_end = int(torch.searchsorted(-rs, torch.tensor([-limit * (1 - 1e-9)], dtype=rs.dtype), right=False))
        if c_end <= i0:
            break
        for j0 in range(i0, c_end, cols_b):
            j1 = min(j0 + cols_b, c_end)
            _diameter_tile(Xs, left, right, sqX, order, best, i0, i1, j0, j1, slack_proj, slack_gram)
    i, j = sorted((best.i, best.j))
    return best.d, i, j


def _diameter_tile(Xs, left, right, sqX, order, best, i0, i1, j0, j1, slack_proj, slack_gram):
    """Rows i0:i1 against columns j0:j1 (sorted order): the projection bound first, then the full Gram
    product where it can beat the best pair, then direct measurement of the entries that might."""
    live = left[i0:i1] @ right[j0:j1].T > best.d**2 - slack_proj  # [b, n] the projection bound
    ri, cj = live.any(1).nonzero().squeeze(1), live.any(0).nonzero().squeeze(1)
    if ri.numel() == 0:
        return
    ri, cj = ri + i0, cj + j0
    d2 = sqX[ri, None] + sqX[None, cj] - 2 * (Xs[ri] @ Xs[cj].T)  # [b', n']
    while True:
        cand = (d2 > best.d**2 - slack_gram).nonzero()
        if cand.shape[0] == 0:
            return
        if cand.shape[0] > 4096:  # many near-ties: the largest first, then the rest if still needed
            vals = d2[cand[:, 0], cand[:, 1]]
            cand = cand[vals.topk(4096).indices]
        best.measure(order[ri[cand[:, 0]]], order[cj[cand[:, 1]]])
        d2[cand[:, 0], cand[:, 1]] = -math.inf
