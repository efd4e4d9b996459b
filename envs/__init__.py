"""alpaca-gym's environments and everything below them, one sub-package per concern:

- :mod:`envs.data`: :class:`MarketData`, its validation and sources (``load_data``), history, splits;
- :mod:`envs.features`: the causal feature library and indicators;
- :mod:`envs.sim`: actions, the risk layer, execution and costs (the one trade rule and fill model),
  accounting, metrics, and the compiled loops of the vector env and the backtest replay;
- :mod:`envs.options`: option pricing, chains, strategies and the option account;
- :mod:`envs.environments`: the Gymnasium envs (``Stocks-v0``, ``Portfolio-v0``, ``Options-v0``, and the
  microstructure envs ``MarketMaking-v0`` and ``Execution-v0`` on :mod:`envs.sim.lob` and
  :mod:`envs.sim.impact`), the batched vector envs and the rewards.

Arrows point one way: ``data -> features, sim, options -> environments``. Nothing here imports
stable-baselines3 (its adapters live in :mod:`agents.vec_env`). Importing this package registers the
environments with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers AlpacaGym/*)

    env = gym.make("AlpacaGym/Stocks-v0")
    vec = gym.make_vec("AlpacaGym/Stocks-v0", num_envs=64, vectorization_mode="vector_entry_point")
"""

from __future__ import annotations

import gymnasium

from envs.data import DataValidationError, MarketData, load_data, validate
from envs.environments import OptionsEnv, PortfolioEnv, StocksEnv, TradingVectorEnv
from envs.features import DEFAULT_FEATURES, OBSERVATION_FEATURES, FeatureConfig
from envs.sim import ConfigError, ExecutionConfig, InvalidActionError, RiskConfig

__all__ = [
    "DEFAULT_FEATURES",
    "ENV_IDS",
    "OBSERVATION_FEATURES",
    "ConfigError",
    "DataValidationError",
    "ExecutionConfig",
    "FeatureConfig",
    "InvalidActionError",
    "MarketData",
    "OptionsEnv",
    "PortfolioEnv",
    "RiskConfig",
    "StocksEnv",
    "TradingVectorEnv",
    "load_data",
    "register_envs",
    "validate",
]

_ENV_SPECS: dict[str, tuple[str, str | None]] = {
    "AlpacaGym/Stocks-v0": (
        "envs.environments.stocks:StocksEnv",
        "envs.environments.vector:make_stocks_vector_env",
    ),
    "AlpacaGym/Portfolio-v0": (
        "envs.environments.portfolio:PortfolioEnv",
        "envs.environments.vector:make_portfolio_vector_env",
    ),
    "AlpacaGym/Options-v0": ("envs.environments.options:OptionsEnv", None),
    "AlpacaGym/MarketMaking-v0": (
        "envs.environments.market_making:MarketMakingEnv",
        "envs.environments.market_making:make_market_making_vector_env",
    ),
    "AlpacaGym/Execution-v0": (
        "envs.environments.optimal_execution:ExecutionEnv",
        "envs.environments.optimal_execution:make_execution_vector_env",
    ),
}

ENV_IDS = tuple(_ENV_SPECS)


def register_envs() -> None:
    """Register every ``AlpacaGym/*`` id with Gymnasium (idempotent)."""
    for env_id, (entry_point, vector_entry_point) in _ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)


register_envs()
