"""Code inputs come from the imports; plotting stays apart from computing; the CLI imports lazily.

- every rule that runs `python -m gisweep CMD` has as `code` input exactly the import closure of
  CMD's module (gisweep.code_inputs), and that set is closed under imports, checked both with `ast`
  and, independently, against the modules a real interpreter loads;
- no rule that writes a table, and no compute module, depends on matplotlib, seaborn or gisweep.figures;
- the package has no import cycle;
- cli.COMMANDS and the modules' register_cli agree; an unknown command is a clear error;
- after every output of the tiny config exists, editing any figure module plans only plot jobs.
Run alone: python -m pytest tests/test_code_inputs.py -q
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO, TINY_CONFIG, copy_project, run_ok  # noqa: E402

from gisweep import code_inputs  # noqa: E402
from gisweep.cli import COMMANDS, main  # noqa: E402

PLOTTING = {"matplotlib", "seaborn"}
GISWEEP_COMMAND = re.compile(r"python -m gisweep ([a-z0-9-]+)")


def _load_rules(project: Path, config: Path):
    """The parsed workflow's rules (Snakemake's API; nothing is run)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[config]),
            snakefile=project / "Snakefile",
            workdir=project,
        )
        return list(workflow._workflow.rules)


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("rules"))
    return project, _load_rules(project, project / "tiny.yaml")


def _rule_command(rule) -> str | None:
    found = GISWEEP_COMMAND.findall(rule.shellcmd or "")
    assert len(found) <= 1, f"rule {rule.name} runs several gisweep commands: {found}"
    return found[0] if found else None


def _code_modules(files) -> set[str]:
    """gisweep module names of source files (paths relative to the run directory)."""
    names = set()
    for f in files:
        parts = Path(f).with_suffix("").parts
        parts = parts[parts.index("gisweep"):]
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_rule_has_the_import_closure_of_its_command(rules):
    project, parsed = rules
    problems, commands_seen = [], set()
    for rule in parsed:
        if rule.name == "all":
            continue
        command = _rule_command(rule)
        if command is None:
            problems.append(f"rule {rule.name}: runs no `python -m gisweep COMMAND`")
            continue
        commands_seen.add(command)
        if command not in COMMANDS:
            problems.append(f"rule {rule.name}: command {command} is not in gisweep.cli.COMMANDS")
            continue
        named = dict(rule.input.items())
        if "code" not in named:
            problems.append(f"rule {rule.name}: no `code` input")
            continue
        have = _code_modules(named["code"])
        want = set(code_inputs.closure(COMMANDS[command][0]))
        if have != want:
            problems.append(f"rule {rule.name} ({command}): code inputs miss {sorted(want - have)}, "
                            f"have extra {sorted(have - want)}")
        # closed under imports: everything a listed module imports is listed too
        for module in have:
            missing = code_inputs.direct_imports(module)[0] - have
            if missing:
                problems.append(f"rule {rule.name}: {module} imports {sorted(missing)}, not in its code inputs")
        # the files exist, relative to the run directory, inside the copy (not the checkout)
        for f in named["code"]:
            if not (project / f).is_file():
                problems.append(f"rule {rule.name}: code input {f} is not a file of the project")
    assert not problems, "\n".join(problems)
    assert len(commands_seen) >= 15, commands_seen


