rule plot_gi_pairs_by_dim:
    input:
        gi=lambda wc: [path for _, _, path in fig4_series(wc)],
        code=code("figures", "io"),
    output:
        figure=report(
            "results/figures/fig4_gi_pairs_by_dim.{fmt}",
            caption="../report/fig4.rst",
            category="Generalization intervals",
            subcategory="Input dimension",
        ),
    params:
        series=lambda wc: " ".join(f"--series '{p}' {m} {f}" for p, m, f in fig4_series(wc)),
        title=f"Pair GIs of class(es) {config['lines']['pairs']['classes']}, {config['figures']['arch']}",
    log:
        "logs/figures/fig4_gi_pairs_by_dim_{fmt}.log",
    conda:
        ENV
    shell:
        "python -m gisweep plot-gi-density {params.series} --title '{params.title}' --out {output.figure} > {log} 2>&1"
