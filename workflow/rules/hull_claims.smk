# The hull paper's claims table (gisweep.hull_claims): results/tables/hull_claims.{md,csv}.
# Its seeds are hull splits: the pixel and wavelet spaces at HULL_CLAIMS_DIM are measured on every split
# of hull.seeds. The split hull.seed is the hull stage's own (its tables at hull_file); the others' tables
# live under hull/s{seed}/. ResNet rows are on the split hull.seed, one per ResNet seed (hull.resnet_seed,
# and hull.resnet_seeds opt-in); hidden-layer rows have the one MLP seed hull.hidden_seed. Nearest hull
# points of hull.claims_examples test images per split (hull/s{seed}/claims_nearest_pixels.parquet, every
# split) feed the row "the direction carries the object".

# the side of the claims: the largest of hull.dims the run builds, else the largest pixel-only side
HULL_CLAIMS_DIM = max([d for d in HULL_JOB_DIMS if d in HULL["dims"]] or HULL_JOB_DIMS, default=None)


TARGET_FUNCTIONS.append(lambda: list(HULL_CLAIMS.values()) if HULL["enabled"] and hull_claims_tables() else [])


rule hull_split_data:
    input:
        code=code("prepare-hull-data"),
    output:
        table=hull_split_path("{dataset}", "{dim}", "{seed}", "data.parquet"),
    params:
        source=lambda wc: data_args(wc) if wc.dataset != "moons" else [],
        per_class=HULL["train_per_class"],
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_data.log",
    benchmark:
        "benchmarks/hull_split_data/{dataset}_d{dim}_s{seed}_data.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep prepare-hull-data --dataset {wildcards.dataset:q} --dim {wildcards.dim:q}"
        " --seed {wildcards.seed:q} --train-per-class {params.per_class:q} {params.source:q}"
        " --out {output.table:q}"
        f"{TO_LOG}"


rule hull_split_distance:
    input:
        data=rules.hull_split_data.output.table,
        code=code("hull-distance"),
    output:
        table=hull_split_path("{dataset}", "{dim}", "{seed}", "{space}.parquet"),
    wildcard_constraints:
        space="pixels|wavelet_[a-z0-9.]+?(_subset)?",
    params:
        args=HULL_ARGS,
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_{space}.log",
    benchmark:
        "benchmarks/hull_split_distance/{dataset}_d{dim}_s{seed}_{space}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-distance --data {input.data:q} --space {wildcards.space:q} {params.args:q}"
        " --threads {threads:q} --out {output.table:q}"
        f"{TO_LOG}"


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
    benchmark:
        "benchmarks/hull_claims_nearest/{dataset}_d{dim}_s{seed}_claims_nearest.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-nearest --data {input.data:q} --hull {input.table:q} --examples {params.examples:q}"
        " --support 0 --tol {params.tol:q} --threads {threads:q} --out {output.table:q}"
        f"{TO_LOG}"


rule hull_claims:
    input:
        hull=[path for _, path in hull_claims_tables()],
        nearest=[path for _, path in hull_claims_nearest_tables()],
        sweep=[HULL_TRAIN_SIZE_TABLE] if HULL_SWEEP else [],
        # the opt-in dimension rows (hull_dimension.smk, included after this file: read when the DAG is built)
        dimension=lambda wc: [HULL_DIMENSION["csv"]] if HULL_DIMENSION_ON else [],
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
    benchmark:
        "benchmarks/hull_claims/hull_claims.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-claims --hull {params.hull:q} --nearest {params.nearest:q} --sweep {input.sweep:q}"
        " --dimension {input.dimension:q} --dataset {params.dataset:q} --out-markdown {output.markdown:q} --out-csv {output.csv:q}"
        f"{TO_LOG}"
