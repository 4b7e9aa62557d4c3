"""Which source files a command runs: the import closure of its module, read with `ast`.

Snakemake reruns a job when one of its inputs changes; a rule's code inputs are the files of the
package that its command can execute. They are computed here from the `import` statements (module
level and inside functions alike), never listed by hand, so an edit to any module a job runs
reruns that job, and an edit to plotting code reruns only plot jobs. Standard library only: the
Snakefile imports this while it is parsed.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "gisweep"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """gisweep.a.b -> .../gisweep/a/b.py or .../gisweep/a/b/__init__.py; None if not a package module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first: a, a.b."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@lru_cache(maxsize=None)
def direct_imports(module: str, package_dir: Path = PACKAGE_DIR) -> tuple[frozenset[str], frozenset[str]]:
    """(package modules, top-level names of other modules) that `module` imports anywhere in its file."""
    path = module_file(module, package_dir)
    if path is None:
        raise ModuleNotFoundError(f"{module}: no such module in {package_dir}")
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from gisweep import data` imports the module gisweep.data
            names.update(f"{base}.{alias.name}" for alias in node.names)
    ours, theirs = set(), set()
    for name in names:
        if name.split(".")[0] == PACKAGE:
            if module_file(name, package_dir) is not None:
                ours.update(p for p in [*_parents(name), name])
        elif name and name.split(".")[0] != "__future__":
            theirs.add(name.split(".")[0])
    ours.discard(module)
    return frozenset(ours), frozenset(theirs)


def closure(module: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every package module that running `module` can import (itself and its parents included), sorted."""
    seen, todo = set(), [*_parents(module), module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name, package_dir)[0] - seen)
    return sorted(seen)


def closure_files(module: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of `closure(module)`."""
    return [module_file(m, package_dir) for m in closure(module, package_dir)]


def external_imports(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Top-level names of the non-package modules that anything in `closure(module)` imports."""
    return {name for m in closure(module, package_dir) for name in direct_imports(m, package_dir)[1]}
