"""``Stocks-v0``'s fast step: plain-int actions, per-bar History views and fresh outputs keep the env's contract."""

from __future__ import annotations

import copy
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.passive_env_checker import data_shares_objects
from rollouts import rollout

import envs  # noqa: F401  (registers AlpacaGym/*)
from envs.data.history import History
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.sim.actions import InvalidActionError
from envs.sim.risk import RiskConfig

COSTS = {"commission": 0.001, "slippage_bps": 1.0, "spread_bps": 2.0}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=1, n_days=400, seed=5)


def _assert_same_rollout(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for (obs_a, reward_a, info_a), (obs_b, reward_b, info_b) in zip(a, b):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b
        assert info_a.keys() == info_b.keys()
        for key in ("equity", "cash", "t", "timestamp", "fills", "risk_events", "history"):
            assert info_a[key] == info_b[key], key
        np.testing.assert_array_equal(info_a["positions"], info_b["positions"])
        np.testing.assert_array_equal(info_a["weights"], info_b["weights"])


@pytest.mark.parametrize("short", [False, True])
def test_plain_int_actions_step_exactly_like_numpy_integers(market: MarketData, short: bool) -> None:
    execution = {**COSTS, "allow_short": short, "borrow_rate": 0.02}
    n = 3 if short else 2
    choices = np.random.default_rng(1).integers(0, n, size=300)
    fast = rollout(gym.make("AlpacaGym/Stocks-v0", data=market, execution=execution), [int(a) for a in choices])
    full = rollout(gym.make("AlpacaGym/Stocks-v0", data=market, execution=execution), list(choices))
    assert sum(bool(info["fills"]) for _, _, info in fast) > 50
    _assert_same_rollout(fast, full)


def test_true_is_long_as_today(market: MarketData) -> None:
    actions = [True, False, True, True, False]
    as_bools = rollout(gym.make("AlpacaGym/Stocks-v0", data=market), actions)
    as_ints = rollout(gym.make("AlpacaGym/Stocks-v0", data=market), [int(a) for a in actions])
    _assert_same_rollout(as_bools, as_ints)


@pytest.mark.parametrize("short, bad", [(False, 2), (False, -1), (False, 1.0), (False, 0.0), (False, "1"),
                                        (False, None), (True, 3), (True, -1), (True, 2.0)])
def test_actions_outside_the_space_still_raise(market: MarketData, short: bool, bad: object) -> None:
    env = gym.make("AlpacaGym/Stocks-v0", data=market, execution={"allow_short": short})
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="invalid action .* expected Discrete"):
        env.step(bad)
    assert env.unwrapped.trades == [] and env.unwrapped._t == env.unwrapped.first_t


def test_every_step_returns_fresh_observations_and_infos(market: MarketData) -> None:
    env = gym.make("AlpacaGym/Stocks-v0", data=market, execution=COSTS)
    actions = [int(a) for a in np.random.default_rng(2).integers(0, 2, size=200)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium's passive checker warns about outputs that share objects
        steps = rollout(env, actions)
    for (obs_a, _, info_a), (obs_b, _, info_b) in zip(steps, steps[1:]):
        assert not data_shares_objects((obs_a, info_a), (obs_b, info_b))
    obs, _, info = steps[-2]
    held = info["positions"][0]
    obs[:] = 0.0
    info["positions"][0] = info["weights"][0] = -1.0
    assert steps[-1][2]["positions"][0] in (0.0, held), "editing one step's output changes no other step"
    assert steps[-1][0].any()


def test_info_reports_the_account_at_this_bar(market: MarketData) -> None:
    env = gym.make("AlpacaGym/Stocks-v0", data=market, execution=COSTS)
    for obs, _, info in rollout(env, [1, 1, 0, 0, 1, 0, 1, 1, 1, 0] * 10)[1:]:
        close = market.values[info["t"], 0, 3]
        shares = info["positions"][0]
        assert info["equity"] == pytest.approx(info["cash"] + shares * close, rel=1e-12)
        assert info["weights"][0] == pytest.approx(shares * close / info["equity"], rel=1e-12)
        assert obs[-3] == pytest.approx(info["weights"][0], rel=1e-6)
        assert info["history"] == History(market, info["t"]) and len(info["history"]) == info["t"] + 1
        assert info["timestamp"] == market.index[info["t"]]


def test_history_views_are_reused_per_bar_and_not_pickled(market: MarketData) -> None:
    env = gym.make("AlpacaGym/Stocks-v0", data=market).unwrapped
    _, first = env.reset(seed=0)
    _, again = env.reset(seed=0)
    assert again["history"] is first["history"], "a bar's read-only view is built once"
    for _ in range(50):
        _, _, _, _, info = env.step(1)
    assert copy.deepcopy(info)["history"] is info["history"]
    pickled = pickle.dumps(env)
    assert b"History" not in pickled, "the per-bar views are rebuilt after unpickling, not stored"
    clone = pickle.loads(pickled)
    _, _, _, _, info_clone = clone.step(0)
    _, _, _, _, info_env = env.step(0)
    assert info_clone["history"] == info_env["history"] and info_clone["equity"] == info_env["equity"]


def test_risk_layer_and_other_rewards_still_apply(market: MarketData) -> None:
    risk = RiskConfig(stop_loss=0.01)
    actions = [1] * 150
    guarded = rollout(gym.make("AlpacaGym/Stocks-v0", data=market, execution=COSTS, risk=risk), actions)
    assert any(fill.reason != "policy" for _, _, info in guarded for fill in info["fills"])
    assert any(info["risk_events"] for _, _, info in guarded)
    sharpe = rollout(gym.make("AlpacaGym/Stocks-v0", data=market, reward="differential_sharpe"), actions)
    log = rollout(gym.make("AlpacaGym/Stocks-v0", data=market), actions)
    assert [info["equity"] for *_, info in sharpe] == [info["equity"] for *_, info in log]
    assert [r for _, r, _ in sharpe] != [r for _, r, _ in log]
