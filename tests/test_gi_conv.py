"""The exact GI engine on general models (gisweep.gi_graph + gi_general.graph_sweep): conv, pooling, batch
norm, residual blocks. Checked against an independent float64 reference, the model's own forward
pass on a dense grid with the first class change refined by bisection (`grid_bisect`), against the
walking reference for MLPs (tests/gi_reference.py), on hand-made adversarial nets whose answers are
exact dyadic numbers, and for bad input (clear errors before any work).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gi_reference import reference_intervals
from gisweep import GisweepError
from gisweep.gi import exact_intervals, grid_intervals

F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# the independent reference: forward passes on a dense grid, the first change refined by bisection


def grid_bisect(model, x0, d, t_min, t_max, steps=600, iters=60):
    """(class0, t_lo, t_hi) per line: the model (float64 copy) on `steps` points each side of 0, the
    first point of another class, then bisection (all lines at once) between it and the last point
    of class0."""
    net = copy.deepcopy(model).double().eval()
    shape = (-1, *([1] * (x0.ndim - 1)))
    n = x0.shape[0]

    def classes(rows, ts):  # points x0[rows] + ts d[rows]
        with torch.no_grad():
            return net(x0[rows] + ts.reshape(shape) * d[rows]).argmax(1)

    c0 = classes(torch.arange(n), torch.zeros(n, dtype=F64))
    ends = []
    for end in (t_max, t_min):
        ts = torch.linspace(0.0, end, steps + 1, dtype=F64)
        a, b = torch.full((n,), end, dtype=F64), torch.full((n,), end, dtype=F64)
        for i in range(n):
            off = (classes(torch.full((steps + 1,), i), ts) != c0[i]).nonzero()
            if len(off):
                a[i], b[i] = ts[off[0, 0] - 1], ts[off[0, 0]]
        rows = torch.arange(n)
        for _ in range(iters):
            mid = (a + b) / 2
            same = classes(rows, mid) == c0
            a, b = torch.where(same, mid, a), torch.where(same, b, mid)
        ends.append(torch.where(a == b, a, (a + b) / 2))
    return c0, ends[1], ends[0]


def assert_matches_grid(model, x0, d, t_min=-1.0, t_max=2.0, *, tol=1e-7, agree=0.95, changing=0.15, **kw):
    """The exact result agrees with grid_bisect, except where the grid stepped over a class change
    (then the exact end is nearer 0, and the model's class just past it is not class0)."""
    got = exact_intervals(model, x0, d, t_min, t_max, **kw)
    c, lo, hi = grid_bisect(model, x0, d, t_min, t_max)
    assert torch.equal(got.class0, c)
    ok_hi, ok_lo = (got.t_hi - hi).abs() <= tol, (got.t_lo - lo).abs() <= tol
    assert (ok_hi & ok_lo).double().mean() >= agree, ((got.t_hi - hi).abs().max(), (got.t_lo - lo).abs().max())
    net = copy.deepcopy(model).double().eval()
    shape = (-1, *([1] * (x0.ndim - 1)))
    for ok, end, ref, sign in ((ok_hi, got.t_hi, hi, 1.0), (ok_lo, got.t_lo, lo, -1.0)):
        bad = (~ok).nonzero()[:, 0]
        assert (sign * end[bad] < sign * ref[bad]).all()  # a change the grid missed, nearer 0
        for i in bad.tolist():
            ts = end[i] + sign * torch.tensor([0.0, 1e-9], dtype=F64)
            with torch.no_grad():
                cls = net(x0[i:i + 1] + ts.reshape(shape) * d[i:i + 1]).argmax(1)
            assert (cls != c[i]).any()
    # the nets are scaled so that many lines change class: the comparison is not vacuous
    inside = (got.t_hi < t_max) | (got.t_lo > t_min)
    assert inside.double().mean() >= changing, inside.double().mean()
    assert (got.pieces >= 1).all()
    return got


def lines(seed, n, *shape, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(n, *shape, generator=gen, dtype=F64),
            scale * torch.randn(n, *shape, generator=gen, dtype=F64))


def randomize(model: nn.Module, seed: int, bn_scale: float = 1.0) -> nn.Module:
    """Random weights (and batch-norm statistics) in float64, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen, dtype=F64))
                m.running_var.copy_(bn_scale * (0.5 + torch.rand(m.num_features, generator=gen, dtype=F64)))
                m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=gen, dtype=F64))
                m.bias.copy_(0.3 * torch.randn(m.num_features, generator=gen, dtype=F64))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=F64) * math.sqrt(2 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen, dtype=F64))
        heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if heads and heads[-1].bias is not None:
            heads[-1].bias.zero_()  # no class favoured everywhere: lines change class
    return model.eval()


# ---------------------------------------------------------------------------------------------
# random nets of every supported operation


def conv_nets():
    return {
        "stride_padding_maxpool": lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 4)),
        "dilation_groups_avgpool_bn": lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=2, dilation=2), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.LeakyReLU(0.1), nn.AvgPool2d(2), nn.Dropout(0.5),
            nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Identity(), nn.Linear(8, 4)),
        "maxpool_overlapping_padded_adaptive": lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 4)),
        "maxpool_ceil_dilated": lambda: nn.Sequential(
            nn.Conv2d(2, 3, 2), nn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True), nn.Flatten(),
            nn.Linear(27, 4)),
    }


@pytest.mark.parametrize("name", list(conv_nets()))
@pytest.mark.parametrize("seed", [0, 1])
def test_random_conv_nets_match_the_dense_grid(name, seed):
    model = randomize(conv_nets()[name](), seed)
    x0, d = lines(seed, 12, 2, 8, 8)
    assert_matches_grid(model, x0, d)


class Residual(nn.Module):
    """Two residual blocks (identity and 1x1-projection shortcuts) with functional ReLUs, a max-pool,
    global average pooling by .mean, and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.a1, self.a2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.b1, self.b2 = nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.short = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2), nn.BatchNorm2d(6))
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 5))  # signed features: lines change class

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.a2(F.relu(self.a1(x)))) + x)
        x = torch.relu(self.b2(F.relu(self.b1(x))) + self.short(x))
        x = self.pool(x)
        return self.head(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_residual_blocks_match_the_dense_grid(seed):
    model = randomize(Residual(), seed)
    x0, d = lines(seed, 10, 2, 8, 8, scale=3.0)
    assert_matches_grid(model, x0, d)


def test_resnet20_of_the_hull_study_flattened_rows():
    """gisweep.resnet's ResNet-20 (reshape, permute, batch norm, projections, .mean) on flattened rows."""
    from gisweep.resnet import ResNet20

    model = randomize(ResNet20(side=8, channels=1, n_classes=4, width=2), 3)
    x0, d = lines(3, 4, 64)
    assert_matches_grid(model, x0, d, changing=0.0)


class Wrapped(nn.Module):
    """An MLP that is not an nn.Sequential: it takes the general engine."""

    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x):
        return self.mlp(x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlps_through_the_general_engine_match_the_walking_reference(seed):
    from test_gi_engine import random_lines, random_mlp

    mlp = random_mlp(seed, 10, [24, 24, 24], 5)
    x0, d = random_lines(seed, 40, 10)
    got = exact_intervals(Wrapped(mlp), x0, d, -1.0, 2.0)
    c, lo, hi, pieces = reference_intervals(mlp, x0.numpy(), d.numpy(), -1.0, 2.0)
    np.testing.assert_array_equal(got.class0.numpy(), c)
    np.testing.assert_allclose(got.t_lo.numpy(), lo, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.t_hi.numpy(), hi, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got.pieces.numpy(), pieces)
    fast = exact_intervals(mlp, x0, d, -1.0, 2.0)  # the fast path agrees with the general engine
    assert torch.equal(fast.class0, got.class0) and torch.equal(fast.pieces, got.pieces)
    assert torch.allclose(fast.t_hi, got.t_hi, rtol=0, atol=1e-12)


def test_pieces_match_the_activation_patterns_on_a_dense_grid():
    """pieces = 1 + points where the ReLU signs or max-pool arg-maxes change: at least the changes
    between neighbouring points of a fine grid, and equal on most lines."""
    model = randomize(conv_nets()["stride_padding_maxpool"](), 5)
    x0, d = lines(5, 8, 2, 8, 8)
    got = exact_intervals(model, x0, d, -1.0, 2.0)
    conv, relu, pool = model[0], model[1], model[2]
    ts = torch.linspace(-1.0, 2.0, 30001, dtype=F64)
    equal = 0
    for i in range(8):
        with torch.no_grad():
            z = conv(x0[i:i + 1] + ts[:, None, None, None] * d[i:i + 1])
            _, arg = F.max_pool2d(relu(z), 2, return_indices=True)
        pattern = torch.cat([(z > 0).flatten(1), arg.flatten(1)], 1)
        changes = int((pattern[1:] != pattern[:-1]).any(1).sum())
        assert got.pieces[i] >= 1 + changes
        equal += int(got.pieces[i] == 1 + changes)
    assert equal >= 6


def test_chunking_and_splitting_give_the_same_results():
    model = randomize(Residual(), 7)
    x0, d = lines(7, 16, 2, 8, 8)
    runs = {}
    for mb in (1024, 40, 0.001):  # one chunk; chunks of a few lines that split mid-sweep; one line each
        stats = {}
        runs[mb] = (exact_intervals(model, x0, d, -1.0, 2.0, memory_mb=mb, stats=stats), stats)
    assert runs[1024][1]["splits"] == 0 and runs[1024][1]["chunks"] == 1
    assert runs[40][1]["splits"] > 0 and runs[0.001][1]["chunks"] == 16
    assert runs[40][1]["peak_bytes_estimate"] <= 40 * 2**20 < runs[1024][1]["peak_bytes_estimate"]
    assert runs[40][1]["peak_bytes"] <= runs[40][1]["peak_bytes_estimate"]
    for mb in (40, 0.001):
        a, b = runs[1024][0], runs[mb][0]
        assert torch.equal(a.class0, b.class0) and torch.equal(a.pieces, b.pieces)
        assert torch.allclose(a.t_lo, b.t_lo, rtol=0, atol=1e-12) and torch.allclose(a.t_hi, b.t_hi, rtol=0, atol=1e-12)


def test_a_float32_model_is_swept_in_float64_and_left_as_it_was():
    net = randomize(conv_nets()["stride_padding_maxpool"](), 9)
    x0, d = lines(9, 6, 2, 8, 8)
    b = exact_intervals(net, x0, d)
    net32 = copy.deepcopy(net).float()
    a = exact_intervals(net32, x0, d)
    assert net32[0].weight.dtype == torch.float32  # the engine works on its own copy
    assert torch.equal(a.class0, b.class0)
    assert torch.allclose(a.t_hi, b.t_hi, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# adversarial nets, answers exact in dyadic arithmetic


def pool_net(weights, head_w, head_b):
    """Input [1, 1, 4] through a 1x1 conv (the identity), MaxPool2d((1, 4)) over the 4 values, a Linear head."""
    conv = nn.Conv2d(1, 1, 1, bias=False).double()
    head = nn.Linear(1, len(head_b)).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor(head_w, dtype=F64)[:, None])
        head.bias.copy_(torch.tensor(head_b, dtype=F64))
    return nn.Sequential(conv, nn.MaxPool2d((1, 4)), nn.Flatten(), head).eval()


def test_maxpool_ties_along_the_whole_line_and_a_crossing():
    """Candidates t, t (tied everywhere), 1 - t, -5: max = max(t, 1 - t), one breakpoint at 1/2;
    logits [max, 3/4]: class 0 at 0, class 1 on (1/4, 3/4)."""
    model = pool_net([1.0, 0.0], [1.0, 0.0], [0.0, 0.75])
    x0 = torch.tensor([[[[0.0, 0.0, 1.0, -5.0]]]], dtype=F64)
    d = torch.tensor([[[[1.0, 1.0, -1.0, 0.0]]]], dtype=F64)
    got = exact_intervals(model, x0, d, -1.0, 2.0)
    assert got.class0.tolist() == [0] and got.t_hi.tolist() == [0.25] and got.t_lo.tolist() == [-1.0]
    assert got.pieces.tolist() == [2]
    # all four tied everywhere (max = t): one piece; logits [t, 3/4] change class at 3/4
    flat = exact_intervals(model, torch.zeros_like(x0), torch.ones_like(d), -1.0, 2.0)
    assert flat.pieces.tolist() == [1] and flat.class0.tolist() == [1] and flat.t_hi.tolist() == [0.75]


def test_knot_exactly_at_zero():
    """max(t, -t) = |t| through the pool and relu(t) through a ReLU both switch at t = 0 exactly."""
    model = pool_net([1.0, 0.0], [1.0, 0.0], [0.0, 0.5])
    x0 = torch.tensor([[[[0.0, 0.0, -9.0, -9.0]]]], dtype=F64)
    d = torch.tensor([[[[1.0, -1.0, 0.0, 0.0]]]], dtype=F64)
    got = exact_intervals(model, x0, d, -1.0, 2.0)
    # |t| > 1/2 is class 0; at 0 class 1 (0 < 1/2): the interval is [-1/2, 1/2]
    assert got.class0.tolist() == [1] and got.t_lo.tolist() == [-0.5] and got.t_hi.tolist() == [0.5]
    assert got.pieces.tolist() == [2]
    relu = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(1, 2)).double().eval()
    with torch.no_grad():
        relu[0].weight.fill_(1.0)
        relu[3].weight.copy_(torch.tensor([[1.0], [0.0]], dtype=F64))
        relu[3].bias.copy_(torch.tensor([0.0, 0.25], dtype=F64))
    got = exact_intervals(relu, torch.zeros(1, 1, 1, 1, dtype=F64), torch.ones(1, 1, 1, 1, dtype=F64), -1.0, 2.0)
    assert got.class0.tolist() == [1] and got.t_lo.tolist() == [-1.0] and got.t_hi.tolist() == [0.25]
    assert got.pieces.tolist() == [2]


