# Outputs along directions (paper Figures 1-3), GI during training (Figure 9), partial label
# randomisation (beyond the paper). Config sections: along, dynamics, fractions.

# figure name -> (panel set in gisweep.along.FIGURE_PANELS, label mode of the model shown)
ALONG_FIGURES = {
    "fig1_outputs_along_real": ("fig1", "real"),
    "fig2_outputs_along_class_directions": ("fig2", "real"),
    "fig3_outputs_along_random": ("fig3", "random"),
}
ALONG, DYNAMICS, FRACTIONS = config["along"], config["dynamics"], config["fractions"]
ALONG_FILE = f"results/{ALONG['dataset']}/d{ALONG['dim']}/{ALONG['arch']}/{{labels}}/s{ALONG['seed']}/along.parquet"
DYNAMICS_FILE = f"results/{DYNAMICS['dataset']}/d{DYNAMICS['dim']}/{DYNAMICS['arch']}/real/s{DYNAMICS['seed']}/gi_during_training.parquet"
FRACTION_RUNS = [
    f"results/{FRACTIONS['dataset']}/d{FRACTIONS['dim']}/{FRACTIONS['arch']}/frac{pct}/s{seed}/fraction_run.parquet"
    for pct in FRACTIONS["percents"]
    for seed in FRACTIONS["seeds"]
]

TARGET_FUNCTIONS.append(lambda: [figure_file(name) for name in ALONG_FIGURES] if ALONG["enabled"] else [])
TARGET_FUNCTIONS.append(
    lambda: [figure_file("fig9_gi_vs_accuracy"), "results/tables/gi_vs_accuracy.csv"] if DYNAMICS["enabled"] else []
)
TARGET_FUNCTIONS.append(
    lambda: (
        [figure_file("fig_label_fractions"), "results/tables/label_fractions.parquet"] if FRACTIONS["enabled"] else []
    )
)


rule outputs_along:
    input:
        model="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/model.pt",
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("along", "directions", "data", "models", "io"),
    output:
        along="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/along.parquet",
    params:
        class_a=ALONG["class_a"],
        class_b=ALONG["class_b"],
        n_points=ALONG["n_points"],
        t_min=ALONG["t_min"],
        t_max=ALONG["t_max"],
        minor_rank=ALONG["minor_rank"],
    log:
        "logs/outputs_along/{dataset}_d{dim}_{arch}_{labels}_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep outputs-along --model {input.model} --data {input.data} --labels {wildcards.labels}"
        " --seed {wildcards.seed} --class-a {params.class_a} --class-b {params.class_b} --n-points {params.n_points}"
        " --t-min {params.t_min} --t-max {params.t_max} --minor-rank {params.minor_rank} --out {output.along}"
        " > {log} 2>&1"


rule plot_outputs_along:
    wildcard_constraints:
        alongfig="|".join(ALONG_FIGURES),
    input:
        along=lambda wc: ALONG_FILE.format(labels=ALONG_FIGURES[wc.alongfig][1]),
        code=code("along", "figures", "io"),
    output:
        figure=report(
            "results/figures/{alongfig}.{fmt}",
            caption="../report/fig1_2_3.rst",
            category="Outputs along directions",
        ),
    params:
        panels=lambda wc: ALONG_FIGURES[wc.alongfig][0],
        title=lambda wc: f"{ALONG_FIGURES[wc.alongfig][1]} labels, {ALONG['dataset']} {ALONG['dim']}, {ALONG['arch']}",
    log:
        "logs/figures/{alongfig}_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-along --along {input.along} --figure {params.panels} --title '{params.title}'"
        " --out {output.figure} > {log} 2>&1"


