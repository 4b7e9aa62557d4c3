"""Batched training (gisweep.train_batched): the seeds of one cell as one stacked model.

A seed trained in a batch must equal that seed trained alone by `gisweep train`, bit for bit on a CPU:
weights, history (loss, accuracies, stopping epoch) and provenance. The first test checks the
primitive this rests on (each slice of a batched matmul equals the 2-D matmul of nn.Linear's forward
and backward); the others train whole cells, with seeds that stop at different epochs, hit the epoch
cap, or use Adam, and check the Snakemake rules (a batch job per cell, a single seed still a target).
"""
from __future__ import annotations

import re
from collections import Counter

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.data import prepare_data
from gisweep.models import load_model, load_record
from gisweep.train_batched import (_BATCHED_EXACT, StackedMLP, stacked_linear, stacked_mm, stacked_row_sum,
                                   train_batch)

from conftest import copy_project, snakemake


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("batched") / "data.parquet"
    prepare_data("mnist", 7, path, seed=0, train_per_class=10)  # 100 training rows, 49 features
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """The train rules run with one thread (threads: 1); restore the test process's count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# (rows, in, out) of the default config's layers (batch 32, last batches of 8 and 12 rows, evaluation on
# 1,000 and 4,000 rows) and small ones, where MKL picks other kernels
SHAPES = [(32, 784, 128), (32, 128, 128), (32, 128, 10), (8, 784, 128), (8, 128, 10), (32, 49, 128), (12, 2, 128),
          (32, 128, 2), (1000, 196, 128), (4000, 128, 10), (32, 784, 512), (32, 512, 10), (4, 8, 8), (5, 8, 10),
          (3, 11, 13), (100, 16, 10)]


def _products(rows, fan_in, fan_out, s=3):
    """(stacked, 2-D) pairs: forward, forward on one shared x (evaluation), input gradient (g @ w),
    weight gradient (g^T @ h), bias gradient, each slice against nn.Linear's 2-D call for it."""
    torch.manual_seed(0)
    h, w, b = torch.randn(s, rows, fan_in), torch.rand(s, fan_out, fan_in) - 0.5, torch.randn(s, fan_out)
    g = torch.randn(s, rows, fan_out)
    for _ in range(2):  # the first call of a shape checks the batched kernel, later ones use the choice
        stacked = [stacked_linear(h, w, b), stacked_linear(h[0].expand(s, rows, fan_in), w, b), stacked_mm(g, w),
                   stacked_mm(g.transpose(1, 2), h), stacked_row_sum(g)]
        for r in range(s):
            alone = [torch.nn.functional.linear(h[r], w[r], b[r]), torch.nn.functional.linear(h[0], w[r], b[r]),
                     g[r].mm(w[r]), g[r].t().mm(h[r]), g[r].sum(0)]
            yield from ((x[r], y) for x, y in zip(stacked, alone))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows,fan_in,fan_out", SHAPES)
def test_stacked_products_equal_each_networks_own_bit_for_bit(rows, fan_in, fan_out, threads):
    torch.set_num_threads(threads)
    for stacked, alone in _products(rows, fan_in, fan_out):
        assert torch.equal(stacked, alone)


def test_default_shapes_keep_the_batched_kernels_with_one_thread():
    """On this project's CPU build with one thread (the train rules' setting), a slice of torch.bmm /
    baddbmm equals torch.mm / addmm for every product of the default config, so none falls back to
    per-network calls. With two threads MKL splits the 2-D product g^T @ h of the 10-output layer over
    its rows between the threads, a batched product computes each slice on one thread, and the two
    round differently (measured: at most 2.1e-7 of the largest entry); that product then falls back."""
    _BATCHED_EXACT.clear()
    for shape in SHAPES[:12]:
        list(_products(*shape))
    assert _BATCHED_EXACT and all(_BATCHED_EXACT.values()), [k for k, v in _BATCHED_EXACT.items() if not v]
    torch.set_num_threads(2)
    eps = torch.finfo(torch.float32).eps
    g, h = torch.randn(3, 32, 10), torch.randn(3, 32, 128)
    raw = torch.bmm(g.transpose(1, 2), h)
    for r in range(3):
        alone = g[r].t().mm(h[r])
        assert (raw[r] - alone).abs().max() <= 4 * eps * alone.abs().max()


