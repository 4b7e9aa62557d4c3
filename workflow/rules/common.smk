# Shared by every stage: how rules call the package, and the target lists.
import json
import os
import re
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
# Rules run `python -m gisweep` from this checkout, installed or not: jobs inherit this variable,
# and on a cluster each job re-reads this file.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in [str(SRC), os.environ.get("PYTHONPATH")] if p))
ENV = "../../envs/gisweep.yaml"
# Ends each shell command, as f"{TO_LOG}" (`snakemake --lint` takes a string plus a name for a path).
# The job's stdout and stderr go to its log file; when the command fails, the end of the log is also
# printed on the console, so the error is on screen without --show-failed-logs (which the default
# profile sets, to print the whole log).
TO_LOG = " > {log:q} 2>&1 || (status=$?; tail -n 20 {log:q} >&2; exit $status)"


sys.path.insert(0, str(SRC))
from gisweep.cli import COMMANDS  # noqa: E402  (standard library only: cheap at parse time)
from gisweep.code_inputs import closure_files  # noqa: E402


def code(command):
    """Source files that `python -m gisweep COMMAND` can run: the import closure of the command's
    module (gisweep.code_inputs). Editing one reruns exactly the jobs that run it, and their dependents.
    """
    # relative to the working directory, so a moved checkout does not look like changed inputs
    return [os.path.relpath(path) for path in closure_files(COMMANDS[command][0])]


def data_file(dataset, dim):
    return f"results/{dataset}/d{dim}/data.parquet"


def run_dir(dataset, dim, arch, labels, seed):
    return f"results/{dataset}/d{dim}/{arch}/{labels}/s{seed}"


def model_file(dataset, dim, arch, labels, seed):
    return f"{run_dir(dataset, dim, arch, labels, seed)}/model.pt"


def history_file(dataset, dim, arch, labels, seed):
    return f"{run_dir(dataset, dim, arch, labels, seed)}/history.parquet"


def lines_file(dataset, dim, labels, seed, family):
    return f"results/{dataset}/d{dim}/{labels}/s{seed}/lines_{family}.parquet"


def gi_file(dataset, dim, arch, labels, seed, family):
    return f"{run_dir(dataset, dim, arch, labels, seed)}/gi_{family}.parquet"


def dataset_dims():
    """(dataset, dim) for every configured dataset and dimension."""
    return [(name, dim) for name, spec in config["datasets"].items() for dim in spec["dims"]]


def check_source_dirs():
    """Datasets read from a user's directory fail at start, naming the config key, when it is missing."""
    for name in ("cifar10", "mnist_idx"):
        spec = config["datasets"].get(name)
        if spec is not None and not Path(spec["dir"]).expanduser().is_dir():
            raise ValueError(
                f"config datasets.{name}.dir: {spec['dir']!r} is not a directory; point it at the "
                + ("CIFAR-10 python batches (data_batch_1..5, test_batch)" if name == "cifar10"
                   else "four MNIST IDX files (train-images-idx3-ubyte, ...)")
                + f", or remove datasets.{name} from the config"
            )


check_source_dirs()


def data_args(wildcards):
    """prepare-data options that depend on the dataset: its source directory, or the two-moons settings.
    Like every helper that builds options, a list of arguments: passed as `{params.x:q}`, each is quoted,
    so a directory name with spaces, quotes or `$(...)` stays one argument."""
    spec = config["datasets"][wildcards.dataset]
    if wildcards.dataset in ("cifar10", "mnist_idx"):
        return ["--source-dir", str(Path(spec["dir"]).expanduser())]
    if wildcards.dataset == "moons":
        return ["--moons-noise", spec["noise"], "--moons-train", spec["n_train"], "--moons-test", spec["n_test"]]
    return []


def train_settings(dataset):
    """Training settings of a dataset's models: config `train`, updated by `datasets.<dataset>.train`."""
    return {**config["train"], **config["datasets"].get(dataset, {}).get("train", {})}


