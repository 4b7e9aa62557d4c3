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
    benchmark:
        "benchmarks/prepare_data/{dataset}_d{dim}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep prepare-data --dataset {wildcards.dataset:q} --dim {wildcards.dim:q}"
        " --seed {params.seed:q} --train-per-class {params.per_class:q} {params.extra:q} --out {output.data:q}" f"{TO_LOG}"
