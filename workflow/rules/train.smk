# One rule per label mode, so a user can ask for (or re-run) just the real- or random-label models.
TRAIN_SHELL = (
    "python -m gisweep train --data {input.data} --arch {wildcards.arch} --labels {params.labels}"
    " --seed {wildcards.seed} {params.train} --device {params.device} --threads {threads}"
    " --out-model {output.model} --out-history {output.history} > {log} 2>&1"
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
    conda:
        ENV
    shell:
        TRAIN_SHELL
