# One job per model sweeps the lines of every family the model is measured on (the model and data are
# read once): models.architectures on lines.families, compared-only architectures on compare_families.
GI_SHELL = (
    "python -m gisweep batched-gi --model {input.model:q} --data {input.data:q} --inputs {input.lines:q}"
    " --device {params.device:q} --dtype {params.dtype:q} {params.memory:q}"
    " --threads {threads:q} --out {output:q}" f"{TO_LOG}"
)


rule batched_gi:
    input:
        model=MODEL["{labels}"],
        data=DATA,
        lines=[LINES.replace("{family}", family) for family in config["lines"]["families"]],
        code=code("batched-gi"),
    output:
        **{family: GI.replace("{family}", family) for family in config["lines"]["families"]},
    params:
        device=config["device"],
        dtype=config["gi"]["dtype"],
        memory=memory_option(config["gi"]["memory_mb"]),
    threads: 2
    resources:
        gpu=gpus(),
    log:
        "logs/batched_gi/{dataset}_d{dim}_{arch}_{labels}_s{seed}.log",
    benchmark:
        "benchmarks/batched_gi/{dataset}_d{dim}_{arch}_{labels}_s{seed}.tsv",
    conda:
        ENV
    shell:
        GI_SHELL


if compared_only_architectures():

    ruleorder: batched_gi_compared > batched_gi

    rule batched_gi_compared:
        input:
            model=MODEL["{labels}"],
            data=DATA,
            lines=[LINES.replace("{family}", family) for family in config["models"]["compare_families"]],
            code=code("batched-gi"),
        output:
            **{family: GI.replace("{family}", family) for family in config["models"]["compare_families"]},
        wildcard_constraints:
            arch="|".join(re.escape(arch) for arch in compared_only_architectures()),
        params:
            device=config["device"],
            dtype=config["gi"]["dtype"],
            memory=memory_option(config["gi"]["memory_mb"]),
        threads: 2
        resources:
            gpu=gpus(),
        log:
            "logs/batched_gi/{dataset}_d{dim}_{arch}_{labels}_s{seed}_compared.log",
        benchmark:
            "benchmarks/batched_gi_compared/{dataset}_d{dim}_{arch}_{labels}_s{seed}_compared.tsv",
        conda:
            ENV
        shell:
            GI_SHELL


rule gi_summary:
    input:
        unpack(summary_inputs),
        code=code("gi-summary"),
    output:
        **SUMMARY,
    log:
        "logs/gi_summary.log",
    benchmark:
        "benchmarks/gi_summary/gi_summary.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep gi-summary --inputs {input.gi:q} --histories {input.history:q} --out-table {output.table:q}"
        " --out-markdown {output.markdown:q} --out-csv {output.csv:q}" f"{TO_LOG}"


rule gi_claims:
    input:
        summary=rules.gi_summary.output.table,
        dynamics=claims_dynamics,
        code=code("gi-claims"),
    output:
        markdown=CLAIMS["markdown"],
        csv=report(CLAIMS["csv"], caption="../report/claims.rst", category="Generalization intervals",
                   subcategory="Claims"),
    params:
        arch=config["figures"]["arch"],
        compare_dataset=config["models"]["compare_at"]["dataset"],
        compare_dim=config["models"]["compare_at"]["dim"],
    log:
        "logs/gi_claims.log",
    benchmark:
        "benchmarks/gi_claims/gi_claims.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep gi-claims --summary {input.summary:q} --dynamics {input.dynamics:q} --arch {params.arch:q}"
        " --compare-dataset {params.compare_dataset:q} --compare-dim {params.compare_dim:q}"
        " --out-markdown {output.markdown:q} --out-csv {output.csv:q}" f"{TO_LOG}"
