"""alpaca-gym environments and everything they share: data, features, execution, accounting, pricing.

Importing this package registers the environments with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers AlpacaGym/*)

    env = gym.make("AlpacaGym/Stocks-v0")
    vec = gym.make_vec("AlpacaGym/Stocks-v0", num_envs=64, vectorization_mode="vector_entry_point")
"""

from __future__ import annotations

import gymnasium as gym

from envs.actions import InvalidActionError
from envs.execution import ConfigError, ExecutionConfig
from envs.market_data import DataValidationError, MarketData, validate

__all__ = [
    "ConfigError",
    "DataValidationError",
    "ExecutionConfig",
    "InvalidActionError",
    "MarketData",
    "register_envs",
    "validate",
]

ENV_IDS = ("AlpacaGym/Stocks-v0", "AlpacaGym/Portfolio-v0", "AlpacaGym/Options-v0")


def register_envs() -> None:
    """Register every ``AlpacaGym/*`` id with Gymnasium (idempotent)."""
    specs = {
        "AlpacaGym/Stocks-v0": ("envs.stock_env:StocksEnv", "envs.vector_env:make_stocks_vector_env"),
        "AlpacaGym/Portfolio-v0": (
            "envs.portfolio_env:PortfolioEnv",
            "envs.vector_env:make_portfolio_vector_env",
        ),
        "AlpacaGym/Options-v0": ("envs.options_env:OptionsEnv", None),
    }
    for env_id, (entry_point, vector_entry_point) in specs.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)


register_envs()

# Importing the data modules registers their load_data schemes ("alpaca:", "yfinance:", "minio:");
# each loads its client library only when used.
from envs import data_alpaca, data_store, data_yfinance  # noqa: E402,F401
