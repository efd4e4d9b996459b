"""Env steps per second: ``Stocks-v0`` and its vector env against gym-anytrading and Gym-Trading-Env.

Everything runs on the same bars (gym-anytrading's bundled GOOGL daily data), through ``gymnasium.make``
(``gymnasium.make_vec`` for the vector env) with its default wrappers, with uniformly random actions drawn
up front from one seeded generator so the action sampler's cost is not part of anyone's number. Our env
runs with costs on (commission 10 bps, slippage 1 bp, spread 2 bps). Gym-Trading-Env turns every warning
into an error when imported, so it runs in its own subprocess.

The vector env runs twice on the same bars and the same actions: with the env's default observation
(1 bar x 16 features + 3 account values = 19 floats, the size of gym-anytrading's 10 bars x 2 signals)
and with the full feature window (10 bars x 63 features + 3 = 633 floats), whose copy into every step's
fresh array bounds the speed.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from functools import partial
from typing import Callable

import gymnasium as gym
import numpy as np

logger = logging.getLogger(__name__)

COSTS = {"commission": 0.001, "slippage_bps": 1.0, "spread_bps": 2.0}
GOAL_SINGLE = 2.0
GOAL_VECTOR = 50.0

_GYM_TRADING_ENV_SCRIPT = r"""
import json, sys, time
import numpy as np
import gymnasium as gym
import gym_trading_env  # noqa: F401  (registers TradingEnv)
from gym_anytrading.datasets import STOCKS_GOOGL

steps = int(sys.argv[1])
df = STOCKS_GOOGL.rename(columns=str.lower).copy()
df["feature_close"] = df["close"].pct_change()
df["feature_volume"] = df["volume"] / df["volume"].rolling(20).max()
df = df.dropna()
env = gym.make("TradingEnv", df=df, positions=[0, 1], trading_fees=0.001, verbose=0)
actions = np.random.default_rng(0).integers(0, 2, size=steps)
env.reset(seed=0)
done, n, start = False, 0, time.perf_counter()
for a in actions:
    _, _, terminated, truncated, _ = env.step(int(a))
    n += 1
    if terminated or truncated:
        env.reset()
elapsed = time.perf_counter() - start
print(json.dumps({"steps": n, "seconds": elapsed}))
"""


def _time_single(make: Callable[[], gym.Env], actions: np.ndarray) -> float:
    env = make()
    env.reset(seed=0)
    step = env.step
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def _best_of(repeats: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(repeats))


def _gym_trading_env_rate(steps: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _GYM_TRADING_ENV_SCRIPT, str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["steps"] / result["seconds"]


def run(quick: bool = False) -> list[str]:
    """Measure and return the ratio lines."""
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    from gym_anytrading.datasets import STOCKS_GOOGL

    import envs  # noqa: F401
    from envs.data.market_data import MarketData
    from envs.features import DEFAULT_FEATURES, FeatureConfig

    steps = 20_000 if quick else 200_000
    repeats = 1 if quick else 3
    data = MarketData.from_frame(STOCKS_GOOGL, symbol="GOOGL")
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=steps)
    int_actions = [int(a) for a in actions]

    anytrading = _best_of(repeats, lambda: _time_single(lambda: gym.make("stocks-v0"), int_actions))
    logger.info("gym-anytrading stocks-v0: %,.0f steps/s".replace(",", ""), anytrading)
    trading_env = _best_of(repeats, lambda: _gym_trading_env_rate(steps))
    logger.info("Gym-Trading-Env TradingEnv: %.0f steps/s", trading_env)
    ours = _best_of(
        repeats,
        lambda: _time_single(lambda: gym.make("AlpacaGym/Stocks-v0", data=data, execution=COSTS), int_actions),
    )
    logger.info("alpaca-gym Stocks-v0: %.0f steps/s", ours)
    peer = max(anytrading, trading_env)
    peer_name = "gym-anytrading" if anytrading >= trading_env else "Gym-Trading-Env"
    lines = [
        f"env: Stocks-v0 {ours:,.0f} steps/s vs gym-anytrading {anytrading:,.0f}, Gym-Trading-Env "
        f"{trading_env:,.0f}: {ours / peer:.2f}x the faster peer ({peer_name}) (goal >= {GOAL_SINGLE:.0f}x)"
    ]
    observations = {
        "default observation": {},
        "full feature window": {"window_size": 10, "features": FeatureConfig(DEFAULT_FEATURES)},
    }
    for n in (64, 256):
        batches = rng.integers(0, 2, size=(max(steps // n, 200), n))
        for label, obs_kwargs in observations.items():
            vec = gym.make_vec(
                "AlpacaGym/Stocks-v0", num_envs=n, vectorization_mode="vector_entry_point", data=data,
                execution=COSTS, **obs_kwargs,
            )
            size = vec.single_observation_space.shape[0]
            vec.reset(seed=0)
            vec.step(batches[0])  # compiles, or loads the compiled step from numba's cache, before timing
            # A vector run takes milliseconds: best of several rides out a busy machine.
            rate = _best_of(max(repeats, 5), partial(_vec_rate, vec, batches))
            logger.info("alpaca-gym vector env N=%d, %s (%d floats): %.0f env-steps/s", n, label, size, rate)
            lines.append(
                f"env: vector Stocks-v0 N={n}, {label} ({size} floats) {rate:,.0f} env-steps/s: "
                f"{rate / peer:.1f}x the faster peer's single env (goal >= {GOAL_VECTOR:.0f}x)"
            )
    return lines


def _vec_rate(vec: gym.vector.VectorEnv, batches: np.ndarray) -> float:
    vec.reset(seed=0)
    step = vec.step
    start = time.perf_counter()
    for a in batches:
        step(a)
    return batches.size / (time.perf_counter() - start)
