# Inside vs outside the training convex hull (Yousefzadeh 2021, sections 3 and 4):
# a Legendre-polynomial decision boundary and ReLU MLPs, from under- to over-parameterized,
# under several training regimes. Parameters: config["overparam"]["polynomial"] and
# config["overparam"]["network"] (missing keys take the defaults of gisweep.polynomial.DEFAULTS
# and gisweep.overparam.NETWORK_DEFAULTS).


OVERPARAM_FIGURES = [
    "overparam_polynomial_boundaries",
    "overparam_polynomial_disagreement",
    "overparam_network_regions",
    "overparam_network_disagreement",
]
TARGET_FUNCTIONS.append(
    lambda: [f"results/figures/{name}.png" for name in OVERPARAM_FIGURES] if config["overparam"]["enabled"] else []
)


rule polynomial_sweep:
    input:
        code=code("polynomial", "io"),
    output:
        metrics="results/overparam/polynomial_metrics.parquet",
        curves="results/overparam/polynomial_curves.parquet",
    params:
        cfg=overparam_json("polynomial"),
    log:
        "logs/overparam/polynomial_sweep.log",
    conda:
        ENV
    shell:
        "python -m gisweep polynomial-sweep --config-json {params.cfg:q}"
        " --metrics {output.metrics:q} --curves {output.curves:q} > {log:q} 2>&1"


rule network_sweep:
    input:
        code=code("overparam", "polynomial", "io"),
    output:
        metrics="results/overparam/network_metrics.parquet",
        regions="results/overparam/network_regions.parquet",
    params:
        cfg=overparam_json("network"),
    log:
        "logs/overparam/network_sweep.log",
    conda:
        ENV
    shell:
        "python -m gisweep network-sweep --config-json {params.cfg:q}"
        " --metrics {output.metrics:q} --regions {output.regions:q} > {log:q} 2>&1"


rule plot_polynomial_boundaries:
    input:
        metrics="results/overparam/polynomial_metrics.parquet",
        curves="results/overparam/polynomial_curves.parquet",
        code=code("polynomial", "io"),
    output:
        png=report(
            "results/figures/overparam_polynomial_boundaries.png",
            caption="../report/overparam_polynomial.rst",
            category="Inside vs outside the hull",
            subcategory="Polynomial decision boundary",
        ),
    log:
        "logs/overparam/plot_polynomial_boundaries.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-polynomial-boundaries --metrics {input.metrics:q} --curves {input.curves:q}"
        " --out {output.png:q} > {log:q} 2>&1"


rule plot_polynomial_disagreement:
    input:
        metrics="results/overparam/polynomial_metrics.parquet",
        code=code("polynomial", "io"),
    output:
        png=report(
            "results/figures/overparam_polynomial_disagreement.png",
            caption="../report/overparam_polynomial.rst",
            category="Inside vs outside the hull",
            subcategory="Polynomial decision boundary",
        ),
    log:
        "logs/overparam/plot_polynomial_disagreement.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-polynomial-disagreement --metrics {input.metrics:q} --out {output.png:q} > {log:q} 2>&1"


rule plot_network_regions:
    input:
        metrics="results/overparam/network_metrics.parquet",
        regions="results/overparam/network_regions.parquet",
        code=code("overparam", "io"),
    output:
        png=report(
            "results/figures/overparam_network_regions.png",
            caption="../report/overparam_network.rst",
            category="Inside vs outside the hull",
            subcategory="ReLU networks",
        ),
    log:
        "logs/overparam/plot_network_regions.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-network-regions --metrics {input.metrics:q} --regions {input.regions:q}"
        " --out {output.png:q} > {log:q} 2>&1"


rule plot_network_disagreement:
    input:
        metrics="results/overparam/network_metrics.parquet",
        code=code("overparam", "io"),
    output:
        png=report(
            "results/figures/overparam_network_disagreement.png",
            caption="../report/overparam_network.rst",
            category="Inside vs outside the hull",
            subcategory="ReLU networks",
        ),
    log:
        "logs/overparam/plot_network_disagreement.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-network-disagreement --metrics {input.metrics:q} --out {output.png:q} > {log:q} 2>&1"