def test_stacked_gradients_equal_autograd_of_each_network(data):
    """One step: StackedMLP.forward_backward = nn.Sequential + CrossEntropyLoss + backward, per network."""
    from gisweep.models import build_mlp

    nets = [build_mlp("3x16", 49, 10, 0.05, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    x, y = torch.rand(3, 20, 49), torch.randint(0, 10, (3, 20))
    losses, grads = StackedMLP.stack(nets).forward_backward(x, y)
    for r, net in enumerate(nets):
        loss = torch.nn.CrossEntropyLoss()(net(x[r]), y[r])
        loss.backward()
        assert torch.equal(losses[r], loss.detach())
        params = [p.grad for m in net if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
        for got, want in zip(grads, params):
            assert torch.equal(got[r], want)


@pytest.mark.parametrize("name,momentum", [("sgd", 0.9), ("sgd", 0.0), ("adam", 0.9)])
def test_stacked_optimizer_updates_each_row_as_torch_optim_alone(name, momentum):
    """Odd sizes (vectorised parts and scalar tails fall differently on a row and on the stack)."""
    from gisweep.train import make_optimizer
    from gisweep.train_batched import StackedOptimizer

    torch.manual_seed(1)
    shapes = [(10,), (7,), (8, 49), (1,), (17, 3), (128, 784)]
    stack = [torch.randn(3, *shape) for shape in shapes]
    alone = [[torch.nn.Parameter(t[r].clone()) for t in stack] for r in range(3)]
    opt = StackedOptimizer(name, stack, 0.01, momentum)
    opts = [make_optimizer(name, params, 0.01, momentum) for params in alone]
    for step in range(4):
        grads = [torch.randn(len(alone), *shape) for shape in shapes]
        if step == 2:  # row 1 leaves the stack, as a network that stops does
            stack = [t[[0, 2]].clone() for t in stack]
            opt = opt.select([0, 2], stack)
            grads = [g[[0, 2]] for g in grads]
            alone, opts = [alone[0], alone[2]], [opts[0], opts[2]]
        opt.step(grads)
        for r, (params, o) in enumerate(zip(alone, opts)):
            for p, g in zip(params, grads):
                p.grad = g[r].clone()
            o.step()
        for r, params in enumerate(alone):
            for t, p in zip(stack, params):
                assert torch.equal(t[r], p.detach()), (step, r, t.shape)


def _train_alone(data, out, seed, labels, options, threads=1):
    args = ["train", "--data", str(data), "--labels", labels, "--seed", str(seed), "--device", "cpu",
            "--threads", str(threads),
            "--out-model", str(out / f"alone_s{seed}.pt"), "--out-history", str(out / f"alone_s{seed}.parquet")]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    assert main(args) == 0
    return out / f"alone_s{seed}.pt", out / f"alone_s{seed}.parquet"


def _assert_same_run(batched, alone):
    (model_b, hist_b), (model_a, hist_a) = batched, alone
    rec_b, rec_a = load_record(model_b), load_record(model_a)
    assert rec_b.keys() == rec_a.keys() and rec_b["meta"] == rec_a["meta"]
    for key in rec_a["state_dict"]:
        assert torch.equal(rec_b["state_dict"][key], rec_a["state_dict"][key]), key
    tb, ta = pq.read_table(hist_b), pq.read_table(hist_a)
    assert tb.equals(ta) and tb.schema.metadata == ta.schema.metadata
    assert load_model(model_b)(torch.zeros(1, rec_a["in_features"])).shape == (1, rec_a["n_classes"])
    return ta.to_pandas(), rec_a["meta"]


CASES = {
    # real labels: the seeds reach 100 % at different epochs, and stop there
    "sgd-momentum": ("real", dict(arch="2x16", optimizer="sgd", lr=0.05, momentum=0.9, batch_size=16, max_epochs=200,
                                  init_scale=0.1)),
    # random labels, few epochs: every seed hits the cap, not converged
    "cap": ("random", dict(arch="1x8", optimizer="sgd", lr=0.01, momentum=0.9, batch_size=32, max_epochs=12,
                           init_scale=0.05)),
    "plain-sgd": ("random", dict(arch="2x16", optimizer="sgd", lr=0.05, momentum=0.0, batch_size=24, max_epochs=60,
                                 init_scale=0.1)),
    "adam": ("real", dict(arch="3x8", optimizer="adam", lr=0.01, momentum=0.9, batch_size=32, max_epochs=150,
                          init_scale=0.5)),
}


@pytest.mark.parametrize("case,threads", [(case, 1) for case in CASES] + [("sgd-momentum", 2)])
def test_batch_equals_each_seed_trained_alone(data, tmp_path, case, threads):
    labels, options = CASES[case]
    seeds = [2, 0, 5]
    models = [tmp_path / f"batch_s{s}.pt" for s in seeds]
    histories = [tmp_path / f"batch_s{s}.parquet" for s in seeds]
    train_batch(data, models, histories, labels=labels, seeds=seeds, device="cpu", threads=threads, **options)
    ends = {}
    for seed, model, history in zip(seeds, models, histories):
        alone = _train_alone(data, tmp_path, seed, labels, options, threads)
        hist, meta = _assert_same_run((model, history), alone)
        assert meta["seed"] == seed and meta["epochs"] == len(hist) and list(hist.epoch) == list(range(1, len(hist) + 1))
        assert meta["converged"] == (hist.train_acc.iloc[-1] == 1.0)
        assert meta["converged"] or len(hist) == options["max_epochs"]
        ends[seed] = (len(hist), meta["converged"])
    if case == "cap":
        assert not any(c for _, c in ends.values()), ends
    if case in ("sgd-momentum", "adam"):
        assert all(c for _, c in ends.values()), ends
    if case == "sgd-momentum":
        assert len({e for e, _ in ends.values()}) > 1, f"the seeds should stop at different epochs: {ends}"


def test_cli_train_batch_writes_every_seed(data, tmp_path):
    out = [tmp_path / f"m{s}.pt" for s in (1, 3)]
    hist = [tmp_path / f"h{s}.parquet" for s in (1, 3)]
    assert main(["train-batch", "--data", str(data), "--arch", "1x8", "--labels", "random", "--seeds", "1", "3",
                 "--max-epochs", "3", "--device", "cpu", "--out-models", *map(str, out),
                 "--out-histories", *map(str, hist)]) == 0
    assert [load_record(p)["meta"]["seed"] for p in out] == [1, 3]
    assert [len(pq.read_table(p)) for p in hist] == [3, 3]


@pytest.mark.parametrize("seeds,outs,message", [
    ([0, 0], 2, "distinct non-negative"),
    ([0, -1], 2, "distinct non-negative"),
    ([0, 1], 1, "2 seeds need as many"),
])
def test_bad_seeds_are_named(data, tmp_path, seeds, outs, message):
    with pytest.raises(GisweepError, match=message):
        train_batch(data, [tmp_path / f"m{i}.pt" for i in range(outs)], [tmp_path / f"h{i}.parquet" for i in range(outs)],
                    arch="1x4", labels="real", seeds=seeds, device="cpu", max_epochs=1)


def test_unknown_optimizer_is_named(data, tmp_path):
    with pytest.raises(GisweepError, match="unknown optimizer 'rmsprop'"):
        train_batch(data, [tmp_path / "m.pt"], [tmp_path / "h.parquet"], arch="1x4", labels="real", seeds=[0],
                    optimizer="rmsprop", device="cpu", max_epochs=1)


def test_workflow_trains_a_cell_in_one_job_and_a_single_seed_stays_a_target(tmp_path):
    """models.seeds [0, 1]: a configured seed's model comes from the cell's train_batch job, a seed
    outside models.seeds from train_real; with one seed the per-seed rules train it."""
    project = copy_project(tmp_path / "project")
    config = yaml.safe_load((project / "tiny.yaml").read_text())
    config["models"]["seeds"] = [0, 1]
    (project / "two.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/mnist/d7/1x16/real/s0/model.pt", "results/mnist/d7/1x16/random/s1/history.parquet",
               "results/mnist/d7/1x16/real/s2/model.pt"]
    res = snakemake(project, "--dry-run", "--printshellcmds", *targets, config="two.yaml")
    assert res.returncode == 0, res.stdout[-4000:]
    stats = res.stdout.split("Job stats:")[1].split("total")[0]
    jobs = Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)})
    assert jobs == Counter(prepare_data=1, train_batch=2, train_real=1), jobs
    assert re.search(r"--labels real --seeds 0 1 .*--out-models results/mnist/d7/1x16/real/s0/model.pt "
                     r"results/mnist/d7/1x16/real/s1/model.pt --out-histories", res.stdout), res.stdout[-4000:]
    one = snakemake(project, "--dry-run", targets[0])
    assert one.returncode == 0 and "train_batch" not in one.stdout and "train_real" in one.stdout, one.stdout[-4000:]


def test_default_two_moons_training_memorises_random_labels(tmp_path):
    """config.yaml's two-moons training (full-batch Adam) takes every seed of a small random-label
    two-moons set to 100 % training accuracy, well inside its epoch cap."""
    import yaml

    from conftest import REPO
    from gisweep.data import prepare_data

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    settings = {**config["train"], **config["datasets"]["moons"]["train"]}
    assert settings["batch_size"] >= config["datasets"]["moons"]["n_train"]  # full batches
    data = tmp_path / "moons.parquet"
    prepare_data("moons", 2, data, moons=dict(n_train=60, n_test=20, noise=0.1, seed=0))
    seeds = [0, 1, 2]
    models = [tmp_path / f"s{s}.pt" for s in seeds]
    train_batch(data, models, [tmp_path / f"s{s}.parquet" for s in seeds], arch="3x128", labels="random", seeds=seeds,
                device="cpu", threads=1, **settings)
    for model in models:
        meta = load_record(model)["meta"]
        assert meta["converged"] and meta["epochs"] < settings["max_epochs"] // 2, meta
