# The lines of every configured family, one job per dataset, dimension, label mode and seed (the
# families share the data read and the process start; each draws from its own random stream, so a
# family's lines do not depend on the others). See gisweep.lines.
rule sample_lines:
    input:
        data=DATA,
        code=code("sample-lines"),
    output:
        **{family: lines_file("{dataset}", "{dim}", "{labels}", "{seed}", family) for family in line_families()},
    params:
        families=line_families(),
        settings=line_settings,
    log:
        "logs/sample_lines/{dataset}_d{dim}_{labels}_s{seed}.log",
    benchmark:
        "benchmarks/sample_lines/{dataset}_d{dim}_{labels}_s{seed}.tsv",
    conda:
        ENV
    shell:
        "python -m gisweep sample-lines --data {input.data:q} --labels {wildcards.labels:q} --seed {wildcards.seed:q}"
        " --family {params.families:q} --settings {params.settings:q} --out {output:q}" f"{TO_LOG}"
