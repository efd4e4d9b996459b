"""The microstructure envs against their closed forms, and ``MarketMaking-v0``'s vector env speed.

1. Steps per second of ``MarketMaking-v0``'s vector env at N=256, random actions drawn up front (goal:
   2M env-steps/s on this machine).
2. Monte Carlo value of the Avellaneda-Stoikov optimal quotes against the closed-form optimum ``h(0, 0)``
   (goal: within 2%, with a 95% confidence interval), and of the GLFT approximate quotes against the same
   optimum and against their own exact value (Kolmogorov equation), at the env's defaults, where the
   penalties keep the inventory in GLFT's stationary regime.
3. Monte Carlo expected reward of Almgren-Chriss and TWAP on ``Execution-v0`` against their closed forms.

The machine is shared: the speed is the best of several rounds.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from agents.registry import make_policy
from baselines.execution import expected_reward
from baselines.market_making import optimal_value, policy_value
from envs.environments.market_making import MarketMakingVectorEnv
from envs.environments.optimal_execution import ExecutionVectorEnv

logger = logging.getLogger(__name__)

GOAL_STEPS = 2e6
GOAL_MATCH = 0.02


def _steps_per_second(n: int, steps: int, repeats: int) -> float:
    env = MarketMakingVectorEnv(n)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(64, n, 2)).astype(np.float32)
    for k in range(200):
        env.step(actions[k % 64])
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for k in range(steps):
            env.step(actions[k % 64])
        best = max(best, n * steps / (time.perf_counter() - start))
    return best


def _monte_carlo(policy_name: str, env: MarketMakingVectorEnv | ExecutionVectorEnv, seed: int) -> tuple[float, float]:
    """Mean episode reward and its 95% half-width over the env's batch of episodes."""
    policy = make_policy(policy_name)
    obs, info = env.reset(seed=seed)
    total = np.zeros(env.num_envs)
    done = np.zeros(env.num_envs, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
        total += reward
        done |= terminated | truncated
    return float(total.mean()), float(1.96 * total.std(ddof=1) / math.sqrt(total.size))


def _match(name: str, mc: tuple[float, float], closed: float, what: str, goal: bool = True) -> str:
    """One line: the Monte Carlo mean and its 95% interval against the closed form, and whether the whole
    interval lies within the goal's 2% (market makers) or the closed form lies in the interval."""
    mean, half = mc
    rel, rel_half = (mean - closed) / abs(closed), half / abs(closed)
    if goal:
        verdict = f"goal within {100 * GOAL_MATCH:.0f}%: {'met' if abs(rel) + rel_half <= GOAL_MATCH else 'NOT met'}"
    else:
        verdict = f"closed form {'inside' if abs(rel) <= rel_half else 'OUTSIDE'} the 95% interval"
    return (f"lob: {name} Monte Carlo {mean:.3f} ± {half:.3f} (95%) vs {what} {closed:.3f}: "
            f"{100 * rel:+.2f}% ± {100 * rel_half:.2f}% ({verdict})")


def run(quick: bool = False) -> list[str]:
    """Measure and return the summary lines."""
    n_paths = 2048 if quick else 16384
    speed = _steps_per_second(256, 500 if quick else 1000, 1 if quick else 20)
    logger.info("MarketMaking-v0 vector env, N=256: %.0f env-steps/s", speed)
    lines = [
        f"lob: MarketMaking-v0 vector env N=256 {speed / 1e6:.2f}M env-steps/s "
        f"(goal >= {GOAL_STEPS / 1e6:.0f}M: {'met' if speed >= GOAL_STEPS else 'NOT met'})"
    ]
    env = MarketMakingVectorEnv(n_paths)
    book, phi, alpha = env.book, env.spec_.running_penalty, env.spec_.terminal_penalty
    optimum = optimal_value(book, phi, alpha)
    lines.append(_match("avellaneda_stoikov (exact)", _monte_carlo("avellaneda_stoikov", env, 1), optimum,
                        "closed-form optimum h(0,0)"))
    glft = make_policy("glft")
    glft_exact = policy_value(book, phi, alpha, lambda k, q: glft.quotes(book, phi, alpha, k, q))
    glft_mc = _monte_carlo("glft", env, 2)
    lines.append(_match("glft", glft_mc, glft_exact, "its exact value (Kolmogorov)"))
    lines.append(_match("glft", glft_mc, optimum, "the closed-form optimum h(0,0)"))
    for name in ("almgren_chriss", "twap"):
        execution = ExecutionVectorEnv(n_paths)
        trades = -np.diff(make_policy(name).holdings(execution.impact))
        lines.append(_match(name, _monte_carlo(name, execution, 3), expected_reward(execution.impact, trades),
                            "closed form -(E[cost] + lambda Var)", goal=False))
    return lines
