"""The config schema (`config.schema.yaml`, shipped inside the package): the one definition of every
config key's type, bounds and default.

Snakemake validates config.yaml against this file; the command line checks its options against the
same bounds through `schema_number`, so a value the workflow refuses is refused when typed by hand,
with the same range in the message. Options that no config key mirrors (e.g. --threads) state their
bounds with `integer` / `number`, which check and word their errors the same way.

    p.add_argument("--lr", type=schema_number("train.lr"), default=0.01)
    p.add_argument("--threads", type=integer(minimum=1), default=None)

A key path is dotted; `name[]` steps into the items of an array (`models.seeds[]`). This module
imports only the standard library; yaml is imported, and the schema read, on the first check that
needs it (once per process), so `--help` and jobs that pass no bounded option never pay for it.
"""
from __future__ import annotations

import argparse
import math
from functools import lru_cache

SCHEMA_NAME = "config.schema.yaml"


def schema_path():
    """The schema file of this installation (a Traversable; `str()` of it is a path on disk)."""
    from importlib.resources import files

    return files("gisweep") / SCHEMA_NAME


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The parsed schema. Callers must not modify it (it is shared)."""
    import yaml

    # The C loader reads the ~900-line schema about four times faster; both give the same document.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(schema_path().read_text(encoding="utf-8"), Loader=loader)


def _deref(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    if not ref.startswith("#/"):
        raise KeyError(f"schema reference {ref!r} is not local")
    for part in ref[2:].split("/"):
        root = root[part]
    return root


def _walk(key: str) -> tuple[dict, dict | None]:
    """(the node of `key`, the array node when the last step is `name[]`, else None)."""
    root = load_schema()
    node, array = root, None
    for part in key.split("."):
        items = part.endswith("[]")
        name = part[:-2] if items else part
        props = _deref(node, root).get("properties", {})
        if name not in props:
            raise KeyError(f"config schema has no key {key!r} ({name!r} is not one of {sorted(props)})")
        node, array = _deref(props[name], root), None
        if items:
            array, node = node, _deref(node["items"], root)
    return node, array


def schema_node(key: str) -> dict:
    """The schema of one config key, e.g. schema_node('train.lr') -> {type: number, ...}."""
    return _walk(key)[0]


_MISSING = object()


def schema_default(key: str):
    """The schema's default of `key` (of the whole array for `name[]`); KeyError if it has none."""
    node, array = _walk(key)
    value = (array if array is not None else node).get("default", _MISSING)
    if value is _MISSING:
        raise KeyError(f"config schema key {key!r} has no default")
    return value


