"""Agents saved before the envs/ package was split by concern still load and trade exactly as they did.

``tests/fixtures/legacy_runs`` holds a tiny PPO run (SB3 zip + VecNormalize pickle) and an xgboost predictor
(joblib pickle) saved by the code before the move, and ``expected.json`` what their backtests gave then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.registry import load_policy
from envs.data.sources import load_data
from experiments.engine import run_backtest

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_runs"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_saved_agent_from_before_the_move_trades_as_before(name: str) -> None:
    policy = load_policy(FIXTURES / name)
    result = run_backtest(policy, load_data("synthetic:n_days=1000,n_symbols=1,seed=5"))
    assert len(result.trades) == EXPECTED[name]["n_fills"]
    assert float(result.equity.iloc[-1]) == pytest.approx(EXPECTED[name]["final_equity"], rel=1e-9)
