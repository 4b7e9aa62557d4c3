# Outputs along directions (the paper's Figures 1-3): logits of one model per label mode along pair,
# random and class directions (gisweep.along), then one figure per panel set (gisweep.figures.along).
# Config section: along.

ALONG = config["along"]
# figure name -> (panel set in gisweep.figures.along.FIGURE_PANELS, label mode of the model shown)
ALONG_FIGURES = {
    "fig1_outputs_along_real": ("fig1", "real"),
    "fig2_outputs_along_class_directions": ("fig2", "real"),
    "fig3_outputs_along_random": ("fig3", "random"),
}


TARGET_FUNCTIONS.append(lambda: [figure_file(name) for name in ALONG_FIGURES] if ALONG["enabled"] else [])


rule outputs_along:
    input:
        model=model_file("{dataset}", "{dim}", "{arch}", "{labels}", "{seed}"),
        data=data_file("{dataset}", "{dim}"),
        code=code("outputs-along"),
    output:
        along=along_file("{dataset}", "{dim}", "{arch}", "{labels}", "{seed}"),
    params:
        class_a=ALONG["class_a"],
        class_b=ALONG["class_b"],
        n_points=ALONG["n_points"],
        t_min=ALONG["t_min"],
        t_max=ALONG["t_max"],
        minor_rank=ALONG["minor_rank"],
    log:
        "logs/outputs_along/{dataset}_d{dim}_{arch}_{labels}_s{seed}.log",
    benchmark:
        "benchmarks/outputs_along/{dataset}_d{dim}_{arch}_{labels}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep outputs-along --model {input.model:q} --data {input.data:q} --labels {wildcards.labels:q}"
        " --seed {wildcards.seed:q} --class-a {params.class_a:q} --class-b {params.class_b:q} --n-points {params.n_points:q}"
        " --t-min {params.t_min:q} --t-max {params.t_max:q} --minor-rank {params.minor_rank:q} --out {output.along:q}" f"{TO_LOG}"


rule plot_outputs_along:
    wildcard_constraints:
        alongfig="|".join(ALONG_FIGURES),
    input:
        along=lambda wc: along_file(ALONG["dataset"], ALONG["dim"], ALONG["arch"], ALONG_FIGURES[wc.alongfig][1], ALONG["seed"]),
        code=code("plot-along"),
    output:
        figure=report(
            figure_file("{alongfig}"),
            caption="../report/fig1_2_3.rst",
            category="Outputs along directions",
        ),
    params:
        panels=lambda wc: ALONG_FIGURES[wc.alongfig][0],
        title=lambda wc: f"{ALONG_FIGURES[wc.alongfig][1]} labels, {ALONG['dataset']} {ALONG['dim']}, {ALONG['arch']}",
    log:
        "logs/figures/{alongfig}.log",
    benchmark:
        "benchmarks/plot_outputs_along/{alongfig}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-along --along {input.along:q} --figure {params.panels:q} --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"