class Cancel(nn.Module):
    """relu(A x) + (-relu(A x)) + c·x: the residual branch cancels the main path exactly; the class
    is decided by the linear term alone."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 3, 1)
        self.neg = nn.Conv2d(3, 3, 1, bias=False)
        self.lin = nn.Conv2d(1, 3, 1, bias=False)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        return self.head(torch.flatten(h + self.neg(h) + self.lin(x), 1))


def test_residual_branch_that_cancels_the_main_path():
    model = Cancel().double().eval()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([1.0, -1.0, 2.0], dtype=F64).reshape(3, 1, 1, 1))
        model.a.bias.copy_(torch.tensor([-0.5, 0.25, 1.0], dtype=F64))
        model.neg.weight.copy_(-torch.eye(3, dtype=F64).reshape(3, 3, 1, 1))
        model.lin.weight.copy_(torch.tensor([1.0, 0.0, 0.0], dtype=F64).reshape(3, 1, 1, 1))
        model.head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64))
        model.head.bias.copy_(torch.tensor([0.0, 0.375], dtype=F64))
    x0, d = torch.zeros(1, 1, 1, 1, dtype=F64), torch.ones(1, 1, 1, 1, dtype=F64)
    got = exact_intervals(model, x0, d, -1.0, 2.0)
    # logits [t, 3/8]: class 1 until t = 3/8; the ReLUs switch at 1/2, 1/4 and -1/2: 4 pieces
    assert got.class0.tolist() == [1] and got.t_hi.tolist() == [0.375] and got.t_lo.tolist() == [-1.0]
    assert got.pieces.tolist() == [4]


def test_batch_norm_with_extreme_running_statistics():
    model = randomize(conv_nets()["dilation_groups_avgpool_bn"](), 11)
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.copy_(torch.tensor([1e6, -1e6, 0.0, 3.0], dtype=F64))
        bn.running_var.copy_(torch.tensor([1e-8, 1e10, 1e-12, 1.0], dtype=F64))
        bn.weight.copy_(torch.tensor([1e-4, 1e3, 1e-6, 1.0], dtype=F64))
    x0, d = lines(11, 10, 2, 8, 8)
    assert_matches_grid(model, x0, d, tol=1e-6, changing=0.0)


# ---------------------------------------------------------------------------------------------
# bad input: clear errors, before any work


class Tanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.tanh(x))


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


@pytest.mark.parametrize("model, words", [
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sigmoid(), nn.Flatten(), nn.Linear(32, 2)), ["'1'", "Sigmoid"]),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.Sequential(nn.ReLU(), nn.GELU()), nn.Linear(4, 2)),
     ["'2.1'", "GELU"]),
    (Tanh(), ["tanh"]),
    (Branchy(), ["torch.fx", "Branchy"]),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.MaxPool2d(2, return_indices=True)), ["return_indices"]),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(0), nn.Linear(32, 2)), ["flatten", "batch"]),
])
def test_unsupported_operations_are_named_with_their_place(model, words):
    x0, d = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    stats = {}
    with pytest.raises(GisweepError) as err:
        exact_intervals(model.eval(), x0, d, stats=stats)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert "chunks" not in stats  # before any work


@pytest.mark.parametrize("layer, name", [(nn.BatchNorm2d(2), "BatchNorm2d"), (nn.Dropout(0.1), "Dropout")])
def test_training_mode_is_rejected(layer, name):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), layer, nn.Flatten(), nn.Linear(32, 2))
    model.train()
    x0, d = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    with pytest.raises(GisweepError, match=f"'1' \\({name}\\) is in training mode"):
        exact_intervals(model, x0, d)
    with pytest.raises(GisweepError, match="training mode"):
        grid_intervals(model, x0, d, steps=4)
    model.eval()
    exact_intervals(model, x0, d)  # fine in eval mode
    bn = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten(),
                       nn.Linear(32, 2)).eval()
    with pytest.raises(GisweepError, match="running statistics"):
        exact_intervals(bn, x0, d)


def test_shapes_that_do_not_fit_the_model_are_rejected():
    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    x0, d = torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 4, 4)
    stats = {}
    with pytest.raises(GisweepError, match=r"lines of shape \[1, 4, 4\] per line do not fit the model.*'0'"):
        exact_intervals(model, x0, d, stats=stats)
    assert "chunks" not in stats
    with pytest.raises(GisweepError, match=r"lines of shape \[2, 5, 5\].*'3'"):
        exact_intervals(model, torch.zeros(3, 2, 5, 5), torch.zeros(3, 2, 5, 5))
    with pytest.raises(GisweepError, match="one shape"):
        exact_intervals(model, torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 4, 5))
    with pytest.raises(GisweepError, match="logits"):
        exact_intervals(nn.Sequential(nn.Conv2d(2, 2, 1)).eval(), torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 4, 4))


# ---------------------------------------------------------------------------------------------
# the pipeline's CNN


def test_small_cnn_saves_loads_and_matches_the_dense_grid(tmp_path):
    from gisweep.models import build_cnn, load_cnn, load_network, save_cnn

    model = build_cnn(12 * 12, 10, width=3, hidden=16, generator=torch.Generator().manual_seed(0)).eval()
    save_cnn(model, tmp_path / "model.pt", in_features=144, n_classes=10, width=3, hidden=16, meta={"seed": 0})
    for loaded in (load_cnn(tmp_path / "model.pt"), load_network(tmp_path / "model.pt")):
        x = torch.rand(5, 144)
        assert torch.equal(loaded(x), model(x)) and not loaded.training
    x0, d = lines(4, 10, 144, scale=3.0)
    assert_matches_grid(model, x0, d, changing=0.1)
