"""The batched vector env: same numbers as the single envs, Gymnasium and SB3 compatible."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO

import envs  # noqa: F401
from agents.vec_env import SB3VecEnv
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv
from envs.features import FeatureConfig
from envs.sim.actions import InvalidActionError


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=3, n_days=600, seed=5)


EXECUTION = dict(allow_short=True, slippage_bps=2, spread_bps=3, fractional=False, borrow_rate=0.02)


@pytest.mark.parametrize("env_id, kind", [("AlpacaGym/Stocks-v0", "stocks"), ("AlpacaGym/Portfolio-v0", "portfolio")])
@pytest.mark.parametrize("mode", ["discrete", "weights", "continuous"])
@pytest.mark.parametrize("window", [1, 4])
def test_one_env_batch_reproduces_the_single_env(
    market: MarketData, env_id: str, kind: str, mode: str, window: int
) -> None:
    kwargs = dict(data=market, action_mode=mode, execution=EXECUTION, window_size=window)
    single = gym.make(env_id, **kwargs)
    vec = TradingVectorEnv(1, kind=kind, **kwargs)
    obs_s, info_s = single.reset(seed=0)
    obs_v, _ = vec.reset(seed=0)
    np.testing.assert_allclose(obs_v[0], obs_s, rtol=1e-6, atol=1e-6)
    single.action_space.seed(1)
    steps = 0
    while True:
        action = single.action_space.sample()
        obs_s, r_s, term_s, trunc_s, info_s = single.step(action)
        obs_v, r_v, term_v, trunc_v, info_v = vec.step(np.asarray(action)[None])
        steps += 1
        assert info_v["equity"][0] == pytest.approx(info_s["equity"], rel=1e-12)
        assert r_v[0] == pytest.approx(r_s, abs=1e-12)
        assert (term_v[0], trunc_v[0]) == (term_s, trunc_s)
        if term_s or trunc_s:
            np.testing.assert_allclose(info_v["final_obs"][0], obs_s, rtol=1e-6, atol=1e-6)
            break
        np.testing.assert_allclose(obs_v[0], obs_s, rtol=1e-6, atol=1e-6)
    assert steps == market.n_bars - 1 - single.unwrapped.first_t


@pytest.mark.parametrize("kind, mode, reward", [
    ("stocks", "discrete", "log_return"),
    ("stocks", "weights", "differential_sharpe"),
    ("stocks", "continuous", "drawdown_penalty"),
    ("portfolio", "weights", "log_return"),
])
def test_batch_matches_single_envs_stepped_separately(market: MarketData, kind: str, mode: str, reward: str) -> None:
    """Every row of an N-env batch, through random starts and autoresets, is the single env from that start."""
    kwargs = dict(data=market, action_mode=mode, reward=reward, episode_length=25,
                  execution={**EXECUTION, "min_weight_change": 0.1})
    vec = TradingVectorEnv(5, kind=kind, **kwargs)
    single_cls = StocksEnv if kind == "stocks" else PortfolioEnv
    singles = [single_cls(**{**kwargs, "features": vec.template.features}) for _ in range(5)]
    obs_v, info_v = vec.reset(seed=11)
    assert len(set(info_v["t"].tolist())) > 1
    for i, single in enumerate(singles):
        obs_s, _ = single.reset(seed=i, options={"start": int(info_v["t"][i])})
        np.testing.assert_allclose(obs_v[i], obs_s, rtol=1e-6, atol=1e-6)
    vec.action_space.seed(4)
    finished = 0
    for _ in range(60):
        actions = vec.action_space.sample()
        obs_v, r_v, term_v, trunc_v, info_v = vec.step(actions)
        for i, single in enumerate(singles):
            obs_s, r_s, term_s, trunc_s, info_s = single.step(actions[i])
            assert info_v["equity"][i] == pytest.approx(info_s["equity"], rel=1e-12)
            assert info_v["cash"][i] == pytest.approx(info_s["cash"], rel=1e-12, abs=1e-9)
            assert info_v["t"][i] == info_s["t"]
            assert r_v[i] == pytest.approx(r_s, abs=1e-12)
            assert (term_v[i], trunc_v[i]) == (term_s, trunc_s)
            if term_s or trunc_s:
                finished += 1
                np.testing.assert_allclose(info_v["final_obs"][i], obs_s, rtol=1e-6, atol=1e-6)
                assert info_v["final_info"]["equity"][i] == info_v["equity"][i]
                obs_s, _ = single.reset(options={"start": int(vec._t[i])})
            np.testing.assert_allclose(obs_v[i], obs_s, rtol=1e-6, atol=1e-6)
    assert finished == 10, "every copy finishes two 25-step episodes in 60 steps"


def _crash_market(n_bars: int = 80, crash_at: int = 60) -> MarketData:
    """A flat-ish price that quadruples at ``crash_at``: a short of all equity is wiped out there."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
    close[crash_at:] *= 4.0
    values = np.stack([close, close * 1.01, close * 0.99, close, np.full(n_bars, 1e6)], axis=-1)[:, None, :]
    index = pd.date_range("2020-01-01", periods=n_bars, freq="D", tz="UTC")
    return MarketData(values, index, ("CRASH",))


