# gisweep: generalization intervals and convex-hull distances of trained ReLU classifiers.
# The stages live in workflow/rules/; targets are enumerated from the config in common.smk.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "src/gisweep/config.schema.yaml")  # the package ships it: the CLI checks the same bounds


wildcard_constraints:
    dataset="[a-z0-9_]+",
    dim="[0-9]+",
    arch="[1-9][0-9]*x[1-9][0-9]*",
    labels="real|random",
    seed="[0-9]+",
    family="[a-z0-9]+",
    fmt="png|pdf|svg",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/lines.smk"
include: "workflow/rules/gi.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/hull.smk"
include: "workflow/rules/along.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/fractions.smk"
include: "workflow/rules/overparam.smk"
include: "workflow/rules/cnn.smk"


rule all:
    default_target: True
    input:
        all_targets(),
