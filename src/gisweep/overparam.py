"""Inside vs outside the training hull: ReLU MLPs from under- to over-parameterized.

Second half of the experiments of Yousefzadeh (2021), section 4 (the polynomial half,
section 3, is `gisweep.polynomial`; it shares this module's data, hull and grid helpers).

Data (shared with the polynomial experiment; same seed, same training points): two classes of
2-D points on either side of the true curve x2 = g(x1) = curve_amplitude * sin(curve_frequency * x1).
x1 ~ U[-1, 1]; the class y = +1 lies above, y = -1 below, at vertical distance
gap + spread * U[0, 1] from the curve. Classes are balanced (n_train // 2 negatives).

"Inside" means inside the convex hull of the training points (scipy Delaunay,
`find_simplex >= 0`, so points on the hull's boundary count as inside). The evaluation grid is
the training points' bounding box widened by `outside_extent` times its width/height on every
side; test points are drawn from the data distribution with x1 over the widened x1 range and
labelled by the true curve, then split by hull membership.

Networks: fully connected ReLU MLPs 2 -> width x hidden_layers -> 1 (logit), trained full batch
with binary cross-entropy for `steps` steps, under each regime (optimizer, learning rate, initial
scale, weight decay, seed). Metrics, per width and regime, in one long table with a `reference`
column: reference == "truth" compares the regime's classifier with the true curve (grid error,
test accuracy); reference == <an earlier regime> compares two regimes' decision regions.
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd

from gisweep import GisweepError
from gisweep.figures import save_figure

# ---------------------------------------------------------------- shared data config

DATA_DEFAULTS = {
    "seed": 0,
    "n_train": 40,
    "curve_amplitude": 0.5,
    "curve_frequency": 5.0,
    "gap": 0.05,
    "spread": 0.25,
    "outside_extent": 0.25,
    "grid_size": 121,
    "n_test": 2000,
}

DATA_DESCRIPTIONS = {
    "seed": "Seed for the training/test data and every initialisation (integer >= 0).",
    "n_train": "Number of training points (integer >= 4); half of them (rounded down) in class -1.",
    "curve_amplitude": "Amplitude A of the true boundary x2 = A*sin(w*x1) (number).",
    "curve_frequency": "Angular frequency w of the true boundary x2 = A*sin(w*x1) (number).",
    "gap": "Smallest vertical distance of a data point from the true curve (number > 0).",
    "spread": "Points lie at vertical distance gap + spread*U[0,1] from the curve (number >= 0).",
    "outside_extent": "How far past the training data the evaluation reaches, as a fraction of the "
                      "data's width (x1) and height (x2) on each side (number > 0; 0.25 ~ the "
                      "paper's 27% of the hull diameter for CIFAR-10).",
    "grid_size": "Points per axis of the evaluation grid over the widened box (integer >= 3).",
    "n_test": "Number of test points drawn over the widened x1 range (integer >= 1).",
}

NETWORK_REGIME_DEFAULTS = {
    "name": None,
    "optimizer": "adam",
    "lr": 0.01,
    "momentum": 0.0,
    "init_scale": 1.0,
    "weight_decay": 0.0,
    "seed": 0,
}

NETWORK_REGIME_DESCRIPTIONS = {
    "name": "Unique name of the regime (string, required).",
    "optimizer": "'adam' (torch AdamW; weight_decay 0 is plain Adam) or 'sgd' (full-batch, "
                 "torch SGD with L2 weight decay).",
    "lr": "Learning rate (number > 0).",
    "momentum": "SGD momentum (number in [0, 1)); ignored for adam.",
    "init_scale": "Multiplies PyTorch's default Linear init U(+-1/sqrt(fan_in)) of all weights "
                  "and biases (number > 0).",
    "weight_decay": "Weight decay (number >= 0): decoupled for adam, L2 for sgd.",
    "seed": "Initialisation seed of this regime (integer >= 0), combined with the global seed and "
            "the width; regimes with equal seeds start from the same weights.",
}

NETWORK_DEFAULTS = {
    **DATA_DEFAULTS,
    "widths": [2, 4, 8, 32, 128],
    "hidden_layers": 2,
    "steps": 2000,
    "device": "cpu",
    "regimes": [
        {"name": "adam", "optimizer": "adam", "lr": 0.01, "init_scale": 1.0, "weight_decay": 0.0, "seed": 0},
        {"name": "adam_seed1", "optimizer": "adam", "lr": 0.01, "init_scale": 1.0, "weight_decay": 0.0, "seed": 1},
        {"name": "adam_init3", "optimizer": "adam", "lr": 0.01, "init_scale": 3.0, "weight_decay": 0.0, "seed": 0},
        {"name": "adam_wd", "optimizer": "adam", "lr": 0.01, "init_scale": 1.0, "weight_decay": 0.1, "seed": 0},
        {"name": "sgd", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "init_scale": 1.0, "weight_decay": 0.0, "seed": 0},
    ],
}

NETWORK_DESCRIPTIONS = {
    **DATA_DESCRIPTIONS,
    "widths": "Hidden-layer widths to sweep (list of distinct integers >= 1); parameter count "
              "w^2*(L-1) + w*(L+3) + 1 for L hidden layers.",
    "hidden_layers": "Number of hidden ReLU layers, all of the same width (integer >= 1).",
    "steps": "Full-batch optimisation steps per network (integer >= 1).",
    "device": "'cpu', 'auto' or 'cuda[:N]' (gisweep.runtime.pick_device).",
    "regimes": "Training regimes (list of objects, distinct names; keys: "
               + ", ".join(NETWORK_REGIME_DEFAULTS) + "; missing keys take the defaults "
               + json.dumps({k: v for k, v in NETWORK_REGIME_DEFAULTS.items() if k != 'name'})
               + "). The first regime is the reference the figures compare the others with.",
}

# ---------------------------------------------------------------- config validation


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def check_int(lo=None):
    def check(v, where):
        if not _is_int(v) or (lo is not None and v < lo):
            raise GisweepError(f"{where}: must be an integer >= {lo}, got {v!r}")
        return int(v)
    return check


def check_num(lo=None, hi=None, lo_open=False, hi_open=False):
    def check(v, where):
        ok = _is_num(v)
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
        if not ok:
            lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
            hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
            raise GisweepError(f"{where}: must be a finite number {lo_s} {hi_s}".rstrip() + f", got {v!r}")
        return float(v)
    return check


def check_int_list(lo):
    def check(v, where):
        if not isinstance(v, (list, tuple)) or not v:
            raise GisweepError(f"{where}: must be a non-empty list of integers >= {lo}, got {v!r}")
        out = [check_int(lo)(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if len(set(out)) != len(out):
            raise GisweepError(f"{where}: values must be distinct, got {v!r}")
        return out
    return check


def check_choice(choices):
    def check(v, where):
        if v not in choices:
            raise GisweepError(f"{where}: must be one of {list(choices)}, got {v!r}")
        return v
    return check


def check_choice_list(choices):
    def check(v, where):
        if not isinstance(v, (list, tuple)) or not v:
            raise GisweepError(f"{where}: must be a non-empty list drawn from {list(choices)}, got {v!r}")
        out = [check_choice(choices)(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if len(set(out)) != len(out):
            raise GisweepError(f"{where}: values must be distinct, got {v!r}")
        return out
    return check


DATA_CHECKS = {
    "seed": check_int(0),
    "n_train": check_int(4),
    "curve_amplitude": check_num(),
    "curve_frequency": check_num(),
    "gap": check_num(0, lo_open=True),
    "spread": check_num(0),
    "outside_extent": check_num(0, lo_open=True),
    "grid_size": check_int(3),
    "n_test": check_int(1),
}


def resolve_config(cfg: dict | None, defaults: dict, checks: dict, where: str) -> dict:
    """Defaults overlaid with `cfg`, every value checked; unknown keys and bad values raise
    GisweepError naming `where.key`."""
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise GisweepError(f"{where}: config must be a JSON object (dict), got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise GisweepError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(defaults)}")
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(cfg))
    for key, check in checks.items():
        out[key] = check(out[key], f"{where}.{key}")
    return out


def check_regime_name(v, where):
    if not isinstance(v, str) or not v or v == "truth":
        raise GisweepError(f"{where}: must be a non-empty string other than 'truth', got {v!r}")
    return v


def _check_network_regimes(v, where):
    if not isinstance(v, (list, tuple)) or not v:
        raise GisweepError(f"{where}: must be a non-empty list of regime objects, got {v!r}")
    checks = {
        "name": check_regime_name,
        "optimizer": check_choice(("adam", "sgd")),
        "lr": check_num(0, lo_open=True),
        "momentum": check_num(0, 1, hi_open=True),
        "init_scale": check_num(0, lo_open=True),
        "weight_decay": check_num(0),
        "seed": check_int(0),
    }
    out = []
    for i, r in enumerate(v):
        out.append(resolve_config(r, NETWORK_REGIME_DEFAULTS, checks, f"{where}[{i}]"))
    names = [r["name"] for r in out]
    if len(set(names)) != len(names):
        raise GisweepError(f"{where}: regime names must be distinct, got {names}")
    return out


def _check_device(v, where):
    if not isinstance(v, str):
        raise GisweepError(f"{where}: must be a string ('cpu', 'auto', 'cuda'), got {v!r}")
    from gisweep.runtime import pick_device
    try:
        pick_device(v)
    except GisweepError as e:
        raise GisweepError(f"{where}: {e}") from None
    return v


NETWORK_CHECKS = {
    **DATA_CHECKS,
    "widths": check_int_list(1),
    "hidden_layers": check_int(1),
    "steps": check_int(1),
    "device": _check_device,
    "regimes": _check_network_regimes,
}

# the module's config under the names every stage uses
DEFAULTS, DESCRIPTIONS, CHECKS = NETWORK_DEFAULTS, NETWORK_DESCRIPTIONS, NETWORK_CHECKS


def resolve_network_config(cfg: dict | None) -> dict:
    return resolve_config(cfg, NETWORK_DEFAULTS, NETWORK_CHECKS, "overparam.network")


# ---------------------------------------------------------------- data, hull, grid


def true_curve(x1: np.ndarray, cfg: dict) -> np.ndarray:
    """g(x1) = A sin(w x1), the true boundary."""
    return cfg["curve_amplitude"] * np.sin(cfg["curve_frequency"] * np.asarray(x1, dtype=np.float64))


def true_labels(xy: np.ndarray, cfg: dict) -> np.ndarray:
    """+1 above the true curve, -1 on or below it. xy: (m, 2) -> (m,) int8."""
    return np.where(xy[:, 1] > true_curve(xy[:, 0], cfg), 1, -1).astype(np.int8)


def _sample_band(n: int, x1_lo: float, x1_hi: float, cfg: dict, rng: np.random.Generator):
    x1 = rng.uniform(x1_lo, x1_hi, n)                                        # (n,)
    y = rng.permutation(np.r_[np.ones(n - n // 2), -np.ones(n // 2)]).astype(np.int8)
    dist = cfg["gap"] + cfg["spread"] * rng.uniform(0.0, 1.0, n)            # (n,)
    xy = np.stack([x1, true_curve(x1, cfg) + y * dist], axis=1)             # (n, 2)
    return xy, y


def make_training_data(cfg: dict):
    """Training points xy (n, 2) float64 and labels y (n,) int8 in {-1, +1}; x1 ~ U[-1, 1]."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0]))
    return _sample_band(cfg["n_train"], -1.0, 1.0, cfg, rng)


