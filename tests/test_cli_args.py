"""Every command checks its arguments before it does anything: numeric options against the bounds of
the config schema (gisweep.schema, the one definition), all inputs of a command before its first
output, and errors that name the file or option without a traceback or unsafe advice."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gisweep import GisweepError, cli
from gisweep.schema import Bounded, Rule, integer, schema_default, schema_number

SRC = Path(__file__).resolve().parents[1] / "src"


def subparser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def numeric_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and (isinstance(a.type, Bounded) or a.type in (int, float))]


def bad_values(rule: Rule) -> list[str]:
    """Values the rule refuses: just past each bound, outside an enum, not a number, not finite."""
    step = 1
    bad = ["x"]
    if rule.kind == "number":
        bad += ["nan", "inf"]
    else:
        bad.append("1.5")
    if rule.minimum is not None:
        bad.append(str(rule.minimum - step))
    if rule.exclusive_minimum is not None:
        bad.append(str(rule.exclusive_minimum))
    if rule.maximum is not None:
        bad.append(str(rule.maximum + step))
    if rule.exclusive_maximum is not None:
        bad.append(str(rule.exclusive_maximum))
    if rule.enum is not None:
        bad.append(str(max(rule.enum) + 1))
    return bad


def default_mismatches(parser: argparse.ArgumentParser) -> list[str]:
    """Options mirroring a schema key whose argparse default is neither absent (None, or required) nor
    the schema's default (for `key[]` with nargs: the array's default)."""
    out = []
    for a in numeric_actions(parser):
        key = getattr(a.type, "key", None)
        if key is None or a.required or a.default is None:
            continue
        if key.endswith("[]") and a.nargs is None:  # one item of an array key: the default must be allowed
            a.type.rule.check(a.default)
            continue
        try:
            expected = schema_default(key)
        except KeyError:
            out.append(f"{a.option_strings[0]}: default {a.default!r}, but schema {key} has none")
            continue
        if a.default != expected:
            out.append(f"{a.option_strings[0]}: default {a.default!r}, schema {key} default {expected!r}")
    return out


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_numeric_option_refuses_out_of_range_values(command, capsys):
    parser = subparser(command)
    raw = [a.option_strings[0] for a in numeric_actions(parser) if not isinstance(a.type, Bounded)]
    assert not raw, f"{command}: {raw} use type=int/float; give them bounds (gisweep.schema)"
    for action in numeric_actions(parser):
        option = action.option_strings[0]
        for value in bad_values(action.type.rule):
            with pytest.raises(SystemExit) as exit_:
                cli.main([command, f"{option}={value}"])
            err = capsys.readouterr().err
            assert exit_.value.code == 2, (command, option, value)
            assert f"argument {option}" in err and "must be" in err and f"got {value}" in err, (option, value, err)
            if action.type.key:
                assert f"schema {action.type.key}" in err
            assert "Traceback" not in err


def test_the_walk_sees_unbounded_options():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int)
    p.add_argument("--lr", type=schema_number("train.lr"))
    assert [a.option_strings[0] for a in numeric_actions(p)] == ["--n", "--lr"]
    assert "0" in bad_values(schema_number("train.batch_size").rule)
    assert "0" in bad_values(schema_number("train.lr").rule) and "-1" in bad_values(schema_number("data.seed").rule)
    assert "2" in bad_values(schema_number("train.momentum").rule)


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_defaults_of_options_are_the_schema_defaults(command):
    parser = subparser(command)
    for action in numeric_actions(parser):
        if getattr(action.type, "key", None):
            action.type.rule  # the key exists and is numeric (KeyError otherwise)
    assert default_mismatches(parser) == []


def test_a_default_that_differs_from_the_schema_is_found():
    p = argparse.ArgumentParser()
    p.add_argument("--max-epochs", type=schema_number("train.max_epochs"), default=5)
    p.add_argument("--lr", type=schema_number("train.lr"), default=0.01)
    p.add_argument("--seeds", type=schema_number("hull.train_size_seeds[]"), nargs="+", default=[0, 1])
    assert default_mismatches(p) == ["--max-epochs: default 5, schema train.max_epochs default 2000",
                                     "--seeds: default [0, 1], schema hull.train_size_seeds[] default [0, 1, 2]"]


# options with a fixed set of values, and the config key whose enum they mirror ('datasets': its keys)
CHOICE_KEYS = {
    "--optimizer": "train.optimizer", "--labels": "models.labels[]", "--family": "lines.families[]",
    "--dtype": "gi.dtype", "--dataset": "datasets",
}
CHOICE_KEYS_OF = {("train-cnn", "--optimizer"): "cnn.optimizer", ("hull-distance", "--dtype"): "hull.dtype",
                  ("hull-train-size", "--dtype"): "hull.dtype", ("prepare-hull-data", "--dataset"): "hull.dataset"}
NO_CONFIG_KEY = {("plot-along", "--figure")}  # the panels of the paper's figures 1-3, not a config value


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_choices_are_the_schema_enums(command):
    from gisweep.schema import schema_node

    for a in subparser(command)._actions:
        option = a.option_strings[0] if a.option_strings else None
        if a.choices is None or option is None or (command, option) in NO_CONFIG_KEY or a.option_strings == ["-h"]:
            continue
        key = CHOICE_KEYS_OF.get((command, option), CHOICE_KEYS.get(option))
        assert key, f"{command} {option}: name the config key whose enum its choices mirror"
        node = schema_node(key)
        enum = set(node["properties"]) if key == "datasets" else set(node["enum"])
        assert set(a.choices) == enum, (command, option, key)
        if a.default is not None and not a.required:
            assert a.default in enum, (command, option)
            if not key.endswith("[]"):
                assert a.default == schema_default(key), (command, option, key)


# one CLI option stands for several config keys: they must have the same bounds
SHARED_BOUNDS = {
    "train.lr": ["datasets.mnist.train.lr", "datasets.cifar10.train.lr"],
    "train.momentum": ["datasets.mnist.train.momentum"],
    "train.batch_size": ["datasets.moons.train.batch_size"],
    "train.max_epochs": ["datasets.mnist_idx.train.max_epochs", "fractions.max_epochs"],
    "train.init_scale": ["datasets.mnist.train.init_scale"],
    "dynamics.t_min": ["fractions.t_min"],
    "dynamics.t_max": ["fractions.t_max"],
    "dynamics.classes[]": ["fractions.classes[]"],
    "gi.memory_mb": ["cnn.memory_mb"],
    "lines.pairs.t_min": [f"lines.{f}.t_min" for f in ("diffpairs", "triangles", "random", "pc1", "minor", "perp")],
    "lines.pairs.t_max": [f"lines.{f}.t_max" for f in ("diffpairs", "triangles", "random", "pc1", "minor", "perp")],
    "lines.diffpairs.count": ["lines.triangles.count", "lines.random.count"],
    "lines.random.scale": ["lines.pc1.scale", "lines.minor.scale", "lines.perp.scale"],
    "hull.dims[]": ["hull.pixel_dims[]", "hull.train_size_dim"],
}


@pytest.mark.parametrize("key", SHARED_BOUNDS)
def test_keys_behind_one_option_have_the_same_bounds(key):
    for other in SHARED_BOUNDS[key]:
        assert Rule.from_schema(other).describe() == Rule.from_schema(key).describe(), (key, other)


def test_schema_rules_and_messages():
    assert schema_number("train.lr")("0.5") == 0.5
    assert schema_number("train.batch_size")("8") == 8
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number > 0 \(schema train.lr\); got -1"):
        schema_number("train.lr")("-1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"an integer >= 1 \(schema train.max_epochs\); got 0"):
        schema_number("train.max_epochs")("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0, 1\]"):
        schema_number("train.momentum")("1.5")
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0, 100\]"):
        schema_number("fractions.percents[]")("101")
    # 'all' or an integer: the word passes through, the number is bounded
    per_class = schema_number("hull.train_per_class")
    assert per_class("all") == "all" and per_class("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be 'all' or an integer >= 1"):
        per_class("0")
    assert schema_number("lines.random.scale")("pair_mean") == "pair_mean"
    # a key under a $ref
    assert Rule.from_schema("datasets.mnist.train.lr").describe() == "a number > 0"
    assert integer(minimum=1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be an integer >= 1; got 0$"):
        integer(minimum=1)("0")
    with pytest.raises(KeyError, match="train.rate"):
        schema_number("train.rate").rule
    with pytest.raises(GisweepError, match=r"family pairs: t_max: must be a number > 0 \(schema lines.pairs.t_max\)"):
        schema_number("lines.pairs.t_max").check(-1.0, "family pairs: t_max")
    assert schema_number("lines.diffpairs.count").check(3, "x") == 3


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "gisweep", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_train_with_bad_values_exits_2_without_a_traceback(tmp_path):
    """The values that used to end in a torch ValueError, an IndexError and a range() error."""
    base = ["train", "--data", str(tmp_path / "d.parquet"), "--arch", "1x8", "--labels", "real", "--seed", "0",
            "--out-model", str(tmp_path / "m.pt"), "--out-history", str(tmp_path / "h.parquet")]
    for option, value, allowed in [("--lr", "-1", "> 0"), ("--max-epochs", "0", ">= 1"), ("--batch-size", "0", ">= 1")]:
        r = _run(*base, option, value)
        assert r.returncode == 2, r.stderr
        assert f"argument {option}: must be an integer {allowed}" in r.stderr or \
            f"argument {option}: must be a number {allowed}" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_help_still_works():
    r = _run("train", "--help")
    assert r.returncode == 0 and "--max-epochs" in r.stdout


# ---------------------------------------------------------------- every input before the first output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """data (mnist 7x7, 10 per class) -> model (1x16) -> pair lines of class 5."""
    d = tmp_path_factory.mktemp("cli_args")
    p = {"data": d / "data.parquet", "model": d / "model.pt", "history": d / "history.parquet",
         "lines": d / "lines_pairs.parquet"}
    assert cli.main(["prepare-data", "--dataset", "mnist", "--dim", "7", "--seed", "3", "--train-per-class", "10",
                     "--out", str(p["data"])]) == 0
    assert cli.main(["train", "--data", str(p["data"]), "--arch", "1x16", "--labels", "real", "--seed", "0",
                     "--max-epochs", "5", "--batch-size", "16", "--device", "cpu",
                     "--out-model", str(p["model"]), "--out-history", str(p["history"])]) == 0
    assert cli.main(["sample-lines", "--family", "pairs", "--data", str(p["data"]), "--labels", "real", "--seed", "0",
                     "--classes", "5", "--out", str(p["lines"])]) == 0
    return p


def test_batched_gi_checks_every_input_before_writing(tiny, tmp_path, capsys):
    bad = tmp_path / "lines_bad.parquet"
    bad.write_bytes(b"not parquet")
    outs = [tmp_path / "gi_pairs.parquet", tmp_path / "gi_bad.parquet"]
    rc = cli.main(["batched-gi", "--model", str(tiny["model"]), "--data", str(tiny["data"]),
                   "--inputs", str(tiny["lines"]), str(bad), "--device", "cpu", "--out", *map(str, outs)])
    assert rc == 2 and str(bad) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]  # neither output, nor a temporary file


def test_batched_gi_names_the_lines_file_that_does_not_match_the_data(tiny, tmp_path, capsys):
    import pandas as pd

    from gisweep.io import read_parquet, write_parquet

    lines = read_parquet(tiny["lines"])
    lines.loc[0, "j"] = 10_000  # a training row the data does not have
    other = tmp_path / "lines_other.parquet"
    write_parquet(pd.DataFrame(lines), other)
    outs = [tmp_path / "gi_a.parquet", tmp_path / "gi_b.parquet"]
    rc = cli.main(["batched-gi", "--model", str(tiny["model"]), "--data", str(tiny["data"]),
                   "--inputs", str(tiny["lines"]), str(other), "--device", "cpu", "--out", *map(str, outs)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{other}: lines name training rows" in err
    assert not any(o.exists() for o in outs)


def test_batched_gi_refuses_one_output_for_two_inputs(tiny, tmp_path, capsys):
    out = tmp_path / "gi.parquet"
    rc = cli.main(["batched-gi", "--model", str(tiny["model"]), "--data", str(tiny["data"]),
                   "--inputs", str(tiny["lines"]), str(tiny["lines"]), "--device", "cpu", "--out", str(out), str(out)])
    assert rc == 2 and "its own --out" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("settings, message", [
    ('{"triangles": {"t_max": -1}}', r"family triangles: t_max: must be a number > 0 (schema lines.pairs.t_max)"),
    ('{"triangles": {"count": 0}}', r"family triangles: count: must be an integer >= 1"),
    ('{"triangles": {"speed": 1}}', "settings of family triangles: unknown option(s) ['speed']"),
    # found only while drawing, from the data: still before the first file is written
    ('{"triangles": {"count": 2, "classes": [99]}}', "triangles lines: class(es) [99] have no training samples"),
])
def test_sample_lines_checks_every_family_before_writing(tiny, tmp_path, capsys, settings, message):
    outs = [tmp_path / "lines_pairs.parquet", tmp_path / "lines_triangles.parquet"]
    rc = cli.main(["sample-lines", "--family", "pairs", "triangles", "--data", str(tiny["data"]), "--labels", "real",
                   "--seed", "0", "--classes", "5", "--settings", settings, "--out", *map(str, outs)])
    assert rc == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_sample_lines_settings_still_apply(tiny, tmp_path):
    import pandas as pd

    outs = [tmp_path / "lines_pairs.parquet", tmp_path / "lines_triangles.parquet"]
    assert cli.main(["sample-lines", "--family", "pairs", "triangles", "--data", str(tiny["data"]), "--labels", "real",
                     "--seed", "0", "--classes", "5", "--settings", '{"triangles": {"count": 2, "t_min": -2}}',
                     "--out", *map(str, outs)]) == 0
    tri = pd.read_parquet(outs[1])
    assert len(tri) == 6 and (tri.t_min == -2).all()


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize("blob", [b"garbage", b"\x80\x04\x95junk", b""])
def test_a_garbage_model_file_is_named_and_no_unsafe_advice_is_given(tiny, tmp_path, capsys, blob):
    bad = tmp_path / "model.pt"
    bad.write_bytes(blob)
    out = tmp_path / "gi.parquet"
    rc = cli.main(["batched-gi", "--model", str(bad), "--data", str(tiny["data"]), "--inputs", str(tiny["lines"]),
                   "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}: not a gisweep model file" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_pickle_that_is_not_tensors_is_refused_without_unsafe_advice(tmp_path):
    import numpy as np
    import torch

    from gisweep.models import load_record

    path = tmp_path / "model.pt"
    torch.save({"state_dict": np.zeros(3)}, path)  # loadable only by unpickling arbitrary objects
    with pytest.raises(GisweepError) as e:
        load_record(path)
    assert str(e.value) == f"{path}: not a gisweep model file (not a torch file of tensors and plain values)"


def test_dropout_in_training_mode_is_called_random_not_batch_dependent():
    from torch import nn

    from gisweep.gi_graph import check_eval_mode

    with pytest.raises(GisweepError) as e:
        check_eval_mode(nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5)))
    assert "random" in str(e.value) and "batch" not in str(e.value) and "model.eval()" in str(e.value)
    with pytest.raises(GisweepError, match="depends on the batch"):
        check_eval_mode(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))


def test_log_floats_are_rounded():
    from gisweep.hull_stage import _sig

    assert _sig(0.21323862151767795) == "0.2132" and _sig(None) == "n/a" and _sig(3e-7) == "3e-07"
