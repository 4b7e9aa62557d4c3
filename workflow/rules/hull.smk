# Distance of test samples to the training convex hull (issues 5, 14; Yousefzadeh 2021, section 2).
# The hull study has its own data table, hull_data_file(dataset, dim) (gisweep.data.prepare_hull_data):
# its training set is hull.train_per_class per class or 'all' (bundled MNIST: 4,000 of its 5,000 images,
# 1,000 held out; mnist_idx / cifar10: the official 60,000 / 50,000 and 10,000 test images).
# One Parquet per dataset, dimension and space: hull_file(dataset, dim, space), with the space's summary
# in its metadata (gisweep.hull_stage), collected per dimension in hull_summary_file(dataset, dim).
# Spaces: pixels, wavelet_{w}[_subset], hidden_{arch}_{labels}_s{seed}_l{k} (the GI study's MLPs),
# resnet_prepool_s{seed} and resnet_pool_s{seed} (a ResNet-20 trained on the hull's training set).
# The N-sweep (gisweep.hull_sweep): pixel distances against N training rows, HULL_TRAIN_SIZE_TABLE.
# Every family in config["hull"]["spaces"] runs at the sides in hull.dims, pixels also at hull.pixel_dims,
# both only where config["datasets"][hull.dataset]["dims"] lists the side (the tiny config: pixels at 7×7).
# Figures are drawn from saved tables only: the nearest-point images from hull_nearest_file (hull-nearest).
# Path helpers (hull_file, ...): the hull block of common.smk.

from collections import defaultdict

HULL = config["hull"]
HULL_DATASET = HULL["dataset"]
# options shared by the hull-distance jobs, as a list of arguments (`{params.args:q}` quotes each)
HULL_ARGS = [
    "--tol", HULL["tol"], "--max-iter", HULL["max_iter"], "--n-random", HULL["n_random"],
    "--random-seed", HULL["random_seed"], "--max-test", HULL["max_test"], "--support-k", HULL["support_k"],
    "--wavelet-mode", HULL["wavelet_mode"], "--wavelet-level", HULL["wavelet_level"],
    "--subset-levels", HULL["subset_levels"], "--device", HULL["device"] or config["device"],
    "--dtype", HULL["dtype"], *memory_option(HULL["memory_mb"]),
]
HULL_SPACES = (
    (["pixels"] if "pixels" in HULL["spaces"] else [])
    + ([f"wavelet_{w}" for w in HULL["wavelets"]] if "wavelet" in HULL["spaces"] else [])
    + ([f"wavelet_{w}_subset" for w in HULL["wavelets"]] if "wavelet_subset" in HULL["spaces"] else [])
    + (
        [
            f"hidden_{HULL['hidden_arch']}_{labels}_s{HULL['hidden_seed']}_l{layer}"
            for labels in HULL["hidden_labels"]
            for layer in (HULL["hidden_layers"] or range(1, int(HULL["hidden_arch"].split("x")[0]) + 1))
        ]
        if "hidden" in HULL["spaces"]
        else []
    )
    + ([f"resnet_{layer}_s{HULL['resnet_seed']}" for layer in ("prepool", "pool")] if "resnet" in HULL["spaces"] else [])
)
# (dim, space) of every hull table the default run builds: only at sides the dataset's config lists
HULL_DATA_DIMS = config["datasets"].get(HULL_DATASET, {}).get("dims", [])
HULL_JOBS = [(dim, space) for dim in HULL["dims"] if dim in HULL_DATA_DIMS for space in HULL_SPACES]
HULL_JOBS += [
    (dim, "pixels") for dim in HULL["pixel_dims"] if dim in HULL_DATA_DIMS and (dim, "pixels") not in HULL_JOBS
]
HULL_JOB_DIMS = sorted({dim for dim, _ in HULL_JOBS})
HULL_PIXEL_DIMS = [dim for dim in HULL["pixel_dims"] if (dim, "pixels") in HULL_JOBS]
# spaces of the per-dimension summary and figures, by the dim wildcard: those the run builds at that
# side; every family at a side the default run does not build
HULL_DIM_SPACES = defaultdict(
    lambda: HULL_SPACES, {str(dim): [s for d, s in HULL_JOBS if d == dim] for dim in HULL_JOB_DIMS}
)
# the N-sweep runs at hull.train_size_dim where the dataset's config lists that side
HULL_SWEEP = bool(HULL["train_sizes"]) and HULL["train_size_dim"] in HULL_DATA_DIMS
check_hull_config(HULL, HULL_JOBS, HULL_SWEEP)