def train_options(dataset, **overrides):
    """The settings as `gisweep train` arguments, e.g. ['--optimizer', 'sgd', '--lr', 0.01, ...]."""
    settings = {**train_settings(dataset), **overrides}
    return [arg for key, value in sorted(settings.items()) for arg in (f"--{key.replace('_', '-')}", value)]


def line_classes(dataset, family):
    """The (training) labels whose lines are measured: the dataset's `classes` if set, else the family's."""
    classes = config["datasets"][dataset].get("classes") or config["lines"][family]["classes"]
    return classes if isinstance(classes, str) else " ".join(str(c) for c in classes)


def line_families():
    """Every family some model is swept on: lines.families, then models.compare_families."""
    return list(dict.fromkeys([*config["lines"]["families"], *config["models"]["compare_families"]]))


def line_settings(wildcards):
    """sample-lines --settings: each family's options on one dataset (classes, range, count, scale, ...)."""
    settings = {}
    for family in line_families():
        spec = {k: v for k, v in config["lines"][family].items() if k != "classes"}
        classes = line_classes(wildcards.dataset, family)
        settings[family] = {**spec, "classes": classes.split() if classes != "all" else "all"}
    return json.dumps(settings, sort_keys=True)


def compared_only_architectures():
    """Architectures trained only at models.compare_at (Figure 6), swept on models.compare_families."""
    m = config["models"]
    return [arch for arch in m["compare_architectures"] if arch not in m["architectures"]]


def model_grid():
    """(dataset, dim, arch, families) of every trained model family: the main architectures at every
    dataset and dimension with every line family, and the compared ones where configured."""
    m, fams = config["models"], config["lines"]["families"]
    grid = [(ds, dim, arch, fams) for ds, dim in dataset_dims() for arch in m["architectures"]]
    at = m["compare_at"]
    if at["dataset"] in config["datasets"] and at["dim"] in config["datasets"][at["dataset"]]["dims"]:
        grid += [(at["dataset"], at["dim"], arch, m["compare_families"])
                 for arch in m["compare_architectures"] if arch not in m["architectures"]]
    return grid


def gi_runs():
    """(dataset, dim, arch, labels, seed, family) of every GI sweep of the default run."""
    m = config["models"]
    runs = [
        (ds, dim, arch, labels, seed, family)
        for ds, dim, arch, families in model_grid()
        for family in families
        for labels in m["labels"]
        for seed in m["seeds"]
    ]
    return list(dict.fromkeys(runs))


def gi_targets():
    return [gi_file(*run) for run in gi_runs()]


def summary_inputs(wildcards=None):
    """Every GI file of the default run with the training history of its model."""
    gi, history = gi_targets(), [history_file(*run[:5]) for run in gi_runs()]
    if config["cnn"]["enabled"]:  # the CNN's pair GIs beside the MLPs' (workflow/rules/cnn.smk)
        c = config["cnn"]
        gi += [cnn_gi_file(c["dataset"], c["dim"], labels, c["seed"], "pairs") for labels in config["models"]["labels"]]
        history += [cnn_history_file(c["dataset"], c["dim"], labels, c["seed"]) for labels in config["models"]["labels"]]
    return {"gi": gi, "history": history}


# the same paths as wildcard patterns, for rules' outputs
DATA = data_file("{dataset}", "{dim}")
MODEL = {labels: model_file("{dataset}", "{dim}", "{arch}", labels, "{seed}") for labels in ("real", "random", "{labels}")}
HISTORY = {labels: history_file("{dataset}", "{dim}", "{arch}", labels, "{seed}") for labels in ("real", "random")}
LINES = lines_file("{dataset}", "{dim}", "{labels}", "{seed}", "{family}")
GI = gi_file("{dataset}", "{dim}", "{arch}", "{labels}", "{seed}", "{family}")


def figure_file(name):
    return f"results/figures/{name}.{config['figures']['format']}"


def compare_archs():
    """Architectures of Figure 6: the compared ones and the main figure architecture, by depth."""
    m = config["models"]
    archs = list(dict.fromkeys([*m["compare_architectures"], config["figures"]["arch"]]))
    return sorted(archs, key=lambda a: (int(a.split("x")[0]), int(a.split("x")[1])))