def widened_box(train_xy: np.ndarray, extent: float):
    """((x1_lo, x1_hi), (x2_lo, x2_hi)): the training bounding box widened by `extent` x its size."""
    lo, hi = train_xy.min(axis=0), train_xy.max(axis=0)
    pad = extent * (hi - lo)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def make_test_data(train_xy: np.ndarray, cfg: dict):
    """Test points from the data distribution with x1 over the widened x1 range, true labels."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 1]))
    (x1_lo, x1_hi), _ = widened_box(train_xy, cfg["outside_extent"])
    return _sample_band(cfg["n_test"], x1_lo, x1_hi, cfg, rng)


def make_grid(train_xy: np.ndarray, extent: float, size: int):
    """Grid over the widened box. Returns x1s (size,), x2s (size,), points (size*size, 2) with
    x1 varying fastest (points.reshape(size, size, 2)[i, j] = (x1s[j], x2s[i]))."""
    (a, b), (c, d) = widened_box(train_xy, extent)
    x1s, x2s = np.linspace(a, b, size), np.linspace(c, d, size)
    g1, g2 = np.meshgrid(x1s, x2s)                                          # (size, size) each
    return x1s, x2s, np.stack([g1.ravel(), g2.ravel()], axis=1)


def hull_mask(train_xy: np.ndarray, query_xy: np.ndarray) -> np.ndarray:
    """True where a query point lies in the convex hull of the training points (boundary included).

    train_xy (n, 2), query_xy (m, 2) -> (m,) bool. Training points that span no area (fewer than
    3, or all on one line) raise GisweepError: such a hull has no inside to compare with."""
    from scipy.spatial import Delaunay
    from scipy.spatial import QhullError

    train_xy = np.asarray(train_xy, dtype=np.float64)
    if train_xy.ndim != 2 or train_xy.shape[1] != 2 or len(train_xy) < 3:
        raise GisweepError(f"convex hull needs at least 3 points in 2-D, got array of shape {train_xy.shape}")
    try:
        tri = Delaunay(train_xy)
    except QhullError:
        raise GisweepError("convex hull of the training points is degenerate (all points on one line)") from None
    return tri.find_simplex(np.asarray(query_xy, dtype=np.float64)) >= 0


def disagreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of masked entries where a != b (NaN when the mask is empty)."""
    m = np.asarray(mask, dtype=bool)
    return float(np.mean(a[m] != b[m])) if m.any() else float("nan")


