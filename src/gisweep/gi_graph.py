"""Exact GI of general piecewise-linear torch models: the network read as a graph with torch.fx.

Supported (gisweep.gi.exact_intervals sends every model that is not a plain Linear/ReLU stack here):
Linear, Conv2d (any stride, padding, dilation, groups, padding mode), ReLU, LeakyReLU, AvgPool2d,
AdaptiveAvgPool2d, MaxPool2d, BatchNorm1d/2d in eval mode (applied as the affine map it is), Flatten,
Identity, Dropout in eval mode, additions and subtractions of branches (`+`, torch.add: residual
blocks), products with and division by constants, matmul with a constant, constant padding (F.pad),
and the shape-only tensor methods flatten, reshape/view, permute (batch first), mean over non-batch
dimensions and contiguous; relu/leaky_relu/flatten/adaptive_avg_pool2d/avg_pool2d as functions too.
Networks from outside files are torch.fx GraphModules, read as they are: onnx2torch's modules
(Add, Sub, Mul, Div, MatMul, Gemm, Reshape, Transpose, Pad, GlobalAveragePool, Identity,
BatchNormalization, constants) and torch.export's aten operations of all the above. Anything else
is an error naming the first unsupported operation and its place, before any work.

Nodes that do not depend on the input (weights, ONNX constants and the shape arithmetic on them)
are computed once when the graph is read. An operation on live values is affine only where it is
linear in them: a product with one live factor, a division with a live numerator. The batch
dimension: the engine stacks its knots in the first dimension, so every operation must keep it
first and apart. A reshape to a constant shape is read by its leading size: -1 is the batch; 1 is
a file's batch of one (ONNX and torch.export files are written for an example batch of 1), widened
to the engine's batch; any other leading size would mix inputs and is refused. check_graph then
compares the reading with the model itself, node by node, before any sweep.

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
             "Flatten, Identity, Dropout (eval), additions and subtractions of branches, add/sub/mul/div by "
             "constants, matmul with a constant, constant padding, and the shape methods flatten, "
             "reshape/view (batch -1 or 1), permute/transpose (batch first), mean (non-batch dims), contiguous; "
             "in ONNX graphs (onnx2torch) Add, Sub, Mul, Div, MatMul, Gemm, Reshape, Transpose, Pad, "
             "GlobalAveragePool, Identity, BatchNormalization and constants; in torch.export graphs the aten "
             "forms of all these")

_AFFINE_MODULES = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity,
                   nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_RELU_FUNCTIONS = (F.relu, torch.relu)
_ADD_FUNCTIONS = (operator.add, torch.add, operator.sub, torch.sub, operator.neg, torch.neg)
_MUL_FUNCTIONS = (operator.mul, torch.mul, operator.matmul, torch.matmul)  # linear in one live operand
_DIV_FUNCTIONS = (operator.truediv, torch.div)  # linear in a live numerator
_AFFINE_FUNCTIONS = (torch.flatten, F.adaptive_avg_pool2d, F.avg_pool2d, F.pad)

# torch.export's aten operations (by their packet name), like the torch forms above
_ATEN_LINEAR = {"add", "sub", "neg", "avg_pool2d", "adaptive_avg_pool2d", "mean", "flatten", "permute",
                "transpose", "clone", "contiguous", "alias", "detach", "constant_pad_nd", "pad", "squeeze",
                "unsqueeze", "view", "reshape", "_unsafe_view", "batch_norm", "dropout", "identity"}
_ATEN_ONE_LIVE = {"mul", "div", "conv2d", "convolution", "linear", "matmul", "mm", "addmm"}
# onnx2torch's modules (by class name), linear in their live operand(s)
_ONNX_LINEAR = {"OnnxReshape", "OnnxTranspose", "OnnxPadStatic", "OnnxPadDynamic", "OnnxGlobalAveragePool",
                "OnnxGlobalAveragePoolWithKnownInputShape", "OnnxCopyIdentity", "OnnxBatchNorm", "OnnxMatMul",
                "OnnxGemm", "OnnxBinaryMathOperation"}
_PROBE = 2  # inputs of the dummy run that reads the shapes: a batch of 2 shows ops that mix the batch


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
    consts: dict = field(default_factory=dict)  # constant operands (node name -> value), computed once
    fn: object = None  # replaces the node's own target where that fixes the batch size (a reshape to [1, ...])


@dataclass
class Graph:
    ops: list[Op]
    output: str
    per_knot_bytes: int  # the largest working set per knot over the operations (the budget's unit)
    relu_width: int  # neurons of all relu/maxpool operations (guesses the knots per line)
    module: nn.Module  # the traced copy, in the engine's dtype and device
    original: nn.Module | None = None  # the model's copy in that dtype and device (its forward is the reference)

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


def _live_args(node, live) -> list:
    """Positions (in node.args) and keyword names of the operands that depend on the input."""
    out = [i for i, a in enumerate(node.args) if isinstance(a, torch.fx.Node) and a.name in live]
    out += [k for k, a in node.kwargs.items() if isinstance(a, torch.fx.Node) and a.name in live]
    return out


def _aten_name(target) -> str | None:
    """'conv2d' for torch.ops.aten.conv2d.default (torch.export's graphs); None for other targets."""
    if isinstance(target, torch._ops.OpOverload) and target.namespace == "aten":
        return target.overloadpacket.__name__
    return None


def _kind(node, gm, live) -> tuple[str, float, str]:
    """(kind, LeakyReLU slope, 'elementwise' or '') of a node that depends on the input, or an error
    naming it. Operations with constant operands are affine only in a live operand that enters
    linearly: one live factor of a product, a live numerator."""
    args = _live_args(node, live)
    one_live = len(args) == 1
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        name = type(m).__name__
        if isinstance(m, nn.ReLU):
            return "relu", 0.0, ""
        if isinstance(m, nn.LeakyReLU):
            return "relu", float(m.negative_slope), ""
        if isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                raise _unsupported(node, gm, " (return_indices=True)")
            return "maxpool", 0.0, ""
        if isinstance(m, _AFFINE_MODULES):
            return "map", 0.0, ""
        if type(m).__module__.startswith("onnx2torch") and name in _ONNX_LINEAR:
            if name == "OnnxBinaryMathOperation":
                op = getattr(m.math_op_function, "__name__", "")
                if op in ("add", "sub"):
                    return "map", 0.0, "elementwise"
                if op == "mul" and one_live or op == "_onnx_div" and args == [0]:
                    return "map", 0.0, "elementwise"
                raise _unsupported(node, gm, f" ({op.strip('_')} is not linear in its live operands: not piecewise "
                                             "linear)")
            if name == "OnnxMatMul" and not one_live:
                raise _unsupported(node, gm, " (a product of two live values: not piecewise linear)")
            if name == "OnnxGemm" and (args != [0] or m.trans_a):
                raise _unsupported(node, gm, " (Gemm linear in its first operand only, untransposed)")
            if name == "OnnxTranspose" and (m.perm is None or list(m.perm)[0] != 0):
                raise _unsupported(node, gm, f" (perm {m.perm} moves the batch dimension)")
            if name == "OnnxBatchNorm" and m.training:
                raise _unsupported(node, gm, " (in training mode: call model.eval())")
            if name in ("OnnxPadStatic", "OnnxPadDynamic") and args != [0]:
                raise _unsupported(node, gm, " (pads or value depend on the input)")
            return "map", 0.0, ""
        raise _unsupported(node, gm)
    if node.op == "call_function":
        t = node.target
        if t in _RELU_FUNCTIONS:
            return "relu", 0.0, ""
        if t is F.leaky_relu:
            default = node.args[1] if len(node.args) > 1 else 0.01
            return "relu", float(node.kwargs.get("negative_slope", default)), ""
        if t in _ADD_FUNCTIONS:
            if "alpha" in node.kwargs:
                raise _unsupported(node, gm, " (add with alpha)")
            return "map", 0.0, "elementwise"
        if t in _MUL_FUNCTIONS and one_live or t in _DIV_FUNCTIONS and args == [0] and not node.kwargs:
            return "map", 0.0, "elementwise" if t not in (operator.matmul, torch.matmul) else ""
        if t in _MUL_FUNCTIONS + _DIV_FUNCTIONS:
            raise _unsupported(node, gm, " (not linear in its live operands: not piecewise linear)")
        if t in _AFFINE_FUNCTIONS:
            return "map", 0.0, ""
        aten = _aten_name(t)
        if aten == "relu":
            return "relu", 0.0, ""
        if aten == "leaky_relu":
            return "relu", float(node.args[1]) if len(node.args) > 1 else 0.01, ""
        if aten == "max_pool2d":
            return "maxpool", 0.0, ""
        if aten == "batch_norm" and (len(node.args) < 6 or node.args[5] is not False):
            raise _unsupported(node, gm, " (exported in training mode: export the model after model.eval())")
        if aten == "dropout" and (len(node.args) < 3 or node.args[2] is not False):
            raise _unsupported(node, gm, " (exported in training mode: export the model after model.eval())")
        if aten in _ATEN_LINEAR:
            return "map", 0.0, "elementwise" if aten in ("add", "sub") else ""
        if aten in _ATEN_ONE_LIVE and one_live and (aten != "div" or args == [0]) \
                and (aten != "addmm" or args == [1]):
            return "map", 0.0, "elementwise" if aten in ("mul", "div") else ""
        if aten in _ATEN_ONE_LIVE:
            raise _unsupported(node, gm, " (not linear in its live operands: not piecewise linear)")
        raise _unsupported(node, gm)
    if node.op == "call_method":
        if node.target == "relu":
            return "relu", 0.0, ""
        if node.target in ("add", "sub"):
            return "map", 0.0, "elementwise"
        if node.target in ("contiguous", "flatten", "reshape", "view", "permute", "mean"):
            return "map", 0.0, ""
    raise _unsupported(node, gm)


def read_graph(model: nn.Module, line_shape: tuple, dtype, device) -> Graph:
    """The model as operations, checked against lines of shape [lines, *line_shape] before any work.

    A torch.fx GraphModule (onnx2torch's conversion of an ONNX file, torch.export's module) is read
    as it is: its modules keep control flow (onnx2torch's Div tests its operands' dtype) and guards
    that a second trace cannot follow. Any other model is traced with torch.fx. Nodes that do not
    depend on the input (weights, ONNX constants, the shape computations around them) are computed
    once here; the rest must be supported operations, checked before any shape is computed.
    """
    if not isinstance(model, nn.Module):
        raise GisweepError(f"exact GI needs a torch nn.Module; got {type(model).__name__}")
    check_eval_mode(model)
    module = copy.deepcopy(model).to(device=device, dtype=dtype)
    if isinstance(module, torch.fx.GraphModule):
        gm = module
    else:
        try:
            gm = torch.fx.symbolic_trace(module)
        except Exception as e:  # fx raises many kinds (TraceError, TypeError from data-dependent control flow)
            raise GisweepError(f"cannot read {type(model).__name__} as a graph with torch.fx: {e}") from None
    nodes = list(gm.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise GisweepError(f"exact GI needs a model with one input; {type(model).__name__} takes {len(inputs)}")
    # the kinds first (the error names the first unsupported operation, before any shape work)
    kinds, slopes, elementwise, live = {}, {}, set(), set()
    for node in nodes:
        if node.op == "placeholder":
            kind = "input"
        elif node.op == "output":
            kind = "output"
        elif node.op == "call_module" and node.target == "_guards_fn" and not node.users:
            kind = "skip"  # torch.export's check of the example input's shape: the lines are checked here
        elif node.op == "get_attr" or not _live_args(node, live):
            kind = "const"
        else:
            kind, slopes[node.name], how = _kind(node, gm, live)
            if how:
                elementwise.add(node.name)
            _check_batch_dim(node, gm)
        if kind in ("input", "relu", "maxpool", "map"):
            live.add(node.name)
        kinds[node.name] = kind
    out_node = next(n for n in nodes if n.op == "output")
    logits = out_node.args[0]
    if isinstance(logits, (tuple, list)) and len(logits) == 1:  # torch.export returns a tuple
        logits = logits[0]
    if not isinstance(logits, torch.fx.Node) or logits.name not in live:
        raise GisweepError("the model must return one tensor of logits [batch, classes]")
    # constants and shapes: a dummy batch through the traced copy (shape errors here are the lines' fault)
    shapes, vals, consts, fns = {}, {}, {}, {}
    with torch.no_grad():
        for node in nodes:
            kind = kinds[node.name]
            if kind in ("output", "skip"):
                continue
            if kind == "const":
                try:
                    consts[node.name] = _run_node(node, gm, consts)
                except Exception as e:
                    raise GisweepError(f"{_describe(node, gm)}: cannot compute this constant: {e}") from None
                continue
            if kind == "input":
                v = torch.zeros((_PROBE, *line_shape), dtype=dtype, device=device)
            else:
                fn = _batch_reshape(node, gm, consts, shapes)
                if fn is not None:
                    fns[node.name] = fn
                try:
                    v = _run_node(node, gm, vals, consts, fn)
                except Exception as e:  # a shape mismatch, named with the operation it reached
                    raise GisweepError(f"lines of shape {list(line_shape)} per line do not fit the model: "
                                       f"{_describe(node, gm)} fails on them: {e}") from None
            if not isinstance(v, torch.Tensor) or v.ndim < 1 or v.shape[0] != _PROBE:
                raise _unsupported(node, gm, " (it does not give one tensor with the batch first)")
            if node.name in elementwise:
                for a in node.all_input_nodes:
                    c = consts.get(a.name)
                    if isinstance(c, torch.Tensor) and c.ndim >= v.ndim and c.shape[0] != 1:
                        raise _unsupported(node, gm, f" (its constant of shape {list(c.shape)} would meet the "
                                                     "batch dimension)")
            vals[node.name], shapes[node.name] = v, tuple(v.shape[1:])
    del vals
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
    live_now: dict[str, int] = {}
    for i, node in enumerate(nodes):
        kind = kinds[node.name]
        if kind not in ("input", "relu", "maxpool", "map"):
            continue
        shape = shapes[node.name]
        live_in = [a for a in _node_args(node) if a.name in live]
        source = live_in[0].name if kind in ("relu", "maxpool") else ""
        op = Op(node.name, kind, node, source, shape, slope=slopes.get(node.name, 0.0), fn=fns.get(node.name),
                consts={a.name: consts[a.name] for a in _node_args(node) if a.name in consts})
        work = 0
        if kind == "relu":
            width = _numel(shapes[source])
            relu_width += width
            work = (elem + 2) * width  # |z| and sign-flip bytes
        elif kind == "maxpool":
            if len(shapes[source]) != 3:
                raise _unsupported(node, gm, f" on values of shape {list(shapes[source])} per input (needs [C, H, W])")
            op.pool = _max_pool_module(node, gm)
            op.index, op.valid = _pool_windows(op.pool, shapes[source], shape, device)
            relu_width += _numel(shape)
            work = 4 * elem * _numel(shape)  # the maxima, their arg-max and its values at the next knot
        live_now[node.name] = _numel(shape)
        # at this operation: every live value, copied once by a merge, plus the work
        per_knot = max(per_knot, 2 * elem * sum(live_now.values()) + work)
        op.drop_after = [name for name in list(live_now) if last_use.get(name, -1) <= i and name != logits.name]
        for name in op.drop_after:
            del live_now[name]
        ops.append(op)
    return Graph(ops, logits.name, per_knot + 64, relu_width, gm, module)


def _max_pool_module(node, gm) -> nn.MaxPool2d:
    """The max-pool's parameters as an nn.MaxPool2d (torch.export writes it as aten.max_pool2d)."""
    if node.op == "call_module":
        return gm.get_submodule(node.target)
    a = list(node.args) + [None] * 6
    kernel = a[1]
    stride = a[2] if a[2] else kernel  # aten's default stride [] is the kernel
    return nn.MaxPool2d(kernel, stride, a[3] if a[3] is not None else 0, a[4] if a[4] is not None else 1,
                        ceil_mode=bool(a[5]))


def _target_shape(node, gm, consts):
    """The constant target shape of a reshape (onnx2torch's Reshape, aten.view/reshape, the methods);
    None for other nodes. ONNX's 0 (copy the input's size) comes back as 0."""
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        if type(m).__name__ != "OnnxReshape":
            return None
        shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("shape")
        value = consts.get(shape.name) if isinstance(shape, torch.fx.Node) else None
        if not isinstance(value, torch.Tensor):
            raise _unsupported(node, gm, " (its target shape depends on the input)")
        return [int(v) for v in value.reshape(-1).tolist()]
    name = node.target if node.op == "call_method" else _aten_name(node.target)
    if name not in ("reshape", "view", "_unsafe_view"):
        return None
    dims = node.args[1:]
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list, torch.Size)) else dims
    if not all(isinstance(d, int) for d in dims):
        raise _unsupported(node, gm, " (its target shape depends on the input)")
    return list(dims)