TARGET_FUNCTIONS.append(
    lambda: (
        [hull_file(HULL_DATASET, dim, space) for dim, space in HULL_JOBS]
        + [hull_summary_file(HULL_DATASET, dim) for dim in HULL_JOB_DIMS]
        + [hull_figure(n, HULL_DATASET, dim) for dim in HULL_JOB_DIMS for n in ("distances", "test_vs_random")]
        + [hull_figure("nearest", HULL_DATASET, dim) for dim in HULL_JOB_DIMS if (dim, "pixels") in HULL_JOBS]
        + ([hull_figure("pixels_by_dim", HULL_DATASET)] if len(HULL_PIXEL_DIMS) > 1 else [])
        + ([HULL_TRAIN_SIZE_TABLE, hull_figure("vs_train_size", HULL_DATASET)] if HULL_SWEEP else [])
    )
    if HULL["enabled"]
    else []
)


rule hull_data:
    input:
        code=code("prepare-hull-data"),
    output:
        table=hull_data_file("{dataset}", "{dim}"),
    params:
        source=lambda wc: data_args(wc) if wc.dataset != "moons" else [],
        seed=HULL["seed"],
        per_class=HULL["train_per_class"],
    log:
        "logs/hull/{dataset}_d{dim}_data.log",
    benchmark:
        "benchmarks/hull_data/{dataset}_d{dim}_data.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep prepare-hull-data --dataset {wildcards.dataset:q} --dim {wildcards.dim:q} --seed {params.seed:q}"
        " --train-per-class {params.per_class:q} {params.source:q} --out {output.table:q}" f"{TO_LOG}"


rule hull_distance:
    input:
        data=rules.hull_data.output.table,
        code=code("hull-distance"),
    output:
        table=hull_file("{dataset}", "{dim}", "{space}"),
    wildcard_constraints:
        space="pixels|wavelet_[a-z0-9.]+?(_subset)?",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_{space}.log",
    benchmark:
        "benchmarks/hull_distance/{dataset}_d{dim}_{space}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data:q} --space {wildcards.space:q} {params.args:q}"
        " --threads {threads:q} --out {output.table:q}" f"{TO_LOG}"


rule hull_distance_hidden:
    input:
        data=rules.hull_data.output.table,
        model=model_file("{dataset}", "{dim}", "{arch}", "{labels}", "{seed}"),
        code=code("hull-distance"),
    output:
        table=hull_file("{dataset}", "{dim}", "hidden_{arch}_{labels}_s{seed}_l{layer}"),
    wildcard_constraints:
        layer="[1-9][0-9]*",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_hidden_{arch}_{labels}_s{seed}_l{layer}.log",
    benchmark:
        "benchmarks/hull_distance_hidden/{dataset}_d{dim}_hidden_{arch}_{labels}_s{seed}_l{layer}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data:q} --model {input.model:q}"
        " --space hidden_{wildcards.arch:q}_{wildcards.labels:q}_s{wildcards.seed:q}_l{wildcards.layer:q}"
        " {params.args:q} --threads {threads:q} --out {output.table:q}" f"{TO_LOG}"


