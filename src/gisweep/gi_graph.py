"""Exact GI of general piecewise-linear torch models: the network read as a graph with torch.fx.

Supported (gisweep.gi.exact_intervals sends every model that is not a plain Linear/ReLU stack here):
Linear, Conv2d (any stride, padding, dilation, groups, padding mode), ReLU, LeakyReLU, AvgPool2d,
AdaptiveAvgPool2d, MaxPool2d, BatchNorm1d/2d in eval mode (applied as the affine map it is), Flatten,
Identity, Dropout in eval mode, additions of branches (`+`, torch.add: residual blocks), and the
shape-only tensor methods flatten, reshape/view (batch dimension -1), permute (batch first), mean
over non-batch dimensions and contiguous; relu/leaky_relu/flatten/adaptive_avg_pool2d/avg_pool2d
as functions too. Anything else is an error naming the first unsupported operation and its place.

Exactness, as in gisweep.gi: per line a sorted set of knots between which every live tensor is
linear in t. Affine operations (and additions) are applied to the values at the knots, which is
exact. A ReLU (or LeakyReLU) adds the zero crossings of its input between knots; a max-pool adds,
window by window, the first point where another candidate overtakes the current maximum (solved in
closed form like the class change) and repeats until no window's arg-max changes between two
knots. A knot added at one operation is applied to every live tensor (the branches that an
addition will join) by linear interpolation: they are all linear between the old knots.

Values per knot are large for conv nets (16 x 32 x 32 per layer at CIFAR size): the chunker
budgets the largest layer's live values (plus the refinement's working set), and a chunk splits
itself before a refinement would take it over budget.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from gisweep import GisweepError

SUPPORTED = ("Linear, Conv2d, ReLU, LeakyReLU, AvgPool2d, AdaptiveAvgPool2d, MaxPool2d, BatchNorm1d/2d (eval), "
             "Flatten, Identity, Dropout (eval), additions of branches, and the shape methods flatten, "
             "reshape/view (batch -1), permute (batch first), mean (non-batch dims), contiguous")

_AFFINE_MODULES = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity,
                   nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_RELU_FUNCTIONS = (F.relu, torch.relu)
_ADD_FUNCTIONS = (operator.add, torch.add)
_AFFINE_FUNCTIONS = (torch.flatten, F.adaptive_avg_pool2d, F.avg_pool2d)


@dataclass
class Op:
    """One node of the graph: `kind` 'input', 'map' (affine: evaluated at the knots), 'relu' (also
    LeakyReLU, with `slope`), 'maxpool' (candidates `index`/`valid`), 'output'."""

    name: str
    kind: str
    node: object  # torch.fx Node
    source: str  # the tensor refined by a relu/maxpool (its input)
    shape: tuple  # values per knot, the node's output shape without the batch dimension
    slope: float = 0.0
    index: torch.Tensor | None = None  # maxpool: [C*L, K] flat input index of each window's candidates
    valid: torch.Tensor | None = None  # maxpool: [C*L, K] candidate inside the (unpadded) input
    pool: nn.Module | None = None  # maxpool: the module (its arg-max at the knots screens the windows)
    drop_after: list = field(default_factory=list)  # values no later operation reads


@dataclass
class Graph:
    ops: list[Op]
    output: str
    per_knot_bytes: int  # the largest working set per knot over the operations (the budget's unit)
    relu_width: int  # neurons of all relu/maxpool operations (guesses the knots per line)
    module: nn.Module  # the traced copy, in the engine's dtype and device

    @property
    def refined(self) -> list[str]:
        """Names of the operations that add knots (ReLU, LeakyReLU, max-pool), in order."""
        return [op.name for op in self.ops if op.kind in ("relu", "maxpool")]


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _describe(node, gm) -> str:
    if node.op == "call_module":
        return f"module '{node.target}' ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__name__', node.target)} at node '{node.name}'"
    if node.op == "call_method":
        return f"method .{node.target}() at node '{node.name}'"
    return f"{node.op} '{node.target}' at node '{node.name}'"


def check_eval_mode(model: nn.Module) -> None:
    """Batch norm and dropout must be in eval mode (in training mode batch norm's output depends on the
    batch, dropout's is random); batch norm needs running statistics."""
    for name, m in model.named_modules():
        where = name or "(the model)"
        if m.training and isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)):
            why = ("its output depends on the batch" if isinstance(m, nn.modules.batchnorm._BatchNorm)
                   else "it zeroes random units, so the network is not one fixed function")
            raise GisweepError(f"module '{where}' ({type(m).__name__}) is in training mode: {why}; "
                               "call model.eval() before exact GI")
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None:
            raise GisweepError(f"module '{where}' ({type(m).__name__}) has no running statistics "
                               "(track_running_stats=False): it normalises by the batch, which is not a "
                               "function of one input")