def _batch_reshape(node, gm, consts, shapes):
    """For a reshape to a constant shape whose leading size is 1 (or ONNX's 0 on a batch of 1): the
    same reshape with the batch size in its place (the points the engine stacks there are separate
    inputs, as the file's batch of 1 is). A leading -1 keeps the batch as it is, provided the rest
    holds one input's values; any other leading size would mix inputs and is refused. None where
    nothing needs replacing."""
    dims = _target_shape(node, gm, consts)
    if dims is None:
        return None
    src = [a for a in _node_args(node) if a.name in shapes][0]
    per = shapes[src.name]
    full = (1, *per)  # the shape the file's batch of 1 gives
    dims = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(dims)]
    rest = dims[1:]
    n = _numel(per)
    known = _numel([d for d in rest if d != -1])
    ok = bool(dims) and dims[0] in (1, -1) and rest.count(-1) <= (1 if dims[0] == 1 else 0) and known > 0 \
        and (n % known == 0 if -1 in rest else known == n)
    if not ok:
        raise _unsupported(node, gm, f" with target shape {dims} on inputs of {list(per)} (the batch dimension "
                                     "must stay first: a leading 1 or -1 is the batch, the rest one input's "
                                     "values)")
    if dims[0] == -1:
        return None
    return lambda x, *args, **kwargs: x.reshape(x.shape[0], *rest)


