# One rule per label mode, so a user can ask for (or re-run) just the real- or random-label models.
# With several models.seeds, train_batch trains all of them of one cell in one job (below); these rules
# then train only a seed outside models.seeds.
TRAIN_SHELL = (
    "python -m gisweep train --data {input.data:q} --arch {wildcards.arch:q} --labels {params.labels:q}"
    " --seed {wildcards.seed:q} {params.train:q} --device {params.device:q} --threads {threads:q}"
    " --out-model {output.model:q} --out-history {output.history:q}" f"{TO_LOG}"
)


rule train_real:
    input:
        data=DATA,
        code=code("train"),
    output:
        model=MODEL["real"],
        history=HISTORY["real"],
    params:
        labels="real",
        device=config["device"],
        train=lambda wc: train_options(wc.dataset),
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/train/{dataset}_d{dim}_{arch}_real_s{seed}.log",
    benchmark:
        "benchmarks/train_real/{dataset}_d{dim}_{arch}_real_s{seed}.tsv",
    conda:
        ENV
    shell:
        TRAIN_SHELL


rule train_random:
    input:
        data=DATA,
        code=code("train"),
    output:
        model=MODEL["random"],
        history=HISTORY["random"],
    params:
        labels="random",
        device=config["device"],
        train=lambda wc: train_options(wc.dataset),
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/train/{dataset}_d{dim}_{arch}_random_s{seed}.log",
    benchmark:
        "benchmarks/train_random/{dataset}_d{dim}_{arch}_random_s{seed}.tsv",
    conda:
        ENV
    shell:
        TRAIN_SHELL


SEEDS = config["models"]["seeds"]

if len(SEEDS) > 1:
    # Every seed of models.seeds of one (dataset, dim, arch, labels) cell in one job, as one stacked
    # model (gisweep.train_batched): each seed's model.pt and history.parquet equal those of
    # train_real / train_random for that seed (bit for bit on a CPU), at a fraction of the cost.
    # Asking for one seed's file runs the whole cell's job.
    ruleorder: train_batch > train_real
    ruleorder: train_batch > train_random

    rule train_batch:
        input:
            data=DATA,
            code=code("train-batch"),
        output:
            models=[model_file("{dataset}", "{dim}", "{arch}", "{labels}", seed) for seed in SEEDS],
            histories=[history_file("{dataset}", "{dim}", "{arch}", "{labels}", seed) for seed in SEEDS],
        params:
            seeds=SEEDS,
            device=config["device"],
            train=lambda wc: train_options(wc.dataset),
        threads: 1
        resources:
            gpu=gpus(),
        log:
            "logs/train/{dataset}_d{dim}_{arch}_{labels}_batch.log",
        benchmark:
            "benchmarks/train_batch/{dataset}_d{dim}_{arch}_{labels}_batch.tsv",
        conda:
            ENV
        shell:
            "python -m gisweep train-batch --data {input.data:q} --arch {wildcards.arch:q} --labels {wildcards.labels:q}"
            " --seeds {params.seeds:q} {params.train:q} --device {params.device:q} --threads {threads:q}"
            " --out-models {output.models:q} --out-histories {output.histories:q}" f"{TO_LOG}"
