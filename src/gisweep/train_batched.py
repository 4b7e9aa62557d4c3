"""Batched training: the seeds of one (dataset, dim, arch, labels) cell as one stacked model in one process.

S seeds of one architecture become one `StackedMLP`: layer k holds a weight [S, out, in] and a bias
[S, out], and a forward pass is one batched matmul per layer (torch.baddbmm) on a stacked minibatch
[S, B, F]. Each seed keeps everything it has when trained alone (gisweep.train):
- its initialisation: each seed's network is built by gisweep.train.start_model from its own
  generator, exactly as the train stage builds it, and then stacked;
- its labels (gisweep.data.training_labels with its seed) and its data order (a CPU generator seeded
  with its seed, one torch.randperm per epoch, as gisweep.train.fit draws it);
- its loss: the mean cross entropy over its own minibatch (its own nll_loss call), and its gradient;
- its optimizer state and update (StackedOptimizer: SGD written out over the stack, Adam per row);
- its stopping epoch: after each epoch, a seed at 100 % training accuracy leaves the stack (its weights
  are kept, the others' weights and optimizer state are sliced), so it stops updating and its
  history ends there, as when trained alone.
On a CPU a seed trained in a batch equals that seed trained alone, bit for bit (weights, history,
provenance), at any thread count. The products are batched (torch.baddbmm / torch.bmm), with the
gradients written out (no autograd) in the operand order of nn.Linear's 2-D backward; which kernel
MKL runs for a batched product, and so its rounding, depends on the shapes and the thread count, so
the first product of each shape is computed both ways and the batched kernel is kept only where it
equals the 2-D calls (`_exact`). With one thread (the train rules' setting) it does for every product
of the default config; with two threads the weight gradient of the 10-output layer falls back to
2-D calls (batched, it differs by at most 2.1e-7 of its largest entry). tests/test_batched_training.py
checks all of this. On a GPU the batched kernels are used as they are (no bit-equality promised).

`train_batch` writes each seed's model.pt and history.parquet in the train stage's formats, with the
same provenance, so later stages cannot tell a batched model from one trained alone.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.models import build_mlp, parse_arch
from gisweep.runtime import pick_device
from gisweep.schema import schema_number
from gisweep.train import add_training_args, make_optimizer, run_settings, save_run, start_model, training_args


# (call, operand shapes and strides, threads) -> whether the batched kernel equals the per-network 2-D calls
_BATCHED_EXACT: dict[tuple, bool] = {}


def _exact(key: tuple, batched: Callable[[], torch.Tensor], per_network: Callable[[], torch.Tensor],
           device: torch.device) -> torch.Tensor:
    """batched(), where on a CPU it equals per_network() (the S 2-D calls of one network alone), else per_network().

    Which kernel MKL runs for a batched product, and hence its rounding, depends on the shapes and
    the thread count: for most of this project's shapes a slice of torch.bmm equals torch.mm bit for
    bit, for some small ones it does not. The first call of each (key, threads) on a CPU computes
    both and keeps the batched kernel only if they agree; it returns the 2-D result either way. On a
    GPU the batched kernel is used (no bit-equality is promised there).
    """
    if device.type != "cpu":
        return batched()
    key = (*key, torch.get_num_threads())
    ok = _BATCHED_EXACT.get(key)
    if ok is None:
        ref = per_network()
        _BATCHED_EXACT[key] = torch.equal(batched(), ref)
        return ref
    return batched() if ok else per_network()


def _layout(*tensors: torch.Tensor) -> tuple:
    return tuple((tuple(t.shape), t.stride()) for t in tensors)


def stacked_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """b + h @ w^T per network: h [S, B, in], w [S, out, in], b [S, out] -> [S, B, out] (nn.Linear's addmm)."""
    return _exact(("linear", *_layout(h, w, b)), lambda: torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)),
                  lambda: torch.stack([torch.addmm(b[r], h[r], w[r].t()) for r in range(len(w))]), h.device)