def figure_targets():
    ds, fams = config["datasets"], config["lines"]["families"]
    out = []
    if "mnist" in ds and "pairs" in fams:
        out.append(figure_file("fig4_gi_pairs_by_dim"))
    if "mnist" in ds and "triangles" in fams:
        out.append(figure_file("fig5_gi_triangles_by_dim"))
    at = config["models"]["compare_at"]
    if config["models"]["compare_architectures"] and at["dataset"] in ds and at["dim"] in ds[at["dataset"]]["dims"]:
        out.append(figure_file("fig6_gi_pairs_by_arch"))
    if "cifar10" in ds and "pairs" in fams:
        out.append(figure_file("fig7_gi_cifar10_pairs"))
    if "moons" in ds and "pairs" in fams:
        out.append(figure_file("fig8_gi_moons_pairs"))
    if len(fams) > 1:
        out += [figure_file(f"gi_families_{name}_d{dim}") for name, dim in dataset_dims()]
    return out


def figure_seeds():
    """Seeds drawn in Figs 4-8 and the family figures: every seed of models.seeds when figures.seed is
    'all' (each faintly, their pooled density strongly), else the one seed figures.seed names."""
    seed = config["figures"]["seed"]
    return list(config["models"]["seeds"]) if seed == "all" else [seed]


def check_seeds():
    """models.seeds are distinct non-negative integers (the schema checks the type, but YAML's 1.0 passes it as
    an integer and would name a folder s1.0), and figures.seed is 'all' or one of them: else the run stops
    at start, naming the key."""
    seeds, shown = config["models"]["seeds"], config["figures"]["seed"]
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ValueError(f"config models.seeds: {bad} are not non-negative integers (seeds: {seeds})")
    if shown != "all" and shown not in seeds:
        raise ValueError(f"config figures.seed: {shown} is not one of models.seeds {seeds}; name one of them, "
                         "or 'all' to draw every seed and their pooled density")


check_seeds()


def seeds_note():
    """The seeds in a GI figure's title."""
    seeds = figure_seeds()
    return f", seed {seeds[0]}" if len(seeds) == 1 else f", seeds {', '.join(map(str, seeds))} (faint) and pooled"


def series_column(series, column):
    """An input or params function of a figure rule: one column (0 panel, 1 label mode, 2 seed, 3 GI file)
    of a series function below."""
    return lambda wildcards: [entry[column] for entry in series(wildcards)]


def gi_series(dataset, dims, family, arch=None):
    """(panel, label mode, seed, GI file) for one family of one dataset, a panel per dimension."""
    arch = arch or config["figures"]["arch"]
    return [
        (f"{dim}×{dim}" if dataset != "moons" else "two moons", labels, seed,
         gi_file(dataset, dim, arch, labels, seed, family))
        for dim in dims
        for labels in config["models"]["labels"]
        for seed in figure_seeds()
    ]


def fig4_series(wildcards):
    """(panel, label mode, seed, GI file) for the pair-GI density of each MNIST dimension."""
    return gi_series("mnist", config["datasets"]["mnist"]["dims"], "pairs")


def fig5_series(wildcards):
    """Triangle mid-line GI density of each MNIST dimension."""
    return gi_series("mnist", config["datasets"]["mnist"]["dims"], "triangles")


def fig6_series(wildcards):
    """Pair-GI density of each compared architecture, at models.compare_at."""
    at = config["models"]["compare_at"]
    return [
        (arch, labels, seed, gi_file(at["dataset"], at["dim"], arch, labels, seed, "pairs"))
        for arch in compare_archs()
        for labels in config["models"]["labels"]
        for seed in figure_seeds()
    ]


def fig7_series(wildcards):
    """Pair-GI density of CIFAR-10, a panel per dimension."""
    return gi_series("cifar10", config["datasets"]["cifar10"]["dims"], "pairs")


def fig8_series(wildcards):
    """Pair-GI density of two moons."""
    return gi_series("moons", [2], "pairs")


