# The CNN beside the MLP (issue 15): a small CNN (gisweep.models.SmallCNN) trained on real and random
# labels, its exact pair GIs (gisweep.gi's general engine for conv/pool nets), and one figure with the
# MLP's pair GIs on the same lines. Config section: cnn (opt-in: cnn.enabled, off by default).

CNN = config["cnn"]


TARGET_FUNCTIONS.append(lambda: [cnn_figure()] if CNN["enabled"] else [])


rule train_cnn:
    input:
        data=DATA,
        code=code("train-cnn"),
    output:
        model=cnn_model_file("{dataset}", "{dim}", "{labels}", "{seed}"),
        history=cnn_history_file("{dataset}", "{dim}", "{labels}", "{seed}"),
    params:
        width=CNN["width"],
        hidden=CNN["hidden"],
        optimizer=CNN["optimizer"],
        lr=CNN["lr"],
        batch_size=CNN["batch_size"],
        max_epochs=CNN["max_epochs"],
        device=config["device"],
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/train_cnn/{dataset}_d{dim}_{labels}_s{seed}.log",
    benchmark:
        "benchmarks/train_cnn/{dataset}_d{dim}_{labels}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep train-cnn --data {input.data:q} --labels {wildcards.labels:q} --seed {wildcards.seed:q}"
        " --width {params.width:q} --hidden {params.hidden:q} --optimizer {params.optimizer:q} --lr {params.lr:q}"
        " --batch-size {params.batch_size:q} --max-epochs {params.max_epochs:q} --device {params.device:q}"
        " --threads {threads:q} --out-model {output.model:q} --out-history {output.history:q}" f"{TO_LOG}"


rule cnn_gi:
    input:
        model=cnn_model_file("{dataset}", "{dim}", "{labels}", "{seed}"),
        data=DATA,
        lines=lines_file("{dataset}", "{dim}", "{labels}", "{seed}", "{family}"),
        code=code("batched-gi"),
    output:
        gi=cnn_gi_file("{dataset}", "{dim}", "{labels}", "{seed}", "{family}"),
    params:
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory=memory_option(CNN["memory_mb"]),
    threads: 2
    resources:
        gpu=gpus(),
    log:
        "logs/cnn_gi/{dataset}_d{dim}_{labels}_s{seed}_{family}.log",
    benchmark:
        "benchmarks/cnn_gi/{dataset}_d{dim}_{labels}_s{seed}_{family}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep batched-gi --model {input.model:q} --data {input.data:q} --inputs {input.lines:q}"
        " --device {params.device:q} --dtype {params.dtype:q} {params.memory:q}"
        " --threads {threads:q} --out {output.gi:q}" f"{TO_LOG}"


rule plot_gi_mlp_vs_cnn:
    input:
        mlp=[gi_file(CNN["dataset"], CNN["dim"], CNN["mlp_arch"], labels, CNN["seed"], "pairs")
             for labels in config["models"]["labels"]],
        cnn=[cnn_gi_file(CNN["dataset"], CNN["dim"], labels, CNN["seed"], "pairs") for labels in config["models"]["labels"]],
        code=code("plot-gi-mlp-vs-cnn"),
    output:
        figure=report(
            cnn_figure(),
            caption="../report/gi_mlp_vs_cnn.rst",
            category="Generalization intervals",
            subcategory="MLP vs CNN",
        ),
    params:
        modes=config["models"]["labels"],
        mlp_name=f"MLP {CNN['mlp_arch']}",
        cnn_name=f"CNN (conv {CNN['width']}, max-pool, {CNN['hidden']})",
        # a function: evaluated only when the figure is built (the dataset may not be configured otherwise)
        title=lambda wc: (
            f"Pair GIs of {CNN['dataset']} {CNN['dim']}×{CNN['dim']} {classes_title(CNN['dataset'], 'pairs')},"
            f" seed {CNN['seed']}"
        ),
    log:
        "logs/figures/gi_pairs_mlp_vs_cnn.log",
    benchmark:
        "benchmarks/plot_gi_mlp_vs_cnn/gi_pairs_mlp_vs_cnn.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep plot-gi-mlp-vs-cnn --mlp {input.mlp:q} --cnn {input.cnn:q} --modes {params.modes:q}"
        " --mlp-name {params.mlp_name:q} --cnn-name {params.cnn_name:q} --title {params.title:q}"
        " --out {output.figure:q}" f"{TO_LOG}"
