"""Config files checked as strictly as a user needs: YAML that does not parse is an error naming the
file, line and column; a key given twice in one mapping is an error (PyYAML keeps the last value
silently); a value the schema rejects gets one short line (key path, what was expected, the nearest
valid key) before jsonschema's own wording.

The Snakefile calls check_config_files on config.yaml and the --configfile files, then
schema_problems when Snakemake's `validate` fails. Standard library, PyYAML and jsonschema only
(Snakemake's own dependencies): cheap when the workflow is parsed.

Snakemake reads --configfile files itself before the Snakefile runs, and says only "Config file is
not valid JSON or YAML" when one does not parse; `python -m gisweep.config_check FILE...` names the
file and line of the error.
"""
from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

import yaml

from gisweep import GisweepError


class ConfigError(GisweepError):
    """A config file that does not parse, repeats a key, or holds a value the schema rejects."""


def _check_unique_keys(node, parts, path) -> None:
    """ConfigError naming the key path, file and lines of a key given twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and (key_node.tag, key) in seen:
                raise ConfigError(
                    f"config file {path}, line {line}: key {_key_path([*parts, key])} is given twice "
                    f"(first on line {seen[key_node.tag, key]}); YAML would keep only the last value, so remove one"
                )
            seen[key_node.tag, key] = line
            _check_unique_keys(value_node, [*parts, key], path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, [*parts, i], path)


def _unique_json_keys(pairs, path) -> dict:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ConfigError(f"config file {path}: key {twice[0]!r} is given twice in one object; JSON readers "
                          "keep only the last value, so remove one")
    return dict(pairs)


def load_config_file(path: str | Path) -> dict:
    """A YAML (or JSON) config file, parsed strictly; ConfigError names the file and line of a syntax
    error or of a key given twice."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path}: cannot be read ({e})") from None
    try:  # Snakemake reads a file as JSON first, then as YAML (which would reject JSON's tab indentation)
        data = json.loads(text, object_pairs_hook=lambda pairs: _unique_json_keys(pairs, path))
    except ValueError:
        pass
    else:
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: holds a {type(data).__name__}, not a mapping of config keys")
        return data
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_unique_keys(node, [], path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = "; ".join(part for part in (e.context, e.problem) if part)
        raise ConfigError(f"config file {where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path}: not valid YAML: {e}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: holds a {type(data).__name__}, not a mapping of config keys")
    return data


def check_config_files(paths) -> dict[str, dict]:
    """{path: contents} of the files that exist, each parsed strictly (load_config_file); paths below
    the working directory are shown relative to it."""
    shown = [os.path.relpath(p) if not os.path.relpath(p).startswith("..") else str(p) for p in paths]
    return {p: load_config_file(p) for p in dict.fromkeys(shown) if Path(p).is_file()}


# ---------------------------------------------------------------------------------------------------
# schema problems, one short line each


def _key_path(parts) -> str:
    """models.seeds[1] for ['models', 'seeds', 1]."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
          "array": "a list", "object": "a mapping", "null": "null"}


def expected(schema: dict) -> str:
    """What a (sub)schema accepts, in words: 'an integer >= 1', "one of 'sgd', 'adam'", ..."""
    if not isinstance(schema, dict):
        return "anything" if schema is True else "nothing"
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return " or ".join(expected(sub) for sub in schema[combinator])
    if "enum" in schema:
        values = ", ".join(repr(v) for v in schema["enum"])
        return values if len(schema["enum"]) == 1 else f"one of {values}"
    if "const" in schema:
        return repr(schema["const"])
    types = schema.get("type", [])
    words = " or ".join(_TYPES.get(t, t) for t in ([types] if isinstance(types, str) else types)) or "a value"
    bounds = [f"{op} {schema[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                    ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    if "pattern" in schema:
        bounds.append(f"matching {schema['pattern']}")
    if "items" in schema:
        bounds.append(f"of {expected(schema['items'])}")
    if "minItems" in schema:
        bounds.append(f"with at least {schema['minItems']} item{'s' * (schema['minItems'] != 1)}")
    if schema.get("uniqueItems"):
        bounds.append("without repeats")
    return " ".join([words, *bounds])


def _nearest(word, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_MISSING = object()


def _source(parts, value, files: dict[str, dict]) -> str:
    """' (in FILE)': the last config file that sets the key path to `value` (later files override
    earlier ones; a value set with --config is in none of them)."""
    for name, data in reversed(files.items()):
        node = data
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                node = _MISSING
                break
        if node is not _MISSING and node == value:
            return f" (in {name})"
    return ""


def _describe(error, files) -> list[str]:
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in known]
        return [f"{_key_path([*parts, key])}{_source([*parts, key], error.instance[key], files)}: unknown key"
                + (_nearest(key, known) or f"; the keys here are {', '.join(known)}") for key in unknown]
    line = f"{_key_path(parts)}{_source(parts, error.instance, files)}: {error.message}"
    if error.validator == "enum" and isinstance(error.instance, str):
        line += _nearest(error.instance, error.validator_value)
    elif error.validator in ("type", "oneOf", "anyOf"):  # the other messages state the bound themselves
        line += f"; expected {expected(error.schema)}"
    return [line]


def schema_problems(config: dict, schema: dict, files: dict[str, dict] | None = None) -> str | None:
    """Every way `config` fails `schema`: one short line each, then jsonschema's wording of each (the
    schema detail), or None when it validates."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    lines = [line for error in errors for line in _describe(error, files or {})]
    detail = [f"config{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}" for e in errors]
    return "\n".join(["  " + line for line in lines] + ["schema detail:"] + ["  " + line for line in detail])


def main(argv=None) -> int:
    """`python -m gisweep.config_check FILE...`: parse each file strictly; exit 2 naming the first problem."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m gisweep.config_check CONFIG.yaml [MORE.yaml ...]", file=sys.stderr)
        return 2
    try:
        for path in paths:
            if not Path(path).is_file():
                raise ConfigError(f"config file {path}: not found")
            load_config_file(path)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(paths)} config file{'s' * (len(paths) != 1)} parsed: no syntax error, no key given twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
