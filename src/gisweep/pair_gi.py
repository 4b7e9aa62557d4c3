"""Pair GI of one network during a run: the same-class pair lines under the training labels, their
exact GIs, and the statistics the training-time tables keep (gisweep.dynamics, gisweep.fractions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gisweep.gi import exact_intervals
from gisweep.gi_stats import spans_full_range
from gisweep.lines import materialize, same_class_pairs
from gisweep.schema import schema_number


@dataclass
class PairLines:
    table: pd.DataFrame  # one row per line (gisweep.lines.same_class_pairs): i, j, label, t_min, t_max
    x0: torch.Tensor  # [L, F]
    d: torch.Tensor  # [L, F]
    lo: torch.Tensor  # [L]
    hi: torch.Tensor  # [L]


def pair_lines(x_tr: torch.Tensor, y_tr, classes, t_min: float, t_max: float, dtype, device) -> PairLines:
    """Every same-class pair of the training samples of `classes` (labels y_tr), on `device`."""
    table = same_class_pairs(y_tr, list(classes), t_min, t_max)
    x0, d, lo, hi = (v.to(device) for v in materialize(table, x_tr, dtype=dtype))
    return PairLines(table, x0, d, lo, hi)


def pair_gi(net: torch.nn.Module, lines: PairLines, dtype, memory_mb: float | None) -> tuple[pd.DataFrame, dict]:
    """(the exact GI of every line, one row each; their statistics: lines, mean_gi, median_gi, std_gi,
    full_range (the fraction of lines whose class never changes), mean_pieces)."""
    res = exact_intervals(net, lines.x0, lines.d, lines.lo, lines.hi, dtype=dtype, memory_mb=memory_mb).to_frame()
    full = spans_full_range(res.gi, lines.lo.cpu().numpy(), lines.hi.cpu().numpy())
    return res, {"lines": len(res), "mean_gi": res.gi.mean(), "median_gi": res.gi.median(),
                 "std_gi": res.gi.std(ddof=0), "full_range": float(np.mean(full)), "mean_pieces": res.pieces.mean()}


def add_pair_gi_args(p) -> None:
    """The command-line options of the pair lines and their GI sweep. gi-during-training and
    label-fraction-run share them; the dynamics.* keys named here have the same bounds as fractions.*."""
    p.add_argument("--classes", type=schema_number("dynamics.classes[]"), nargs="+", default=[5])
    p.add_argument("--t-min", type=schema_number("dynamics.t_min"), default=-1.0)
    p.add_argument("--t-max", type=schema_number("dynamics.t_max"), default=2.0)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--memory-mb", type=schema_number("gi.memory_mb"), default=None,
                   help="working-set budget in MiB (default: 1024 on a CPU, half the free GPU memory on CUDA)")
