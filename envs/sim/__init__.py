"""The simulator: what happens between a policy's target weights and the account.

- :mod:`~envs.sim.actions`: actions of every mode -> target weights, checked against the action space;
- :mod:`~envs.sim.risk`: the risk layer (position caps, stops, drawdown breaker, heat, correlation);
- :mod:`~envs.sim.execution`: costs, the one trade rule (:func:`~envs.sim.execution.should_trade`) and the fill
  arithmetic (:func:`~envs.sim.execution.fill_one`, :func:`~envs.sim.execution.rebalance`);
- :mod:`~envs.sim.portfolio` and :mod:`~envs.sim.trades`: accounting, fills and round trips;
- :mod:`~envs.sim.metrics`: performance statistics;
- :mod:`~envs.sim.vector_kernel` and :mod:`~envs.sim.replay`: the compiled loops of the vector env and of
  the backtest's replay, both filling through the same functions as the single env.
"""

from envs.sim.actions import ACTION_MODES, ActionAdapter, InvalidActionError
from envs.sim.execution import ConfigError, ExecutionConfig, fill_one, rebalance, should_trade
from envs.sim.portfolio import Fill, Portfolio
from envs.sim.risk import RiskConfig, RiskEvent, RiskManager, RiskState

__all__ = [
    "ACTION_MODES",
    "ActionAdapter",
    "ConfigError",
    "ExecutionConfig",
    "Fill",
    "InvalidActionError",
    "Portfolio",
    "RiskConfig",
    "RiskEvent",
    "RiskManager",
    "RiskState",
    "fill_one",
    "rebalance",
    "should_trade",
]