rule train_resnet:
    input:
        data=rules.hull_data.output.table,
        code=code("train-resnet"),
    output:
        model=resnet_file("{dataset}", "{dim}", "{seed}"),
    params:
        epochs=HULL["resnet_epochs"],
        lr=HULL["resnet_lr"],
        batch_size=HULL["resnet_batch_size"],
        width=HULL["resnet_width"],
    threads: 1
    log:
        "logs/hull/train_resnet_{dataset}_d{dim}_s{seed}.log",
    benchmark:
        "benchmarks/train_resnet/train_resnet_{dataset}_d{dim}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep train-resnet --data {input.data:q} --seed {wildcards.seed:q} --epochs {params.epochs:q}"
        " --lr {params.lr:q} --batch-size {params.batch_size:q} --width {params.width:q} --threads {threads:q}"
        " --out {output.model:q}" f"{TO_LOG}"


rule hull_distance_resnet:
    input:
        data=rules.hull_data.output.table,
        model=rules.train_resnet.output.model,
        code=code("hull-distance"),
    output:
        table=hull_file("{dataset}", "{dim}", "resnet_{layer}_s{seed}"),
    wildcard_constraints:
        layer="prepool|pool",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_resnet_{layer}_s{seed}.log",
    benchmark:
        "benchmarks/hull_distance_resnet/{dataset}_d{dim}_resnet_{layer}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data:q} --model {input.model:q}"
        " --space resnet_{wildcards.layer:q}_s{wildcards.seed:q} {params.args:q} --threads {threads:q}"
        " --out {output.table:q}" f"{TO_LOG}"


rule hull_summary:
    input:
        tables=lambda wc: hull_tables(wc.dataset, wc.dim, HULL_DIM_SPACES[wc.dim]),
        code=code("hull-summary"),
    output:
        table=hull_summary_file("{dataset}", "{dim}"),
    log:
        "logs/hull/{dataset}_d{dim}_summary.log",
    benchmark:
        "benchmarks/hull_summary/{dataset}_d{dim}_summary.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-summary --inputs {input.tables:q} --out {output.table:q}" f"{TO_LOG}"


rule hull_nearest:
    input:
        data=rules.hull_data.output.table,
        table=hull_file("{dataset}", "{dim}", "pixels"),
        code=code("hull-nearest"),
    output:
        table=hull_nearest_file("{dataset}", "{dim}"),
    params:
        examples=HULL["figure_examples"],
        support=HULL["figure_support"],
        tol=HULL["tol"],
    threads: 1
    log:
        "logs/hull/{dataset}_d{dim}_nearest.log",
    benchmark:
        "benchmarks/hull_nearest/{dataset}_d{dim}_nearest.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-nearest --data {input.data:q} --hull {input.table:q} --examples {params.examples:q}"
        " --support {params.support:q} --tol {params.tol:q} --threads {threads:q} --out {output.table:q}" f"{TO_LOG}"


