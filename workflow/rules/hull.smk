# Distance of test samples to the training convex hull (issue 5; Yousefzadeh 2021, section 2).
# One Parquet per dataset, dimension and space: results/{dataset}/d{dim}/hull/{space}.parquet, with the
# space's summary in its metadata (gisweep.hull_stage), collected per dimension in hull/summary.parquet.
# Spaces: pixels, wavelet_{w}[_subset], hidden_{arch}_{labels}_s{seed}_l{k}, resnet_s{seed}.
# Every family in config["hull"]["spaces"] runs at the sides in hull.dims, pixels also at hull.pixel_dims,
# both only where config["datasets"][hull.dataset]["dims"] lists the side (the tiny config: pixels at 7×7).

HULL = config["hull"]
HULL_DATASET = HULL["dataset"]
HULL_CODE = ("hull_stage", "hull", "spaces", "data", "io", "runtime")
HULL_ARGS = (
    f"--tol {HULL['tol']} --max-iter {HULL['max_iter']} --n-random {HULL['n_random']}"
    f" --random-seed {HULL['random_seed']} --max-test {HULL['max_test']} --support-k {HULL['support_k']}"
    f" --wavelet-mode {HULL['wavelet_mode']} --wavelet-level {HULL['wavelet_level']}"
    f" --subset-levels {HULL['subset_levels']} --device {HULL['device'] or config['device']}"
    f" --dtype {HULL['dtype']} --memory-mb {HULL['memory_mb']}"
)
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
    + ([f"resnet_s{HULL['resnet_seed']}"] if "resnet" in HULL["spaces"] else [])
)
# (dim, space) of every hull table the default run builds: only at sides the dataset's config lists
HULL_DATA_DIMS = config["datasets"].get(HULL_DATASET, {}).get("dims", [])
HULL_JOBS = [(dim, space) for dim in HULL["dims"] if dim in HULL_DATA_DIMS for space in HULL_SPACES]
HULL_JOBS += [
    (dim, "pixels") for dim in HULL["pixel_dims"] if dim in HULL_DATA_DIMS and (dim, "pixels") not in HULL_JOBS
]
HULL_JOB_DIMS = sorted({dim for dim, _ in HULL_JOBS})
HULL_PIXEL_DIMS = [dim for dim in HULL["pixel_dims"] if (dim, "pixels") in HULL_JOBS]
# spaces drawn in the per-dimension figures (those the run builds at that side; all families otherwise)
HULL_DIM_SPACES = {dim: [s for d, s in HULL_JOBS if d == dim] for dim in HULL_JOB_DIMS}
HULL_FIG = f"results/figures/hull_{{name}}_{HULL_DATASET}_d{{dim}}.{config['figures']['format']}"
HULL_PIXEL_FIG = f"results/figures/hull_pixels_by_dim_{HULL_DATASET}.{config['figures']['format']}"

TARGET_FUNCTIONS.append(
    lambda: (
        [f"results/{HULL_DATASET}/d{dim}/hull/{space}.parquet" for dim, space in HULL_JOBS]
        + [f"results/{HULL_DATASET}/d{dim}/hull/summary.parquet" for dim in HULL_JOB_DIMS]
        + [HULL_FIG.format(name=n, dim=dim) for dim in HULL_JOB_DIMS for n in ("distances", "test_vs_random")]
        + [HULL_FIG.format(name="nearest", dim=dim) for dim in HULL_JOB_DIMS if (dim, "pixels") in HULL_JOBS]
        + ([HULL_PIXEL_FIG] if len(HULL_PIXEL_DIMS) > 1 else [])
    )
    if HULL["enabled"]
    else []
)


rule hull_distance:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code(*HULL_CODE),
    output:
        table="results/{dataset}/d{dim}/hull/{space}.parquet",
    wildcard_constraints:
        space="pixels|wavelet_[a-z0-9.]+?(_subset)?",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_{space}.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data} --space {wildcards.space} {params.args}"
        " --threads {threads} --out {output.table} > {log} 2>&1"


rule hull_distance_hidden:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        model="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/model.pt",
        code=code(*HULL_CODE, "models"),
    output:
        table="results/{dataset}/d{dim}/hull/hidden_{arch}_{labels}_s{seed}_l{layer}.parquet",
    wildcard_constraints:
        layer="[1-9][0-9]*",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_hidden_{arch}_{labels}_s{seed}_l{layer}.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data} --model {input.model}"
        " --space hidden_{wildcards.arch}_{wildcards.labels}_s{wildcards.seed}_l{wildcards.layer}"
        " {params.args} --threads {threads} --out {output.table} > {log} 2>&1"


rule train_resnet:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("resnet_features", "spaces", "data", "io", "runtime"),
    output:
        model="results/{dataset}/d{dim}/resnet/s{seed}/resnet.pt",
    params:
        epochs=HULL["resnet_epochs"],
        lr=HULL["resnet_lr"],
        batch_size=HULL["resnet_batch_size"],
        width=HULL["resnet_width"],
    threads: 1
    log:
        "logs/hull/train_resnet_{dataset}_d{dim}_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep train-resnet --data {input.data} --seed {wildcards.seed} --epochs {params.epochs}"
        " --lr {params.lr} --batch-size {params.batch_size} --width {params.width} --threads {threads}"
        " --out {output.model} > {log} 2>&1"