def accuracy(pred: np.ndarray, label: np.ndarray, mask: np.ndarray) -> float:
    m = np.asarray(mask, dtype=bool)
    return float(np.mean(pred[m] == label[m])) if m.any() else float("nan")


def compare_rows(names: list[str], sets: dict) -> list[dict]:
    """Class comparisons of every regime vs the truth and vs every earlier regime.

    sets: prefix -> (preds, truth, inside) with preds: name -> (m,) labels, truth (m,), inside
    (m,) bool; e.g. 'region' for the grid, 'test' for the test points. Rows: regime, reference,
    <prefix>_disagree_inside, <prefix>_disagree_outside (fractions of the points inside / outside
    the hull whose classes differ)."""
    rows = []
    for j, name in enumerate(names):
        for ref_name in ["truth"] + names[:j]:
            row = {"regime": name, "reference": ref_name}
            for prefix, (preds, truth, inside) in sets.items():
                ref = truth if ref_name == "truth" else preds[ref_name]
                row[f"{prefix}_disagree_inside"] = disagreement(preds[name], ref, inside)
                row[f"{prefix}_disagree_outside"] = disagreement(preds[name], ref, ~inside)
            rows.append(row)
    return rows


def curve_rows(train_xy: np.ndarray, train_y: np.ndarray, cfg: dict, n_curve: int = 301) -> pd.DataFrame:
    """Rows for plots: kind 'train' (the training points, label = class) and 'true_curve'."""
    (a, b), _ = widened_box(train_xy, cfg["outside_extent"])
    xs = np.linspace(a, b, n_curve)
    train = pd.DataFrame({"kind": "train", "x1": train_xy[:, 0], "x2": train_xy[:, 1],
                          "label": train_y.astype(np.int8)})
    curve = pd.DataFrame({"kind": "true_curve", "x1": xs, "x2": true_curve(xs, cfg),
                          "label": np.zeros(n_curve, dtype=np.int8)})
    return pd.concat([train, curve], ignore_index=True)