def families_series(wildcards):
    """GI density of every line family at one dataset and dimension, a panel per family."""
    arch = config["figures"]["arch"]
    return [
        (family, labels, seed, gi_file(wildcards.dataset, int(wildcards.dim), arch, labels, seed, family))
        for family in config["lines"]["families"]
        for labels in config["models"]["labels"]
        for seed in figure_seeds()
    ]


def classes_title(dataset, family):
    classes = line_classes(dataset, family)
    return "all classes" if classes == "all" else f"class {classes}" if " " not in classes else f"classes {classes}"


# Each stage's .smk appends a function returning its default targets; `rule all` asks for them all.
TARGET_FUNCTIONS = [lambda: gi_targets(), lambda: figure_targets(), lambda: summary_targets()]


def all_targets():
    return [path for targets in TARGET_FUNCTIONS for path in targets()]


SUMMARY = {
    "table": "results/tables/gi_summary.parquet",
    "markdown": "results/tables/gi_summary.md",
    "csv": "results/tables/gi_summary.csv",
}
CLAIMS = {"markdown": "results/tables/claims.md", "csv": "results/tables/claims.csv"}


def claims_dynamics(wildcards=None):
    """The GI-during-training tables behind the claim 'GI tracks validation accuracy' (none when the
    dynamics stage is off: the claim is then 'not measured')."""
    dyn = config["dynamics"]
    if not dyn["enabled"]:
        return []
    return [dynamics_file(dyn["dataset"], dyn["dim"], dyn["arch"], seed) for seed in dyn["seeds"]]


def summary_targets():
    return [*SUMMARY.values(), *CLAIMS.values()]


def memory_option(memory_mb):
    """['--memory-mb', N], or no argument when the config leaves the budget to the device (null)."""
    return [] if memory_mb is None else ["--memory-mb", memory_mb]


def gpus():
    """GPUs a job that can use one asks SLURM for: one when the config's device is CUDA."""
    return 1 if config["device"].startswith("cuda") else 0


def overparam_json(part):
    """The config of one over-parameterization sweep ('polynomial' or 'network'), as JSON for the CLI."""
    return json.dumps(config["overparam"][part], sort_keys=True)


# ---------------------------------------------------------------------------------------------------
# Paths of the hull stage (workflow/rules/hull.smk). Called with "{wildcard}" strings they give the
# rules' patterns. (Block owned by the hull stage.)


def hull_dir(dataset, dim):
    return f"results/{dataset}/d{dim}/hull"


def hull_data_file(dataset, dim):
    """The hull study's own data table: its training set (hull.train_per_class) and test rows."""
    return f"{hull_dir(dataset, dim)}/data.parquet"


HULL_TRAIN_SIZE_TABLE = "results/tables/hull_vs_train_size.csv"  # the N-sweep (gisweep.hull_sweep)
BUNDLED_MNIST_HULL_TRAIN_PER_CLASS = 400  # gisweep.data.hull_split: 500 per class, 100 held out


def check_hull_config(hull, jobs, sweep):
    """Settings the data cannot support fail at parse time, naming the key, before any job runs.
    (Sizes of a user's directory are checked by the jobs themselves, before their long work. A hull.dataset
    not configured under datasets builds no hull jobs, as before.)"""
    small = sorted({dim for dim, space in jobs if space.startswith("resnet_") and dim < 4})
    if hull["enabled"] and small:
        raise ValueError(f"config hull.dims: {small} are too small for the ResNet's two stride-2 stages "
                         "(need a side of at least 4), or drop 'resnet' from hull.spaces")
    if hull["dataset"] != "mnist" or not hull["enabled"] or "mnist" not in config["datasets"]:
        return
    per_class = hull["train_per_class"]
    cap = BUNDLED_MNIST_HULL_TRAIN_PER_CLASS
    if per_class != "all" and per_class > cap:
        raise ValueError(f"config hull.train_per_class: {per_class}, but bundled MNIST holds {cap} training "
                         f"images per class for the hull study (500, of which 100 are test images); use 'all' or at most {cap}")
    rows = 10 * (cap if per_class == "all" else per_class)
    too_big = [n for n in hull["train_sizes"] if n > rows]
    if sweep and too_big:
        raise ValueError(f"config hull.train_sizes: {too_big} exceed the {rows} training rows of the hull data "
                         f"(hull.train_per_class: {per_class})")


