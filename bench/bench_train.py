"""Benchmark: S seeds trained as one stacked model (gisweep.train_batched) vs S separate trainings.

    python bench/bench_train.py --threads 1                  # the default config's MNIST 28x28 3x128 cell
    python bench/bench_train.py --threads 1 --dim 7 --labels real --epochs 0   # to convergence

Both run in this process with the same threads, on the same data and freshly initialised networks
(gisweep.train.start_training per seed); only the training loops are timed (`fit` per seed, then
`fit_batched` on all seeds), in wall time and in this process's CPU time (the second is steadier on
a shared machine). --epochs N fixes the epoch count (the cap; random labels never stop early in 20
epochs); --epochs 0 trains to 100 % training accuracy with the default cap. The histories and weights
of the two are compared: on a CPU they are equal bit for bit.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from gisweep.data import prepare_data
from gisweep.train import start_training
from gisweep.train_batched import fit_batched


def clock():
    return time.perf_counter(), time.process_time()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="a data.parquet; default: MNIST at --dim as the default config builds it")
    p.add_argument("--dim", type=int, default=28)
    p.add_argument("--arch", default="3x128")
    p.add_argument("--labels", default="random", choices=["real", "random"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20, help="epoch cap; 0: the default cap (2000), to convergence")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data or Path(tmp) / "data.parquet"
        if a.data is None:
            prepare_data("mnist", a.dim, data, seed=0, train_per_class=100)
        options = dict(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=32, max_epochs=a.epochs or 2000,
                       init_scale=0.05, device=a.device, threads=a.threads)
        runs = [start_training(data, arch=a.arch, seed=s, labels=a.labels, **options) for s in a.seeds]
        fresh = [start_training(data, arch=a.arch, seed=s, labels=a.labels, **options).model for s in a.seeds]

        w0, c0 = clock()
        alone = [run.fit() for run in runs]
        w1, c1 = clock()
        r0 = runs[0]
        batched = fit_batched(fresh, r0.x, torch.stack([run.y for run in runs]), r0.x_val, r0.y_val, seeds=a.seeds,
                              optimizer="sgd", lr=0.01, momentum=0.9, batch_size=32, max_epochs=options["max_epochs"])
        w2, c2 = clock()

    same = all(h.equals(hb) and all(torch.equal(x, y) for x, y in zip(run.model.state_dict().values(),
                                                                   mb.state_dict().values()))
               for run, (h, _), (hb, _, mb) in zip(runs, alone, batched))
    epochs = [len(h) for h, _ in alone]
    s = len(a.seeds)
    print(f"{a.arch} on MNIST {a.dim}x{a.dim} ({len(r0.x)} training rows, {len(r0.x_val)} validation rows), "
          f"{a.labels} labels, seeds {a.seeds}, epochs {epochs}, {a.threads} thread(s), device {r0.device}")
    print(f"{'':<22}{'wall s':>9}{'CPU s':>9}{'wall s/seed':>13}{'CPU s/seed':>12}")
    for name, (w, c) in (("separate (S x fit)", (w1 - w0, c1 - c0)), ("batched (fit_batched)", (w2 - w1, c2 - c1))):
        print(f"{name:<22}{w:>9.2f}{c:>9.2f}{w / s:>13.3f}{c / s:>12.3f}")
    print(f"ratio separate / batched: wall {(w1 - w0) / (w2 - w1):.2f}x, CPU {(c1 - c0) / (c2 - c1):.2f}x; "
          f"per epoch and seed: separate {1000 * (c1 - c0) / sum(epochs):.1f} ms, batched "
          f"{1000 * (c2 - c1) / sum(epochs):.1f} ms CPU")
    print(f"batched equals separate, bit for bit (weights and histories): {same}")
    return 0 if same or a.device != "cpu" else 1


if __name__ == "__main__":
    sys.exit(main())
