# The paper's GI density figures (4-8) and one density figure of every line family per dataset and
# dimension; each a target of its own under results/figures/ (see figure_targets in common.smk).
# Each panel draws every seed of figure_seeds() faintly and their pooled density strongly.
FIGURE_CODE = code("plot-gi-density")
DENSITY_SHELL = (
    "python -m gisweep plot-gi-density --inputs {input.gi:q} --panels {params.panels:q} --modes {params.modes:q}"
    " --seeds {params.seeds:q} --title {params.title:q} --out {output.figure:q}" f"{TO_LOG}"
)


rule plot_gi_pairs_by_dim:
    input:
        gi=series_column(fig4_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/fig4_gi_pairs_by_dim.{fmt}",
            caption="../report/fig4.rst",
            category="Generalization intervals",
            subcategory="Input dimension",
        ),
    params:
        panels=series_column(fig4_series, 0),
        modes=series_column(fig4_series, 1),
        seeds=series_column(fig4_series, 2),
        title=lambda wc: f"Pair GIs of MNIST {classes_title('mnist', 'pairs')}, {config['figures']['arch']}{seeds_note()}",
    log:
        "logs/figures/fig4_gi_pairs_by_dim_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_pairs_by_dim/fig4_gi_pairs_by_dim_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL


rule plot_gi_triangles_by_dim:
    input:
        gi=series_column(fig5_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/fig5_gi_triangles_by_dim.{fmt}",
            caption="../report/fig5.rst",
            category="Generalization intervals",
            subcategory="Input dimension",
        ),
    params:
        panels=series_column(fig5_series, 0),
        modes=series_column(fig5_series, 1),
        seeds=series_column(fig5_series, 2),
        title=lambda wc: f"Triangle mid-line GIs of MNIST {classes_title('mnist', 'triangles')}, {config['figures']['arch']}{seeds_note()}",
    log:
        "logs/figures/fig5_gi_triangles_by_dim_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_triangles_by_dim/fig5_gi_triangles_by_dim_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL


rule plot_gi_pairs_by_arch:
    input:
        gi=series_column(fig6_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/fig6_gi_pairs_by_arch.{fmt}",
            caption="../report/fig6.rst",
            category="Generalization intervals",
            subcategory="Architecture",
        ),
    params:
        panels=series_column(fig6_series, 0),
        modes=series_column(fig6_series, 1),
        seeds=series_column(fig6_series, 2),
        title=lambda wc: (
            f"Pair GIs of {config['models']['compare_at']['dataset']} {config['models']['compare_at']['dim']}"
            f"×{config['models']['compare_at']['dim']} "
            f"{classes_title(config['models']['compare_at']['dataset'], 'pairs')}, by architecture{seeds_note()}"
        ),
    log:
        "logs/figures/fig6_gi_pairs_by_arch_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_pairs_by_arch/fig6_gi_pairs_by_arch_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL


rule plot_gi_cifar10_pairs:
    input:
        gi=series_column(fig7_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/fig7_gi_cifar10_pairs.{fmt}",
            caption="../report/fig7.rst",
            category="Generalization intervals",
            subcategory="CIFAR-10",
        ),
    params:
        panels=series_column(fig7_series, 0),
        modes=series_column(fig7_series, 1),
        seeds=series_column(fig7_series, 2),
        title=lambda wc: f"Pair GIs of CIFAR-10 {classes_title('cifar10', 'pairs')}, {config['figures']['arch']}{seeds_note()}",
    log:
        "logs/figures/fig7_gi_cifar10_pairs_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_cifar10_pairs/fig7_gi_cifar10_pairs_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL


rule plot_gi_moons_pairs:
    input:
        gi=series_column(fig8_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/fig8_gi_moons_pairs.{fmt}",
            caption="../report/fig8.rst",
            category="Generalization intervals",
            subcategory="Two moons",
        ),
    params:
        panels=series_column(fig8_series, 0),
        modes=series_column(fig8_series, 1),
        seeds=series_column(fig8_series, 2),
        title=lambda wc: f"Pair GIs of two moons {classes_title('moons', 'pairs')}, {config['figures']['arch']}{seeds_note()}",
    log:
        "logs/figures/fig8_gi_moons_pairs_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_moons_pairs/fig8_gi_moons_pairs_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL


rule plot_gi_families:
    input:
        gi=series_column(families_series, 3),
        code=FIGURE_CODE,
    output:
        figure=report(
            "results/figures/gi_families_{dataset}_d{dim}.{fmt}",
            caption="../report/gi_families.rst",
            category="Generalization intervals",
            subcategory="Line families",
        ),
    params:
        panels=series_column(families_series, 0),
        modes=series_column(families_series, 1),
        seeds=series_column(families_series, 2),
        title=lambda wc: f"GIs of every line family, {wc.dataset} d{wc.dim}, {config['figures']['arch']}{seeds_note()}",
    log:
        "logs/figures/gi_families_{dataset}_d{dim}_{fmt}.log",
    benchmark:
        "benchmarks/plot_gi_families/gi_families_{dataset}_d{dim}_{fmt}.tsv",
    conda:
        ENV
    shell:
        DENSITY_SHELL
