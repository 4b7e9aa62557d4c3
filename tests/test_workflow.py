"""The real workflow, run locally on the tiny config (tests/configs/tiny.yaml): what Snakemake plans
after a figure is deleted or plotting code is edited, runs killed mid-training, config errors,
lint and report, the conda environment file, reproducibility, and the GPU requests the SLURM
executor turns the rules' `gpu` resource into.

Every run happens in a private copy of the project (tests/conftest.py: copy_project), never in
the checkout. To keep the file cheap, the runs build one slice of the tiny config, the MNIST
pair-GI figure and what it needs (FIG4_JOBS below: data, two trainings, two line sets, two GI
sweeps, the plot), not every default target.
Run alone: python -m pytest tests/test_workflow.py -q
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import (  # noqa: E402
    REPO,
    TINY_CONFIG,
    assert_same_results,
    copy_project,
    kill_group,
    local_env,
    run_ok,
    snakemake,
    snakemake_args,
)

FIG4 = "results/figures/fig4_gi_pairs_by_dim.png"
# the jobs that build FIG4 from nothing on the tiny config (one MNIST dimension, one architecture,
# one seed, real and random labels)
FIG4_JOBS = {
    "prepare_data": 1,
    "train_real": 1,
    "train_random": 1,
    "sample_lines": 2,
    "batched_gi": 2,
    "plot_gi_pairs_by_dim": 1,
}
FIG4_CAPTION = REPO / "workflow" / "report" / "fig4.rst"


# ---------------------------------------------------------------- reading snakemake's plans


def planned_jobs(output: str) -> Counter:
    """{rule: number of jobs} from the 'Job stats' table of a (dry) run; empty when nothing is to be done.

    Fails the test when the output has neither the table nor snakemake's 'Nothing to be done'.
    """
    if re.search(r"^Nothing to be done", output, flags=re.M):
        return Counter()
    match = re.search(r"^Job stats:\n.*?\n-+\s+-+\n(.*?)^total\s+(\d+)$", output, flags=re.M | re.S)
    assert match, f"no 'Job stats' table in snakemake's output:\n{output[-4000:]}"
    jobs = Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", match.group(1), flags=re.M)})
    assert sum(jobs.values()) == int(match.group(2)), match.group(0)
    return jobs


def planned_outputs(output: str) -> dict[str, list[str]]:
    """{rule: outputs of its planned jobs} from a dry run's job listing."""
    outputs: dict[str, list[str]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", output, flags=re.M):
        found = re.search(r"^    output: (.*)$", body, flags=re.M)
        outputs.setdefault(rule, []).extend(found.group(1).split(", ") if found else [])
    return outputs


def dry_run(project: Path, *targets: str) -> tuple[Counter, dict[str, list[str]]]:
    out = run_ok(project, "--dry-run", *targets)
    return planned_jobs(out), planned_outputs(out)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fig4_run(tmp_path_factory) -> Path:
    """A project copy in which FIG4 and everything it needs has been built (the reference run)."""
    project = copy_project(tmp_path_factory.mktemp("fig4_run"))
    assert planned_jobs(run_ok(project, "--dry-run", FIG4)) == FIG4_JOBS
    run_ok(project, "--cores", "2", FIG4)
    return project


@pytest.fixture(scope="module")
def fig4_run_again(tmp_path_factory) -> Path:
    """A second, independent build of FIG4 in its own copy (same config, same seeds).

    test_same_seed_same_results compares it with fig4_run; test_rerun_one_figure then moves a
    figure and touches source files in it, which changes no result.
    """
    project = copy_project(tmp_path_factory.mktemp("fig4_run_again"))
    run_ok(project, "--cores", "2", FIG4)
    return project


# ---------------------------------------------------------------- 6. same seed, same results


def test_same_seed_same_results(fig4_run, fig4_run_again):
    """Two independent runs of the same config write identical tables (bit for bit, provenance
    included apart from timings), identical model weights, and byte-identical figures."""
    counts = assert_same_results(fig4_run, fig4_run_again)
    # at least: data, 2 line sets, 2 training histories, 2 GI tables; 2 models
    assert counts["tables"] >= 7 and counts["models"] == 2, counts
    assert (fig4_run / FIG4).read_bytes() == (fig4_run_again / FIG4).read_bytes()


# ---------------------------------------------------------------- 1. rerun one figure


def _existing_results(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in (project / "results").rglob("*") if p.is_file()}


def test_rerun_one_figure(fig4_run_again):
    """After a complete run nothing is planned; a deleted figure is rebuilt by exactly one job;
    editing the plotting module re-plots without retraining (touching it does nothing: same
    checksum); editing the training module (control) re-trains and re-runs all downstream."""
    project = fig4_run_again
    figure = project / FIG4
    built = _existing_results(project)  # FIG4 and every file it needs
    assert dry_run(project, FIG4)[0] == Counter()
    # the default targets (other stages, not built here) re-make none of these files
    remade = {f for outs in dry_run(project)[1].values() for f in outs} & built
    assert remade == set(), remade

    # the figure deleted (moved aside): one job, the plot
    aside = project / "fig4.aside"
    figure.rename(aside)
    jobs, outputs = dry_run(project, FIG4)
    assert jobs == Counter(plot_gi_pairs_by_dim=1), jobs
    assert outputs == {"plot_gi_pairs_by_dim": [FIG4]}, outputs
    aside.rename(figure)  # back, with its mtime: up to date again
    assert dry_run(project, FIG4)[0] == Counter()

    # `--forcerun RULE` (-R) re-makes one figure on purpose: again one job
    jobs, _ = dry_run(project, "--forcerun", "plot_gi_pairs_by_dim", "--", FIG4)
    assert jobs == Counter(plot_gi_pairs_by_dim=1), jobs

    # plotting code touched, content unchanged: nothing. Snakemake >= 8 re-runs a job for an input
    # newer than its outputs only if the input's checksum differs from the one it recorded.
    figures_py = project / "src" / "gisweep" / "figures" / "gi.py"
    later = time.time() + 5
    os.utime(figures_py, (later, later))
    assert dry_run(project, FIG4)[0] == Counter()
    # plotting code edited: the plot, nothing else
    figures_py.write_text(figures_py.read_text() + "\n# edited by test_rerun_one_figure\n")
    jobs, outputs = dry_run(project, FIG4)
    assert jobs == Counter(plot_gi_pairs_by_dim=1), jobs
    # ... and asking for every default target: of the files already built, only the figure is
    # re-made (no data, training, lines or GI job)
    jobs, outputs = dry_run(project)
    remade = {f for outs in outputs.values() for f in outs} & built
    assert remade == {FIG4}, remade

    # control: training code edited, training and all that depends on it re-runs, data and lines do not
    train_py = project / "src" / "gisweep" / "train.py"
    train_py.write_text(train_py.read_text() + "\n# edited by test_rerun_one_figure\n")
    jobs, _ = dry_run(project, FIG4)
    assert jobs == Counter(train_real=1, train_random=1, batched_gi=2, plot_gi_pairs_by_dim=1), jobs


# ---------------------------------------------------------------- 2. interrupted run


def _processes_in(directory: Path) -> list[int]:
    """PIDs whose working directory is `directory` or below (the jobs of a run there)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == str(directory) or cwd.startswith(f"{directory}/"):
                pids.append(int(entry.name))
    return pids


def _assert_complete_or_absent(project: Path) -> list[str]:
    """Every file under results/ with a final name is complete: Parquet files read, models load.
    Returns the files found."""
    from gisweep.io import read_parquet
    from gisweep.models import load_model

    found = []
    for path in sorted((project / "results").rglob("*")):
        if not path.is_file() or path.name.startswith("."):  # .NAME.XXXX.tmp: an atomic write in progress
            continue
        rel = str(path.relative_to(project))
        if path.suffix == ".parquet":
            assert len(read_parquet(path).columns) > 0, rel
        elif path.suffix == ".pt":
            load_model(path)
        found.append(rel)
    return found


def test_interrupted_run_resumes_to_the_same_results(fig4_run, tmp_path):
    """SIGKILL the whole snakemake process group while a training job runs: no half-written file
    under a final name; after `--unlock`, `--rerun-incomplete` completes the run, with results
    equal to those of the uninterrupted reference run."""
    project = copy_project(tmp_path / "project")
    train_logs = project / "logs" / "train"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            snakemake_args(project, "--cores", "2", FIG4), cwd=project, env=local_env(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (train_logs.is_dir() and any(train_logs.iterdir())):
            assert proc.poll() is None, "snakemake ended before any training started\n" + (
                (tmp_path / "first.log").read_text()[-4000:]
            )
            assert time.monotonic() < deadline, "no training job started within 240 s"
            time.sleep(0.05)
        # a training job is running (its shell opened the log): kill snakemake and every job
        assert proc.poll() is None
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    assert _processes_in(project) == [], "a job of the killed run survived"
    assert not (project / FIG4).exists()

    found = _assert_complete_or_absent(project)
    models = [f for f in found if f.endswith("model.pt")]
    assert len(models) < 2, f"both trainings finished before the kill: {found}"
    leftovers = sorted(str(p.relative_to(project)) for p in (project / "results").rglob(".*.tmp"))
    print(f"\nafter the kill: {len(found)} complete files, models {models}, temporary files {leftovers}")

    # the killed snakemake left its lock: a new run (not a dry run) stops until `snakemake --unlock`
    locked = snakemake(project, "--cores", "2", "--rerun-incomplete", FIG4)
    assert locked.returncode != 0 and "LockException" in locked.stdout, locked.stdout[-4000:]
    assert not (project / FIG4).exists()
    run_ok(project, "--unlock")
    # then a plain run refuses outputs of jobs that were running (IncompleteFilesException) or, when
    # none had written any, plans the unfinished trainings again
    plain = snakemake(project, "--dry-run", FIG4)
    incomplete = "IncompleteFilesException" in plain.stdout
    print(f"plain rerun: exit {plain.returncode}, IncompleteFilesException: {incomplete}")
    if plain.returncode != 0:
        assert incomplete, plain.stdout[-4000:]
    else:
        planned = planned_jobs(plain.stdout)
        assert planned["train_real"] + planned["train_random"] == 2 - len(models), plain.stdout[-4000:]
    run_ok(project, "--cores", "2", "--rerun-incomplete", FIG4)
    assert dry_run(project, FIG4)[0] == Counter()
    assert_same_results(fig4_run, project)
    assert (fig4_run / FIG4).read_bytes() == (project / FIG4).read_bytes()


# ---------------------------------------------------------------- 3. config validation


@pytest.mark.parametrize(
    "section, value, expected",
    [
        ("train", {"learning_rate": 0.1}, ["learning_rate", "Additional properties are not allowed"]),
        ("train", {"max_epochs": "forty"}, ["'forty' is not of type 'integer'", "['train']['max_epochs']"]),
        ("models", {"architectures": ["3by128"]}, ["'3by128' does not match", "['models']['architectures'][0]"]),
        ("models", {"architectures": ["1x16", "0x128"]}, ["'0x128' does not match", "['models']['architectures'][1]"]),
        ("modles", {"seeds": [0]}, ["'modles' was unexpected"]),
        ("datasets", {"mnist": {"dims": [7], "train": {"optimiser": "adam"}}},
         ["optimiser", "['datasets']['mnist']['train']"]),
        ("train", {"optimizer": "rmsprop"}, ["'rmsprop' is not one of", "['train']['optimizer']"]),
        ("datasets", {"mnist": {"dims": [7], "train": {"optimizer": "sgdm"}}},
         ["'sgdm' is not one of", "['datasets']['mnist']['train']['optimizer']"]),
        ("models", {"seeds": [0, 1, 0]}, ["has non-unique elements", "['models']['seeds']"]),
        ("models", {"seeds": [0, -1]}, ["-1 is less than the minimum of 0", "['models']['seeds'][1]"]),
        ("models", {"seeds": [0, "one"]}, ["'one' is not of type 'integer'", "['models']['seeds'][1]"]),
        ("models", {"seeds": [0.5]}, ["0.5 is not of type 'integer'", "['models']['seeds'][0]"]),
        ("models", {"seeds": []}, ["[] should be non-empty", "['models']['seeds']"]),
        ("models", {"seeds": 3}, ["3 is not of type 'array'", "['models']['seeds']"]),
        ("models", {"seed": 0}, ["'seed' was unexpected", "Additional properties are not allowed"]),
        ("figures", {"seeds": [0]}, ["'seeds' was unexpected", "Additional properties are not allowed"]),
        ("figures", {"seed": "every"}, ["'every' is not valid under any of the given schemas", "['figures']['seed']"]),
        ("train", {"nesterov": True}, ["'nesterov' was unexpected", "Additional properties are not allowed"]),
    ],
    ids=["unknown-key", "wrong-type", "arch-3by128", "arch-0x128", "misspelt-section", "dataset-train-key",
         "unknown-optimizer", "unknown-dataset-optimizer", "seeds-repeated", "seed-negative", "seed-string",
         "seed-fraction", "seeds-empty", "seeds-not-a-list", "models-unknown-key", "figures-unknown-key",
         "figures-seed-word", "train-unknown-key"],
)
def test_bad_config_fails_naming_the_key(tmp_path, section, value, expected):
    """A bad value in a config given with --configfile stops `snakemake -n` before planning, with
    a message that names the key (its path) and the value at fault."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config[section] = {**config.get(section, {}), **value}
    project = copy_project(tmp_path / "project")
    (project / "bad.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(project, "--dry-run", config="bad.yaml")
    assert res.returncode != 0, res.stdout[-3000:]
    assert "Error validating config file" in res.stdout, res.stdout[-3000:]
    for text in expected:
        assert text in res.stdout, f"{text!r} not in:\n{res.stdout[-3000:]}"
    assert "Job stats" not in res.stdout


@pytest.mark.parametrize(
    "section, value, expected",
    [
        ("models", {"seeds": [0, 1.0]}, "config models.seeds: [1.0] are not non-negative integers"),
        ("figures", {"seed": 4}, "config figures.seed: 4 is not one of models.seeds [0, 1]"),
    ],
    ids=["seed-1.0", "figure-seed-not-trained"],
)
def test_bad_seeds_fail_naming_the_key(tmp_path, section, value, expected):
    """What the schema lets through (YAML's 1.0 is an integer to JSON schema; a figure seed that is not
    trained) stops `snakemake -n` at start, naming the key."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"]["seeds"] = [0, 1]
    config[section] = {**config.get(section, {}), **value}
    project = copy_project(tmp_path / "project")
    (project / "bad.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(project, "--dry-run", config="bad.yaml")
    assert res.returncode != 0 and expected in res.stdout, res.stdout[-3000:]
    assert "Job stats" not in res.stdout


def paper_project(tmp_path, extra=None):
    """A copy of the project with config.paper.yaml (plus `extra`, merged section by section)."""
    project = copy_project(tmp_path / "project")
    preset = yaml.safe_load((REPO / "config.paper.yaml").read_text())
    for section, value in (extra or {}).items():
        preset[section] = {**preset.get(section, {}), **value}
    (project / "config.paper.yaml").write_text(yaml.safe_dump(preset))
    return project


def test_paper_preset_plans(tmp_path):
    """config.paper.yaml, merged over config.yaml as the README says (`--configfile config.paper.yaml`),
    validates and plans: plain SGD at 0.01 without momentum everywhere, two moons included, three seeds."""
    project = paper_project(tmp_path)
    res = snakemake(project, "--dry-run", "--printshellcmds", "--configfile", "config.paper.yaml", config=None,
                    timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    # three seeds: each cell's seeds train together (train-batch)
    trains = [line for line in res.stdout.splitlines() if re.search(r"python -m gisweep train(-batch)? ", line)]
    assert trains and all("--optimizer sgd" in t and "--lr 0.01" in t and "--momentum 0.0" in t
                          and "--init-scale 0.05" in t and "--max-epochs 20000" in t and "--batch-size 32" in t
                          for t in trains), trains[:3]
    for seed in (0, 1, 2):
        assert any(f"moons/d2/3x128/random/s{seed}/model.pt" in t for t in trains)
    assert "results/tables/claims.md" in res.stdout


def test_paper_preset_unknown_key_fails(tmp_path):
    project = paper_project(tmp_path, {"train": {"momentun": 0.0}})
    res = snakemake(project, "--dry-run", "--configfile", "config.paper.yaml", config=None)
    assert res.returncode != 0 and "Error validating config file" in res.stdout, res.stdout[-3000:]
    assert "'momentun' was unexpected" in res.stdout and "Job stats" not in res.stdout


# ---------------------------------------------------------------- 4. lint and report


def test_lint_reports_nothing(tmp_path):
    """`snakemake --lint` finds nothing to complain about (log, conda env, params... on every rule)."""
    res = snakemake(copy_project(tmp_path), "--lint")
    assert res.returncode == 0, res.stdout[-6000:]
    assert "Congratulations, your workflow is in a good condition!" in res.stdout, res.stdout[-6000:]
    assert "Lints for rule" not in res.stdout and "Lints for snakefile" not in res.stdout, res.stdout[-6000:]


def _words(text: str) -> str:
    """Text without HTML tags, whitespace collapsed (reStructuredText rendering re-wraps lines)."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def _read_report(report: Path) -> tuple[dict, dict, dict[str, bytes], str]:
    """(results, categories, {file name: bytes}, log-free html) of a `snakemake --report x.zip` archive.

    results: {path: {"caption": html, "data_uri": ..., ...}} and categories: {category:
    {subcategory: [path, ...]}} are the JSON objects the report's page embeds.
    """
    import json

    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
        html = archive.read(next(n for n in names if n.endswith("/report.html"))).decode()
        files = {n.rsplit("/", 1)[-1]: archive.read(n) for n in names if "/data/raw/" in n}
    found = {}
    for var in ("results", "categories"):
        match = re.search(rf"^\s*var {var} = (\{{.*\}});$", html, flags=re.M)
        assert match, f"no `var {var} = ...` in the report's HTML"
        found[var] = json.loads(match.group(1))
    return found["results"], found["categories"], files, html


def test_report_has_the_figure_with_its_caption(fig4_run, tmp_path):
    """`snakemake --report report.zip` after a real run: the archive holds the figure byte for byte,
    with the text of workflow/report/fig4.rst as caption, under its category and subcategory."""
    report = tmp_path / "report.zip"
    out = run_ok(fig4_run, "--report", str(report), FIG4)
    assert "(ERROR/" not in out and "(WARNING/" not in out, out[-3000:]  # docutils on the captions
    results, categories, files, _ = _read_report(report)
    assert list(results) == [FIG4], list(results)
    assert files == {"fig4_gi_pairs_by_dim.png": (fig4_run / FIG4).read_bytes()}
    assert _words(results[FIG4]["caption"]) == _words(FIG4_CAPTION.read_text())
    assert categories == {"Generalization intervals": {"Input dimension": [FIG4]}}, categories


def test_report_covers_every_figure(tmp_path):
    """Every figure file the default targets make is in the report, with a caption that renders
    without reStructuredText errors and matches a file of workflow/report/, under a category
    (the experiment; a subcategory is optional). Checked on the whole tiny config without running
    it: every planned output is created as a placeholder (a valid 2x2 PNG for figures), which
    Snakemake then takes as built."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    project = copy_project(tmp_path / "project")
    outputs = {f for outs in dry_run(project)[1].values() for f in outs}
    figures = sorted(f for f in outputs if f.startswith("results/figures/"))
    assert FIG4 in figures, figures
    buf = io.BytesIO()
    plt.imsave(buf, np.zeros((2, 2, 3)), format="png")
    now = time.time()  # one mtime for all: no output is older than its inputs
    for rel in outputs:
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue() if rel.endswith(".png") else b"placeholder")
        os.utime(path, (now, now))
    assert dry_run(project)[0] == Counter(), "placeholders not taken as up to date"

    report = tmp_path / "report.zip"
    out = run_ok(project, "--report", str(report))
    problems = [
        f"reStructuredText: {line}" for line in re.findall(r"^.*\((?:ERROR|SEVERE|WARNING)/\d\).*$", out, flags=re.M)
    ]
    results, categories, files, _ = _read_report(report)
    captions = [_words(p.read_text()) for p in sorted((REPO / "workflow" / "report").glob("*.rst"))]
    categorised = {
        path: (cat, sub) for cat, subs in categories.items() for sub, paths in subs.items() for path in paths
    }
    for fig in figures:
        if fig not in results:
            problems.append(f"{fig}: not in the report (its rule's output lacks report(...))")
            continue
        caption = _words(results[fig]["caption"])
        if len(caption.split()) < 10 or not any(caption[:100] in c or c[:100] in caption for c in captions):
            problems.append(f"{fig}: caption {caption[:100]!r} is not the text of a workflow/report/*.rst file")
        if Path(fig).name not in files:
            problems.append(f"{fig}: file missing from the archive")
        cat, sub = categorised.get(fig, (None, None))
        if not cat or cat == "Other":  # the experiment it belongs to (a subcategory is optional)
            problems.append(f"{fig}: no category")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- 5. conda environment vs pyproject


# pyproject.toml dependencies the rule environment does not need, with the reason
NOT_IN_RULE_ENV = {
    # the workflow engine: it runs the rules (and activates envs/gisweep.yaml for them with
    # --use-conda); the jobs themselves run `python -m gisweep`, which never imports it
    "snakemake": "runs outside the rule environment",
}
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_requirement(spec: str) -> tuple[str, str]:
    """('name', 'version constraints without spaces') of a PEP 508 or conda match spec."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$", spec)
    assert match, spec
    return _normalise(match.group(1)), match.group(2).replace(" ", "")


def test_conda_env_matches_pyproject():
    """envs/gisweep.yaml lists every runtime dependency of pyproject.toml (torch as pytorch) with the
    same version constraint, and nothing else but python; snakemake, the engine, is the one
    documented exception. The package's own imports are all covered (checked in the sources)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(_split_requirement(r) for r in project["dependencies"])
    env = yaml.safe_load((REPO / "envs" / "gisweep.yaml").read_text())
    listed = {}
    for entry in env["dependencies"]:
        assert isinstance(entry, str), f"envs/gisweep.yaml: unexpected entry {entry!r} (pip section?)"
        name, constraint = _split_requirement(entry)
        listed[name] = constraint
    assert listed.pop("python", None), "envs/gisweep.yaml does not pin python"
    expected = {CONDA_NAMES.get(n, n): c for n, c in wanted.items() if n not in NOT_IN_RULE_ENV}
    missing = sorted(expected.keys() - listed.keys())
    extra = sorted(listed.keys() - expected.keys())
    assert not missing, f"envs/gisweep.yaml lacks pyproject.toml dependencies {missing}"
    assert not extra, f"envs/gisweep.yaml lists {extra}, which pyproject.toml does not"
    differ = {n: (expected[n], listed[n]) for n in expected if expected[n] != listed[n]}
    assert not differ, f"version constraints differ (pyproject.toml, envs/gisweep.yaml): {differ}"
    requires = re.search(r"([\d.]+)", project["requires-python"]).group(1)
    assert env["dependencies"][0].startswith("python=") and requires in env["dependencies"][0]

    # the exception holds: no module of the package imports snakemake
    for path in (REPO / "src" / "gisweep").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+snakemake\b", path.read_text(), flags=re.M), path


def test_every_rule_names_the_environment():
    """Every rule of the workflow has `conda: ENV`, and ENV resolves to envs/gisweep.yaml."""
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    env_rel = re.search(r'^ENV = "([^"]+)"', common, flags=re.M).group(1)
    assert (REPO / "workflow" / "rules" / env_rel).resolve() == (REPO / "envs" / "gisweep.yaml").resolve()
    blocks = _rule_blocks()
    assert FIG4_JOBS.keys() <= blocks.keys(), sorted(blocks)
    for name, body in blocks.items():
        assert re.search(r"^(\s+)conda:\n\1    ENV$", body, flags=re.M), f"rule {name} names no ENV"


# ---------------------------------------------------------------- GPU requests through the SLURM executor


FAKE_SBATCH = """#!/bin/sh
# records the call, then refuses it: nothing is ever submitted
printf '%s\\n' "$*" >> "{calls}"
echo "sbatch: error: fake sbatch of tests/test_workflow.py" >&2
exit 1
"""
# the executor also calls these; on this machine they need not exist
# (`sinfo -o %P` names the partitions, the default one starred; sacct fails as on a cluster without accounting)
FAKE_OTHERS = {
    "sinfo": "printf 'PARTITION\\nfakedefault*\\nfakegpu\\n'",
    "sacct": "exit 1",
    "sshare": "exit 1",
    "squeue": "exit 0",
    "scancel": "exit 0",
}
GPU_RULES = {"train_real", "train_random", "batched_gi"}
# targets that make one job of each rule below runnable at once, given the placeholder inputs
PLACEHOLDERS = [
    "results/mnist/d7/data.parquet",
    "results/mnist/d7/real/s0/lines_pairs.parquet",
    "results/mnist/d7/random/s0/lines_pairs.parquet",
    "results/mnist/d7/1x16/real/s0/gi_pairs.parquet",
    "results/mnist/d7/1x16/random/s0/gi_pairs.parquet",
    "results/mnist/d7/2x8/real/s0/model.pt",
]
TARGETS = {
    "train_real": "results/mnist/d7/1x16/real/s1/model.pt",
    "train_random": "results/mnist/d7/1x16/random/s1/model.pt",
    "batched_gi": "results/mnist/d7/2x8/real/s0/gi_pairs.parquet",
    "prepare_data": "results/mnist/d14/data.parquet",
    "sample_lines": "results/mnist/d7/real/s1/lines_pairs.parquet",
    "plot_gi_pairs_by_dim": FIG4,
}


def _sbatch_calls(project: Path, device: str, *profiles: str) -> dict[str, str]:
    """{rule: sbatch arguments} the SLURM executor uses for one job of each rule in TARGETS."""
    bin_dir = project / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    calls = project / f"sbatch-calls-{device}-{len(profiles)}.txt"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(calls=calls))
    for name, body in FAKE_OTHERS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["device"] = device
    (project / f"{device}.yaml").write_text(yaml.safe_dump(config))
    env = dict(local_env(), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    profile_args = [a for p in profiles for a in ("--profile", str(REPO / "workflow" / "profiles" / p))]
    res = snakemake(
        project, *profile_args, "--slurm-init-seconds-before-status-checks", "1", *TARGETS.values(),
        config=f"{device}.yaml", env=env, timeout=180,
    )  # fmt: skip
    assert res.returncode != 0, res.stdout[-4000:]  # every submission refused
    lines = calls.read_text().splitlines() if calls.exists() else []
    by_rule = {}
    for line in lines:
        rule = re.search(r"--comment (?:')?rule_(\w+?)(?:_wildcards_\S*)?(?:')?(?: |$)", line).group(1)
        by_rule[rule] = line
    assert by_rule.keys() == TARGETS.keys(), (sorted(by_rule), res.stdout[-4000:])
    return by_rule


@pytest.fixture(scope="module")
def slurm_project(tmp_path_factory) -> Path:
    pytest.importorskip("snakemake_executor_plugin_slurm")
    project = copy_project(tmp_path_factory.mktemp("fake_slurm"))
    for rel in PLACEHOLDERS:  # newer than the sources: up to date without metadata
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(b"placeholder")
    return project


def test_cuda_config_asks_sbatch_for_gpus(slurm_project):
    """device: cuda -> the rules' gpu=gpus() resource is 1 -> the executor adds --gpus=1 to the
    sbatch calls of the GPU rules (and drops --ntasks, as it does for GPU jobs); CPU rules ask for none."""
    calls = _sbatch_calls(slurm_project, "cuda", "slurm")
    for rule, call in calls.items():
        if rule in GPU_RULES:
            assert re.search(r" --gpus=1(\s|$)", call), (rule, call)
        else:
            assert "--gpus" not in call and "--gres" not in call, (rule, call)
            assert "--ntasks=1" in call, (rule, call)
        assert " -t 60" in call and " --mem 4000" in call, (rule, call)  # the profile's defaults
        assert " -p fakedefault" in call, (rule, call)  # no partition set: the cluster's default


def test_cpu_config_asks_for_no_gpu_unless_the_overlay_says_so(slurm_project):
    """device: cpu -> gpu=0 -> no --gpus/--gres anywhere; the slurm-gpu overlay profile adds
    --gpus=1 to the GPU rules (for device: auto)."""
    calls = _sbatch_calls(slurm_project, "cpu", "slurm")
    assert all("--gpus" not in c and "--gres" not in c for c in calls.values()), calls
    calls = _sbatch_calls(slurm_project, "cpu", "slurm", "slurm-gpu")
    for rule, call in calls.items():
        assert (re.search(r" --gpus=1(\s|$)", call) is not None) == (rule in GPU_RULES), (rule, call)


def _rule_blocks() -> dict[str, str]:
    """{rule name: its text} for every rule of the workflow's .smk files."""
    blocks = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        # rules at the top level, or indented under an `if` (rules that exist for some configs only)
        for block in re.split(r"^(?=[ ]*rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            indent, name = re.match(r"([ ]*)rule (\w+):", block).groups()
            body = block.split("\n", 1)[1] if "\n" in block else ""
            # up to the next line at the rule's own indentation or less
            blocks[name] = re.split(rf"^(?![ ]{{{len(indent) + 1},}})(?=\S|[ ]{{0,{len(indent)}}}\S)", body,
                                    maxsplit=1, flags=re.M)[0]
    return blocks


def test_gpu_overlay_lists_exactly_the_gpu_rules():
    """The slurm-gpu overlay gives `gpu: 1` to exactly the rules that declare `gpu=gpus()`."""
    gpu_rules = {name for name, body in _rule_blocks().items() if re.search(r"^\s+gpu=gpus\(\),?$", body, flags=re.M)}
    assert GPU_RULES <= gpu_rules, gpu_rules
    overlay = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    assert set(overlay) == {"set-resources"}, overlay.keys()
    in_overlay = {rule for rule, res in overlay["set-resources"].items() if res.get("gpu") == 1}
    assert in_overlay == gpu_rules, (sorted(in_overlay - gpu_rules), sorted(gpu_rules - in_overlay))
