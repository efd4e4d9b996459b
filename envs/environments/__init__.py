"""The Gymnasium environments: the shared base (:mod:`~envs.environments.base`), ``Stocks-v0``
(:mod:`~envs.environments.stocks`), ``Portfolio-v0`` (:mod:`~envs.environments.portfolio`), ``Options-v0``
(:mod:`~envs.environments.options`), the batched numpy vector env (:mod:`~envs.environments.vector`) and
the reward functions (:mod:`~envs.environments.rewards`); the microstructure envs ``MarketMaking-v0``
(:mod:`~envs.environments.market_making`) and ``Execution-v0`` (:mod:`~envs.environments.optimal_execution`). They are registered on ``import envs``."""

from envs.environments.base import TradingEnvBase
from envs.environments.market_making import MarketMakingEnv, MarketMakingVectorEnv
from envs.environments.optimal_execution import ExecutionEnv, ExecutionVectorEnv
from envs.environments.options import OptionsEnv
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv

__all__ = [
    "ExecutionEnv", "ExecutionVectorEnv", "MarketMakingEnv", "MarketMakingVectorEnv", "OptionsEnv", "PortfolioEnv", "StocksEnv", "TradingEnvBase", "TradingVectorEnv"]