def stacked_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b per network: a [S, m, k], b [S, k, n] -> [S, m, n] (torch.mm of each pair of slices)."""
    return _exact(("mm", *_layout(a, b)), lambda: torch.bmm(a, b),
                  lambda: torch.stack([a[r].mm(b[r]) for r in range(len(a))]), a.device)


def stacked_row_sum(g: torch.Tensor) -> torch.Tensor:
    """g summed over its rows per network: g [S, B, n] -> [S, n] (the bias gradient of nn.Linear)."""
    return _exact(("sum", *_layout(g)), lambda: g.sum(1), lambda: torch.stack([g[r].sum(0) for r in range(len(g))]),
                  g.device)


class StackedMLP:
    """S ReLU MLPs of one architecture as one stack: weights[k] [S, out, in], biases[k] [S, out].

    Row s of every tensor is network s. Plain tensors, no autograd: `forward_backward` computes the
    gradients by hand, with the kernels nn.Linear's autograd calls for one network, so that on a CPU
    each network's gradient equals its gradient trained alone, bit for bit.
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor]):
        self.weights, self.biases = weights, biases

    @classmethod
    def stack(cls, models: list[nn.Sequential]) -> "StackedMLP":
        """Stack networks built by models.build_mlp (one architecture) into one stack (copies)."""
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        if len({tuple(tuple(lin.weight.shape) for lin in ls) for ls in linears}) != 1:
            raise GisweepError("batched training: the stacked networks differ in architecture")
        depth = len(linears[0])
        return cls([torch.stack([ls[k].weight.detach() for ls in linears]) for k in range(depth)],
                   [torch.stack([ls[k].bias.detach() for ls in linears]) for k in range(depth)])

    @property
    def size(self) -> int:
        return self.weights[0].shape[0]

    def tensors(self) -> list[torch.Tensor]:
        """Every stacked tensor, layer by layer: weight, bias, weight, bias, ..."""
        return [t for wb in zip(self.weights, self.biases) for t in wb]

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, h_1, ..., h_L, logits] for x [S, B, F]: h_k [S, B, width] after the ReLU, logits [S, B, C]."""
        hs, last = [x], len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = stacked_linear(hs[-1], w, b)  # [S, B, out] = b + h @ w^T, per network
            hs.append(h.relu_() if k < last else h)
        return hs

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)[-1]

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(losses [S], gradients like tensors()) of each network's mean cross entropy on its minibatch.

        x [S, B, F], y [S, B]. Per network this is nn.CrossEntropyLoss then backward through nn.Linear
        and nn.ReLU: log_softmax; nll_loss (mean) whose gradient is -1/B at the label; the log_softmax
        backward kernel; per layer grad_w = g^T @ h, grad_b = g summed over rows, g <- (g @ w) where
        h > 0 (the threshold_backward kernel). Only the operand order of the 2-D calls matters for
        bit-equality, and it is kept.
        """
        hs = self.activations(x)
        logp = torch.log_softmax(hs[-1], 2)  # [S, B, C]
        s, b = y.shape
        losses = torch.stack([nn.functional.nll_loss(logp[r], y[r]) for r in range(s)])  # [S], each its own sum order
        g = torch.zeros_like(logp).scatter_(2, y.unsqueeze(2), -1.0 / b)  # d loss / d logp
        g = torch.ops.aten._log_softmax_backward_data(g, logp, 2, logp.dtype)  # [S, B, C] d loss / d logits
        grads: list[torch.Tensor] = []
        for k in reversed(range(len(self.weights))):
            grads[:0] = [stacked_mm(g.transpose(1, 2), hs[k]), stacked_row_sum(g)]  # [S, out, in], [S, out]
            if k > 0:
                g = torch.ops.aten.threshold_backward(stacked_mm(g, self.weights[k]), hs[k], 0)  # [S, B, in]
        return losses, grads

    def select(self, keep: list[int]) -> "StackedMLP":
        """A new stack of the networks at positions `keep` (copies)."""
        return StackedMLP([w[keep].clone() for w in self.weights], [b[keep].clone() for b in self.biases])

    def unstack(self, i: int, arch: str, in_features: int, n_classes: int) -> nn.Sequential:
        """Network i as the nn.Sequential models.build_mlp builds (a CPU copy of its weights)."""
        model = build_mlp(arch, in_features, n_classes, generator=torch.Generator())  # weights overwritten below
        linears = [m for m in model if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[i])
                lin.bias.copy_(b[i])
        return model


