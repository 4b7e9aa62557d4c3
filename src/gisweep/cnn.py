"""The CNN stage: a small CNN (gisweep.models.SmallCNN) trained on real or permuted labels, and its
exact GIs on the same lines as the MLPs (gisweep.gi's general engine).

`train-cnn` writes `model.pt` (models.load_cnn / load_network) and `history.parquet` like the train
stage, training with gisweep.train.fit (until 100 % training accuracy or the epoch cap). Its exact
GIs come from batched-gi (gisweep.gi_stage), which loads a CNN model file like an MLP's.
"""
from __future__ import annotations

import time

from gisweep.schema import integer, schema_number


def train_cnn(data_path, out_model, out_history, *, labels: str, seed: int, width: int, hidden: int,
              optimizer: str, lr: float, momentum: float, batch_size: int, max_epochs: int,
              device: str = "auto", threads: int | None = None) -> None:
    import torch

    from gisweep.data import load_table, training_labels
    from gisweep.io import provenance, write_parquet
    from gisweep.models import CNN_ARCH, build_cnn, save_cnn
    from gisweep.runtime import pick_device, seed_everything
    from gisweep.train import fit

    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    x_tr, y_true, x_val, y_val = load_table(data_path)
    y_tr = training_labels(y_true, labels, seed)
    n_classes = int(max(y_true.max(), y_val.max() if len(y_val) else 0)) + 1
    gen = seed_everything(seed)
    model = build_cnn(x_tr.shape[1], n_classes, width=width, hidden=hidden, generator=gen).to(dev)

    def as_t(a, dt=torch.float32):
        return torch.as_tensor(a, dtype=dt, device=dev)

    start = time.perf_counter()
    history, converged = fit(model, as_t(x_tr), as_t(y_tr, torch.long), as_t(x_val), as_t(y_val, torch.long),
                             lr=lr, momentum=momentum, batch_size=batch_size, max_epochs=max_epochs, seed=seed,
                             optimizer=optimizer)
    last = history.iloc[-1]
    meta = provenance(stage="train_cnn", data=str(data_path), converged=converged, epochs=int(last.epoch),
                      labels=labels, arch=CNN_ARCH, seed=seed, width=width, hidden=hidden, optimizer=optimizer,
                      lr=lr, momentum=momentum, batch_size=batch_size, max_epochs=max_epochs, device=str(dev))
    seconds = time.perf_counter() - start
    save_cnn(model.cpu(), out_model, in_features=x_tr.shape[1], n_classes=n_classes, width=width, hidden=hidden,
             meta=meta)
    write_parquet(history, out_history, meta)
    print(f"{out_model}: {int(last.epoch)} epochs in {seconds:.1f} s, train acc {last.train_acc:.4f}, val acc {last.val_acc:.4f}")
    if not converged:
        import sys

        print(f"WARNING: {out_model}: epoch cap {max_epochs} reached at training accuracy {last.train_acc:.4f} "
              "< 100%; the model is saved with converged=False", file=sys.stderr)


def register_cli(sub) -> None:
    p = sub.add_parser("train-cnn", help="train the small CNN on real or permuted labels")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=schema_number("cnn.seed"), required=True)
    p.add_argument("--width", type=schema_number("cnn.width"), default=4, help="conv feature maps")
    p.add_argument("--hidden", type=schema_number("cnn.hidden"), default=64, help="units of the hidden Linear layer")
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    p.add_argument("--lr", type=schema_number("cnn.lr"), default=0.001)
    p.add_argument("--momentum", type=schema_number("train.momentum"), default=0.9)  # the CNN section has no momentum
    p.add_argument("--batch-size", type=schema_number("cnn.batch_size"), default=32)
    p.add_argument("--max-epochs", type=schema_number("cnn.max_epochs"), default=1000)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-history", required=True)
    p.set_defaults(func=lambda a: train_cnn(
        a.data, a.out_model, a.out_history, labels=a.labels, seed=a.seed, width=a.width, hidden=a.hidden,
        optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, batch_size=a.batch_size, max_epochs=a.max_epochs,
        device=a.device, threads=a.threads))
