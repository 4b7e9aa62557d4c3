"""Toy 2-D sweep settings come from the config schema only (gisweep.toy2d.config), and the toy
2-D compute modules never reach plotting code."""
import json
from pathlib import Path

import pytest
import yaml

from gisweep import GisweepError
from gisweep.code_inputs import closure, external_imports
from gisweep.schema import load_schema
from gisweep.toy2d import config as C

SCHEMA = "src/gisweep/config.schema.yaml"


@pytest.fixture(scope="module")
def schema(request):
    with open(request.config.rootpath / SCHEMA) as f:
        return yaml.safe_load(f)["properties"]["overparam"]["properties"]


def test_the_helper_reads_the_package_schema(request):
    from gisweep.schema import schema_path

    assert C.load_schema is load_schema
    assert Path(str(schema_path())).resolve() == (request.config.rootpath / SCHEMA).resolve()


@pytest.mark.parametrize("part", C.PARTS)
def test_defaults_are_the_schema_defaults(schema, part):
    props = schema[part]["properties"]
    cfg = C.resolve({}, part)
    assert set(cfg) == set(props)
    for key, value in cfg.items():
        if key != "regimes" or part != "network":
            assert value == props[key]["default"], key
    # every key of the sweep has a default, a description and a type
    assert all({"default", "description", "type"} <= set(p) for p in props.values())


def test_network_regimes_default_and_item_defaults(schema):
    regime = schema["network"]["properties"]["regimes"]
    item_defaults = {k: p["default"] for k, p in regime["items"]["properties"].items() if "default" in p}
    cfg = C.resolve({}, "network")
    assert [r["name"] for r in cfg["regimes"]] == [r["name"] for r in regime["default"]]
    for given, got in zip(regime["default"], cfg["regimes"]):
        assert got == {**item_defaults, **given}
    one = C.resolve({"regimes": [{"name": "x", "optimizer": "sgd"}]}, "network")["regimes"][0]
    assert one == {**item_defaults, "name": "x", "optimizer": "sgd"}


def test_numbers_become_floats_and_input_is_not_modified():
    given = {"gap": 1, "regimes": [{"name": "a", "lr": 1}], "widths": [3]}
    before = json.dumps(given, sort_keys=True)
    cfg = C.resolve(given, "network")
    assert json.dumps(given, sort_keys=True) == before
    assert type(cfg["gap"]) is float and type(cfg["regimes"][0]["lr"]) is float
    assert type(cfg["regimes"][0]["momentum"]) is float and type(cfg["widths"][0]) is int
    assert C.resolve(cfg, "network") == cfg                                   # idempotent


@pytest.mark.parametrize("part,cfg,needle", [
    ("network", {"curve_amplitude": float("inf")}, "overparam.network.curve_amplitude: must be a finite"),
    ("network", {"regimes": [{"name": "a", "lr": float("nan")}]}, r"overparam.network.regimes\[0\].lr"),
    ("network", {"regimes": [{"name": "a"}, {"name": "a"}]}, "overparam.network.regimes: regime names must be distinct"),
    ("network", {"regimes": [{"name": ""}]}, r"overparam.network.regimes\[0\].name"),
    ("polynomial", {"widths": [2]}, r"overparam.polynomial: unknown key\(s\) \['widths'\]"),
    ("polynomial", [], "JSON object"),
])
def test_errors_name_the_key(part, cfg, needle):
    with pytest.raises(GisweepError, match=needle):
        C.resolve(cfg, part)


def test_config_json_errors():
    with pytest.raises(GisweepError, match="not valid JSON"):
        C.parse_config_json("{oops", "network")
    with pytest.raises(GisweepError, match="must be a JSON object"):
        C.parse_config_json("[1]", "network")
    assert C.parse_config_json('{"n_train": 6}', "polynomial")["n_train"] == 6


@pytest.mark.parametrize("module", ["gisweep.toy2d.polynomial", "gisweep.toy2d.sweep"])
def test_compute_modules_never_reach_plotting_code(module):
    assert not {"matplotlib", "seaborn"} & external_imports(module)
    assert not [m for m in closure(module) if m.startswith("gisweep.figures")]
