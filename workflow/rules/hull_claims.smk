# The hull paper's claims table (gisweep.hull_claims): results/tables/hull_claims.{md,csv}.
# Its seeds are hull splits: the pixel and wavelet spaces at HULL_CLAIMS_DIM are measured on every split
# of hull.seeds. The split hull.seed is the hull stage's own (its tables at hull_file); the others' tables
# live under hull/s{seed}/. ResNet rows are on the split hull.seed, one per ResNet seed (hull.resnet_seed,
# and hull.resnet_seeds opt-in); hidden-layer rows have the one MLP seed hull.hidden_seed. Nearest hull
# points of hull.claims_examples test images per split (hull/s{seed}/claims_nearest_pixels.parquet, every
# split) feed the row "the direction carries the object".

HULL_CLAIMS = {"markdown": "results/tables/hull_claims.md", "csv": "results/tables/hull_claims.csv"}
# the side of the claims: the largest of hull.dims the run builds, else the largest pixel-only side
HULL_CLAIMS_DIM = max([d for d in HULL_JOB_DIMS if d in HULL["dims"]] or HULL_JOB_DIMS, default=None)


def hull_split_dir(dataset, dim, seed):
    return f"{hull_dir(dataset, dim)}/s{seed}"


def hull_split_data(dataset, dim, seed):
    """The data table of one hull split: the hull stage's own for hull.seed."""
    if str(seed) == str(HULL["seed"]):
        return hull_data_file(dataset, dim)
    return f"{hull_split_dir(dataset, dim, seed)}/data.parquet"


def hull_split_file(dataset, dim, space, seed):
    """One space's hull table on one split: the hull stage's own for hull.seed."""
    if str(seed) == str(HULL["seed"]):
        return hull_file(dataset, dim, space)
    return f"{hull_split_dir(dataset, dim, seed)}/{space}.parquet"


def hull_claims_nearest(dataset, dim, seed):
    return f"{hull_split_dir(dataset, dim, seed)}/claims_nearest_pixels.parquet"


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


TARGET_FUNCTIONS.append(lambda: list(HULL_CLAIMS.values()) if HULL["enabled"] and hull_claims_tables() else [])


rule hull_split_data:
    input:
        code=code("prepare-hull-data"),
    output:
        table=hull_split_dir("{dataset}", "{dim}", "{seed}") + "/data.parquet",
    params:
        source=lambda wc: data_args(wc) if wc.dataset != "moons" else "",
        per_class=HULL["train_per_class"],
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_data.log",
    conda:
        ENV
    shell:
        "python -m gisweep prepare-hull-data --dataset {wildcards.dataset:q} --dim {wildcards.dim:q}"
        " --seed {wildcards.seed:q} --train-per-class {params.per_class:q} {params.source}"
        " --out {output.table:q} > {log:q} 2>&1"


rule hull_split_distance:
    input:
        data=rules.hull_split_data.output.table,
        code=code("hull-distance"),
    output:
        table=hull_split_dir("{dataset}", "{dim}", "{seed}") + "/{space}.parquet",
    wildcard_constraints:
        space="pixels|wavelet_[a-z0-9.]+?(_subset)?",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_{space}.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data:q} --space {wildcards.space:q} {params.args}"
        " --threads {threads} --out {output.table:q} > {log:q} 2>&1"


rule hull_claims_nearest:
    input:
        data=lambda wc: hull_split_data(wc.dataset, wc.dim, wc.seed),
        table=lambda wc: hull_split_file(wc.dataset, wc.dim, "pixels", wc.seed),
        code=code("hull-nearest"),
    output:
        table=hull_claims_nearest("{dataset}", "{dim}", "{seed}"),
    params:
        examples=HULL["claims_examples"],
        tol=HULL["tol"],
    threads: 1
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_claims_nearest.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-nearest --data {input.data:q} --hull {input.table:q} --examples {params.examples:q}"
        " --support 0 --tol {params.tol:q} --threads {threads} --out {output.table:q} > {log:q} 2>&1"


rule hull_claims:
    input:
        hull=[path for _, path in hull_claims_tables()],
        nearest=[path for _, path in hull_claims_nearest_tables()],
        sweep=[HULL_TRAIN_SIZE_TABLE] if HULL_SWEEP else [],
        code=code("hull-claims"),
    output:
        markdown=HULL_CLAIMS["markdown"],
        csv=report(HULL_CLAIMS["csv"], caption="../report/hull_claims.rst", category="Convex hull",
                   subcategory="Claims"),
    params:
        hull=[f"{seed}={path}" for seed, path in hull_claims_tables()],
        nearest=[f"{seed}={path}" for seed, path in hull_claims_nearest_tables()],
        dataset=HULL_DATASET,
    log:
        "logs/hull_claims.log",
    conda:
        ENV
    shell:
        "python -m gisweep hull-claims --hull {params.hull:q} --nearest {params.nearest:q} --sweep {input.sweep:q}"
        " --dataset {params.dataset:q} --out-markdown {output.markdown:q} --out-csv {output.csv:q} > {log:q} 2>&1"
