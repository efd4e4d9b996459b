"""The experiment spec: YAML and flags round trips, overrides and their report, errors that name the field."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from envs.sim.execution import ConfigError, ExecutionConfig
from envs.sim.risk import RiskConfig
from experiments.spec import (
    ExperimentSpec,
    SplitSpec,
    add_spec_arguments,
    build_spec,
    describe_changes,
    load_spec,
    run_spec,
    save_spec,
    spec_from_args,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_spec_arguments(p)
    return p


def test_defaults_are_the_library_defaults():
    spec = ExperimentSpec()
    assert spec.execution == ExecutionConfig() and spec.risk == RiskConfig()
    assert spec.sizing.fraction == 0.1 and spec.initial_cash == 100_000 and spec.seeds == (0,)


def test_yaml_round_trip_with_every_section_changed(tmp_path):
    spec = build_spec(
        {"data": {"data": "sample:SPY", "symbols": ["SPY"]}, "seeds": [3, 4]},
        {"spread_bps": "5", "fill_at": "next_close", "fractional": "false", "max_drawdown": "0.3",
         "stop_loss": "none", "train_end": "2015-12-31", "val_end": "2018-12-31", "sizing": "volatility",
         "initial_cash": "50000"},
    )
    assert spec.execution.spread_bps == 5.0 and spec.execution.fill_at == "next_close"
    assert spec.execution.fractional is False and spec.risk.stop_loss is None and spec.risk.max_drawdown == 0.3
    save_spec(spec, tmp_path)
    assert load_spec(tmp_path / "spec.yaml") == spec == run_spec(tmp_path)
    off = spec.replace(risk=None)
    assert off.risk is None and load_spec(save_spec(off, tmp_path / "off")) == off


def test_flags_round_trip_and_report_what_they_changed(tmp_path):
    stored = ExperimentSpec().replace(commission=0.002)
    save_spec(stored, tmp_path)
    args = parser().parse_args(["--spec", str(tmp_path), "--spread-bps", "3", "--max-drawdown", "none",
                                "--seeds", "0,1,2"])
    spec, changes = spec_from_args(args)
    assert spec.execution.commission == 0.002 and spec.execution.spread_bps == 3.0
    assert spec.risk.max_drawdown is None and spec.seeds == (0, 1, 2)
    assert changes == ["execution.spread_bps: 0.0 -> 3.0", "risk.max_drawdown: 0.2 -> None", "seeds: [0] -> [0, 1, 2]"]
    # Every leaf's default, given as its flag, reproduces the default spec.
    spec, changes = spec_from_args(parser().parse_args(["--no-risk"]), base=stored)
    assert spec.risk is None and spec.execution.commission == 0.002 and changes == ["risk: on -> off"]
    assert describe_changes(spec, spec) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"commission": "abc"}, "commission must be float"),
        ({"commission": 5}, r"ExecutionConfig.commission is a fraction"),
        ({"max_drawdown": 1.5}, r"risk: RiskConfig.max_drawdown is a fraction"),
        ({"sizing": "martingale"}, r"sizing.sizing must be one of"),
        ({"train_end": "2015-01-01"}, "train_end and splits.val_end go together"),
        ({"train_end": "2016-01-01", "val_end": "2015-01-01"}, "dates must increase"),
        ({"train_end": "soon", "val_end": "later"}, "splits.train_end must be a date"),
        ({"nonsense": 1}, "unknown spec field 'nonsense'"),
        ({"risk": None, "stop_loss": 0.1}, "risk layer is off"),
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_spec({}, overrides)


def test_bad_file_names_the_file_and_field(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("execution: {spread_bps: -1}\n")
    with pytest.raises(ConfigError, match=r"s.yaml: ExecutionConfig.spread_bps must be a finite number >= 0"):
        load_spec(path)
    path.write_text("riks: {}\n")
    with pytest.raises(ConfigError, match=r"unknown spec field\(s\) \['riks'\]"):
        load_spec(path)


def test_splits_by_dates_and_by_fractions():
    index = pd.date_range("2020-01-01", periods=100, freq="D", tz="UTC")
    train, val, test = SplitSpec(train_end="2020-02-09", val_end="2020-03-10").periods(index)
    assert (train.start, train.stop, val.stop, test.stop) == (0, 40, 70, 100)
    train, val, test = SplitSpec(test_end="2020-03-10").periods(index)
    assert (train.stop, val.stop, test.stop) == (42, 56, 70)
    with pytest.raises(ConfigError, match="the test period has 0 bars"):
        SplitSpec(train_end="2020-02-09", val_end="2020-05-01").periods(index)
