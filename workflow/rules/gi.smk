rule batched_gi:
    input:
        model="results/{dataset}/d{dim}/{arch}/{labels}/s{seed}/model.pt",
        data="results/{dataset}/d{dim}/data.parquet",
        lines="results/{dataset}/d{dim}/{labels}/s{seed}/lines_{family}.parquet",
        code=code("gi", "gi_stage", "lines", "models", "io"),
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