def test_wiped_out_rows_terminate_and_reset_alone() -> None:
    data = _crash_market()
    kwargs = dict(data=data, window_size=1, features=FeatureConfig(features=("ret_1",)),
                  execution={"allow_short": True})
    vec = TradingVectorEnv(3, **kwargs)
    single = StocksEnv(**kwargs)
    obs_v, _ = vec.reset(seed=0)
    single.reset(seed=0)
    actions = np.array([0, 1, 0])  # short, flat, short
    for _ in range(100):
        obs_v, r_v, term_v, trunc_v, info_v = vec.step(actions)
        obs_s, r_s, term_s, trunc_s, info_s = single.step(0)
        assert r_v[0] == r_s and bool(term_v[0]) == term_s
        if term_s:
            break
    assert info_s["equity"] <= 0.0
    np.testing.assert_array_equal(term_v, [True, False, True])
    assert not trunc_v.any()
    np.testing.assert_array_equal(r_v[[0, 2]], [-20.0, -20.0])
    np.testing.assert_array_equal(info_v["_final_obs"], [True, False, True])
    np.testing.assert_allclose(info_v["final_obs"][0], obs_s, rtol=1e-6)
    assert info_v["final_obs"][1] is None and info_v["final_info"]["equity"][0] <= 0.0
    fresh, _ = TradingVectorEnv(3, **kwargs).reset(seed=0)
    np.testing.assert_array_equal(obs_v[[0, 2]], fresh[[0, 2]], err_msg="wiped-out rows start again")
    _, _, term_v, _, info_v = vec.step(actions)
    assert not term_v.any()
    assert info_v["t"][0] == info_v["t"][2] == vec.template.first_t + 1 < info_v["t"][1]


def test_borrow_fee_accrues_on_shorts_only(market: MarketData) -> None:
    execution = {"allow_short": True, "borrow_rate": 0.5, "commission": 0.0}
    vec = TradingVectorEnv(2, data=market, execution=execution)
    _, info = vec.reset(seed=0)
    close = vec.template.data.close[:, 0]
    _, _, _, _, info = vec.step(np.array([0, 1]))  # short / flat
    shares = (info["equity"][0] - info["cash"][0]) / close[info["t"][0]]
    assert shares < 0
    per_bar = 0.5 / 252
    for _ in range(5):
        cash = info["cash"].copy()
        _, _, _, _, info = vec.step(np.array([0, 1]))
        fee = per_bar * -shares * close[info["t"][0]]
        assert cash[0] - info["cash"][0] == pytest.approx(fee, rel=1e-9)
        assert info["cash"][1] == cash[1] == 100_000.0


# Valid actions per mode, the same in float32 (1 + 5e-7 is within the adapter's tolerance and clips to 1)
GOOD = {
    "discrete": [1, 0, 1, 1],
    "weights": [[1.0], [0.0], [0.5], [1 + 5e-7]],
    "continuous": [[1.0, 0.0], [0.0, 0.0], [0.25, 0.75], [0.5, 1.0]],
}


@pytest.mark.parametrize("mode, bad, match", [
    ("discrete", [1, 0, 2, 1], "env 2"),
    ("discrete", [1.0, 0.0, 1.0, 1.0], "integers"),
    ("weights", [[1.0], [0.0], [np.nan], [0.5]], "env 2"),
    ("weights", [[1.0], [0.0], [1 + 2e-6], [0.5]], "env 2"),
    ("continuous", [[1.0, 0.0], [0.0, 0.0], [0.2, -0.1], [0.5, 1.0]], "env 2"),
    ("continuous", [[0.5], [0.5], [0.5], [0.5]], "shape"),
])
def test_bad_stock_action_names_the_env_and_changes_nothing(
    market: MarketData, mode: str, bad: list, match: str
) -> None:
    good = GOOD[mode]
    vec = TradingVectorEnv(4, data=market, action_mode=mode)
    twin = TradingVectorEnv(4, data=market, action_mode=mode)
    vec.reset(seed=0)
    twin.reset(seed=0)
    with pytest.raises(InvalidActionError, match=match):
        vec.step(np.asarray(bad))
    with pytest.raises(ValueError, match="expected 4 actions"):
        vec.step(np.asarray(good)[:3])
    for actions in (good, np.asarray(good, dtype=np.float32 if mode != "discrete" else np.int32)):
        a, b = vec.step(actions), twin.step(np.asarray(good))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[4]["equity"], b[4]["equity"])
    weights = vec.adapter.to_weights_batch(np.asarray(good))[:, 0]
    held = vec._shares[:, 0] * vec.template.data.close[vec._t, 0] / vec._equity
    np.testing.assert_allclose(held[weights == 0.0], 0.0)
    assert (held[weights > 0.0] > 0.9 * weights[weights > 0.0]).all()