def hull_file(dataset, dim, space):
    return f"{hull_dir(dataset, dim)}/{space}.parquet"


def hull_summary_file(dataset, dim):
    return f"{hull_dir(dataset, dim)}/summary.parquet"


def hull_nearest_file(dataset, dim):
    """Nearest hull points of a few test images (pixel space), for the nearest-point figure."""
    return f"{hull_dir(dataset, dim)}/nearest_pixels.parquet"


def resnet_file(dataset, dim, seed):
    return f"results/{dataset}/d{dim}/resnet/s{seed}/resnet.pt"


def hull_tables(dataset, dim, spaces):
    return [hull_file(dataset, dim, space) for space in spaces]


def hull_figure(name, dataset, dim=None):
    """A hull figure's path: figures.format, per dimension unless dim is None."""
    return figure_file(f"hull_{name}_{dataset}" + ("" if dim is None else f"_d{dim}"))


# ---------------------------------------------------------------------------------------------------
# Paths of the along, dynamics and fractions stages (workflow/rules/along.smk, dynamics.smk,
# fractions.smk). Called with "{wildcard}" strings they give the rules' patterns. (Block owned by
# those stages; other helpers live above.)


def along_file(dataset, dim, arch, labels, seed):
    """Outputs of one model along directions (gisweep.along)."""
    return f"{run_dir(dataset, dim, arch, labels, seed)}/along.parquet"


def dynamics_file(dataset, dim, arch, seed):
    """Checkpoints of the real-label model trained again (gisweep.dynamics)."""
    return f"{run_dir(dataset, dim, arch, 'real', seed)}/gi_during_training.parquet"


def fraction_mode(pct):
    """The label mode in the paths of a model trained on pct % randomised labels."""
    return f"frac{pct}"


def fraction_run_file(dataset, dim, arch, pct, seed):
    """One label-fraction run's row (gisweep.fractions); its model is model_file(..., fraction_mode(pct), seed)."""
    return f"{run_dir(dataset, dim, arch, fraction_mode(pct), seed)}/fraction_run.parquet"


GI_VS_ACCURACY = "results/tables/gi_vs_accuracy.csv"
LABEL_FRACTIONS = {"table": "results/tables/label_fractions.parquet", "csv": "results/tables/label_fractions.csv"}


# ---------------------------------------------------------------------------------------------------
# Paths of the CNN stage (workflow/rules/cnn.smk): a small CNN beside the MLP on the same pair lines.
# Called with "{wildcard}" strings they give the rules' patterns. (Block owned by the CNN stage.)

CNN_ARCH = "cnn"  # gisweep.models.CNN_ARCH: the CNN's folder in place of an MLP architecture


def cnn_model_file(dataset, dim, labels, seed):
    return model_file(dataset, dim, CNN_ARCH, labels, seed)


def cnn_history_file(dataset, dim, labels, seed):
    return history_file(dataset, dim, CNN_ARCH, labels, seed)


def cnn_gi_file(dataset, dim, labels, seed, family="pairs"):
    return gi_file(dataset, dim, CNN_ARCH, labels, seed, family)


def cnn_figure():
    """The MLP-vs-CNN pair-GI figure (figures.format)."""
    return figure_file("gi_pairs_mlp_vs_cnn")


# ---------------------------------------------------------------------------------------------------
# Paths of the hull claims table (workflow/rules/hull_claims.smk): further hull splits under hull/s{seed}/,
# the split hull.seed being the hull stage's own. HULL_CLAIMS_DIM is set there. (Block owned by that stage.)

HULL_CLAIMS = {"markdown": "results/tables/hull_claims.md", "csv": "results/tables/hull_claims.csv"}


def hull_split_path(dataset, dim, seed, name):
    """A file of the hull split `seed` under hull/s{seed}/."""
    return f"{hull_dir(dataset, dim)}/s{seed}/{name}"