def _loaded_modules(module: str) -> set[str]:
    """The gisweep modules a fresh interpreter has loaded after importing `module`."""
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'gisweep' or m.startswith('gisweep.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", sorted({m for m, _ in COMMANDS.values()}))
def test_closure_covers_what_python_loads(module):
    """An independent check of the ast reading: every gisweep module that importing the command's
    module really loads is in the closure (function-level imports are in the closure too, so the
    closure may be larger, never smaller)."""
    loaded = _loaded_modules(module)
    closure = set(code_inputs.closure(module))
    assert loaded <= closure, f"{module}: loaded but not in the closure: {sorted(loaded - closure)}"


def test_closure_reads_every_kind_of_import(tmp_path):
    """Module- and function-level imports, `from gisweep import mod`, relative imports, parents."""
    pkg = tmp_path / "gisweep"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "import numpy\nfrom gisweep import b\n",
        "b.py": "def f():\n    from .sub import c\n    import gisweep.d as dd\n",
        "d.py": "from gisweep.b import f\n",  # a cycle back to b: terminates
        "e.py": "import matplotlib.pyplot\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..e import x\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    code_inputs.direct_imports.cache_clear()
    try:
        assert code_inputs.closure("gisweep.a", pkg) == [
            "gisweep", "gisweep.a", "gisweep.b", "gisweep.d", "gisweep.e", "gisweep.sub", "gisweep.sub.c"]
        assert code_inputs.external_imports("gisweep.a", pkg) == {"numpy", "matplotlib"}
        assert code_inputs.closure("gisweep.d", pkg)[-1] == "gisweep.sub.c"
        with pytest.raises(ModuleNotFoundError, match="gisweep.nope"):
            code_inputs.closure("gisweep.nope", pkg)
    finally:
        code_inputs.direct_imports.cache_clear()


def test_compute_never_depends_on_plotting(rules):
    """No compute module imports matplotlib, seaborn or gisweep.figures (through any module), and
    every rule that writes a table (Parquet, CSV, Markdown) is a compute rule."""
    problems = []
    for command, (module, _) in COMMANDS.items():
        is_plot = module.startswith("gisweep.figures.")
        assert is_plot == command.startswith("plot-"), f"{command}: plot commands, and only they, live in figures/"
        if not is_plot:
            bad = code_inputs.external_imports(module) & PLOTTING
            bad |= {m for m in code_inputs.closure(module) if m.startswith("gisweep.figures")}
            if bad:
                problems.append(f"{command} ({module}) depends on plotting: {sorted(bad)}")
    _, parsed = rules
    for rule in parsed:
        command = _rule_command(rule)
        tables = [f for f in rule.output if f.endswith((".parquet", ".csv", ".md"))]
        if command and tables and COMMANDS[command][0].startswith("gisweep.figures."):
            problems.append(f"rule {rule.name}: a plot command writes tables {tables}")
    assert not problems, "\n".join(problems)


def test_the_package_has_no_import_cycle():
    src = REPO / "src" / "gisweep"
    modules = sorted(
        ".".join(("gisweep", *p.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
        for p in src.rglob("*.py")
    )
    graph = {m: {d for d in code_inputs.direct_imports(m)[0] if not m.startswith(d + ".") and d != "gisweep"}
             for m in modules}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(d):], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [m])


def test_command_table_matches_the_modules():
    """Each module adds exactly the commands the table gives it, so a command is never reachable
    only through another one's import."""
    by_module: dict[str, set[str]] = {}
    for command, (module, _) in COMMANDS.items():
        by_module.setdefault(module, set()).add(command)
    for module, commands in by_module.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register_cli(sub)
        assert set(sub.choices) == commands, module


def test_unknown_command_is_a_clear_error(capsys):
    assert main(["batched-gj"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'batched-gj'" in err and "batched-gi" in err
    assert main([]) == 2 and "commands:" in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


def test_help_imports_nothing_heavy():
    """`gisweep --help` lists every command without importing a stage module or torch."""
    code = ("import sys; from gisweep.cli import main; main(['--help']); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'gisweep.gi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout
    assert out.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- editing a figure module


CONFIG = "tiny_all.yaml"  # the tiny config with the opt-in stages on, so every figure module is used


def _planned(project: Path) -> Counter:
    out = run_ok(project, "--dry-run", config=CONFIG)
    if re.search(r"^Nothing to be done", out, flags=re.M):
        return Counter()
    table = re.search(r"^Job stats:\n.*?\n-+\s+-+\n(.*?)^total\s+(\d+)$", out, flags=re.M | re.S)
    assert table, out[-3000:]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table.group(1), flags=re.M)})


def _outputs(project: Path) -> list[str]:
    out = run_ok(project, "--dry-run", "--forceall", config=CONFIG)
    return [f for block in re.findall(r"^    output: (.*)$", out, flags=re.M) for f in block.split(", ")]


@pytest.mark.slow
def test_editing_any_figure_module_plans_only_plot_jobs(tmp_path):
    """The whole tiny config's outputs made to exist (placeholders with one mtime, as after a run),
    then each module of gisweep/figures edited in turn: the plan holds plot jobs only, and at least
    one. A compute module edited (control) plans compute jobs."""
    project = copy_project(tmp_path / "project")
    import yaml

    config = yaml.safe_load((project / "tiny.yaml").read_text())
    config["cnn"] = {"enabled": True, "dim": config["datasets"]["mnist"]["dims"][0],
                     "mlp_arch": config["models"]["architectures"][0]}
    config.setdefault("hull", {})["dimension"] = {"enabled": True}  # opt-in, with a figure module of its own
    (project / CONFIG).write_text(yaml.safe_dump(config))
    outputs = _outputs(project)
    assert any(f.startswith("results/figures/") for f in outputs)
    now = time.time()
    for rel in outputs:
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder")
        os.utime(path, (now, now))
    assert _planned(project) == Counter(), "placeholders not taken as up to date"

    figure_modules = sorted((project / "src" / "gisweep" / "figures").glob("*.py"))
    assert len(figure_modules) >= 5, figure_modules
    later = now + 60
    for module in figure_modules:
        before = module.read_text()
        module.write_text(before + "\n# edited by the test\n")
        os.utime(module, (later, later))
        jobs = _planned(project)
        jobs.pop("all", None)  # the default target's own (local) job
        if module.name != "__init__.py":
            assert jobs, f"editing {module.name} plans nothing"
        assert all(rule.startswith("plot_") for rule in jobs), f"editing figures/{module.name} plans {dict(jobs)}"
        module.write_text(before)
        os.utime(module, (now - 60, now - 60))
        assert _planned(project) == Counter()

    # control: a compute module edited plans compute jobs
    io_py = project / "src" / "gisweep" / "data.py"
    io_py.write_text(io_py.read_text() + "\n# edited by the test\n")
    os.utime(io_py, (later, later))
    jobs = _planned(project)
    assert jobs["prepare_data"] >= 1 and any(not r.startswith("plot_") for r in jobs), jobs
    assert TINY_CONFIG.is_file()