rule hull_distance_resnet:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        model="results/{dataset}/d{dim}/resnet/s{seed}/resnet.pt",
        code=code(*HULL_CODE, "resnet_features"),
    output:
        table="results/{dataset}/d{dim}/hull/resnet_s{seed}.parquet",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_resnet_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data} --model {input.model} --space resnet_s{wildcards.seed}"
        " {params.args} --threads {threads} --out {output.table} > {log} 2>&1"


rule hull_summary:
    input:
        tables=lambda wc: [
            f"results/{wc.dataset}/d{wc.dim}/hull/{space}.parquet"
            for space in HULL_DIM_SPACES.get(int(wc.dim), HULL_SPACES)
        ],
        code=code("hull_stage", "io"),
    output:
        table="results/{dataset}/d{dim}/hull/summary.parquet",
    log:
        "logs/hull/{dataset}_d{dim}_summary.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-summary --inputs {input.tables} --out {output.table} > {log} 2>&1"


rule plot_hull_distances:
    input:
        tables=lambda wc: [
            f"results/{wc.dataset}/d{wc.dim}/hull/{space}.parquet"
            for space in HULL_DIM_SPACES.get(int(wc.dim), HULL_SPACES)
        ],
        code=code("hull_figures", "hull_stage", "figures", "io"),
    output:
        figure=report(
            "results/figures/hull_distances_{dataset}_d{dim}.{fmt}",
            caption="../report/hull_distances.rst",
            category="Convex hull",
            subcategory="Distance distributions",
        ),
    params:
        series=lambda wc, input: " ".join(
            f"--series {s} {t}" for s, t in zip(HULL_DIM_SPACES.get(int(wc.dim), HULL_SPACES), input.tables)
        ),
    log:
        "logs/hull/plot_distances_{dataset}_d{dim}_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-distributions {params.series}"
        " --title '{wildcards.dataset} {wildcards.dim}×{wildcards.dim}: test distances to the training hull'"
        " --out {output.figure} > {log} 2>&1"


rule plot_hull_test_vs_random:
    input:
        tables=lambda wc: [
            f"results/{wc.dataset}/d{wc.dim}/hull/{space}.parquet"
            for space in HULL_DIM_SPACES.get(int(wc.dim), HULL_SPACES)
        ],
        code=code("hull_figures", "figures", "io"),
    output:
        figure=report(
            "results/figures/hull_test_vs_random_{dataset}_d{dim}.{fmt}",
            caption="../report/hull_test_vs_random.rst",
            category="Convex hull",
            subcategory="Test vs random points",
        ),
    params:
        series=lambda wc, input: " ".join(
            f"--series {s} {t}" for s, t in zip(HULL_DIM_SPACES.get(int(wc.dim), HULL_SPACES), input.tables)
        ),
    log:
        "logs/hull/plot_test_vs_random_{dataset}_d{dim}_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-test-vs-random {params.series}"
        " --title '{wildcards.dataset} {wildcards.dim}×{wildcards.dim}: test vs uniform random points'"
        " --out {output.figure} > {log} 2>&1"


rule plot_hull_nearest:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        table="results/{dataset}/d{dim}/hull/pixels.parquet",
        code=code("hull_figures", "hull", "hull_stage", "figures", "data", "io"),
    output:
        figure=report(
            "results/figures/hull_nearest_{dataset}_d{dim}.{fmt}",
            caption="../report/hull_nearest.rst",
            category="Convex hull",
            subcategory="Nearest points on the hull",
        ),
    params:
        examples=HULL["figure_examples"],
        support=HULL["figure_support"],
        tol=HULL["tol"],
    log:
        "logs/hull/plot_nearest_{dataset}_d{dim}_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-nearest --data {input.data} --hull {input.table} --examples {params.examples}"
        " --support {params.support} --tol {params.tol}"
        " --title '{wildcards.dataset} {wildcards.dim}×{wildcards.dim}: test images and their nearest hull points'"
        " --out {output.figure} > {log} 2>&1"


rule plot_hull_pixels_by_dim:
    input:
        tables=lambda wc: [f"results/{wc.dataset}/d{dim}/hull/pixels.parquet" for dim in HULL_PIXEL_DIMS],
        code=code("hull_figures", "hull_stage", "figures", "io"),
    output:
        figure=report(
            "results/figures/hull_pixels_by_dim_{dataset}.{fmt}",
            caption="../report/hull_pixels_by_dim.rst",
            category="Convex hull",
            subcategory="Distance distributions",
        ),
    params:
        series=lambda wc, input: " ".join(f"--series {d}x{d} {t}" for d, t in zip(HULL_PIXEL_DIMS, input.tables)),
    log:
        "logs/hull/plot_pixels_by_dim_{dataset}_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-distributions {params.series}"
        " --title '{wildcards.dataset}: pixel-space test distances to the training hull by image side'"
        " --out {output.figure} > {log} 2>&1"
