# Shared by every stage: how rules call the package, and the target lists.
import json
import os
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
# Rules run `python -m gisweep` from this checkout, installed or not: jobs inherit this variable,
# and on a cluster each job re-reads this file.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in [str(SRC), os.environ.get("PYTHONPATH")] if p))
ENV = "../../envs/gisweep.yaml"


def code(*modules):
    """Source files of the package modules a job runs; editing one re-runs those jobs and their dependents."""
    return [str(SRC / "gisweep" / f"{m}.py") for m in modules]


def data_file(dataset, dim):
    return f"results/{dataset}/d{dim}/data.parquet"


def run_dir(dataset, dim, arch, labels, seed):
    return f"results/{dataset}/d{dim}/{arch}/{labels}/s{seed}"


def lines_file(dataset, dim, labels, seed, family):
    return f"results/{dataset}/d{dim}/{labels}/s{seed}/lines_{family}.parquet"


def gi_file(dataset, dim, arch, labels, seed, family):
    return f"{run_dir(dataset, dim, arch, labels, seed)}/gi_{family}.parquet"


def dataset_dims():
    """(dataset, dim) for every configured dataset and dimension."""
    return [(name, dim) for name, spec in config["datasets"].items() for dim in spec["dims"]]


def gi_targets():
    m = config["models"]
    return [
        gi_file(ds, dim, arch, labels, seed, "pairs")
        for ds, dim in dataset_dims()
        for arch in m["architectures"]
        for labels in m["labels"]
        for seed in m["seeds"]
    ]


def figure_file(name):
    return f"results/figures/{name}.{config['figures']['format']}"


def figure_targets():
    out = []
    if "mnist" in config["datasets"]:
        out.append(figure_file("fig4_gi_pairs_by_dim"))
    return out


def fig4_series(wildcards):
    """(panel, label mode, GI file) for the pair-GI density of each MNIST dimension."""
    arch, seed = config["figures"]["arch"], config["figures"]["seed"]
    return [
        (f"{dim}×{dim}", labels, gi_file("mnist", dim, arch, labels, seed, "pairs"))
        for dim in config["datasets"]["mnist"]["dims"]
        for labels in config["models"]["labels"]
    ]


# Each stage's .smk appends a function returning its default targets; `rule all` asks for them all.
TARGET_FUNCTIONS = [lambda: gi_targets(), lambda: figure_targets()]


def all_targets():
    return [path for targets in TARGET_FUNCTIONS for path in targets()]


def gpus():
    """GPUs a job that can use one asks SLURM for: one when the config's device is CUDA."""
    return 1 if config["device"].startswith("cuda") else 0


def overparam_json(part):
    """The config of one over-parameterization sweep ('polynomial' or 'network'), as JSON for the CLI."""
    return json.dumps(config["overparam"][part], sort_keys=True)