class StackedOptimizer:
    """One optimizer for the stacked tensors; each row is updated as its network's own optimizer would.

    SGD: torch.optim.SGD's single-tensor update (the CPU path), written out once for the whole stack:
    buf = grad at the first step, else buf = momentum * buf + grad; param -= lr * buf (param -= lr *
    grad without momentum). Its two kernels (mul_, add_ with alpha) act element by element and round
    alike in their vectorised and scalar parts, so a row is updated as the network alone would be
    (tests/test_batched_training.py checks odd sizes). Other optimizers (Adam): torch.optim itself,
    on each row as its own parameter (views into the stack): Adam's kernels (lerp_, addcdiv_) round
    differently in the scalar tail of a tensor, so the rows keep the shapes they have alone.
    `select(keep, tensors)` carries the state of the rows `keep` over to a smaller stack.
    """

    def __init__(self, name: str, tensors: list[torch.Tensor], lr: float, momentum: float):
        self.name, self.lr, self.momentum, self.tensors = name, lr, momentum, tensors
        self.buffers: list[torch.Tensor | None] = [None] * len(tensors)
        self.rows = [[nn.Parameter(t[r]) for t in tensors] for r in range(tensors[0].shape[0])]
        self.torch_opt = None if name == "sgd" else make_optimizer(name, [p for row in self.rows for p in row], lr,
                                                                   momentum)

    def step(self, grads: list[torch.Tensor]) -> None:
        if self.torch_opt is not None:
            for r, row in enumerate(self.rows):
                for p, g in zip(row, grads):
                    p.grad = g[r]
            self.torch_opt.step()
            return
        for i, (t, g) in enumerate(zip(self.tensors, grads)):
            if self.momentum != 0:
                if self.buffers[i] is None:
                    self.buffers[i] = g.clone()
                else:
                    self.buffers[i].mul_(self.momentum).add_(g, alpha=1)
                g = self.buffers[i]
            t.add_(g, alpha=-self.lr)

    def select(self, keep: list[int], tensors: list[torch.Tensor]) -> "StackedOptimizer":
        """The optimizer of the stack `tensors` (the old ones' rows `keep`), carrying the rows' state."""
        new = StackedOptimizer(self.name, tensors, self.lr, self.momentum)
        new.buffers = [None if b is None else b[keep].clone() for b in self.buffers]
        if self.torch_opt is not None:
            for old_row, new_row in zip((self.rows[r] for r in keep), new.rows):
                for old, par in zip(old_row, new_row):
                    if self.torch_opt.state.get(old):
                        new.torch_opt.state[par] = {k: v.clone() if torch.is_tensor(v) else v
                                                    for k, v in self.torch_opt.state[old].items()}
        return new


def stacked_accuracy(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, batch: int = 8192) -> list[float]:
    """Per network, the share of rows whose argmax class is its label: x [n, F] shared, y [S, n] (or [n],
    the same labels for every network). Chunks of `batch` rows as gisweep.train.accuracy; one host sync."""
    s, n = stack.size, len(x)
    y = y.expand(s, n) if y.dim() == 1 else y
    hits = torch.zeros(s, dtype=torch.long, device=x.device)
    for i in range(0, n, batch):
        xb = x[i:i + batch]
        hits += (stack(xb.unsqueeze(0).expand(s, *xb.shape)).argmax(2) == y[:, i:i + batch]).sum(1)  # logits [S, b, C]
    return [int(h) / max(n, 1) for h in hits.tolist()]


@torch.no_grad()
def fit_batched(models: list[nn.Sequential], x, ys, x_val, y_val, *, seeds: list[int], lr, momentum, batch_size,
                max_epochs, optimizer: str = "sgd", log_every: float = 5.0) -> list[tuple[pd.DataFrame, bool, nn.Sequential]]:
    """Train S networks at once, each as gisweep.train.fit trains it alone; per seed (history, converged, network).

    models: S networks of one architecture (freshly initialised, on the device); x [n, F] shared inputs,
    ys [S, n] each network's training labels, x_val [m, F], y_val [m]; seeds [S] seed each network's data
    order. A network stops at the end of the first epoch at 100 % training accuracy (or at max_epochs):
    it leaves the stack, and its history ends there. Returns CPU copies of the final networks.
    """
    if len(set(seeds)) != len(seeds) or len(seeds) != len(models):
        raise GisweepError(f"batched training: seeds {seeds} are not distinct, one per network")
    make_optimizer(optimizer, [nn.Parameter(torch.zeros(1))], lr, momentum)  # a clear error for an unknown name
    n = len(x)
    linears = [m for m in models[0] if isinstance(m, nn.Linear)]
    arch = f"{len(linears) - 1}x{linears[0].out_features}"
    in_features, n_classes = linears[0].in_features, linears[-1].out_features
    stack = StackedMLP.stack(models)
    opt = StackedOptimizer(optimizer, stack.tensors(), lr, momentum)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    active = list(range(len(seeds)))  # positions (in seeds) of the networks still training; row r of the stack is active[r]
    rows: list[list[dict]] = [[] for _ in seeds]
    results: list = [None] * len(seeds)
    last_log = t0 = time.monotonic()
    for epoch in range(1, max_epochs + 1):
        a = len(active)
        y_act = ys[active]  # [A, n]
        order = torch.stack([torch.randperm(n, generator=gens[p]) for p in active]).to(x.device)  # [A, n]
        total_t = torch.zeros(a, dtype=torch.float64, device=x.device)
        for i in range(0, n, batch_size):
            idx = order[:, i:i + batch_size]  # [A, b]
            losses, grads = stack.forward_backward(x[idx], y_act.gather(1, idx))  # x[idx] [A, b, F]
            opt.step(grads)
            total_t += losses.to(torch.float64) * idx.shape[1]  # per network, as fit sums loss * len(idx)
        totals = total_t.tolist()
        train_acc, val_acc = stacked_accuracy(stack, x, y_act), stacked_accuracy(stack, x_val, y_val)
        done = []
        for r, p in enumerate(active):
            rows[p].append({"epoch": epoch, "loss": totals[r] / n, "train_acc": train_acc[r], "val_acc": val_acc[r]})
            if train_acc[r] == 1.0 or epoch == max_epochs:
                results[p] = (pd.DataFrame(rows[p]), train_acc[r] == 1.0, stack.unstack(r, arch, in_features, n_classes))
                done.append(r)
        if time.monotonic() - last_log > log_every:
            last_log = time.monotonic()
            print(f"epoch {epoch}, {last_log - t0:.0f} s: " + "; ".join(
                f"seed {seeds[p]} loss {totals[r] / n:.4f} train {train_acc[r]:.4f} val {val_acc[r]:.4f}"
                for r, p in enumerate(active)), file=sys.stderr, flush=True)
        if done:
            print(f"epoch {epoch}: seed(s) {', '.join(str(seeds[active[r]]) for r in done)} stop "
                  f"({a - len(done)} still training)", file=sys.stderr, flush=True)
            keep = [r for r in range(a) if r not in done]
            active = [active[r] for r in keep]
            if not active:
                break
            stack = stack.select(keep)
            opt = opt.select(keep, stack.tensors())
    return results