def _unsupported(node, gm, why: str = "") -> GisweepError:
    return GisweepError(f"{_describe(node, gm)} is not supported by exact GI{why}; supported: {SUPPORTED}")


def _node_args(node):
    return [a for a in node.all_input_nodes]


def read_graph(model: nn.Module, line_shape: tuple, dtype, device) -> Graph:
    """The model as operations, checked against lines of shape [lines, *line_shape] before any work."""
    if not isinstance(model, nn.Module):
        raise GisweepError(f"exact GI needs a torch nn.Module; got {type(model).__name__}")
    check_eval_mode(model)
    module = copy.deepcopy(model).to(device=device, dtype=dtype)
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as e:  # fx raises many kinds (TraceError, TypeError from data-dependent control flow)
        raise GisweepError(f"cannot read {type(model).__name__} as a graph with torch.fx: {e}") from None
    nodes = list(gm.graph.nodes)
    # the kinds first (the error names the first unsupported operation, before any shape work)
    kinds, slopes = {}, {}
    for node in nodes:
        kind = None
        if node.op == "placeholder":
            kind = "input"
        elif node.op == "output":
            kind = "output"
        elif node.op == "call_module":
            m = gm.get_submodule(node.target)
            if isinstance(m, nn.ReLU):
                kind = "relu"
            elif isinstance(m, nn.LeakyReLU):
                kind, slopes[node.name] = "relu", float(m.negative_slope)
            elif isinstance(m, nn.MaxPool2d):
                if m.return_indices:
                    raise _unsupported(node, gm, " (return_indices=True)")
                kind = "maxpool"
            elif isinstance(m, _AFFINE_MODULES):
                kind = "map"
        elif node.op == "call_function":
            if node.target in _RELU_FUNCTIONS:
                kind = "relu"
            elif node.target is F.leaky_relu:
                kind = "relu"
                default = node.args[1] if len(node.args) > 1 else 0.01
                slopes[node.name] = float(node.kwargs.get("negative_slope", default))
            elif node.target in _ADD_FUNCTIONS:
                if "alpha" in node.kwargs:
                    raise _unsupported(node, gm, " (add with alpha)")
                kind = "map"
            elif node.target in _AFFINE_FUNCTIONS:
                kind = "map"
        elif node.op == "call_method":
            if node.target == "relu":
                kind = "relu"
            elif node.target in ("add", "contiguous", "flatten", "reshape", "view", "permute", "mean"):
                kind = "map"
        if kind is None:
            raise _unsupported(node, gm)
        _check_batch_dim(node, gm)
        kinds[node.name] = kind
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise GisweepError(f"exact GI needs a model with one input; {type(model).__name__} takes {len(inputs)}")
    out_node = next(n for n in nodes if n.op == "output")
    if not isinstance(out_node.args[0], torch.fx.Node):
        raise GisweepError("the model must return one tensor of logits [batch, classes]")
    # shapes: one dummy line through the traced copy (shape errors here are the lines' fault)
    shapes, vals = {}, {}
    with torch.no_grad():
        for node in nodes:
            if node.op == "output":
                continue
            if node.op == "placeholder":
                v = torch.zeros((1, *line_shape), dtype=dtype, device=device)
            else:
                try:
                    v = _run_node(node, gm, vals)
                except Exception as e:  # a shape mismatch, named with the operation it reached
                    raise GisweepError(f"lines of shape {list(line_shape)} per line do not fit the model: "
                                       f"{_describe(node, gm)} fails on them: {e}") from None
            if not isinstance(v, torch.Tensor) or v.ndim < 1 or v.shape[0] != 1:
                raise _unsupported(node, gm, " (it does not give one tensor with the batch first)")
            vals[node.name], shapes[node.name] = v, tuple(v.shape[1:])
    del vals
    logits = out_node.args[0]
    if len(shapes[logits.name]) != 1:
        raise GisweepError(f"the model's output is [batch, {', '.join(map(str, shapes[logits.name]))}] per "
                           "input; exact GI needs logits [batch, classes]")
    # operations, liveness, the largest working set per knot
    ops, last_use = [], {}
    for i, node in enumerate(nodes):
        for a in _node_args(node):
            last_use[a.name] = i
    elem = torch.finfo(dtype).bits // 8
    per_knot, relu_width = 0, 0
    live: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.op == "output":
            break
        kind = kinds[node.name]
        shape = shapes[node.name]
        source = _node_args(node)[0].name if kind in ("relu", "maxpool") else ""
        op = Op(node.name, kind, node, source, shape, slope=slopes.get(node.name, 0.0))
        work = 0
        if kind == "relu":
            width = _numel(shapes[source])
            relu_width += width
            work = (elem + 2) * width  # |z| and sign-flip bytes
        elif kind == "maxpool":
            if len(shapes[source]) != 3:
                raise _unsupported(node, gm, f" on values of shape {list(shapes[source])} per input (needs [C, H, W])")
            op.pool = gm.get_submodule(node.target)
            op.index, op.valid = _pool_windows(op.pool, shapes[source], shape, device)
            relu_width += _numel(shape)
            work = 4 * elem * _numel(shape)  # the maxima, their arg-max and its values at the next knot
        live[node.name] = _numel(shape)
        # at this operation: every live value, copied once by a merge, plus the work
        per_knot = max(per_knot, 2 * elem * sum(live.values()) + work)
        op.drop_after = [name for name in list(live) if last_use.get(name, -1) <= i and name != logits.name]
        for name in op.drop_after:
            del live[name]
        ops.append(op)
    return Graph(ops, logits.name, per_knot + 64, relu_width, gm)


