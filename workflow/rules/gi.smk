rule batched_gi:
    input:
        model="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/model.pt",
        data="results/{dataset}/d{dim}/data.parquet",
        lines="results/{dataset}/d{dim}/{labels}/s{seed}/lines_{family}.parquet",
        code=code("gi", "gi_stage", "lines", "data", "models", "io"),
    output:
        gi="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/gi_{family}.parquet",
    params:
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory_mb=config["gi"]["memory_mb"],
    threads: 2
    resources:
        gpu=gpus(),
    log:
        "logs/batched_gi/{dataset}_d{dim}_{arch}_{labels}_s{seed}_{family}.log",
    conda:
        ENV
    shell:
        "python -m gisweep batched-gi --model {input.model} --data {input.data} --lines {input.lines}"
        " --device {params.device} --dtype {params.dtype} --memory-mb {params.memory_mb}"
        " --threads {threads} --out {output.gi} > {log} 2>&1"


rule gi_summary:
    input:
        unpack(summary_inputs),
        code=code("summary", "io"),
    output:
        table="results/tables/gi_summary.parquet",
        markdown="results/tables/gi_summary.md",
        csv="results/tables/gi_summary.csv",
    log:
        "logs/gi_summary.log",
    conda:
        ENV
    shell:
        "python -m gisweep gi-summary --gi {input.gi} --out {output.table} --markdown {output.markdown}"
        " --csv {output.csv} > {log} 2>&1"