def _check_batch_dim(node, gm):
    """Shape methods must leave the batch dimension alone (the knots are the batch)."""
    if node.op not in ("call_method", "call_function"):
        return
    args, kw = node.args[1:], node.kwargs
    target = node.target if node.op == "call_method" else (_aten_name(node.target)
                                                            or getattr(node.target, "__name__", ""))
    ok = True
    if target == "flatten":
        start = kw.get("start_dim", args[0] if args else 0)
        ok = isinstance(start, int) and start >= 1
    elif target in ("permute",):
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        ok = len(dims) >= 1 and dims[0] == 0
    elif target in ("transpose", "squeeze", "unsqueeze") and node.op == "call_function":
        dims = [a for a in args if isinstance(a, int)] + [d for a in args if isinstance(a, (tuple, list)) for d in a]
        ok = len(dims) >= 1 and all(isinstance(d, int) and d > 0 for d in dims)
    elif target == "mean":
        dims = kw.get("dim", args[0] if args else None)
        dims = (dims,) if isinstance(dims, int) else dims
        ok = dims is not None and all(isinstance(d, int) and d > 0 for d in dims)
    if not ok:
        raise _unsupported(node, gm, " with these arguments (it must keep the batch dimension first: "
                                     "flatten(start_dim>=1), reshape/view(-1 or 1, ...), permute(0, ...), "
                                     "mean(dim>0))")


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


