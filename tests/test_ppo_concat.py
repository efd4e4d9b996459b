"""ConcatVecEnv: several batched envs stepped as one batch, each exactly as it would step alone."""

from __future__ import annotations

import numpy as np
import pytest

from agents.vec_env import ConcatVecEnv, SB3VecEnv
from envs.data.synthetic import generate_market
from envs.environments.vector import TradingVectorEnv
from envs.features import FeatureConfig

KWARGS = {"window_size": 2, "episode_length": 30, "features": FeatureConfig(features=("ret_1", "rvol_20"))}


@pytest.fixture(scope="module")
def markets() -> tuple:
    data = generate_market(n_days=300, n_symbols=2, seed=5)
    return data.select(["SYN0"]), data.select(["SYN1"])


def _venv(data, n: int) -> SB3VecEnv:
    return SB3VecEnv(TradingVectorEnv(n, data=data, **KWARGS))


def test_steps_like_the_parts(markets: tuple) -> None:
    a, b = markets
    joined = ConcatVecEnv([_venv(a, 2), _venv(b, 3)])
    alone = [_venv(a, 2), _venv(b, 3)]
    joined.seed(7)
    for k, venv in enumerate(alone):
        venv.seed(7 + k)
    obs = joined.reset()
    assert obs.shape[0] == joined.num_envs == 5
    np.testing.assert_array_equal(obs, np.concatenate([v.reset() for v in alone]))
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(40):
        actions = rng.integers(0, 2, size=5)
        obs, rewards, dones, infos = joined.step(actions)
        parts = [alone[0].step(actions[:2]), alone[1].step(actions[2:])]
        np.testing.assert_array_equal(obs, np.concatenate([p[0] for p in parts]))
        np.testing.assert_array_equal(rewards, np.concatenate([p[1] for p in parts]))
        np.testing.assert_array_equal(dones, np.concatenate([p[2] for p in parts]))
        assert len(infos) == 5
        finished += int(dones.sum())
        assert all("terminal_observation" in infos[i] for i in np.flatnonzero(dones))
    assert finished >= 5, "every 30-bar episode ends within 40 steps"


def test_attributes_route_to_the_right_part(markets: tuple) -> None:
    a, b = markets
    joined = ConcatVecEnv([_venv(a, 2), _venv(b, 3)])
    symbols = joined.get_attr("symbol")
    assert symbols == ["SYN0", "SYN0", "SYN1", "SYN1", "SYN1"]
    assert joined.get_attr("symbol", indices=[1, 4]) == ["SYN0", "SYN1"]
    assert joined.env_is_wrapped(object, indices=3) == [False]


def test_spaces_must_match(markets: tuple) -> None:
    a, _ = markets
    other = SB3VecEnv(TradingVectorEnv(2, data=a, **{**KWARGS, "window_size": 3}))
    with pytest.raises(ValueError, match="VecEnv 1"):
        ConcatVecEnv([_venv(a, 2), other])
    with pytest.raises(ValueError, match="at least one"):
        ConcatVecEnv([])
