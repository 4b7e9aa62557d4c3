# GI during training (the paper's Figure 9): the real-label model of each of dynamics.seeds trained
# again with checkpoints, one job per seed (the checkpoints measure GI inside the training loop, which
# the stacked training of train_batch does not expose), the pair GI and accuracies at each
# (gisweep.dynamics), their correlations (gi-vs-accuracy), and the figure drawn from both tables
# (gisweep.figures.dynamics). Config section: dynamics.

DYNAMICS = config["dynamics"]
DYNAMICS_TABLES = claims_dynamics()

TARGET_FUNCTIONS.append(
    lambda: [figure_file("fig9_gi_vs_accuracy"), GI_VS_ACCURACY] if DYNAMICS["enabled"] else []
)


rule gi_during_training:
    input:
        data=data_file("{dataset}", "{dim}"),
        reference=model_file("{dataset}", "{dim}", "{arch}", "real", "{seed}"),
        code=code("gi-during-training"),
    output:
        table=dynamics_file("{dataset}", "{dim}", "{arch}", "{seed}"),
    params:
        epochs=DYNAMICS["checkpoint_epochs"],
        classes=DYNAMICS["classes"],
        t_min=DYNAMICS["t_min"],
        t_max=DYNAMICS["t_max"],
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory=memory_option(config["gi"]["memory_mb"]),
        train=lambda wc: train_options(wc.dataset),
    threads: 1  # as the train rule: the same thread count keeps the retrained weights bit-identical
    resources:
        gpu=gpus(),
    log:
        "logs/gi_during_training/{dataset}_d{dim}_{arch}_s{seed}.log",
    benchmark:
        "benchmarks/gi_during_training/{dataset}_d{dim}_{arch}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep gi-during-training --data {input.data:q} --arch {wildcards.arch:q} --seed {wildcards.seed:q}"
        " --checkpoint-epochs {params.epochs:q} --classes {params.classes:q} --t-min {params.t_min:q} --t-max {params.t_max:q}"
        " {params.train:q} --device {params.device:q}"
        " --dtype {params.dtype:q} {params.memory:q} --threads {threads:q}"
        " --reference-model {input.reference:q} --out {output.table:q}" f"{TO_LOG}"


rule gi_vs_accuracy:
    input:
        dynamics=DYNAMICS_TABLES,
        code=code("gi-vs-accuracy"),
    output:
        correlations=GI_VS_ACCURACY,
    log:
        "logs/gi_vs_accuracy.log",
    benchmark:
        "benchmarks/gi_vs_accuracy/gi_vs_accuracy.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep gi-vs-accuracy --dynamics {input.dynamics:q} --out {output.correlations:q}" f"{TO_LOG}"


rule plot_gi_vs_accuracy:
    input:
        dynamics=DYNAMICS_TABLES,
        correlations=rules.gi_vs_accuracy.output.correlations,
        code=code("plot-gi-vs-accuracy"),
    output:
        figure=report(
            figure_file("fig9_gi_vs_accuracy"),
            caption="../report/fig9.rst",
            category="Generalization intervals",
            subcategory="During training",
        ),
    params:
        title=f"GI during training: {DYNAMICS['dataset']} {DYNAMICS['dim']}, {DYNAMICS['arch']}, real labels, "
        f"classes {DYNAMICS['classes']}"
        + (f", seed {DYNAMICS['seeds'][0]}" if len(DYNAMICS["seeds"]) == 1
           else f", seeds {', '.join(map(str, DYNAMICS['seeds']))} (faint) and mean"),
    log:
        "logs/figures/fig9_gi_vs_accuracy.log",
    benchmark:
        "benchmarks/plot_gi_vs_accuracy/fig9_gi_vs_accuracy.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-gi-vs-accuracy --dynamics {input.dynamics:q} --correlations {input.correlations:q}"
        " --title {params.title:q} --out {output.figure:q}" f"{TO_LOG}"