def _fmt(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


class Rule:
    """What a numeric value must be: integer or number, its bounds, and any words also allowed
    (e.g. 'all' beside an integer)."""

    def __init__(self, kind: str, *, minimum=None, maximum=None, exclusive_minimum=None, exclusive_maximum=None,
                 enum=None, words=()):
        if kind not in ("integer", "number"):
            raise ValueError(f"kind must be 'integer' or 'number', not {kind!r}")
        self.kind, self.minimum, self.maximum = kind, minimum, maximum
        self.exclusive_minimum, self.exclusive_maximum = exclusive_minimum, exclusive_maximum
        self.enum, self.words = (list(enum) if enum is not None else None), tuple(words)

    @classmethod
    def from_schema(cls, key: str) -> Rule:
        node = schema_node(key)
        # a key such as hull.train_per_class is 'all' or an integer: the numeric alternative gives the
        # bounds, the string enums the words also accepted
        alternatives = node.get("oneOf") or node.get("anyOf") or [node]
        words, numeric = [], []
        for alt in alternatives:
            kinds = alt.get("type", [])
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if "string" in kinds and "enum" in alt:
                words += [w for w in alt["enum"] if isinstance(w, str)]
            numeric += [(k, alt) for k in kinds if k in ("integer", "number")]
        if len(numeric) != 1:
            raise KeyError(f"config schema key {key!r} is not one integer or number (found {numeric or 'none'})")
        kind, alt = numeric[0]
        return cls(kind, minimum=alt.get("minimum"), maximum=alt.get("maximum"),
                   exclusive_minimum=alt.get("exclusiveMinimum"), exclusive_maximum=alt.get("exclusiveMaximum"),
                   enum=alt.get("enum"), words=words)

    def describe(self) -> str:
        """E.g. 'a number > 0', 'an integer in [0, 100]', "'all' or an integer >= 1"."""
        what = "an integer" if self.kind == "integer" else "a number"
        if self.enum is not None:
            what = f"one of {', '.join(map(_fmt, self.enum))}"
        lo = (f"[{_fmt(self.minimum)}" if self.minimum is not None else
              f"({_fmt(self.exclusive_minimum)}" if self.exclusive_minimum is not None else None)
        hi = (f"{_fmt(self.maximum)}]" if self.maximum is not None else
              f"{_fmt(self.exclusive_maximum)})" if self.exclusive_maximum is not None else None)
        if lo and hi:
            what += f" in {lo}, {hi}"
        elif lo:
            what += f" {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
        elif hi:
            what += f" {'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
        return " or ".join([*(repr(w) for w in self.words), what])

    def violates(self, value) -> bool:
        """True when the (already numeric) value is outside the rule."""
        if self.kind == "number" and not math.isfinite(value):
            return True
        return ((self.enum is not None and value not in self.enum)
                or (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
                or (self.exclusive_minimum is not None and value <= self.exclusive_minimum)
                or (self.exclusive_maximum is not None and value >= self.exclusive_maximum))

    def parse(self, text: str):
        """The value of a command-line string; ValueError (without the option name) when it is not allowed."""
        text = str(text).strip()
        if text in self.words:
            return text
        try:
            value = int(text) if self.kind == "integer" else float(text)
        except ValueError:
            value = None
        if value is None or self.violates(value):
            raise ValueError(f"must be {self.describe()}")
        return value

    def check(self, value):
        """A value that arrived already typed (e.g. from JSON); ValueError when it is not allowed."""
        if isinstance(value, str) and value in self.words:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                self.kind == "integer" and not isinstance(value, int)) or self.violates(value):
            raise ValueError(f"must be {self.describe()}")
        return value  # unchanged: a checked value is used (and recorded) exactly as given


class Bounded:
    """An argparse `type=`: parses the option's string and checks it against a Rule, raising
    argparse.ArgumentTypeError (argparse prefixes the option name and exits with status 2)."""

    def __init__(self, key: str | None = None, rule: Rule | None = None):
        if (key is None) == (rule is None):
            raise ValueError("give a schema key or an explicit rule")
        self.key, self._rule = key, rule
        self.__name__ = f"schema {key}" if key else rule.kind  # what argparse names in its own messages

    @property
    def rule(self) -> Rule:
        if self._rule is None:  # read the schema on the first use only
            self._rule = Rule.from_schema(self.key)
        return self._rule

    def __call__(self, text: str):
        try:
            return self.rule.parse(text)
        except ValueError as e:
            where = f" (schema {self.key})" if self.key else ""
            raise argparse.ArgumentTypeError(f"{e}{where}; got {text}") from None

    def check(self, value, where: str):
        """`value` checked against the same rule; GisweepError naming `where` when it is not allowed."""
        from gisweep import GisweepError

        try:
            return self.rule.check(value)
        except ValueError as e:
            source = f" (schema {self.key})" if self.key else ""
            raise GisweepError(f"{where}: {e}{source}; got {value!r}") from None

    def __repr__(self) -> str:
        return f"schema_number({self.key!r})" if self.key else f"Bounded({self.rule.kind})"


def schema_number(key: str) -> Bounded:
    """argparse `type=` for an option mirroring the integer or number config key `key`."""
    return Bounded(key=key)


def integer(*, minimum=None, maximum=None) -> Bounded:
    """argparse `type=` for an integer option that no config key mirrors."""
    return Bounded(rule=Rule("integer", minimum=minimum, maximum=maximum))


def number(*, minimum=None, maximum=None, exclusive_minimum=None, exclusive_maximum=None) -> Bounded:
    """argparse `type=` for a finite number option that no config key mirrors."""
    return Bounded(rule=Rule("number", minimum=minimum, maximum=maximum, exclusive_minimum=exclusive_minimum,
                             exclusive_maximum=exclusive_maximum))
