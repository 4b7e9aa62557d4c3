# The data stage: one table of training and test samples per dataset and input dimension.
rule prepare_data:
    input:
        code=code("prepare-data"),
    output:
        data=DATA,
    params:
        seed=config["data"]["seed"],
        per_class=config["data"]["train_per_class"],
        extra=data_args,
    log:
        "logs/prepare_data/{dataset}_d{dim}.log",
    conda:
        ENV
    shell:
        "python -m gisweep prepare-data --dataset {wildcards.dataset} --dim {wildcards.dim}"
        " --seed {params.seed} --train-per-class {params.per_class} {params.extra} --out {output.data} > {log} 2>&1"
