"""The env contract for every registered stock/portfolio env and action mode (Gymnasium's test matrix style)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from rollouts import rollout
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.features import DEFAULT_FEATURES, OBSERVATION_FEATURES, FeatureConfig
from envs.sim.actions import InvalidActionError

MODES = ["discrete", "weights", "continuous"]
ENV_IDS = ["AlpacaGym/Stocks-v0", "AlpacaGym/Portfolio-v0"]
# The default observation (one row of OBSERVATION_FEATURES) and a window of several bars of every feature.
OBSERVATIONS = {"default": {}, "full window": {"window_size": 10, "features": FeatureConfig(DEFAULT_FEATURES)}}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=3, n_days=700, seed=11)


def make(env_id: str, data: MarketData, **kwargs) -> gym.Env:
    return gym.make(env_id, data=data, **kwargs)


def random_actions(env: gym.Env, n: int, seed: int) -> list:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def test_envs_registered_on_import() -> None:
    for env_id in ENV_IDS:
        assert env_id in gym.registry
    assert envs.ENV_IDS[0] == "AlpacaGym/Stocks-v0"


def test_default_env_runs_on_embedded_synthetic_market() -> None:
    env = gym.make("AlpacaGym/Stocks-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["history"].close.shape[1] == 1


def test_default_observation_is_one_row_of_the_observation_features(market: MarketData) -> None:
    env = make("AlpacaGym/Stocks-v0", market).unwrapped
    assert env.window_size == 1 and env.features.names == OBSERVATION_FEATURES
    assert env.observation_space.shape == (len(OBSERVATION_FEATURES) + 3,)
    full = make("AlpacaGym/Portfolio-v0", market, **OBSERVATIONS["full window"]).unwrapped
    assert full.observation_space.shape == (10 * len(DEFAULT_FEATURES) * market.n_symbols + market.n_symbols + 2,)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("short", [False, True])
@pytest.mark.parametrize("observation", OBSERVATIONS)
def test_check_env(market: MarketData, env_id: str, mode: str, short: bool, observation: str) -> None:
    env = make(env_id, market, action_mode=mode, execution={"allow_short": short}, **OBSERVATIONS[observation])
    env = env.unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe", "drawdown_penalty"])
def test_determinism_same_seed_same_trajectory(market: MarketData, env_id: str, reward: str) -> None:
    kwargs = dict(action_mode="weights", reward=reward, episode_length=150)
    a, b = make(env_id, market, **kwargs), make(env_id, market, **kwargs)
    actions = random_actions(a, 150, seed=3)
    ra, rb = rollout(a, actions, seed=5), rollout(b, actions, seed=5)
    assert len(ra) == len(rb)
    for (oa, reward_a, ia), (ob, reward_b, ib) in zip(ra, rb):
        np.testing.assert_array_equal(oa, ob)
        assert reward_a == reward_b and ia["equity"] == ib["equity"]
    rc = rollout(make(env_id, market, **kwargs), actions, seed=6)
    assert ra[0][2]["t"] != rc[0][2]["t"], "different seeds should start episodes at different bars"


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("observation", OBSERVATIONS)
def test_no_look_ahead_changing_the_future_changes_nothing_before(
    market: MarketData, env_id: str, observation: str
) -> None:
    t_cut = 450
    rng = np.random.default_rng(0)
    future = market.values.copy()
    scale = rng.uniform(0.5, 1.5, size=(market.n_bars - t_cut - 1, market.n_symbols, 1))
    future[t_cut + 1 :, :, :4] *= scale
    future[t_cut + 1 :, :, 4] *= rng.uniform(0.1, 3.0, size=scale.shape[:2])
    changed = MarketData(future, market.index, market.symbols)
    kwargs = dict(action_mode="weights", **OBSERVATIONS[observation])
    env_a, env_b = make(env_id, market, **kwargs), make(env_id, changed, **kwargs)
    actions = random_actions(env_a, market.n_bars, seed=1)
    ra, rb = rollout(env_a, actions), rollout(env_b, actions)
    start = ra[0][2]["t"]
    n_before = t_cut - start + 1
    for (oa, reward_a, ia), (ob, reward_b, ib) in zip(ra[:n_before], rb[:n_before]):
        assert ia["t"] <= t_cut
        np.testing.assert_array_equal(oa, ob)
        assert reward_a == reward_b
        assert ia["equity"] == ib["equity"] and ia["cash"] == ib["cash"]
        np.testing.assert_array_equal(ia["positions"], ib["positions"])
        np.testing.assert_array_equal(ia["history"].ohlcv, ib["history"].ohlcv)
        assert ia["fills"] == ib["fills"]
    assert ra[n_before][2]["t"] == t_cut + 1
    assert not np.array_equal(ra[n_before + 5][0], rb[n_before + 5][0]), "the change must show after t"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_history_is_read_only_and_ends_now(market: MarketData, env_id: str) -> None:
    env = make(env_id, market)
    _, info = env.reset(seed=0)
    history = info["history"]
    assert history.close.shape[0] == info["t"] + 1
    assert history.index[-1] == info["timestamp"]
    with pytest.raises(ValueError):
        history.close[-1, 0] = 1.0


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("short", [False, True])
def test_accounting_invariants(market: MarketData, env_id: str, short: bool) -> None:
    execution = dict(
        allow_short=short, commission=0.001, commission_per_share=0.005, slippage_bps=5, spread_bps=4,
        borrow_rate=0.03, fractional=False,
    )
    env = make(env_id, market, action_mode="weights", execution=execution)
    u = env.unwrapped
    obs, info = env.reset(seed=0)
    rewards = []
    actions = random_actions(env, market.n_bars, seed=2)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        close = u.data.values[info["t"], :, 3]
        assert info["equity"] == pytest.approx(info["cash"] + info["positions"] @ close, rel=1e-12)
        assert info["cash"] >= -1e-6 or short, "cash went negative without margin"
        np.testing.assert_array_equal(info["positions"], np.round(info["positions"]))
        for fill in info["fills"]:
            j = u.data.symbols.index(fill.symbol)
            bar = u.data.values[info["t"], j]
            assert bar[2] - 1e-9 <= fill.price <= bar[1] + 1e-9, "fill outside the bar's [low, high]"
        if terminated or truncated:
            break
    final = info["equity"]
    assert sum(rewards) == pytest.approx(np.log(final / u.initial_cash), abs=1e-9)
    trades = u.trade_frame()
    assert len(trades) > 10
    if env_id == "AlpacaGym/Portfolio-v0":
        p = u.portfolio
        close = u.data.values[info["t"], :, 3]
        pnl = p.realised_pnl + p.unrealised_pnl(close).sum() - p.commission_paid - p.borrow_paid
        assert final - u.initial_cash == pytest.approx(pnl, rel=1e-9, abs=1e-6)
        assert p.commission_paid == pytest.approx(trades["commission"].sum())


def flat_market(n: int = 400, price: float = 100.0) -> MarketData:
    index = pd.bdate_range("2020-01-01", periods=n, tz="UTC")
    values = np.empty((n, 1, 5))
    values[:, 0, :4] = [price, price * 1.01, price * 0.99, price]
    values[:, 0, 4] = 1e6
    return MarketData(values, index, ("FLAT",))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_round_trip_costs_exactly_commission_slippage_and_spread(env_id: str) -> None:
    c, slip, spread = 0.001, 3.0, 4.0
    env = gym.make(env_id, data=flat_market(), action_mode="weights",
                   execution=dict(commission=c, slippage_bps=slip, spread_bps=spread))
    u = env.unwrapped
    env.reset(seed=0)
    _, _, _, _, info_buy = env.step(np.array([0.5], dtype=np.float32))
    (buy,) = info_buy["fills"]
    _, _, _, _, info_sell = env.step(np.array([0.0], dtype=np.float32))
    (sell,) = info_sell["fills"]
    assert buy.quantity == pytest.approx(-sell.quantity)
    notional = buy.quantity * 100.0
    k = (slip + spread / 2) * 1e-4
    expected = notional * ((1 + k) * c + (1 - k) * c) + 2 * notional * k
    assert u.initial_cash - info_sell["equity"] == pytest.approx(expected, rel=1e-12)
    assert buy.commission + sell.commission + buy.impact_cost + sell.impact_cost == pytest.approx(expected)
    before = info_sell["equity"]
    for _ in range(20):
        _, reward, _, _, info = env.step(np.array([0.0], dtype=np.float32))
        assert info["fills"] == () and reward == 0.0
    assert info["equity"] == before, "no trade, no cost"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_holding_a_target_does_not_trade(market: MarketData, env_id: str) -> None:
    env = make(env_id, market, action_mode="weights")
    env.reset(seed=0)
    hold = np.full(env.action_space.shape, 0.3, dtype=np.float32)
    _, _, _, _, info = env.step(hold)
    assert info["fills"]
    for _ in range(30):
        _, _, _, _, info = env.step(hold)
        assert info["fills"] == ()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip(market: MarketData, env_id: str) -> None:
    env = make(env_id, market, action_mode="weights", episode_length=60)
    actions = random_actions(env, 60, seed=4)
    env.reset(seed=1)
    for a in actions[:10]:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    for a in actions[10:40]:
        o1, r1, *_ = env.step(a)
        o2, r2, *_ = clone.step(a)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


@pytest.mark.parametrize(
    "env_id, mode, bad",
    [
        ("AlpacaGym/Stocks-v0", "discrete", 2),
        ("AlpacaGym/Stocks-v0", "discrete", -1),
        ("AlpacaGym/Stocks-v0", "discrete", 0.5),
        ("AlpacaGym/Stocks-v0", "weights", np.array([1.5], dtype=np.float32)),
        ("AlpacaGym/Stocks-v0", "weights", np.array([-0.5], dtype=np.float32)),
        ("AlpacaGym/Stocks-v0", "weights", np.array([np.nan], dtype=np.float32)),
        ("AlpacaGym/Portfolio-v0", "weights", np.zeros(5, dtype=np.float32)),
        ("AlpacaGym/Portfolio-v0", "discrete", np.array([0, 1, 3])),
        ("AlpacaGym/Portfolio-v0", "continuous", np.array([0.2, 0.2, 0.2, 2.0])),
    ],
)
def test_out_of_space_action_gives_clear_error(market: MarketData, env_id: str, mode: str, bad) -> None:
    env = make(env_id, market, action_mode=mode)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="invalid action .* expected"):
        env.step(bad)


def test_bad_config_names_the_field(market: MarketData) -> None:
    with pytest.raises(ValueError, match="commission"):
        make("AlpacaGym/Stocks-v0", market, execution={"commission": -0.1})
    with pytest.raises(ValueError, match="unknown execution setting"):
        make("AlpacaGym/Stocks-v0", market, execution={"comission": 0.1})
    with pytest.raises(ValueError, match="action_mode"):
        make("AlpacaGym/Stocks-v0", market, action_mode="buy")
    with pytest.raises(ValueError, match="reward"):
        make("AlpacaGym/Stocks-v0", market, reward="profit")
    with pytest.raises(ValueError, match="symbol 'NOPE'"):
        make("AlpacaGym/Stocks-v0", market, symbol="NOPE")
    with pytest.raises(ValueError, match="episode_length"):
        make("AlpacaGym/Stocks-v0", market, episode_length=10**6)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_rgb_array_and_text(market: MarketData, env_id: str) -> None:
    env = make(env_id, market, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(20):
        env.step(env.action_space.sample())
    image = env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.std() > 0
    text = make(env_id, market, render_mode="ansi")
    text.reset(seed=0)
    summary = text.render()
    assert "equity" in summary and "drawdown" in summary


def test_stocks_env_matches_portfolio_env_with_one_symbol(market: MarketData) -> None:
    one = market.select([market.symbols[0]])
    execution = dict(allow_short=True, slippage_bps=2, spread_bps=2, fractional=False, borrow_rate=0.02)
    stocks = gym.make("AlpacaGym/Stocks-v0", data=one, action_mode="weights", execution=execution)
    portfolio = gym.make("AlpacaGym/Portfolio-v0", data=one, action_mode="weights", execution=execution)
    actions = random_actions(stocks, one.n_bars, seed=9)
    rs, rp = rollout(stocks, actions), rollout(portfolio, actions)
    assert len(rs) == len(rp)
    for (os_, r_s, i_s), (op, r_p, i_p) in zip(rs, rp):
        assert i_s["equity"] == pytest.approx(i_p["equity"], rel=1e-12)
        assert r_s == pytest.approx(r_p, abs=1e-12)
        np.testing.assert_allclose(os_[:-3], op[:-3])


def test_deep_copying_info_shares_the_read_only_history(market: MarketData) -> None:
    import copy

    env = make("AlpacaGym/Portfolio-v0", market)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(env.action_space.shape, 0.3, dtype=np.float32))
    assert info["fills"], "the step should have traded"
    clone = copy.deepcopy(info)
    assert clone.keys() == info.keys() and type(clone) is type(info)
    assert clone["history"] is info["history"] and copy.deepcopy(market) is market
    assert clone["fills"] is info["fills"], "immutable records are shared, not rebuilt"
    for key in ("positions", "weights"):
        assert clone[key] is not info[key] and np.array_equal(clone[key], info[key])
    clone["positions"][0] = -1.0
    assert info["positions"][0] != -1.0