def train_batch(data_path, out_models, out_histories, *, arch: str, labels: str, seeds: list[int], optimizer: str = "sgd",
                lr: float = 0.01, momentum: float = 0.9, batch_size: int = 32, max_epochs: int = 2000,
                init_scale: float = 0.05, device: str = "auto", threads: int | None = None) -> None:
    """Train the seeds of one cell as one stacked model; write each seed's model.pt and history.parquet
    exactly as `gisweep train --seed SEED` writes them (same files, same provenance)."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise GisweepError(f"--seeds {seeds}: expected distinct non-negative integers")
    if not len(out_models) == len(out_histories) == len(seeds):
        raise GisweepError(f"{len(seeds)} seeds need as many --out-models and --out-histories "
                           f"(got {len(out_models)} and {len(out_histories)})")
    parse_arch(arch)
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    x_tr, y_true, x_val, y_val = load_table(data_path)  # [n, F], [n], [m, F], [m]
    models = []
    for seed in seeds:  # each network drawn from its seed's own generator, as start_training draws it
        model, n_classes, as_t = start_model(x_tr, y_true, y_val, arch=arch, seed=seed, init_scale=init_scale, dev=dev)
        models.append(model)
    ys = np.stack([training_labels(y_true, labels, seed) for seed in seeds])  # [S, n]
    results = fit_batched(models, as_t(x_tr), as_t(ys, torch.long), as_t(x_val), as_t(y_val, torch.long), seeds=seeds,
                          optimizer=optimizer, lr=lr, momentum=momentum, batch_size=batch_size, max_epochs=max_epochs)
    for seed, out_model, out_history, (history, converged, model) in zip(seeds, out_models, out_histories, results):
        settings = run_settings(arch=arch, seed=seed, optimizer=optimizer, lr=lr, momentum=momentum,
                                batch_size=batch_size, max_epochs=max_epochs, init_scale=init_scale, device=dev)
        save_run(out_model, out_history, model, history, converged, data_path=data_path, labels=labels,
                 settings=settings, in_features=x_tr.shape[1], n_classes=n_classes)


def register_cli(sub) -> None:
    p = sub.add_parser("train-batch", help="train the seeds of one cell as one stacked model")
    p.add_argument("--data", required=True)
    p.add_argument("--arch", required=True, help="LAYERSxWIDTH, e.g. 3x128")
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seeds", type=schema_number("models.seeds[]"), nargs="+", required=True)
    add_training_args(p)
    p.add_argument("--out-models", nargs="+", required=True, help="one model.pt per seed, in --seeds order")
    p.add_argument("--out-histories", nargs="+", required=True, help="one history.parquet per seed")
    p.set_defaults(func=lambda a: train_batch(
        a.data, a.out_models, a.out_histories, arch=a.arch, labels=a.labels, seeds=a.seeds, **training_args(a)))
