"""The Policy protocol: everything that trades (rule bot, ML predictor, PPO agent) is one.

A policy sees what an environment step returns, ``obs`` (the float32 observation) and ``info`` (portfolio
state plus a read-only view of the raw history up to now), and returns an action in the env's action space.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """What the backtest and the live runner call.

    ``reset(seed)`` starts a new episode; ``act(obs, info)`` returns one action. A policy whose decision is
    a causal vectorised function of the history may also offer ``act_batch`` (see :class:`BatchPolicy`).
    """

    name: str

    def reset(self, seed: int | None = None) -> None:
        """Forget episode state; seed any randomness."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> Any:
        """Choose the action for the bar that just closed."""


@runtime_checkable
class BatchPolicy(Policy, Protocol):
    """A policy that can hand the backtest its whole action series at once.

    ``act_batch(data)`` must return exactly what stepping ``act`` bar by bar would return; a test checks it.
    """

    def act_batch(self, data: Any) -> np.ndarray:
        """Actions for every bar of ``data`` (a :class:`envs.MarketData`), one row per bar."""
