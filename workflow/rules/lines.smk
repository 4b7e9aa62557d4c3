# One Parquet of lines per family, dataset, dimension, label mode and seed (see gisweep.lines).
rule sample_pairs:
    input:
        data=DATA,
        code=code("sample-pairs"),
    output:
        lines=lines_file("{dataset}", "{dim}", "{labels}", "{seed}", "pairs"),
    params:
        classes=lambda wc: line_classes(wc.dataset, "pairs"),
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


rule sample_lines:
    input:
        data=DATA,
        code=code("sample-lines"),
    output:
        lines=lines_file("{dataset}", "{dim}", "{labels}", "{seed}", "{family}"),
    wildcard_constraints:
        family="diffpairs|triangles|random|pc1|minor|perp",
    params:
        args=line_args,
    log:
        "logs/sample_lines/{dataset}_d{dim}_{labels}_s{seed}_{family}.log",
    conda:
        ENV
    shell:
        "python -m gisweep sample-lines --data {input.data} --family {wildcards.family} --labels {wildcards.labels}"
        " --seed {wildcards.seed} {params.args} --out {output.lines} > {log} 2>&1"
