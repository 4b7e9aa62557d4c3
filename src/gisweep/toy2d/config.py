"""Settings of the toy 2-D sweeps: the config schema (section `overparam`) is their only source.

Snakemake validates the config against the package's config.schema.yaml and fills its defaults
before a rule passes `config["overparam"][part]` to the CLI as JSON. Run by hand, the command fills
the same defaults from the same file here, checks the bounds the schema states, and then what a
schema cannot state (finite numbers, train_x1 low < high, distinct regime names). Errors name the key, e.g.
`overparam.network.regimes[1].lr`.
"""
from __future__ import annotations

import copy
import json
import math
from functools import lru_cache

from gisweep import GisweepError
from gisweep.schema import load_schema

PARTS = ("polynomial", "network")


def part_schema(part: str) -> dict:
    """The schema of config['overparam'][part]."""
    return load_schema()["properties"]["overparam"]["properties"][part]


def _key_path(where: str, path) -> str:
    return where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _schema_error(error, where: str) -> GisweepError:
    """A jsonschema ValidationError as a GisweepError naming the key at fault."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return GisweepError(f"{_key_path(where, path)}: unknown key(s) {unknown}; known keys: {known}")
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return GisweepError(f"{_key_path(where, path + missing[:1])}: required, missing")
    return GisweepError(f"{_key_path(where, path)}: {error.message}")


@lru_cache(maxsize=1)
def _validator_class():
    """Draft 2020-12 that fills a missing property with (a copy of) its schema default, as
    Snakemake's validate(config, schema) does."""
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})


def _coerce_numbers(value, schema: dict, where: str):
    """Numbers the schema types 'number' as float (a YAML `5` and `5.0` run alike); each finite."""
    kind = schema.get("type")
    if kind == "number":
        if not math.isfinite(value):
            raise GisweepError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if kind == "array" and "items" in schema:
        return [_coerce_numbers(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _coerce_numbers(v, props[k], f"{where}.{k}") if k in props else v for k, v in value.items()}
    return value


def resolve(cfg, part: str) -> dict:
    """config['overparam'][part] with the schema's defaults filled in, checked; GisweepError names the key."""
    if part not in PARTS:
        raise GisweepError(f"overparam.{part}: unknown part; expected one of {list(PARTS)}")
    where = f"overparam.{part}"
    if not isinstance(cfg, dict):
        raise GisweepError(f"{where}: config must be a JSON object (dict), got {type(cfg).__name__}")
    schema = part_schema(part)
    out = copy.deepcopy(cfg)
    errors = list(_validator_class()(schema).iter_errors(out))
    if errors:
        from jsonschema.exceptions import best_match

        raise _schema_error(best_match(errors), where) from None
    out = _coerce_numbers(out, schema, where)
    lo, hi = out["train_x1"]
    if not lo < hi:
        raise GisweepError(f"{where}.train_x1: low must be below high, got {out['train_x1']}")
    if part == "network":
        names = [r["name"] for r in out["regimes"]]
        if len(set(names)) != len(names):
            raise GisweepError(f"{where}.regimes: regime names must be distinct, got {names}")
    return out


def parse_config_json(text: str, part: str) -> dict:
    """--config-json of a sweep command, resolved (see resolve)."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise GisweepError(f"overparam.{part}: --config-json is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise GisweepError(f"overparam.{part}: --config-json must be a JSON object, got {type(cfg).__name__}")
    return resolve(cfg, part)
