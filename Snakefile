# gisweep: generalization intervals and convex-hull distances of trained ReLU classifiers.
# The stages live in workflow/rules/; targets are enumerated from the config in common.smk.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# the JSON schema of the config: defaults, bounds, descriptions; the package ships it, so the CLI
# checks its options against the same bounds
CONFIG_SCHEMA = Path(workflow.basedir) / "src" / "gisweep" / "config.schema.yaml"

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from gisweep.config_check import ConfigError, check_config_files, load_config_file, schema_problems  # noqa: E402

# config.yaml and the --configfile files, parsed strictly first: a syntax error names the file and
# line, a key given twice is an error (Snakemake's own loader keeps the last value silently)
try:
    CONFIG_FILES = check_config_files(["config.yaml", *workflow.configfiles])
except ConfigError as e:
    raise WorkflowError(str(e)) from None
if workflow.config_settings.replace_workflow_config and workflow.configfiles:
    CONFIG_FILES.pop("config.yaml", None)  # its values are not part of the config


configfile: "config.yaml"


try:
    validate(config, str(CONFIG_SCHEMA))
except WorkflowError:
    # one short line per problem (key path, what was expected, nearest valid key) in place of the
    # schema dump; validate() stays the one that fills in the defaults
    problems = schema_problems(config, load_config_file(CONFIG_SCHEMA), CONFIG_FILES)
    if problems is None:
        raise
    raise WorkflowError(f"Error validating config file(s) {', '.join(CONFIG_FILES) or '(none: --config only)'} "
                        f"against {CONFIG_SCHEMA.name}:\n{problems}") from None


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
include: "workflow/rules/hull_claims.smk"
include: "workflow/rules/hull_dimension.smk"
include: "workflow/rules/along.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/fractions.smk"
include: "workflow/rules/overparam.smk"
include: "workflow/rules/cnn.smk"


rule all:
    default_target: True
    input:
        all_targets(),
