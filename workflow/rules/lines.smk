rule sample_pairs:
    input:
        data="results/{dataset}/d{dim}/data.parquet",
        code=code("lines", "data", "io"),
    output:
        lines="results/{dataset}/d{dim}/{labels}/s{seed}/lines_pairs.parquet",
    params:
        classes=" ".join(str(c) for c in config["lines"]["pairs"]["classes"]),
        t_min=config["lines"]["pairs"]["t_min"],
        t_max=config["lines"]["pairs"]["t_max"],
    log:
        "logs/sample_pairs/{dataset}_d{dim}_{labels}_s{seed}.log",
    conda:
        ENV
    shell:
        "python -m gisweep sample-pairs --data {input.data} --labels {wildcards.labels} --seed {wildcards.seed}"
        " --classes {params.classes} --t-min {params.t_min} --t-max {params.t_max} --out {output.lines}"
        " > {log} 2>&1"