rule gi_during_training:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        reference="results/{dataset}/d{dim}/{arch}/real/s{seed}/model.pt",
        code=code("dynamics", "train", "gi", "lines", "data", "models", "io"),
    output:
        table="results/{dataset}/d{dim}/{arch}/real/s{seed}/gi_during_training.parquet",
    params:
        epochs=" ".join(str(e) for e in DYNAMICS["checkpoint_epochs"]),
        classes=" ".join(str(c) for c in DYNAMICS["classes"]),
        t_min=DYNAMICS["t_min"],
        t_max=DYNAMICS["t_max"],
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory_mb=config["gi"]["memory_mb"],
        train=lambda wc: train_options(wc.dataset),
    threads: 1  # as the train rule: the same thread count keeps the retrained weights bit-identical
    resources:
        gpu=gpus(),
    log:
        "logs/gi_during_training/{dataset}_d{dim}_{arch}_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep gi-during-training --data {input.data} --arch {wildcards.arch} --seed {wildcards.seed}"
        " --checkpoint-epochs {params.epochs} --classes {params.classes} --t-min {params.t_min} --t-max {params.t_max}"
        " {params.train} --device {params.device}"
        " --dtype {params.dtype} --memory-mb {params.memory_mb} --threads {threads}"
        " --reference-model {input.reference} --out {output.table} > {log} 2>&1"


rule plot_gi_vs_accuracy:
    input:
        table=DYNAMICS_FILE,
        code=code("dynamics", "figures", "io"),
    output:
        figure=report(
            figure_file("fig9_gi_vs_accuracy"),
            caption="../report/fig9.rst",
            category="Generalization intervals",
            subcategory="During training",
        ),
        correlations="results/tables/gi_vs_accuracy.csv",
    params:
        title=f"GI during training: {DYNAMICS['dataset']} {DYNAMICS['dim']}, {DYNAMICS['arch']}, real labels, "
        f"classes {DYNAMICS['classes']}",
    log:
        "logs/figures/fig9_gi_vs_accuracy.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-gi-vs-accuracy --dynamics {input.table} --title '{params.title}'"
        " --out {output.figure} --out-table {output.correlations} > {log} 2>&1"


rule label_fraction_run:
    wildcard_constraints:
        pct="[0-9]+",
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("fractions", "train", "gi", "lines", "data", "models", "io"),
    output:
        model="results/{dataset}/d{dim}/{arch}/frac{pct}/s{seed}/model.pt",
        run="results/{dataset}/d{dim}/{arch}/frac{pct}/s{seed}/fraction_run.parquet",
    params:
        classes=" ".join(str(c) for c in FRACTIONS["classes"]),
        t_min=FRACTIONS["t_min"],
        t_max=FRACTIONS["t_max"],
        train=lambda wc: train_options(wc.dataset, max_epochs=FRACTIONS["max_epochs"]),
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory_mb=config["gi"]["memory_mb"],
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/label_fraction_run/{dataset}_d{dim}_{arch}_frac{pct}_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep label-fraction-run --data {input.data} --percent {wildcards.pct} --arch {wildcards.arch}"
        " --seed {wildcards.seed} --classes {params.classes} --t-min {params.t_min} --t-max {params.t_max}"
        " {params.train} --device {params.device}"
        " --dtype {params.dtype} --memory-mb {params.memory_mb} --threads {threads}"
        " --out-model {output.model} --out {output.run} > {log} 2>&1"


rule label_fractions_table:
    input:
        runs=FRACTION_RUNS,
        code=code("fractions", "io"),
    output:
        table="results/tables/label_fractions.parquet",
        csv="results/tables/label_fractions.csv",
    log:
        "logs/label_fractions_table.log",
    conda:
        ENV
    shell:
        "python -m gisweep label-fractions-table --runs {input.runs} --out {output.table} > {log} 2>&1"


rule plot_label_fractions:
    input:
        table="results/tables/label_fractions.parquet",
        code=code("fractions", "figures", "io"),
    output:
        figure=report(
            "results/figures/fig_label_fractions.{fmt}",
            caption="../report/label_fractions.rst",
            category="Generalization intervals",
            subcategory="Label randomisation",
        ),
    params:
        title=f"Partly randomised labels: {FRACTIONS['dataset']} {FRACTIONS['dim']}, {FRACTIONS['arch']}, "
        f"pairs of classes {FRACTIONS['classes']}",
    log:
        "logs/figures/fig_label_fractions_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-label-fractions --table {input.table} --title '{params.title}'"
        " --out {output.figure} > {log} 2>&1"
