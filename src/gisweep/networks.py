"""Networks trained outside the pipeline: ONNX files (through onnx2torch) and torch.export `.pt2` files.

Both become a torch.fx GraphModule, which the exact GI engine reads as it is (gisweep.gi_graph) after
checking that its reading computes what the module computes. Nothing here unpickles: onnx.load
parses protobuf, torch.export.load reads its own archive format, and the pipeline's own files go
through torch.load(weights_only=True) (gisweep.models).

The file's declared input shape (without the batch dimension) is what the data must have per
sample; `check_input_shape` compares it with the data's.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

from gisweep import GisweepError

ONNX_SUFFIX, EXPORT_SUFFIX = ".onnx", ".pt2"


def _import_onnx2torch():
    """onnx2torch, importable without a working torchvision.

    onnx2torch imports torchvision at import time, only for its NonMaxSuppression and RoiAlign
    converters, which no ReLU classifier uses; the CPU torch this project pins has no torchvision
    that loads beside it (PyPI's fails with "operator torchvision::nms does not exist", or pulls a
    CUDA torch). So where `import torchvision` fails, a placeholder with the three names those
    converters bind stands in for the import of onnx2torch alone, and is taken out of sys.modules
    again so that no other code mistakes it for torchvision. Were such a converter ever called, it
    would raise.
    """
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    try:
        import torchvision  # noqa: F401
        return _import_or_explain()
    except Exception:  # missing, or installed but broken
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

    def _absent(*args, **kwargs):
        raise GisweepError("this ONNX operation (NonMaxSuppression / RoiAlign) needs torchvision, which is not "
                           "installed; exact GI does not support it anyway")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.box_convert = ops.roi_align = _absent
    tv.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
    try:
        return _import_or_explain()
    finally:
        for name in ("torchvision", "torchvision.ops"):
            if sys.modules.get(name) in (tv, ops):
                del sys.modules[name]


def _import_or_explain():
    try:
        import onnx2torch
    except ModuleNotFoundError as e:
        if e.name not in ("onnx2torch", "onnx"):
            raise
        raise GisweepError("reading ONNX files needs onnx and onnx2torch: pip install 'gisweep[onnx]' and "
                           "`pip install --no-deps onnx2torch` (--no-deps: it would pull torchvision)") from None
    return onnx2torch


def _onnx_model(path: Path):
    try:
        import onnx
    except ModuleNotFoundError:
        raise GisweepError(f"{path}: reading ONNX files needs the onnx package (pip install 'gisweep[onnx]')") from None
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # a truncated or foreign file: protobuf's DecodeError, onnx's ValidationError, ...
        raise GisweepError(f"{path}: not a readable ONNX model ({type(e).__name__}: {str(e).strip()[:300]})") from None
    if not model.graph.node:
        raise GisweepError(f"{path}: not a readable ONNX model (its graph has no operations)")
    return model


def _onnx_input_shape(model) -> tuple:
    """Per-sample shape of the model's one input (the leading dimension is the batch); None for a
    dimension the file leaves open."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise GisweepError(f"exact GI needs a model with one input; this one has {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return tuple(dims[1:])


def load_onnx(path):
    """An ONNX file as an eval-mode torch.fx GraphModule (onnx2torch), with `input_shape` set."""
    path = Path(path)
    model = _onnx_model(path)
    shape = _onnx_input_shape(model)
    onnx2torch = _import_onnx2torch()
    try:
        module = onnx2torch.convert(model)
    except Exception as e:  # an operation onnx2torch has no converter for, named in its message
        raise GisweepError(f"{path}: onnx2torch cannot convert it: {type(e).__name__}: {e}") from None
    module.eval()
    module.input_shape = shape
    return module


def load_exported(path):
    """A torch.export `.pt2` file as a torch.fx GraphModule (`ExportedProgram.module()`), with
    `input_shape` set.

    An exported graph has the train/eval behaviour of batch norm and dropout written into its
    operations (torch refuses .eval() on it); the flags are set to eval for what reads them, and the
    graph reader refuses a batch norm or dropout exported in training mode."""
    import torch

    path = Path(path)
    try:
        program = torch.export.load(str(path))
    except Exception as e:  # a truncated archive, another zip, a foreign file
        raise GisweepError(f"{path}: not a readable torch.export file ({type(e).__name__}: {str(e).strip()[:300]})") from None
    module = program.module()
    for m in module.modules():
        m.training = False
    inputs = [n for n in module.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise GisweepError(f"{path}: exact GI needs a model with one input; this one has {len(inputs)}")
    val = inputs[0].meta.get("val")
    dims = tuple(int(s) if isinstance(s, int) else None for s in getattr(val, "shape", ())[1:])
    module.input_shape = dims
    return module


def load_outside(path):
    """An outside network by its suffix: `.onnx` or `.pt2`."""
    path = Path(path)
    if not path.exists():
        raise GisweepError(f"{path}: network file not found")
    suffix = path.suffix.lower()
    if suffix == ONNX_SUFFIX:
        return load_onnx(path)
    if suffix == EXPORT_SUFFIX:
        return load_exported(path)
    raise GisweepError(f"{path}: unknown network file type '{path.suffix}'; expected .pt (the pipeline's own), "
                       f"{ONNX_SUFFIX} (ONNX) or {EXPORT_SUFFIX} (torch.export)")


def check_input_shape(declared, shape, *, where: str = "the data") -> None:
    """The data's per-sample shape `shape` must be the model's declared input shape `declared` (a
    tuple, or a model with `input_shape` as load_onnx / load_exported set it; batch dimension left
    out; a dimension the file leaves open, None, matches any size)."""
    if not isinstance(declared, (tuple, list)):
        declared = getattr(declared, "input_shape", None)
        if declared is None:
            raise GisweepError("the model declares no input shape (only networks loaded from files do)")
    shape = tuple(int(s) for s in shape)
    ok = len(shape) == len(declared) and all(d is None or d == s for d, s in zip(declared, shape))
    if not ok:
        show = lambda s: "[" + ", ".join("?" if d is None else str(d) for d in s) + "]"  # noqa: E731
        raise GisweepError(f"{where} has samples of shape {show(shape)} but the model takes inputs of shape "
                           f"{show(declared)} (without the batch dimension); reshape or map the data to it")