def _check_batch_dim(node, gm):
    """Shape methods must leave the batch dimension alone (the knots are the batch)."""
    if node.op not in ("call_method", "call_function"):
        return
    args, kw = node.args[1:], node.kwargs
    target = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    ok = True
    if target == "flatten":
        start = kw.get("start_dim", args[0] if args else 0)
        ok = isinstance(start, int) and start >= 1
    elif target in ("reshape", "view"):
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        ok = len(dims) >= 1 and dims[0] == -1 and all(isinstance(d, int) for d in dims)
    elif target == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        ok = len(dims) >= 1 and dims[0] == 0
    elif target == "mean":
        dims = kw.get("dim", args[0] if args else None)
        dims = (dims,) if isinstance(dims, int) else dims
        ok = dims is not None and all(isinstance(d, int) and d > 0 for d in dims)
    if not ok:
        raise _unsupported(node, gm, " with these arguments (it must keep the batch dimension first: "
                                     "flatten(start_dim>=1), reshape/view(-1, ...), permute(0, ...), mean(dim>0))")


def _pool_windows(pool: nn.MaxPool2d, in_shape, out_shape, device):
    """[C*L, K] flat input indices of each output window's K candidates, and which lie inside the
    input (padding never wins: every window holds at least one input value)."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (kh, kw), (sh, sw) = pair(pool.kernel_size), pair(pool.stride if pool.stride is not None else pool.kernel_size)
    (ph, pw), (dh, dw) = pair(pool.padding), pair(pool.dilation)
    C, H, W = in_shape
    Ho, Wo = out_shape[-2:]
    ar = lambda n: torch.arange(n, device=device)  # noqa: E731
    i = ar(Ho)[:, None, None, None] * sh - ph + ar(kh)[None, None, :, None] * dh  # input row of each candidate
    j = ar(Wo)[None, :, None, None] * sw - pw + ar(kw)[None, None, None, :] * dw  # ... and column
    i, j = torch.broadcast_tensors(i, j)  # [Ho, Wo, kh, kw]
    valid = (i >= 0) & (i < H) & (j >= 0) & (j < W)
    flat = (i.clamp(0, H - 1) * W + j.clamp(0, W - 1)).reshape(Ho * Wo, kh * kw)
    valid = valid.reshape(Ho * Wo, kh * kw)
    chan = torch.arange(C, device=device)[:, None, None] * (H * W)
    index = (flat[None] + chan).reshape(C * Ho * Wo, kh * kw)
    return index, valid[None].expand(C, -1, -1).reshape(C * Ho * Wo, kh * kw)


def _run_node(node, gm, vals: dict):
    args = torch.fx.node.map_arg(node.args, lambda n: vals[n.name])
    kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: vals[n.name])
    if node.op == "call_module":
        return gm.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    self_, *rest = args
    return getattr(self_, node.target)(*rest, **kwargs)


def evaluate(op: Op, gm, vals: dict):
    """The operation's output at every knot: [N, *op.shape] (affine maps, the ReLU and the max-pool
    applied to the values at the knots, which is exact between knots once they are refined)."""
    if op.kind == "relu":  # (never in place: the input may still be live)
        x = vals[op.source]
        return F.leaky_relu(x, op.slope) if op.slope else F.relu(x)
    return _run_node(op.node, gm, vals)