def hull_split_data(dataset, dim, seed):
    """The data table of one hull split: the hull stage's own for hull.seed."""
    if str(seed) == str(HULL["seed"]):
        return hull_data_file(dataset, dim)
    return hull_split_path(dataset, dim, seed, "data.parquet")


def hull_split_file(dataset, dim, space, seed):
    """One space's hull table on one split: the hull stage's own for hull.seed."""
    if str(seed) == str(HULL["seed"]):
        return hull_file(dataset, dim, space)
    return hull_split_path(dataset, dim, seed, f"{space}.parquet")


def hull_claims_nearest(dataset, dim, seed):
    return hull_split_path(dataset, dim, seed, "claims_nearest_pixels.parquet")


def hull_claims_tables():
    """[(split seed, hull table)] behind the claims: split spaces on every split, learned ones on hull.seed."""
    if HULL_CLAIMS_DIM is None:
        return []
    at = [space for dim, space in HULL_JOBS if dim == HULL_CLAIMS_DIM]
    split = [s for s in at if s == "pixels" or s.startswith("wavelet_")]
    learned = [s for s in at if s.startswith(("hidden_", "resnet_"))]
    if any(s.startswith("resnet_") for s in learned):
        learned += [f"resnet_{layer}_s{seed}" for seed in HULL["resnet_seeds"] if seed != HULL["resnet_seed"]
                    for layer in ("prepool", "pool")]
    return [(seed, hull_split_file(HULL_DATASET, HULL_CLAIMS_DIM, s, seed)) for seed in HULL["seeds"] for s in split] + [
        (HULL["seed"], hull_file(HULL_DATASET, HULL_CLAIMS_DIM, s)) for s in learned
    ]


def hull_claims_nearest_tables():
    """[(split seed, nearest-point table)] of the ink-share row (pixels at HULL_CLAIMS_DIM)."""
    if (HULL_CLAIMS_DIM, "pixels") not in HULL_JOBS:
        return []
    return [(seed, hull_claims_nearest(HULL_DATASET, HULL_CLAIMS_DIM, seed)) for seed in HULL["seeds"]]


# ---------------------------------------------------------------------------------------------------
# Paths of the hull-dimension stage (workflow/rules/hull_dimension.smk): membership against the PCA
# dimension d, one table per hull split under hull/s{seed}/. (Block owned by that stage.)

HULL_DIMENSION = {"markdown": "results/tables/hull_dimension.md", "csv": "results/tables/hull_dimension.csv"}


def hull_dimension_file(dataset, dim, seed):
    return hull_split_path(dataset, dim, seed, "dimension.parquet")


def hull_dimension_hidden(dataset, dim):
    """(model file, space name) of the MLP layer the stage also reduces: the last hidden layer of the
    real-label hull.hidden_arch, seed hull.hidden_seed."""
    arch, seed = HULL["hidden_arch"], HULL["hidden_seed"]
    layers = int(arch.split("x")[0])
    return model_file(dataset, dim, arch, "real", seed), f"hidden_{arch}_real_s{seed}_l{layers}"


def hull_dimension_tables():
    """Every split's membership table at the claims table's side (HULL_CLAIMS_DIM, set in hull_claims.smk)."""
    if HULL_CLAIMS_DIM is None:
        return []
    return [hull_dimension_file(HULL_DATASET, HULL_CLAIMS_DIM, seed) for seed in HULL["seeds"]]


def hull_dimension_model(wildcards):
    """The MLP file the job reads ([] without hull.dimension.hidden)."""
    return [hull_dimension_hidden(wildcards.dataset, wildcards.dim)[0]] if HULL["dimension"]["hidden"] else []


def hull_dimension_hidden_args(wildcards):
    """hull-dimension options of the hidden layer ([] without hull.dimension.hidden)."""
    if not HULL["dimension"]["hidden"]:
        return []
    path, space = hull_dimension_hidden(wildcards.dataset, wildcards.dim)
    return ["--model", path, "--hidden-space", space]
