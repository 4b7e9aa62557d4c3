# Inside vs outside the training convex hull (Yousefzadeh 2021, sections 3 and 4), package
# gisweep.toy2d: a Legendre-polynomial decision boundary and ReLU MLPs, from under- to
# over-parameterized, under several training regimes, on one 2-D data set. The sweeps get the
# validated config["overparam"]["polynomial"] / ["network"] (defaults and bounds: the schema's
# `overparam` section); the plot rules read only the sweeps' tables (gisweep.figures.toy2d).


OVERPARAM_FIGURES = [
    "overparam_polynomial_boundaries",
    "overparam_polynomial_disagreement",
    "overparam_network_regions",
    "overparam_network_disagreement",
]
POLYNOMIAL_TABLES = {
    "table": "results/tables/overparam_polynomial.csv",
    "verdict": "results/tables/overparam_polynomial_verdict.md",
    "verdict_csv": "results/tables/overparam_polynomial_verdict.csv",
}
TARGET_FUNCTIONS.append(
    lambda: [*(figure_file(name) for name in OVERPARAM_FIGURES), *POLYNOMIAL_TABLES.values()]
    if config["overparam"]["enabled"]
    else []
)


rule polynomial_sweep:
    input:
        code=code("polynomial-sweep"),
    output:
        metrics="results/overparam/polynomial_metrics.parquet",
        curves="results/overparam/polynomial_curves.parquet",
        table=POLYNOMIAL_TABLES["table"],
        verdict=POLYNOMIAL_TABLES["verdict"],
        verdict_csv=POLYNOMIAL_TABLES["verdict_csv"],
    params:
        cfg=overparam_json("polynomial"),
    log:
        "logs/overparam/polynomial_sweep.log",
    benchmark:
        "benchmarks/polynomial_sweep/polynomial_sweep.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep polynomial-sweep --config-json {params.cfg:q}"
        " --out-metrics {output.metrics:q} --out-curves {output.curves:q} --out-table {output.table:q}"
        " --out-verdict {output.verdict:q} --out-verdict-csv {output.verdict_csv:q}" f"{TO_LOG}"


rule network_sweep:
    input:
        code=code("network-sweep"),
    output:
        metrics="results/overparam/network_metrics.parquet",
        regions="results/overparam/network_regions.parquet",
    params:
        cfg=overparam_json("network"),
    log:
        "logs/overparam/network_sweep.log",
    benchmark:
        "benchmarks/network_sweep/network_sweep.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep network-sweep --config-json {params.cfg:q}"
        " --out-metrics {output.metrics:q} --out-regions {output.regions:q}" f"{TO_LOG}"


rule plot_polynomial_boundaries:
    input:
        metrics=rules.polynomial_sweep.output.metrics,
        curves=rules.polynomial_sweep.output.curves,
        code=code("plot-polynomial-boundaries"),
    output:
        figure=report(
            figure_file("overparam_polynomial_boundaries"),
            caption="../report/overparam_polynomial.rst",
            category="Inside vs outside the hull",
            subcategory="Polynomial decision boundary",
        ),
    log:
        "logs/overparam/plot_polynomial_boundaries.log",
    benchmark:
        "benchmarks/plot_polynomial_boundaries/plot_polynomial_boundaries.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-polynomial-boundaries --metrics {input.metrics:q} --curves {input.curves:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule plot_polynomial_disagreement:
    input:
        metrics=rules.polynomial_sweep.output.metrics,
        code=code("plot-polynomial-disagreement"),
    output:
        figure=report(
            figure_file("overparam_polynomial_disagreement"),
            caption="../report/overparam_polynomial.rst",
            category="Inside vs outside the hull",
            subcategory="Polynomial decision boundary",
        ),
    log:
        "logs/overparam/plot_polynomial_disagreement.log",
    benchmark:
        "benchmarks/plot_polynomial_disagreement/plot_polynomial_disagreement.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-polynomial-disagreement --metrics {input.metrics:q} --out {output.figure:q}" f"{TO_LOG}"


rule plot_network_regions:
    input:
        metrics=rules.network_sweep.output.metrics,
        regions=rules.network_sweep.output.regions,
        code=code("plot-network-regions"),
    output:
        figure=report(
            figure_file("overparam_network_regions"),
            caption="../report/overparam_network.rst",
            category="Inside vs outside the hull",
            subcategory="ReLU networks",
        ),
    log:
        "logs/overparam/plot_network_regions.log",
    benchmark:
        "benchmarks/plot_network_regions/plot_network_regions.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-network-regions --metrics {input.metrics:q} --regions {input.regions:q}"
        " --out {output.figure:q}" f"{TO_LOG}"


rule plot_network_disagreement:
    input:
        metrics=rules.network_sweep.output.metrics,
        code=code("plot-network-disagreement"),
    output:
        figure=report(
            figure_file("overparam_network_disagreement"),
            caption="../report/overparam_network.rst",
            category="Inside vs outside the hull",
            subcategory="ReLU networks",
        ),
    log:
        "logs/overparam/plot_network_disagreement.log",
    benchmark:
        "benchmarks/plot_network_disagreement/plot_network_disagreement.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-network-disagreement --metrics {input.metrics:q} --out {output.figure:q}" f"{TO_LOG}"