def _run_node(node, gm, vals: dict, consts: dict | None = None, fn=None):
    """The node's output from its operands' values (in `vals`, or computed once in `consts`); `fn`
    in place of the node's own target."""
    if node.op == "get_attr":
        obj = gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    get = (lambda n: vals[n.name]) if not consts else (lambda n: consts[n.name] if n.name in consts else vals[n.name])
    args = torch.fx.node.map_arg(node.args, get)
    kwargs = torch.fx.node.map_arg(node.kwargs, get)
    if fn is not None:
        return fn(*args, **kwargs)
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
    return _run_node(op.node, gm, vals, op.consts, op.fn)


def run_graph(graph: Graph, x: torch.Tensor, keep: bool = False) -> dict:
    """The engine's own evaluation of the graph at the points x [B, *input shape], all at once as the
    engine stacks its knots: node name -> value (the logits under graph.output; every live value
    with `keep`)."""
    vals = {graph.ops[0].name: x}
    with torch.no_grad():
        for op in graph.ops[1:]:
            vals[op.name] = evaluate(op, graph.module, vals)
            if not keep:
                for name in op.drop_after:
                    vals.pop(name, None)
    return vals


def check_graph(graph: Graph, x: torch.Tensor, rtol: float | None = None) -> None:
    """The engine's reading of the model must compute what the model computes, before any sweep.

    At the points x [B, *input shape] (in the engine's dtype and device): the engine's evaluation (run_graph: all points at once,
    constants computed once, reshapes to a batch of 1 widened to the batch) against the graph's own
    nodes run one point at a time (the file's batch of 1), node by node, and the logits against the
    model's own forward pass. Values must agree within `rtol` (1e-9 in float64) of the largest
    |value| the reference has met up to that node (rounding grows with the values that fed it);
    otherwise an error names the first node that differs.
    """
    rtol = (1e-9 if x.dtype == torch.float64 else 1e-4) if rtol is None else rtol
    got = run_graph(graph, x, keep=True)
    gm = graph.module
    names = {op.name for op in graph.ops}
    refs = []
    with torch.no_grad():
        for i in range(x.shape[0]):
            vals = {}
            for node in gm.graph.nodes:
                if node.op == "placeholder":
                    vals[node.name] = x[i:i + 1]
                elif node.op != "output":
                    vals[node.name] = _run_node(node, gm, vals)
            refs.append(vals)
    scale = 0.0
    for op in graph.ops:
        ref = torch.cat([r[op.name] for r in refs])
        scale = max(scale, float(ref.abs().max()) if ref.numel() else 0.0)
        if op.kind == "input":
            continue
        if got[op.name].shape != ref.shape:
            raise GisweepError(f"the graph read for exact GI gives values of shape {list(got[op.name].shape)} at "
                               f"{_describe(op.node, gm)} where the model, one input at a time, gives "
                               f"{list(ref.shape)}: this operation mixes the inputs of a batch")
        err = float((got[op.name] - ref).abs().max()) if ref.numel() else 0.0
        if not err <= rtol * scale:
            raise GisweepError(f"the graph read for exact GI differs from the model at {_describe(op.node, gm)}: "
                               f"max |difference| {err:.3g} on values up to {scale:.3g} (allowed {rtol:g} "
                               "relative); exact GI would not measure this model")
    if graph.original is not None:
        with torch.no_grad():
            out = torch.cat([graph.original(x[i:i + 1]) for i in range(x.shape[0])])
        logits = got[graph.output]
        err = float((out - logits).abs().max()) if out.shape == logits.shape else float("inf")
        if not err <= rtol * max(scale, float(out.abs().max())):
            raise GisweepError(f"the graph read for exact GI computes other logits than the model's forward pass "
                               f"(max |difference| {err:.3g}, shapes {list(logits.shape)} and {list(out.shape)}): "
                               "the model's forward does more than its traced graph")


def probe_points(x0: torch.Tensor, d: torch.Tensor, t_min: torch.Tensor, t_max: torch.Tensor, lines: int = 3):
    """Points on the first few lines (at t_min, 0, t_max) for check_graph: [3 * lines, *input shape]."""
    k = min(lines, x0.shape[0])
    x0, d = x0[:k], d[:k].to(x0.dtype)
    shape = (-1, *([1] * (x0.ndim - 1)))
    ts = [t_min[:k].to(x0.dtype), torch.zeros(k, dtype=x0.dtype, device=x0.device), t_max[:k].to(x0.dtype)]
    return torch.cat([x0 + t.reshape(shape) * d for t in ts])