rule plot_hull_distances:
    input:
        tables=lambda wc: hull_tables(wc.dataset, wc.dim, HULL_DIM_SPACES[wc.dim]),
        code=code("plot-hull-distributions"),
    output:
        figure=report(
            hull_figure("distances", "{dataset}", "{dim}"),
            caption="../report/hull_distances.rst",
            category="Convex hull",
            subcategory="Distance distributions",
        ),
    params:
        names=lambda wc: HULL_DIM_SPACES[wc.dim],
        title=lambda wc: f"{wc.dataset} {wc.dim}×{wc.dim}: test distances to the training hull",
    log:
        "logs/hull/plot_distances_{dataset}_d{dim}.log",
    benchmark:
        "benchmarks/plot_hull_distances/plot_distances_{dataset}_d{dim}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-distributions --inputs {input.tables:q} --names {params.names:q}"
        " --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule plot_hull_test_vs_random:
    input:
        tables=lambda wc: hull_tables(wc.dataset, wc.dim, HULL_DIM_SPACES[wc.dim]),
        code=code("plot-hull-test-vs-random"),
    output:
        figure=report(
            hull_figure("test_vs_random", "{dataset}", "{dim}"),
            caption="../report/hull_test_vs_random.rst",
            category="Convex hull",
            subcategory="Test vs random points",
        ),
    params:
        names=lambda wc: HULL_DIM_SPACES[wc.dim],
        title=lambda wc: f"{wc.dataset} {wc.dim}×{wc.dim}: test vs uniform random points",
    log:
        "logs/hull/plot_test_vs_random_{dataset}_d{dim}.log",
    benchmark:
        "benchmarks/plot_hull_test_vs_random/plot_test_vs_random_{dataset}_d{dim}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-test-vs-random --inputs {input.tables:q} --names {params.names:q}"
        " --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule plot_hull_nearest:
    input:
        nearest=rules.hull_nearest.output.table,
        code=code("plot-hull-nearest"),
    output:
        figure=report(
            hull_figure("nearest", "{dataset}", "{dim}"),
            caption="../report/hull_nearest.rst",
            category="Convex hull",
            subcategory="Nearest points on the hull",
        ),
    params:
        title=lambda wc: f"{wc.dataset} {wc.dim}×{wc.dim}: test images and their nearest hull points",
    log:
        "logs/hull/plot_nearest_{dataset}_d{dim}.log",
    benchmark:
        "benchmarks/plot_hull_nearest/plot_nearest_{dataset}_d{dim}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-nearest --nearest {input.nearest:q}"
        " --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule plot_hull_pixels_by_dim:
    input:
        tables=lambda wc: [hull_file(wc.dataset, dim, "pixels") for dim in HULL_PIXEL_DIMS],
        code=code("plot-hull-distributions"),
    output:
        figure=report(
            hull_figure("pixels_by_dim", "{dataset}"),
            caption="../report/hull_pixels_by_dim.rst",
            category="Convex hull",
            subcategory="Distance distributions",
        ),
    params:
        names=[f"{d}x{d}" for d in HULL_PIXEL_DIMS],
        title=lambda wc: f"{wc.dataset}: pixel-space test distances to the training hull by image side",
    log:
        "logs/hull/plot_pixels_by_dim_{dataset}.log",
    benchmark:
        "benchmarks/plot_hull_pixels_by_dim/plot_pixels_by_dim_{dataset}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-distributions --inputs {input.tables:q} --names {params.names:q}"
        " --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule hull_train_size:
    input:
        data=hull_data_file(HULL_DATASET, HULL["train_size_dim"]),
        code=code("hull-train-size"),
    output:
        table=HULL_TRAIN_SIZE_TABLE,
    params:
        sizes=HULL["train_sizes"],
        seeds=HULL["train_size_seeds"],
        args=[
            "--dataset", HULL_DATASET, "--dim", HULL["train_size_dim"], "--extrapolate-to", HULL["extrapolate_to"],
            "--tol", HULL["tol"], "--max-iter", HULL["max_iter"], "--max-test", HULL["max_test"],
            "--random-seed", HULL["random_seed"], "--device", HULL["device"] or config["device"], "--dtype", HULL["dtype"],
            *memory_option(HULL["memory_mb"]),
        ],
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/train_size.log",
    benchmark:
        "benchmarks/hull_train_size/train_size.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-train-size --data {input.data:q} --sizes {params.sizes:q} --seeds {params.seeds:q}"
        " {params.args:q} --threads {threads:q} --out {output.table:q}" f"{TO_LOG}"


rule plot_hull_train_size:
    input:
        table=rules.hull_train_size.output.table,
        code=code("plot-hull-train-size"),
    output:
        figure=report(
            hull_figure("vs_train_size", "{dataset}"),
            caption="../report/hull_vs_train_size.rst",
            category="Convex hull",
            subcategory="Training-set size",
        ),
    params:
        title=lambda wc: f"{wc.dataset} {HULL['train_size_dim']}×{HULL['train_size_dim']} pixels: test points against N training points",
    log:
        "logs/hull/plot_train_size_{dataset}.log",
    benchmark:
        "benchmarks/plot_hull_train_size/plot_train_size_{dataset}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-train-size --table {input.table:q}"
        " --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"
