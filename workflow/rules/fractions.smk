# Partly randomised labels (beyond the paper): one model per randomised share and seed, with its pair
# GI and accuracies (gisweep.fractions), the runs gathered into one table, and the figure drawn from it
# (gisweep.figures.fractions). Config section: fractions.

FRACTIONS = config["fractions"]

TARGET_FUNCTIONS.append(
    lambda: [figure_file("fig_label_fractions"), *LABEL_FRACTIONS.values()] if FRACTIONS["enabled"] else []
)


rule label_fraction_run:
    wildcard_constraints:
        pct="[0-9]+",
    input:
        data=data_file("{dataset}", "{dim}"),
        code=code("label-fraction-run"),
    output:
        model=model_file("{dataset}", "{dim}", "{arch}", fraction_mode("{pct}"), "{seed}"),
        run=fraction_run_file("{dataset}", "{dim}", "{arch}", "{pct}", "{seed}"),
    params:
        classes=FRACTIONS["classes"],
        t_min=FRACTIONS["t_min"],
        t_max=FRACTIONS["t_max"],
        train=lambda wc: train_options(wc.dataset, max_epochs=FRACTIONS["max_epochs"]),
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory=memory_option(config["gi"]["memory_mb"]),
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/label_fraction_run/{dataset}_d{dim}_{arch}_frac{pct}_s{seed}.log",
    benchmark:
        "benchmarks/label_fraction_run/{dataset}_d{dim}_{arch}_frac{pct}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep label-fraction-run --data {input.data:q} --percent {wildcards.pct:q} --arch {wildcards.arch:q}"
        " --seed {wildcards.seed:q} --classes {params.classes:q} --t-min {params.t_min:q} --t-max {params.t_max:q}"
        " {params.train:q} --device {params.device:q}"
        " --dtype {params.dtype:q} {params.memory:q} --threads {threads:q}"
        " --out-model {output.model:q} --out {output.run:q}" f"{TO_LOG}"


rule label_fractions_table:
    input:
        runs=[
            fraction_run_file(FRACTIONS["dataset"], FRACTIONS["dim"], FRACTIONS["arch"], pct, seed)
            for pct in FRACTIONS["percents"]
            for seed in FRACTIONS["seeds"]
        ],
        code=code("label-fractions-table"),
    output:
        table=LABEL_FRACTIONS["table"],
        csv=LABEL_FRACTIONS["csv"],
    log:
        "logs/label_fractions_table.log",
    benchmark:
        "benchmarks/label_fractions_table/label_fractions_table.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep label-fractions-table --inputs {input.runs:q} --out-table {output.table:q}"
        " --out-csv {output.csv:q}" f"{TO_LOG}"


rule plot_label_fractions:
    input:
        table=rules.label_fractions_table.output.table,
        code=code("plot-label-fractions"),
    output:
        figure=report(
            figure_file("fig_label_fractions"),
            caption="../report/label_fractions.rst",
            category="Generalization intervals",
            subcategory="Label randomisation",
        ),
    params:
        title=f"Partly randomised labels: {FRACTIONS['dataset']} {FRACTIONS['dim']}, {FRACTIONS['arch']}, "
        f"pairs of classes {FRACTIONS['classes']}",
    log:
        "logs/figures/fig_label_fractions.log",
    benchmark:
        "benchmarks/plot_label_fractions/fig_label_fractions.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-label-fractions --table {input.table:q} --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"
