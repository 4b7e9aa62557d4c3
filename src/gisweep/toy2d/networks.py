"""ReLU MLPs 2 -> width x hidden_layers -> 1 (logit) and their training regimes, batched over regimes.

A regime is an optimizer, learning rate, initial scale, weight decay and seed (config schema,
overparam.network.regimes). All regimes of one width train at once, full batch with binary
cross-entropy: their parameters are stacked along a leading regime axis R, and the AdamW / SGD
updates are applied per row, so each regime follows exactly the steps it would take alone
(`train_mlp`, plain torch.optim on one nn.Sequential, is the independent check).
Initial weights: gisweep.models.build_mlp(init='fan_in'), from a generator seeded per
(data seed, regime seed, width).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gisweep.models import build_mlp


def mlp_param_count(width: int, hidden_layers: int, in_dim: int = 2) -> int:
    """Weights and biases of in_dim -> width x hidden_layers -> 1."""
    return (in_dim * width + width) + (hidden_layers - 1) * (width * width + width) + (width + 1)


def build_toy_mlp(width: int, hidden_layers: int, init_scale: float, generator, dtype=torch.float32):
    """ReLU MLP 2 -> width x hidden_layers -> 1, weights and biases ~ U(+-init_scale/sqrt(fan_in))."""
    return build_mlp(f"{hidden_layers}x{width}", 2, 1, init_scale, generator, init="fan_in", dtype=dtype)


def init_seed(cfg_seed: int, regime_seed: int, width: int) -> int:
    """Seed of a regime's initial weights at one width."""
    return int(np.random.SeedSequence([cfg_seed, 2, regime_seed, width]).generate_state(1)[0])


def train_mlp(model, xy, y01, regime: dict, steps: int) -> float:
    """Reference trainer for one nn.Sequential MLP with torch.optim (AdamW / SGD), full-batch BCE.
    Returns the final training loss. xy (n, 2), y01 (n,) in {0, 1}. The sweep uses the batched
    `train_mlps_batched`; this one is its independent check."""
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


def batched_mlp_params(width: int, hidden_layers: int, regimes: list[dict], cfg_seed: int,
                       dtype=torch.float32) -> list:
    """Initial weights of one MLP per regime, stacked: [W_1, b_1, ..., W_L+1, b_L+1] with
    W_l (R, fan_in, fan_out) and b_l (R, 1, fan_out). Regime r's slice equals
    build_toy_mlp(width, hidden_layers, init_scale_r, Generator(seed_r)) (weights transposed)."""
    per_regime = []
    for reg in regimes:
        gen = torch.Generator().manual_seed(init_seed(cfg_seed, reg["seed"], width))
        model = build_toy_mlp(width, hidden_layers, reg["init_scale"], gen, dtype)
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        per_regime.append([t for lin in lins for t in (lin.weight.detach().T, lin.bias.detach()[None, :])])
    return [torch.stack([pr[k] for pr in per_regime]).contiguous() for k in range(len(per_regime[0]))]


def batched_mlp_forward(params: list, x):
    """x (R, m, 2) -> logits (R, m): ReLU between layers, none after the last."""
    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = torch.baddbmm(params[2 * k + 1], h, params[2 * k])               # (R, m, fan_out)
        if k < n_layers - 1:
            h = torch.relu(h)
    return h.squeeze(2)


def _flatten(params: list):
    """Stacked per-layer tensors -> one (R, P) tensor, plus a function giving the layer views."""
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
    R = params[0].shape[0]
    out = []
    with torch.no_grad():
        for i in range(0, len(xy), chunk):
            x = xy[i:i + chunk].unsqueeze(0).expand(R, -1, -1)                # (R, c, 2)
            out.append(batched_mlp_forward(params, x).cpu().numpy())
    return np.where(np.concatenate(out, axis=1) > 0, 1, -1).astype(np.int8)
