# Hull membership against dimension (gisweep.hull_dimension), opt-in (hull.dimension.enabled): on every
# split of hull.seeds at HULL_CLAIMS_DIM (the claims table's side, set in hull_claims.smk), the pixel rows
# on their first d principal components for each d of hull.dimension.dims, uniform random data of the same
# size for reference, and with hull.dimension.hidden the last hidden layer of the real-label MLP
# hull.hidden_arch (seed hull.hidden_seed). Per split: hull_dimension_file; gathered: HULL_DIMENSION and
# the figure hull_inside_vs_dim. Path helpers: the hull-dimension block of common.smk.

HULL_DIMENSION_CONFIG = HULL["dimension"]
HULL_DIMENSION_ON = HULL["enabled"] and HULL_DIMENSION_CONFIG["enabled"] and HULL_CLAIMS_DIM is not None


TARGET_FUNCTIONS.append(
    lambda: [*HULL_DIMENSION.values(), figure_file("hull_inside_vs_dim")] if HULL_DIMENSION_ON else []
)


rule hull_dimension:
    input:
        data=lambda wc: hull_split_data(wc.dataset, wc.dim, wc.seed),
        model=hull_dimension_model,
        code=code("hull-dimension"),
    output:
        table=hull_dimension_file("{dataset}", "{dim}", "{seed}"),
    params:
        dims=HULL_DIMENSION_CONFIG["dims"],
        tol=HULL["tol"],
        max_iter=HULL["max_iter"],
        max_test=HULL["max_test"],
        hidden=hull_dimension_hidden_args,
    threads: 1
    log:
        "logs/hull/{dataset}_d{dim}_s{seed}_dimension.log",
    benchmark:
        "benchmarks/hull_dimension/{dataset}_d{dim}_s{seed}_dimension.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-dimension --data {input.data:q} --dims {params.dims:q} --seed {wildcards.seed:q}"
        " --tol {params.tol:q} --max-iter {params.max_iter:q} --max-test {params.max_test:q} {params.hidden:q}"
        " --threads {threads:q} --out {output.table:q}"
        f"{TO_LOG}"


rule hull_dimension_table:
    input:
        tables=hull_dimension_tables(),
        code=code("hull-dimension-table"),
    output:
        markdown=HULL_DIMENSION["markdown"],
        csv=HULL_DIMENSION["csv"],
    log:
        "logs/hull_dimension_table.log",
    benchmark:
        "benchmarks/hull_dimension_table/hull_dimension_table.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep hull-dimension-table --inputs {input.tables:q} --out-markdown {output.markdown:q}"
        " --out-csv {output.csv:q}"
        f"{TO_LOG}"


rule plot_hull_dimension:
    input:
        table=HULL_DIMENSION["csv"],
        code=code("plot-hull-dimension"),
    output:
        figure=figure_file("hull_inside_vs_dim"),
    params:
        title=f"Hull membership against dimension ({HULL_DATASET}, {HULL_CLAIMS_DIM}x{HULL_CLAIMS_DIM})",
    log:
        "logs/plot_hull_dimension.log",
    benchmark:
        "benchmarks/plot_hull_dimension/plot_hull_dimension.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-hull-dimension --table {input.table:q} --title {params.title:q}"
        " --out {output.figure:q}"
        f"{TO_LOG}"
