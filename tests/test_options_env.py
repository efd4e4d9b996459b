"""``AlpacaGym/Options-v0``: env contracts, fills, expiry and assignment accounting, clear errors."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from rollouts import rollout

import envs
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market_with_state
from envs.environments.options import ENV_ID, ActionLayout, OptionsEnv, holdings
from envs.options.account import OptionCosts
from envs.options.strategies import build_strategy
from envs.sim.actions import InvalidActionError


@pytest.fixture(scope="module")
def synthetic() -> MarketData:
    return generate_market_with_state(n_symbols=1, n_days=320, seed=4)[0]


def _path_market(path: np.ndarray) -> MarketData:
    """One symbol whose closes follow ``path``; each open is the previous close."""
    index = pd.bdate_range("2022-01-03", periods=len(path), tz="UTC")
    opens = np.r_[path[0], path[:-1]]
    values = np.stack([opens, np.maximum(opens, path) * 1.001, np.minimum(opens, path) * 0.999, path,
                       np.full(len(path), 1e6)], axis=1)[:, None, :]
    return MarketData(values, index, ("XYZ",))


def _scenario(after: np.ndarray, start: int = 100, seed: int = 0) -> MarketData:
    """Quiet 1%-a-day noise up to ``start + 1``, then the closes ``after``."""
    noise = np.random.default_rng(seed).normal(0.0, 0.01, start + 2)
    return _path_market(np.r_[100.0 * np.exp(np.cumsum(noise) - noise.sum()), after])


def _random_actions(env: OptionsEnv, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(rng.integers(env.action_space.n)) if rng.random() < 0.15 else 0 for _ in range(n)]


def test_registration_and_make(synthetic: MarketData) -> None:
    envs.register_envs()
    envs.register_envs()  # idempotent
    env = gym.make(ENV_ID, data=synthetic)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs) and "iv_rank" in info
    env.close()


def test_gymnasium_and_sb3_check_env(synthetic: MarketData) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(OptionsEnv(synthetic), skip_render_check=True)
    sb3_check_env(OptionsEnv(synthetic, episode_length=50), warn=True)


def test_rewards_sum_to_log_growth_and_cash_never_negative(synthetic: MarketData) -> None:
    env = OptionsEnv(synthetic)
    steps = rollout(env, _random_actions(env, 400, seed=3))
    rewards = [s[1] for s in steps[1:]]
    final = steps[-1][2]["equity"]
    assert math.fsum(rewards) == pytest.approx(math.log(final / env.initial_cash), abs=1e-9)
    assert min(s[2]["cash"] for s in steps) >= 0.0
    # All of equity at risk in every position, many random seeds: still never a negative cash balance.
    for seed in range(4):
        reckless = OptionsEnv(synthetic, allocation=1.0)
        assert min(s[2]["cash"] for s in rollout(reckless, _random_actions(reckless, 400, seed=seed))) >= 0.0
    assert min(s[2]["positions"][0] for s in steps) >= 0.0
    for _, _, info in steps:  # equity is cash + shares + options marked at the mid
        assert info["equity"] == pytest.approx(
            info["cash"] + info["positions"][0] * info["history"].close[-1, 0] + info["position"]["value"])
    reasons = set(env.trade_frame()["reason"])
    assert {"open", "close"} <= reasons and reasons & {"expired", "assigned", "exercised"}


def test_trade_log_reconciles_cash_and_feeds_round_trips(synthetic: MarketData) -> None:
    from envs.sim.trades import round_trips

    env = OptionsEnv(synthetic)
    steps = rollout(env, _random_actions(env, 400, seed=5))
    frame = env.trade_frame()
    flows = -(frame["quantity"] * frame["price"]).sum() - frame["commission"].sum()
    assert env.initial_cash + flows == pytest.approx(steps[-1][2]["cash"], abs=1e-6)
    options = frame[frame["kind"] != "stock"]
    assert options["symbol"].str.fullmatch(r"SYN0 \d{6}[CP]\d{8}").all()
    assert (options["quantity"] == 100 * options["contracts"]).all()
    trades = round_trips(frame)
    assert len(trades) > 0 and np.isfinite(trades["pnl"]).all()


def test_determinism_and_random_starts(synthetic: MarketData) -> None:
    actions = _random_actions(OptionsEnv(synthetic), 200, seed=8)
    a = rollout(OptionsEnv(synthetic), actions)
    b = rollout(OptionsEnv(synthetic), actions)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia["equity"] == ib["equity"] and repr(ia["fills"]) == repr(ib["fills"])
    starts = {OptionsEnv(synthetic, episode_length=20).reset(seed=s)[1]["t"] for s in range(6)}
    assert len(starts) > 1
    same = [OptionsEnv(synthetic, episode_length=20).reset(seed=5)[1]["t"] for _ in range(2)]
    assert same[0] == same[1]


def test_no_look_ahead(synthetic: MarketData) -> None:
    actions = _random_actions(OptionsEnv(synthetic), 150, seed=21)
    cut = OptionsEnv(synthetic).first_t + 120
    values = synthetic.values.copy()
    values[cut + 1:] *= np.linspace(0.6, 1.8, synthetic.n_bars - cut - 1)[:, None, None]
    changed = MarketData(values, synthetic.index, synthetic.symbols)
    a = rollout(OptionsEnv(synthetic), actions)
    b = rollout(OptionsEnv(changed), actions)
    checked = 0
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        if ia["t"] > cut:
            break
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb
        for key in ("equity", "cash", "legs", "fills", "settlements", "iv", "iv_rank", "strategy", "greeks"):
            assert repr(ia[key]) == repr(ib[key]), key  # repr: stock fills carry a NaN strike
        np.testing.assert_array_equal(ia["history"].ohlcv, ib["history"].ohlcv)
        checked += 1
    assert checked == 121


def test_pickle_round_trip_mid_episode(synthetic: MarketData) -> None:
    env = OptionsEnv(synthetic)
    actions = _random_actions(env, 120, seed=2)
    rollout(env, actions[:60])
    clone = pickle.loads(pickle.dumps(env))
    for a in actions[60:]:
        first, second = env.step(a), clone.step(a)
        np.testing.assert_array_equal(first[0], second[0])
        assert first[1] == second[1] and repr(first[4]["fills"]) == repr(second[4]["fills"])


def test_fills_pay_half_the_spread_and_commission_per_contract(synthetic: MarketData) -> None:
    env = OptionsEnv(synthetic, costs=OptionCosts(commission_per_contract=1.25))
    obs, info = env.reset(seed=0)
    t = info["t"]
    _, _, _, _, info = env.step(info["actions"].encode("iron_condor", 0.15, 30))
    fills = [f for f in info["fills"] if f.kind != "stock"]
    assert len(fills) == 4
    for f in fills:
        q = env.chains.quote(t, float(synthetic.open[t + 1, 0]), env.chains.dates[t + 1], np.array([f.expiry]),
                             np.array([f.strike]), np.array([f.kind == "call"]))
        assert f.price == pytest.approx(float(q.ask[0] if f.quantity > 0 else q.bid[0]))
        assert f.commission == pytest.approx(1.25 * abs(f.quantity))
        assert f.spread_cost == pytest.approx(abs(f.quantity) * 100 * abs(f.price - float(q.mid[0])))
    assert info["strategy"] == "iron_condor" and info["position"]["entry_cost"] < 0  # a credit
    # Asking again for a target that resolves to the legs held trades nothing; otherwise it rolls.
    target = build_strategy("iron_condor", env.chains.chain(info["t"]), 0.15, 30)
    held = [(leg.kind, leg.strike, leg.expiry) for leg in info["legs"]]
    same = sorted(held) == sorted((leg.kind, leg.strike, leg.expiry) for leg in target.legs)
    _, _, _, _, again = env.step(info["actions"].encode("iron_condor", 0.15, 30))
    assert (again["fills"] == ()) == same


def _hold_to_settlement(env: OptionsEnv, template: str, delta: float, dte: int) -> tuple[dict, dict, int]:
    obs, info = env.reset(options={"start": 100})
    _, _, _, _, opened = env.step(info["actions"].encode(template, delta, dte))
    units = int(abs(opened["legs"][-1].quantity))
    before = opened
    while True:
        _, _, terminated, truncated, info = env.step(ActionLayout.HOLD)
        if info["settlements"]:
            return before, info, units
        assert not (terminated or truncated), "the position never expired"
        before = info


def test_covered_call_assigned_at_expiry() -> None:
    env = OptionsEnv(_scenario(np.r_[np.linspace(101, 130, 5), np.full(60, 130.0)]), templates=("covered_call",))
    before, after, units = _hold_to_settlement(env, "covered_call", 0.30, 30)
    call = before["legs"][0]
    assert before["positions"][0] == 100 * units and call.quantity == -units
    assert [s.reason for s in after["settlements"]] == ["assigned", "delivery"]
    assert after["positions"][0] == 0 and after["legs"] == ()
    assert after["cash"] - before["cash"] == pytest.approx(100 * units * call.strike)


def test_cash_secured_put_assigned_keeps_cash_non_negative() -> None:
    env = OptionsEnv(_scenario(np.r_[np.linspace(99, 70, 5), np.full(60, 70.0)]), templates=("cash_secured_put",),
                     allocation=1.0)
    before, after, units = _hold_to_settlement(env, "cash_secured_put", 0.30, 30)
    put = before["legs"][0]
    assert [s.reason for s in after["settlements"]] == ["assigned", "delivery"]
    assert after["positions"][0] == 100 * units
    assert before["cash"] - after["cash"] == pytest.approx(100 * units * put.strike)
    assert after["cash"] >= 0


def test_bull_call_spread_exercise_and_assignment_net_out() -> None:
    env = OptionsEnv(_scenario(np.r_[np.linspace(101, 130, 5), np.full(60, 130.0)]), templates=("bull_call",))
    before, after, units = _hold_to_settlement(env, "bull_call", 0.45, 30)
    long_leg, short_leg = before["legs"]
    assert sorted(s.reason for s in after["settlements"]) == ["assigned", "delivery", "delivery", "exercised"]
    assert after["positions"][0] == 0
    assert after["cash"] - before["cash"] == pytest.approx(100 * units * (short_leg.strike - long_leg.strike))


def test_cash_settlement_pays_intrinsic() -> None:
    env = OptionsEnv(_scenario(np.r_[np.linspace(99, 70, 5), np.full(60, 70.0)]), templates=("bull_put",),
                     settlement="cash")
    before, after, units = _hold_to_settlement(env, "bull_put", 0.30, 30)
    short_leg, long_leg = before["legs"]
    assert [s.reason for s in after["settlements"]] == ["cash_settled", "cash_settled"]
    assert after["positions"][0] == 0
    assert after["cash"] - before["cash"] == pytest.approx(-100 * units * (short_leg.strike - long_leg.strike))


def test_out_of_the_money_legs_expire_worthless() -> None:
    env = OptionsEnv(_scenario(np.full(70, 100.0)), templates=("iron_condor",))
    before, after, _ = _hold_to_settlement(env, "iron_condor", 0.15, 30)
    assert [s.reason for s in after["settlements"]] == ["expired"] * 4
    assert after["cash"] == pytest.approx(before["cash"])


def test_info_carries_the_volatility_state(synthetic: MarketData) -> None:
    env = OptionsEnv(synthetic)
    _, info = env.reset(seed=0)
    summary = env.chains.summary(info["t"])
    for key, value in summary.items():
        assert info[key] == value
    assert isinstance(info["actions"], ActionLayout) and info["legs"] == () and info["strategy"] is None
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None
    text = OptionsEnv(synthetic, render_mode="ansi")
    text.reset()
    assert "equity" in text.render()


@pytest.mark.parametrize("action", [-1, 10_000, 2.5, "hold", np.array([1, 2]), None])
def test_invalid_actions_raise_clear_errors(synthetic: MarketData, action) -> None:
    env = OptionsEnv(synthetic)
    env.reset()
    with pytest.raises(InvalidActionError, match=r"action must be an integer in \[0, 100\]"):
        env.step(action)


def test_bad_arguments_raise_clear_errors(synthetic: MarketData) -> None:
    with pytest.raises(ValueError, match="templates must be a non-empty subset"):
        OptionsEnv(synthetic, templates=("butterfly",))
    with pytest.raises(ValueError, match="allocation must be in"):
        OptionsEnv(synthetic, allocation=0.0)
    with pytest.raises(ValueError, match="settlement must be"):
        OptionsEnv(synthetic, settlement="physical-ish")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol 'NOPE'"):
        OptionsEnv(synthetic, symbol="NOPE")
    with pytest.raises(ValueError, match="delta 0.2 is not one of"):
        ActionLayout(("iron_condor",), (0.15,), (30,)).encode("iron_condor", 0.2, 30)
    env = OptionsEnv(synthetic, episode_length=2)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_holdings_counts_option_contracts_gross_and_stock_positions_as_they_are(synthetic):
    _, info = OptionsEnv(synthetic).reset(seed=0)
    np.testing.assert_array_equal(holdings(info), [0.0, 0.0])
    condor = tuple(SimpleNamespace(quantity=q) for q in (-1.0, 1.0, -1.0, 1.0))
    # An iron condor nets to zero contracts but is a position.
    np.testing.assert_array_equal(holdings({"positions": np.array([0.0]), "legs": condor}), [0.0, 4.0])
    np.testing.assert_array_equal(holdings({"positions": np.array([3.0, -2.0])}), [3.0, -2.0])
