"""A changed cost or risk field of the spec reaches the training env, the backtest env and the paper runner."""

from __future__ import annotations

import re

import numpy as np
import pytest
from rl_fixtures import TINY_RL

from agents.registry import make_policy, policy_class
from envs.data.sources import load_data
from envs.sim.risk import risk_params
from experiments.engine import make_env
from experiments.paper import main as paper_main
from experiments.rl_config import RLConfig
from experiments.spec import ExperimentSpec, backtest_config, policy_defaults
from experiments.train_rl import make_train_env, training_data

SPEC = ExperimentSpec().replace(spread_bps=7, commission=0.002, max_drawdown=0.3, fraction=0.2, initial_cash=50_000)


@pytest.mark.parametrize("risk", [True, False])
def test_the_training_env_trades_under_the_spec(risk: bool) -> None:
    spec = SPEC if risk else SPEC.replace(risk=None)
    config = RLConfig(**TINY_RL)
    full = load_data(TINY_RL["data"])
    train, _, _ = spec.replace(data=TINY_RL["data"]).splits.periods(full.index)
    venv = make_train_env(config, training_data(config, full, train), spec)
    vector = venv.venv.env  # the batched env, which runs the risk layer on every copy
    env = vector.template
    if risk:
        assert env.risk_config == spec.risk and env.risk_config.max_drawdown == 0.3
        np.testing.assert_array_equal(vector._risk_params, risk_params(spec.risk))
    else:
        assert env.risk_config is None and vector._risk_params.size == 0
    assert env.execution == spec.execution and env.execution.spread_bps == 7 and env.execution.commission == 0.002
    assert env.initial_cash == 50_000 and env.adapter.position_size == 0.2


def test_the_backtest_env_and_the_paper_runner_trade_under_the_spec(capsys: pytest.CaptureFixture) -> None:
    data_spec = "synthetic:n_symbols=1,n_days=120"
    spec = SPEC.replace(data=data_spec)
    policy = make_policy("buy_and_hold", policy_defaults(policy_class("buy_and_hold"), spec))
    data = load_data(data_spec)
    config = backtest_config(spec)
    env = make_env(policy, data, config)
    assert env.execution == spec.execution and env.risk_config == spec.risk and env.initial_cash == 50_000
    assert policy.fraction == 0.2
    args = ["buy_and_hold", "--symbols", "SYN0", "--data", data_spec, "--quiet"]
    assert paper_main(args) == 0
    default_pnl = _pnl(capsys.readouterr().out)
    changed = ["--spread-bps", "7", "--commission", "0.002", "--max-drawdown", "0.3", "--fraction", "0.2"]
    assert paper_main([*args, *changed, "--initial-cash", "50000"]) == 0
    out = capsys.readouterr().out
    assert "spec: execution.spread_bps: 0.0 -> 7.0" in out and "risk.max_drawdown: 0.2 -> 0.3" in out
    assert "on 50,000.00 initial cash" in out and _pnl(out) != default_pnl


def _pnl(out: str) -> float:
    return float(re.search(r"P/L ([+-][\d,.]+)", out).group(1).replace(",", ""))
