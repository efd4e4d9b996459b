"""The batched vector env: same numbers as the single envs, Gymnasium and SB3 compatible."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import envs  # noqa: F401
from envs.actions import InvalidActionError
from envs.market_data import MarketData
from envs.synthetic import generate_market
from envs.vector_env import SB3VecEnv, TradingVectorEnv


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=3, n_days=600, seed=5)


EXECUTION = dict(allow_short=True, slippage_bps=2, spread_bps=3, fractional=False, borrow_rate=0.02)


@pytest.mark.parametrize("env_id, kind", [("AlpacaGym/Stocks-v0", "stocks"), ("AlpacaGym/Portfolio-v0", "portfolio")])
@pytest.mark.parametrize("mode", ["discrete", "weights", "continuous"])
def test_one_env_batch_reproduces_the_single_env(market: MarketData, env_id: str, kind: str, mode: str) -> None:
    single = gym.make(env_id, data=market, action_mode=mode, execution=EXECUTION)
    vec = TradingVectorEnv(1, kind=kind, data=market, action_mode=mode, execution=EXECUTION)
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


def test_vector_env_pickles(market: MarketData) -> None:
    vec = TradingVectorEnv(4, data=market, episode_length=30)
    vec.reset(seed=0)
    vec.step(np.array([1, 0, 1, 1]))
    clone = pickle.loads(pickle.dumps(vec))
    a = vec.step(np.array([0, 1, 1, 0]))
    b = clone.step(np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


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