def test_returned_arrays_are_new_every_step(market: MarketData) -> None:
    vec = TradingVectorEnv(4, data=market, episode_length=2)
    vec.reset(seed=0)
    first = vec.step(np.array([1, 0, 1, 0]))
    second = vec.step(np.array([0, 1, 0, 1]))
    assert "final_obs" in second[4], "the second step ends every episode"
    kept = [*first[:4], *first[4].values()]
    later = [*second[:4], second[4]["equity"], second[4]["cash"], second[4]["t"], *second[4]["final_obs"]]
    internal = [vec._cash, vec._shares, vec._avg_cost, vec._target, vec._equity, vec._peak, vec._t]
    for a in kept:
        assert not any(np.shares_memory(a, b) for b in later + internal)
    assert not any(np.shares_memory(o, second[0]) for o in second[4]["final_obs"])


def test_make_vec_random_starts_autoreset_and_seeding(market: MarketData) -> None:
    vec = gym.make_vec("AlpacaGym/Stocks-v0", num_envs=16, vectorization_mode="vector_entry_point",
                       data=market, episode_length=20)
    obs, info = vec.reset(seed=3)
    assert obs.shape == (16, vec.single_observation_space.shape[0])
    assert len(set(info["t"].tolist())) > 1, "random starts differ across copies"
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=(45, 16))
    finished = 0
    for a in actions:
        obs, rewards, term, trunc, info = vec.step(a)
        assert vec.single_observation_space.contains(obs[0])
        if (term | trunc).any():
            finished += int((term | trunc).sum())
            assert info["_final_obs"].any()
    assert finished == 32, "every copy finishes after exactly episode_length steps, twice"
    again = gym.make_vec("AlpacaGym/Stocks-v0", num_envs=16, vectorization_mode="vector_entry_point",
                         data=market, episode_length=20)
    obs_a, _ = again.reset(seed=3)
    obs_b, _ = vec.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)


def test_bad_batch_action_names_the_env(market: MarketData) -> None:
    vec = TradingVectorEnv(4, kind="portfolio", data=market, action_mode="weights")
    vec.reset(seed=0)
    actions = np.full((4, 3), 0.2, dtype=np.float32)
    actions[2, 1] = 3.0
    with pytest.raises(InvalidActionError, match="env 2"):
        vec.step(actions)
    with pytest.raises(ValueError, match="risk layer"):
        TradingVectorEnv(2, data=market, risk=object())


@pytest.mark.parametrize("kind", ["stocks", "portfolio"])
def test_vector_env_pickles(market: MarketData, kind: str) -> None:
    vec = TradingVectorEnv(4, kind=kind, data=market, episode_length=10, reward="differential_sharpe")
    vec.reset(seed=0)
    vec.action_space.seed(0)
    vec.step(vec.action_space.sample())
    clone = pickle.loads(pickle.dumps(vec))
    for _ in range(25):  # through autoresets: the clone's compiled loops write into the clone's account
        actions = vec.action_space.sample()
        a = vec.step(actions)
        b = clone.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a[4]["equity"], b[4]["equity"])


def test_sb3_adapter_trains_ppo(market: MarketData) -> None:
    venv = SB3VecEnv(TradingVectorEnv(8, data=market, episode_length=64))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=True)
    obs, rewards, dones, infos = venv.step(actions)
    assert obs.shape[0] == 8 and rewards.dtype == np.float32 and len(infos) == 8
    for _ in range(64):
        obs, rewards, dones, infos = venv.step(actions)
        if dones.any():
            i = int(np.flatnonzero(dones)[0])
            assert "terminal_observation" in infos[i] and infos[i]["TimeLimit.truncated"]
            break
    else:
        pytest.fail("no episode ended")


def test_per_env_seeds_start_each_copy_as_a_single_env_seeded_alike(market: MarketData) -> None:
    kwargs = {"data": market.select([market.symbols[0]]), "episode_length": 50}
    vec = TradingVectorEnv(3, **kwargs)
    _, info = vec.reset(seed=[7, 8, 9])
    for i, seed in enumerate((7, 8, 9)):
        single = StocksEnv(**kwargs)
        single.reset(seed=seed)
        assert int(info["t"][i]) == single.unwrapped._t
    _, other = TradingVectorEnv(3, **kwargs).reset(seed=[9, 8, 7])
    assert other["t"][0] == info["t"][2] and other["t"][2] == info["t"][0]
    with pytest.raises(ValueError, match="one seed per env"):
        vec.reset(seed=[1, 2])
