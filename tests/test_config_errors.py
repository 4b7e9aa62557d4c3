"""Config mistakes stop `snakemake -n` at start with a message a user can act on: a file that does not
parse names the file, line and column; a key given twice names the key, the file and both lines; an
unknown key names its path and the nearest valid key; a wrong type names the key, the value and what
was expected. Each short line comes before jsonschema's wording, and Snakemake's schema dump is gone.
Run alone: python -m pytest tests/test_config_errors.py -q
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TINY_CONFIG, copy_project, snakemake  # noqa: E402

from gisweep.config_check import ConfigError, expected, load_config_file  # noqa: E402


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("config_errors"))


def _fails(project: Path, config: str, *, configfile: bool = True) -> str:
    res = snakemake(project, "--dry-run", config=config if configfile else None)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "Job stats" not in res.stdout, res.stdout[-3000:]
    return res.stdout


def _tiny_with(project: Path, name: str, **sections) -> str:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for section, value in sections.items():
        config[section] = {**config.get(section, {}), **value}
    (project / name).write_text(yaml.safe_dump(config))
    return name


def test_config_yaml_syntax_error_names_file_line_and_column(tmp_path):
    """config.yaml is parsed by the Snakefile first (Snakemake's own message names neither file nor line)."""
    broken = copy_project(tmp_path / "broken")
    text = (broken / "config.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text) if t.startswith("train:")) + 2  # 1-based line below `train:`
    text.insert(line - 1, "  lr: 0.01: 0.02")  # a second `:` after a plain scalar
    (broken / "config.yaml").write_text("\n".join(text) + "\n")
    out = _fails(broken, "", configfile=False)
    assert f"config file config.yaml, line {line}, column 11: not valid YAML: mapping values are not allowed here" \
        in out, out[-3000:]
    assert "Config file is not valid JSON or YAML" not in out, out[-3000:]


def test_duplicate_key_names_the_key_file_and_lines(project):
    text = TINY_CONFIG.read_text().replace("  max_epochs: 40\n", "  max_epochs: 40\n  max_epochs: 400\n", 1)
    assert text != TINY_CONFIG.read_text()
    (project / "dup.yaml").write_text(text)
    first = text.splitlines().index("  max_epochs: 40") + 1
    out = _fails(project, "dup.yaml")
    assert (f"config file dup.yaml, line {first + 1}: key train.max_epochs is given twice (first on line {first});"
            " YAML would keep only the last value") in out, out[-3000:]


def test_duplicate_top_level_key_in_config_yaml(tmp_path):
    dup = copy_project(tmp_path / "dup")
    (dup / "config.yaml").write_text((dup / "config.yaml").read_text() + "\ndevice: cuda\n")
    out = _fails(dup, "", configfile=False)
    assert "config file config.yaml, line" in out and "key device is given twice" in out, out[-3000:]


@pytest.mark.parametrize(
    "sections, line",
    [
        ({"train": {"momentun": 0.9}}, "train.momentun (in tiny_bad.yaml): unknown key; did you mean 'momentum'?"),
        ({"modles": {"seeds": [0]}}, "modles (in tiny_bad.yaml): unknown key; did you mean 'models'?"),
        ({"hull": {"n_randum": 3}}, "hull.n_randum (in tiny_bad.yaml): unknown key; did you mean 'n_random'?"),
        ({"train": {"zzz": 1}}, "train.zzz (in tiny_bad.yaml): unknown key; the keys here are optimizer, lr, "
                                "momentum, batch_size, max_epochs, init_scale"),
        ({"train": {"max_epochs": "forty"}},
         "train.max_epochs (in tiny_bad.yaml): 'forty' is not of type 'integer'; expected an integer >= 1"),
        ({"models": {"seeds": [0, "one"]}},
         "models.seeds[1] (in tiny_bad.yaml): 'one' is not of type 'integer'; expected an integer >= 0"),
        ({"train": {"optimizer": "adan"}},
         "train.optimizer (in tiny_bad.yaml): 'adan' is not one of ['sgd', 'adam']; did you mean 'adam'?"),
        ({"figures": {"seed": "every"}}, "figures.seed (in tiny_bad.yaml): 'every' is not valid under any of the "
                                         "given schemas; expected an integer >= 0 or 'all'"),
    ],
    ids=["near-miss-key", "near-miss-section", "near-miss-hull-key", "unknown-key-no-near-miss", "wrong-type",
         "wrong-item-type", "near-miss-enum", "neither-alternative"],
)
def test_schema_problem_gets_one_short_line(project, sections, line):
    out = _fails(project, _tiny_with(project, "tiny_bad.yaml", **sections))
    assert "Error validating config file(s) tiny_bad.yaml against config.schema.yaml:\n  " + line in out, out[-3000:]
    assert out.index(line) < out.index("schema detail:"), out[-3000:]
    assert "Failed validating" not in out and "'description':" not in out, "the schema dump is back:\n" + out[-3000:]
    assert len(out.splitlines()) < 20, out


def test_every_problem_is_listed(project):
    out = _fails(project, _tiny_with(project, "two_bad.yaml", train={"momentun": 0.9}, gi={"dtype": "float16"}))
    assert "  gi.dtype (in two_bad.yaml): 'float16' is not one of" in out, out[-3000:]
    assert "  train.momentun (in two_bad.yaml): unknown key" in out, out[-3000:]


def test_problem_names_the_file_that_sets_the_key(project):
    """Of several --configfile files, the one whose value is at fault (later files override earlier ones)."""
    (project / "over.yaml").write_text("train:\n  max_epochs: 0\n")
    res = snakemake(project, "--configfile", str(project / "tiny.yaml"), str(project / "over.yaml"),
                    "--replace-workflow-config", "--dry-run", config=None)
    assert res.returncode != 0
    assert "Error validating config file(s) tiny.yaml, over.yaml against config.schema.yaml:\n" \
           "  train.max_epochs (in over.yaml): 0 is less than the minimum of 1\n" in res.stdout, res.stdout[-3000:]


def test_value_from_the_command_line_names_no_file(project):
    res = snakemake(project, "--dry-run", "--config", "device=gpu")
    assert res.returncode != 0
    assert "\n  device: 'gpu' does not match '^(auto|cpu|cuda(:[0-9]+)?)$'\n" in res.stdout, res.stdout[-3000:]


def test_config_check_command_names_file_and_line(tmp_path):
    """Snakemake parses --configfile files before the workflow starts and names neither file nor line
    when one does not parse; `python -m gisweep.config_check` does."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: cpu\ntrain:\n  lr: 0.01\n   momentum: 0.9\n")
    res = subprocess.run([sys.executable, "-m", "gisweep.config_check", str(TINY_CONFIG), str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"config file {bad}, line 4, column 12: not valid YAML" in res.stderr, res
    res = subprocess.run([sys.executable, "-m", "gisweep.config_check", str(TINY_CONFIG)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res


def test_loader_keeps_what_safe_load_reads(tmp_path):
    """The strict loader changes nothing about a valid file: same values as yaml.safe_load (anchors too)."""
    path = tmp_path / "ok.yaml"
    path.write_text(TINY_CONFIG.read_text() + "\nextra: &a {x: 1}\nmore: *a\nlist: [{a: 1}, {a: 1}]\n")
    assert load_config_file(path) == yaml.safe_load(path.read_text())
    path.write_text("list:\n  - {a: 1, b: 2, a: 3}\n")
    with pytest.raises(ConfigError, match=r"line 2: key list\[0\]\.a is given twice"):
        load_config_file(path)
    path.write_text('{\n\t"train": {"lr": 0.1, "lr": 0.2}}')  # JSON, as Snakemake also reads
    with pytest.raises(ConfigError, match=r"key 'lr' is given twice in one object"):
        load_config_file(path)


@pytest.mark.parametrize(
    "schema, words",
    [
        ({"type": "integer", "minimum": 1}, "an integer >= 1"),
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "a number > 0 <= 1"),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "uniqueItems": True},
         "a list of an integer with at least 1 item without repeats"),
        ({"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^a$"}]}, "null or a string matching ^a$"),
    ],
)
def test_expected_in_words(schema, words):
    assert expected(schema) == words
