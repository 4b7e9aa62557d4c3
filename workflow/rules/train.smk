# One rule per label mode, so a user can ask for (or re-run) just the real- or random-label models.
TRAIN_SHELL = (
    "python -m gisweep train --data {input.data} --arch {wildcards.arch} --labels {params.labels}"
    " --seed {wildcards.seed} {params.train} --device {params.device} --threads {threads}"
    " --out-model {output.model} --out-history {output.history} > {log} 2>&1"
)


rule train_real:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("train", "models", "data", "io"),
    output:
        model="results/{dataset}/d{dim}/{arch}/real/s{seed}/model.pt",
        history="results/{dataset}/d{dim}/{arch}/real/s{seed}/history.parquet",
    params:
        labels="real",
        device=config["device"],
        train=lambda wc: train_options(wc.dataset),
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/train/{dataset}_d{dim}_{arch}_real_s{seed}.log",
    conda:
        ENV
    shell:
        TRAIN_SHELL


rule train_random:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("train", "models", "data", "io"),
    output:
        model="results/{dataset}/d{dim}/{arch}/random/s{seed}/model.pt",
        history="results/{dataset}/d{dim}/{arch}/random/s{seed}/history.parquet",
    params:
        labels="random",
        device=config["device"],
        train=lambda wc: train_options(wc.dataset),
    threads: 1
    resources:
        gpu=gpus(),
    log:
        "logs/train/{dataset}_d{dim}_{arch}_random_s{seed}.log",
    conda:
        ENV
    shell:
        TRAIN_SHELL
