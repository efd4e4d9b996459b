"""Options bots: Policy protocol, full episodes on Options-v0, and their entry and exit rules."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policy import Policy
from baselines.options_bots import OPTIONS_BOTS, CoveredCalls, IronCondors, IVTiming, WeeklyPuts
from envs.data.synthetic import generate_market_with_state
from envs.environments.options import ActionLayout, OptionsEnv

LAYOUT = ActionLayout(("covered_call", "cash_secured_put", "iron_condor", "long_straddle"), (0.15, 0.30, 0.45),
                      (7, 30, 45))


@pytest.fixture(scope="module")
def env() -> OptionsEnv:
    return OptionsEnv(generate_market_with_state(n_symbols=1, n_days=300, seed=9)[0], allocation=0.9)


@pytest.mark.parametrize("name", sorted(OPTIONS_BOTS))
def test_bots_are_policies_and_finish_an_episode(env: OptionsEnv, name: str) -> None:
    bot = OPTIONS_BOTS[name]()
    assert isinstance(bot, Policy) and bot.name == name
    bot.reset(seed=0)
    obs, info = env.reset(seed=0)
    equity = [info["equity"]]
    while True:
        action = bot.act(obs, info)
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, info = env.step(action)
        equity.append(info["equity"])
        if terminated or truncated:
            break
    assert len(equity) == env.last_t - env.first_t + 1 and np.all(np.isfinite(equity))
    assert len(env.trade_frame()) > 0


def test_covered_calls_own_the_stock_and_sell_a_call(env: OptionsEnv) -> None:
    bot = CoveredCalls()
    obs, info = env.reset(seed=0)
    obs, _, _, _, info = env.step(bot.act(obs, info))
    (call,) = info["legs"]
    assert call.kind == "call" and call.quantity < 0 and info["positions"][0] == -100 * call.quantity
    assert call.strike > info["history"].close[-1, 0] * 0.98
    assert bot.act(obs, info) == ActionLayout.HOLD


def test_weekly_puts_sell_a_short_dated_put(env: OptionsEnv) -> None:
    bot = WeeklyPuts()
    obs, info = env.reset(seed=0)
    obs, _, _, _, info = env.step(bot.act(obs, info))
    (put,) = info["legs"]
    assert put.kind == "put" and put.quantity < 0 and info["position"]["dte"] <= 10


def _info(legs: tuple = (), **fields) -> dict:
    position = {"entry_cost": -200.0, "value": -150.0, "pnl": 50.0, "dte": 30, "iv": ()}
    position.update(fields.pop("position", {}))
    return {"actions": LAYOUT, "legs": legs, "position": position, "iv_rank": 0.5, **fields}


def test_iron_condors_take_profit_and_exit_early() -> None:
    bot = IronCondors()
    assert bot.act(None, _info()) == LAYOUT.encode("iron_condor", 0.15, 45)
    held = ("leg",)
    assert bot.act(None, _info(held, position={"pnl": 99.0, "dte": 30})) == LAYOUT.HOLD
    assert bot.act(None, _info(held, position={"pnl": 100.0, "dte": 30})) == LAYOUT.CLOSE  # half the credit
    assert bot.act(None, _info(held, position={"pnl": -50.0, "dte": 21})) == LAYOUT.CLOSE
    assert IronCondors(take_profit=0.25).act(None, _info(held, position={"pnl": 60.0})) == LAYOUT.CLOSE


def test_iv_timing_sells_rich_and_buys_cheap_vol() -> None:
    bot = IVTiming()
    assert bot.act(None, _info(iv_rank=0.8)) == LAYOUT.encode("iron_condor", 0.15, 45)
    assert bot.act(None, _info(iv_rank=0.1)) == LAYOUT.encode("long_straddle", 0.15, 45)
    assert bot.act(None, _info(iv_rank=0.4)) == LAYOUT.HOLD
    assert bot.act(None, _info(iv_rank=float("nan"))) == LAYOUT.HOLD
    assert bot.act(None, _info(("leg",), position={"dte": 20})) == LAYOUT.HOLD
    assert bot.act(None, _info(("leg",), position={"dte": 14})) == LAYOUT.CLOSE


def test_bot_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match=r"iron_condors.delta must be in \(0, 1\)"):
        IronCondors(delta=1.2)
    with pytest.raises(ValueError, match="low_rank < high_rank"):
        IVTiming(low_rank=0.7, high_rank=0.6)
    with pytest.raises(TypeError, match="unknown parameter"):
        CoveredCalls(strike=100)
    with pytest.raises(ValueError, match="dte 60 is not one of"):
        CoveredCalls(dte=60).act(None, _info())