# ---------------------------------------------------------------- networks


def mlp_param_count(width: int, hidden_layers: int, in_dim: int = 2) -> int:
    """Weights and biases of in_dim -> width x hidden_layers -> 1."""
    return (in_dim * width + width) + (hidden_layers - 1) * (width * width + width) + (width + 1)


def build_mlp(width: int, hidden_layers: int, init_scale: float, generator, dtype=None):
    """ReLU MLP 2 -> width x hidden_layers -> 1. Weights and biases ~ U(+-init_scale/sqrt(fan_in))
    (PyTorch's default Linear init times init_scale), drawn from `generator` only."""
    import torch
    from torch import nn

    dtype = dtype or torch.float32
    dims = [2] + [width] * hidden_layers + [1]
    layers = []
    for k, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.Linear(fan_in, fan_out, dtype=dtype)
        bound = init_scale / math.sqrt(fan_in)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound)
        layers.append(lin)
        if k < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _init_seed(cfg_seed: int, regime_seed: int, width: int) -> int:
    return int(np.random.SeedSequence([cfg_seed, 2, regime_seed, width]).generate_state(1)[0])


def train_mlp(model, xy, y01, regime: dict, steps: int) -> float:
    """Reference trainer for one nn.Sequential MLP with torch.optim (AdamW / SGD), full-batch BCE.
    Returns the final training loss. xy (n, 2), y01 (n,) in {0, 1}. The sweep uses the batched
    `train_mlps_batched`; this one is its independent check."""
    import torch

    if regime["optimizer"] == "adam":
        opt = torch.optim.AdamW(model.parameters(), lr=regime["lr"], weight_decay=regime["weight_decay"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=regime["lr"], momentum=regime["momentum"],
                              weight_decay=regime["weight_decay"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xy).squeeze(1), y01)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(loss_fn(model(xy).squeeze(1), y01))


def batched_mlp_params(width: int, hidden_layers: int, regimes: list[dict], cfg_seed: int, dtype=None) -> list:
    """Initial weights of one MLP per regime, stacked: [W_1, b_1, ..., W_L+1, b_L+1] with
    W_l (R, fan_in, fan_out) and b_l (R, 1, fan_out). Regime r's slice equals
    build_mlp(width, hidden_layers, init_scale_r, Generator(seed_r)) (weights transposed)."""
    import torch

    dtype = dtype or torch.float32
    per_regime = []
    for reg in regimes:
        gen = torch.Generator().manual_seed(_init_seed(cfg_seed, reg["seed"], width))
        model = build_mlp(width, hidden_layers, reg["init_scale"], gen, dtype)
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        per_regime.append([t for lin in lins for t in (lin.weight.detach().T, lin.bias.detach()[None, :])])
    return [torch.stack([pr[k] for pr in per_regime]).contiguous() for k in range(len(per_regime[0]))]


def batched_mlp_forward(params: list, x):
    """x (R, m, 2) -> logits (R, m): ReLU between layers, none after the last."""
    import torch

    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = torch.baddbmm(params[2 * k + 1], h, params[2 * k])               # (R, m, fan_out)
        if k < n_layers - 1:
            h = torch.relu(h)
    return h.squeeze(2)


def _flatten(params: list):
    """Stacked per-layer tensors -> one (R, P) tensor, plus a function giving the layer views."""
    import torch

    R = params[0].shape[0]
    shapes = [p.shape[1:] for p in params]
    sizes = [math.prod(sh) for sh in shapes]
    flat = torch.cat([p.reshape(R, -1) for p in params], dim=1)

    def views(f):
        out, a = [], 0
        for sh, n in zip(shapes, sizes):
            out.append(f[:, a:a + n].view(R, *sh))
            a += n
        return out

    return flat, views


def train_mlps_batched(params: list, xy, y01, regimes: list[dict], steps: int):
    """Train R MLPs (one per regime, stacked as in batched_mlp_params) at once, full batch.

    Each regime's loss is its own mean BCE, so its gradients are exactly those of training it
    alone; the optimizer updates follow torch.optim.AdamW (adam) and torch.optim.SGD (sgd, with
    momentum and L2 weight decay) per regime, on all of a regime's parameters flattened into one
    row. xy (n, 2), y01 (n,). Returns (params, loss (R,))."""
    import torch

    dev, dtype = xy.device, xy.dtype
    R = len(regimes)

    def col(key):  # (R, 1) hyper-parameter column
        return torch.tensor([float(r[key]) for r in regimes], dtype=dtype, device=dev).view(R, 1)

    lr, wd, mom = col("lr"), col("weight_decay"), col("momentum")
    is_adam = torch.tensor([r["optimizer"] == "adam" for r in regimes], device=dev).view(R, 1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    flat, views = _flatten([p.detach() for p in params])
    flat = flat.clone().requires_grad_(True)                                  # (R, P)
    exp_avg, exp_sq, buf = torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros_like(flat)
    x = xy.unsqueeze(0).expand(R, -1, -1)                                     # (R, n, 2)
    y = y01.unsqueeze(0).expand(R, -1)                                        # (R, n)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits

    def losses():
        return loss_fn(batched_mlp_forward(views(flat), x), y, reduction="none").mean(dim=1)  # (R,)

    for step in range(1, steps + 1):
        (g,) = torch.autograd.grad(losses().sum(), flat)                      # (R, P)
        bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
        with torch.no_grad():
            # adam (decoupled weight decay, as torch AdamW)
            exp_avg.mul_(beta1).add_(g, alpha=1 - beta1)
            exp_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (exp_sq.sqrt() / math.sqrt(bc2)).add_(eps)
            p_adam = flat * (1 - lr * wd) - (lr / bc1) * exp_avg / denom
            # sgd (L2 weight decay added to the gradient, momentum without dampening)
            d = g + wd * flat
            buf = torch.where(is_adam, buf, mom * buf + d)  # buf starts at 0: step 1 gives d, as torch
            p_sgd = flat - lr * buf
            flat.copy_(torch.where(is_adam, p_adam, p_sgd))
    with torch.no_grad():
        final = losses()
    return [v.detach().clone() for v in views(flat.detach())], final


def predict_batched(params: list, xy, chunk: int = 65536) -> np.ndarray:
    """Class (+1 / -1) of every point for every regime. xy (m, 2) -> (R, m) int8."""
    import torch

    R = params[0].shape[0]
    out = []
    with torch.no_grad():
        for i in range(0, len(xy), chunk):
            x = xy[i:i + chunk].unsqueeze(0).expand(R, -1, -1)
            out.append(batched_mlp_forward(params, x).cpu().numpy())
    return np.where(np.concatenate(out, axis=1) > 0, 1, -1).astype(np.int8)


def network_sweep(cfg: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every (width, regime) MLP on the shared 2-D data; measure inside vs outside the hull.

    Returns (metrics_df, regions_df).
    metrics_df: one row per (width, regime, reference); reference 'truth' or an earlier regime.
      width, hidden_layers, n_params, n_train, param_ratio (= n_params / n_train), regime,
      reference, train_acc, train_loss, test_acc_inside, test_acc_outside, n_test_inside,
      n_test_outside (the regime's own, repeated over its reference rows),
      region_disagree_inside / _outside (fraction of grid points inside / outside the training
      hull where the regime's class differs from the reference's: uniform over area),
      test_disagree_inside / _outside (the same over the test points: weighted by the data
      distribution; against 'truth' it is the test error).
    regions_df: kind 'grid' (width, n_params, regime, x1, x2, label = predicted class,
      inside_hull), plus kind 'train' and 'true_curve' rows (width 0, regime '') for plots.
    """
    import torch

    from gisweep.runtime import pick_device

    cfg = resolve_network_config(cfg)
    device = pick_device(cfg["device"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin, and badly so on shared cores
    try:
        return _network_sweep(cfg, device)
    finally:
        torch.set_num_threads(threads)


def _network_sweep(cfg: dict, device) -> tuple[pd.DataFrame, pd.DataFrame]:
    import torch

    dtype = torch.float32
    train_xy, train_y = make_training_data(cfg)
    test_xy, test_y = make_test_data(train_xy, cfg)
    test_inside = hull_mask(train_xy, test_xy)
    _, _, grid = make_grid(train_xy, cfg["outside_extent"], cfg["grid_size"])
    grid_inside = hull_mask(train_xy, grid)
    grid_truth = true_labels(grid, cfg)

    xy_t = torch.tensor(train_xy, dtype=dtype, device=device)
    y01_t = torch.tensor((train_y + 1) // 2, dtype=dtype, device=device)
    test_t = torch.tensor(test_xy, dtype=dtype, device=device)
    grid_t = torch.tensor(grid, dtype=dtype, device=device)
    names = [r["name"] for r in cfg["regimes"]]
    n = cfg["n_train"]

    metric_rows, region_frames = [], []
    for width in cfg["widths"]:
        n_params = mlp_param_count(width, cfg["hidden_layers"])
        init = [p.to(device) for p in batched_mlp_params(width, cfg["hidden_layers"], cfg["regimes"], cfg["seed"], dtype)]
        params, loss = train_mlps_batched(init, xy_t, y01_t, cfg["regimes"], cfg["steps"])
        train_pred = predict_batched(params, xy_t)                           # (R, n)
        test_pred = predict_batched(params, test_t)                          # (R, n_test)
        grid_pred = predict_batched(params, grid_t)                          # (R, grid_size**2)
        own, preds, test_preds = {}, {}, {}
        for r, name in enumerate(names):
            preds[name], test_preds[name] = grid_pred[r], test_pred[r]
            own[name] = {
                "train_acc": float(np.mean(train_pred[r] == train_y)),
                "train_loss": float(loss[r]),
                "test_acc_inside": accuracy(test_pred[r], test_y, test_inside),
                "test_acc_outside": accuracy(test_pred[r], test_y, ~test_inside),
                "n_test_inside": int(test_inside.sum()),
                "n_test_outside": int((~test_inside).sum()),
            }
            region_frames.append(pd.DataFrame({
                "kind": "grid", "width": width, "n_params": n_params, "regime": name,
                "x1": grid[:, 0], "x2": grid[:, 1], "label": grid_pred[r],
                "inside_hull": grid_inside,
            }))
        sets = {"region": (preds, grid_truth, grid_inside), "test": (test_preds, test_y, test_inside)}
        for row in compare_rows(names, sets):
            metric_rows.append({
                "width": width, "hidden_layers": cfg["hidden_layers"], "n_params": n_params,
                "n_train": n, "param_ratio": n_params / n, **row, **own[row["regime"]],
            })

    extra = curve_rows(train_xy, train_y, cfg)
    extra = extra.assign(width=0, n_params=0, regime="", inside_hull=True)
    regions = pd.concat(region_frames + [extra[region_frames[0].columns]], ignore_index=True)
    regions = regions.astype({"width": np.int64, "n_params": np.int64, "label": np.int8, "inside_hull": bool})
    return pd.DataFrame(metric_rows), regions


# ---------------------------------------------------------------- summaries


def summarize_network(metrics: pd.DataFrame) -> str:
    """Plain-text table of the measured numbers the two claims rest on: per width, the training
    accuracy of each regime, test accuracy inside/outside the hull (mean over regimes), and the
    disagreement between regimes (mean over all regime pairs) inside/outside, on the grid and on
    the test points."""
    own = metrics[metrics["reference"] == "truth"]
    pairs = metrics[metrics["reference"] != "truth"]
    lines = ["width n_params ratio | train_acc per regime | test_acc in / out | "
             "pair disagreement grid in / out | test in / out"]
    for width, g in own.groupby("width", sort=True):
        pr = pairs[pairs["width"] == width]
        pair_s = (f"{pr.region_disagree_inside.mean():.4f} / {pr.region_disagree_outside.mean():.4f} | "
                  f"{pr.test_disagree_inside.mean():.4f} / {pr.test_disagree_outside.mean():.4f}"
                  if len(pr) else "- | -")
        lines.append(
            f"{width:5d} {int(g.n_params.iloc[0]):8d} {g.param_ratio.iloc[0]:7.2f} | "
            + " ".join(f"{a:.3f}" for a in g.train_acc)
            + f" | {g.test_acc_inside.mean():.3f} / {g.test_acc_outside.mean():.3f} | " + pair_s
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- figures


def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_hull(ax, train_xy: np.ndarray, **kw) -> None:
    from scipy.spatial import ConvexHull

    v = ConvexHull(train_xy).vertices
    poly = np.vstack([train_xy[v], train_xy[v[:1]]])
    ax.plot(poly[:, 0], poly[:, 1], **{"color": "k", "lw": 0.8, "ls": "--", **kw})


def _train_and_curve(df: pd.DataFrame):
    train = df[df["kind"] == "train"]
    curve = df[df["kind"] == "true_curve"].sort_values("x1")
    return train[["x1", "x2"]].to_numpy(), train["label"].to_numpy(), curve


def plot_network_regions(regions_df: pd.DataFrame, metrics_df: pd.DataFrame, path) -> None:
    """Decision regions per width (columns) and regime (rows), with the training hull (dashed),
    the training points and the true curve (black)."""
    plt = _agg()
    from matplotlib.colors import ListedColormap

    _require(regions_df, ["kind", "width", "regime", "x1", "x2", "label", "inside_hull"], "regions")
    _require(metrics_df, ["width", "regime", "reference", "n_params", "train_acc", "test_acc_outside"], "metrics")
    grid = regions_df[regions_df["kind"] == "grid"]
    train_xy, train_y, curve = _train_and_curve(regions_df)
    widths = sorted(grid["width"].unique())
    regimes = list(dict.fromkeys(grid["regime"]))
    own = metrics_df[metrics_df["reference"] == "truth"].set_index(["width", "regime"])
    cmap = ListedColormap(["#f4b6b6", "#b6cdf4"])
    fig, axes = plt.subplots(len(regimes), len(widths), figsize=(2.6 * len(widths), 2.7 * len(regimes)),
                             squeeze=False, sharex=True, sharey=True)
    for i, reg in enumerate(regimes):
        for j, w in enumerate(widths):
            ax = axes[i, j]
            g = grid[(grid["width"] == w) & (grid["regime"] == reg)].sort_values(["x2", "x1"])
            x1s, x2s = np.unique(g["x1"]), np.unique(g["x2"])
            z = g["label"].to_numpy().reshape(len(x2s), len(x1s))
            ax.pcolormesh(x1s, x2s, z, cmap=cmap, vmin=-1, vmax=1, shading="nearest", rasterized=True)
            draw_hull(ax, train_xy)
            ax.plot(curve["x1"], curve["x2"], color="k", lw=0.8)
            ax.scatter(train_xy[:, 0], train_xy[:, 1], c=np.where(train_y > 0, "#1f4fbf", "#c0392b"),
                       s=6, linewidths=0)
            m = own.loc[(w, reg)]
            ax.set_title(f"w={w} ({int(m.n_params)} p) {reg}\ntrain {m.train_acc:.2f}, out-test {m.test_acc_outside:.2f}",
                         fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("MLP decision regions; dashed: training convex hull, black: true boundary", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)  # closes the figure


def plot_disagreement_panels(metrics_df: pd.DataFrame, xcol: str, xlabel: str, panels: list, path, title: str) -> None:
    """One panel per (column pair, reference selector): x = parameter count (log), one curve per
    comparison; solid = outside the hull, dashed = inside. panels: list of dicts with keys
    title, inside, outside (column names), which ('truth' or 'reference'), ylog (bool)."""
    plt = _agg()

    regs = list(dict.fromkeys(metrics_df["regime"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, panel in zip(axes[0], panels):
        if panel["which"] == "truth":
            sel = metrics_df[metrics_df["reference"] == "truth"]
            keys = [(r, f"{r} vs truth") for r in regs]
        else:
            sel = metrics_df[metrics_df["reference"] == regs[0]]
            keys = [(r, f"{r} vs {regs[0]}") for r in regs[1:]]
        floor = panel.get("floor")
        for k, (reg, label) in enumerate(keys):
            g = sel[sel["regime"] == reg].sort_values(xcol)
            if g.empty:
                continue
            for col, ls, where in ((panel["outside"], "-", "outside"), (panel["inside"], "--", "inside")):
                y = g[col].to_numpy(dtype=float)
                if floor is not None:
                    y = np.maximum(y, floor)
                ax.plot(g[xcol], y, ls=ls, marker="o", ms=3, color=colors[k % 10],
                        label=f"{label} ({where})")
        n_train = metrics_df["n_train"].iloc[0]
        ax.axvline(n_train, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        if panel.get("ylog"):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel + f" (dotted: n_train = {n_train})", fontsize=8)
        ax.set_ylabel(panel["ylabel"], fontsize=8)
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5.5, ncol=1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)  # closes the figure


def plot_network_disagreement(metrics_df: pd.DataFrame, path) -> None:
    """Grid error vs the true boundary and region disagreement vs the first regime, inside vs
    outside the training hull, against parameter count."""
    _require(metrics_df, ["n_params", "n_train", "regime", "reference", "region_disagree_inside",
                          "region_disagree_outside", "test_acc_inside", "test_acc_outside"], "metrics")
    m = metrics_df.assign(test_err_inside=1 - metrics_df["test_acc_inside"],
                          test_err_outside=1 - metrics_df["test_acc_outside"])
    plot_disagreement_panels(m, "n_params", "parameters", [
        {"title": "decision regions vs true boundary (grid)", "inside": "region_disagree_inside",
         "outside": "region_disagree_outside", "which": "truth", "ylabel": "fraction of grid points differing"},
        {"title": "decision regions between regimes (grid)", "inside": "region_disagree_inside",
         "outside": "region_disagree_outside", "which": "reference", "ylabel": "fraction of grid points differing"},
        {"title": "test error (points drawn beyond the data)", "inside": "test_err_inside",
         "outside": "test_err_outside", "which": "truth", "ylabel": "test error"},
    ], path, "ReLU MLPs: inside (dashed) vs outside (solid) the training convex hull")


def _require(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise GisweepError(f"{what} table: missing column(s) {missing}; found {list(df.columns)}")


# ---------------------------------------------------------------- CLI


def parse_config_json(text: str, where: str) -> dict:
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise GisweepError(f"{where}: --config-json is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise GisweepError(f"{where}: --config-json must be a JSON object, got {type(cfg).__name__}")
    return cfg


def _cmd_network_sweep(args) -> None:
    from gisweep.io import provenance, write_parquet

    cfg = resolve_network_config(parse_config_json(args.config_json, "overparam.network"))
    metrics, regions = network_sweep(cfg)
    meta = provenance(stage="network_sweep", config=cfg, seed=cfg["seed"], device=cfg["device"])
    write_parquet(metrics, args.metrics, meta)
    write_parquet(regions, args.regions, meta)
    print(summarize_network(metrics))


def _cmd_plot_regions(args) -> None:
    from gisweep.io import read_parquet

    plot_network_regions(read_parquet(args.regions), read_parquet(args.metrics), args.out)


def _cmd_plot_network_disagreement(args) -> None:
    from gisweep.io import read_parquet

    plot_network_disagreement(read_parquet(args.metrics), args.out)


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("network-sweep", help="train MLPs across widths and regimes; inside vs outside the hull")
    p.add_argument("--config-json", default="{}", help="JSON object overriding overparam.network defaults")
    p.add_argument("--metrics", required=True, help="output Parquet: per (width, regime, reference) metrics")
    p.add_argument("--regions", required=True, help="output Parquet: decision regions on the grid")
    p.set_defaults(func=_cmd_network_sweep)

    p = subparsers.add_parser("plot-network-regions", help="figure: decision regions per width and regime")
    p.add_argument("--metrics", required=True)
    p.add_argument("--regions", required=True)
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_plot_regions)

    p = subparsers.add_parser("plot-network-disagreement", help="figure: disagreement inside vs outside vs parameters")
    p.add_argument("--metrics", required=True)
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_plot_network_disagreement)
