"""Nothing a user types runs as a command: every value that reaches a rule's shell command is quoted
by Snakemake (`{...:q}`), never by hand.

- a run of the tiny config whose MNIST-IDX and CIFAR-10 directories are named with a space, an
  apostrophe, `$(...)`, a backtick and `; touch FILE` prepares both datasets from them, and no
  injected command runs;
- every placeholder of every rule's shell command (the workflow as Snakemake parses it, with a config
  that defines every rule) ends in `:q`, and no shell command holds a quote character of its own.
Run alone: python -m pytest tests/test_shell_quoting.py -q
"""
from __future__ import annotations

import re
import string
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO, TINY_CONFIG, copy_project, snakemake  # noqa: E402
from test_datasets import idx_labels_bytes, random_cifar, write_cifar_batch, write_mnist  # noqa: E402

from gisweep.data import load_table  # noqa: E402

# Harmless as file names; a shell that reads them unquoted runs `touch`. The apostrophes close and
# reopen a hand-written pair of single quotes around the value, so the two substitutions run while
# the shell expands the command's arguments, even when the command itself then fails (after which
# `set -e` stops the shell before a `; touch` could run).
INJECTIONS = {
    "mnist_idx": "o'brien $(touch INJECTED_SUBST) `touch INJECTED_TICK` '",
    "cifar10": "my data; touch INJECTED_SEMI",
}


def _balanced(rng, n_per_class):
    return rng.permutation(np.repeat(np.arange(10), n_per_class))


def _write_mnist_idx(directory: Path, n_per_class: int) -> None:
    """The four official IDX files, n_per_class training images of every class."""
    rng = np.random.default_rng(0)
    write_mnist(directory, rng, n_train=10 * n_per_class, n_test=10)
    (directory / "train-labels-idx1-ubyte").write_bytes(idx_labels_bytes(_balanced(rng, n_per_class)))


def _write_cifar10(directory: Path, n_per_class: int) -> None:
    """The five official training batches and the test batch, n_per_class training images of every class."""
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True)
    labels = _balanced(rng, n_per_class).reshape(5, -1)
    for i, batch_labels in enumerate(labels, start=1):
        images, _ = random_cifar(rng, len(batch_labels))
        write_cifar_batch(directory / f"data_batch_{i}", images, batch_labels)
    images, test_labels = random_cifar(rng, 10)
    write_cifar_batch(directory / "test_batch", images, test_labels)


def _injected(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("INJECTED*") if not p.is_dir())


def test_dataset_directories_with_shell_syntax(tmp_path):
    """prepare_data (and the hull study's data) read the directories as named; `touch` never runs."""
    base = tmp_path / "data dir"  # a space in the parent as well
    dirs = {name: base / injection for name, injection in INJECTIONS.items()}
    config = yaml.safe_load(TINY_CONFIG.read_text())
    per_class = config["data"]["train_per_class"]
    hull_per_class = config["hull"]["train_per_class"]
    _write_mnist_idx(dirs["mnist_idx"], max(per_class, hull_per_class))
    _write_cifar10(dirs["cifar10"], per_class)
    config["datasets"].update(
        mnist_idx={"dir": str(dirs["mnist_idx"]), "dims": [7]},
        cifar10={"dir": str(dirs["cifar10"]), "dims": [8]},
    )
    project = copy_project(tmp_path / "project")
    (project / "quoting.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/mnist_idx/d7/data.parquet", "results/cifar10/d8/data.parquet",
               "results/mnist_idx/d7/hull/data.parquet"]

    res = snakemake(project, *targets, "--cores", "1", "--printshellcmds", config="quoting.yaml", timeout=300)

    injected = _injected(tmp_path, Path.cwd())
    assert not injected, f"a directory name ran as a command, creating {injected}:\n{res.stdout[-4000:]}"
    assert res.returncode == 0, res.stdout[-6000:]
    # the directories reached the command whole: each job read its files
    x, y, xt, _ = load_table(project / targets[0])
    assert x.shape == (10 * per_class, 7 * 7) and xt.shape == (10, 7 * 7)
    assert np.bincount(y).tolist() == [per_class] * 10
    x, y, xt, _ = load_table(project / targets[1])
    assert x.shape == (10 * per_class, 8 * 8 * 3) and xt.shape == (10, 8 * 8 * 3)
    x, _, _, _ = load_table(project / targets[2])
    assert x.shape == (10 * hull_per_class, 7 * 7)


# ---------------------------------------------------------------- every shell command, statically


def _every_rule_config(tmp_path: Path) -> Path:
    """The tiny config with every optional stage on, several seeds, a compared-only architecture and
    every dataset, so that every rule of workflow/rules/ is defined (some only exist under such settings)."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for name in ("idx", "cifar"):
        (tmp_path / name).mkdir()
    config["datasets"].update(
        moons={"dims": [2]},
        mnist_idx={"dir": str(tmp_path / "idx"), "dims": [7]},
        cifar10={"dir": str(tmp_path / "cifar"), "dims": [8]},
    )
    config["models"].update(seeds=[0, 1], compare_architectures=["2x8"], compare_at={"dataset": "mnist", "dim": 7})
    config["lines"]["families"] = ["pairs", "triangles"]
    for stage in ("cnn", "dynamics", "fractions", "along", "overparam"):
        config.setdefault(stage, {})["enabled"] = True
    config["cnn"]["dim"] = 7
    config["hull"].update(enabled=True, dims=[7], pixel_dims=[7], train_sizes=[10, 20], train_size_dim=7,
                          hidden_arch="1x16")
    path = tmp_path / "every_rule.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _parsed_rules(project: Path, config: Path):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[config], replace_workflow_config=True),
            snakefile=project / "Snakefile",
            workdir=project,
        )
        return list(workflow._workflow.rules)


def _placeholders(command: str) -> list[tuple[str, str]]:
    """(field, format spec) of every `{...}` of a shell command template (`{{` and `}}` are literal)."""
    return [(field, spec or "") for _, field, spec, _ in string.Formatter().parse(command) if field is not None]


def test_every_placeholder_is_quoted(tmp_path):
    project = copy_project(tmp_path / "project")
    rules = _parsed_rules(project, _every_rule_config(tmp_path))
    declared = {m.group(1) for f in (REPO / "workflow" / "rules").glob("*.smk")
                for m in re.finditer(r"^\s*rule (\w+):", f.read_text(), re.M)}
    parsed = {rule.name for rule in rules}
    assert declared <= parsed, f"rules not defined under the every-rule config, so not checked: {declared - parsed}"

    unquoted, quotes = [], []
    for rule in rules:
        command = rule.shellcmd
        if command is None:
            # a `run:` or `script:` would build its command out of sight of this check
            assert rule.name == "all", f"rule {rule.name} has no shell command"
            continue
        unquoted += [f"rule {rule.name}: {{{field}{':' + spec if spec else ''}}}"
                     for field, spec in _placeholders(command) if not spec.endswith("q")]
        if re.search(r"['\"]", command):
            quotes.append(f"rule {rule.name}: {command}")
    assert not unquoted, "placeholders without :q (Snakemake then pastes the value into the shell as it is):\n" + \
        "\n".join(unquoted)
    assert not quotes, "shell commands with quotes of their own (quote values with :q instead):\n" + "\n".join(quotes)


def test_the_check_sees_an_unquoted_placeholder():
    """The parser behind the static check: a bare `{params.dir}` is found, `{{literal}}` is not a placeholder."""
    found = _placeholders("cmd --dir {params.dir} --out {output.table:q} {{literal}} > {log:q}")
    assert found == [("params.dir", ""), ("output.table", "q"), ("log", "q")]
