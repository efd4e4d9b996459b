"""Score a policy on one period of the data: one deterministic episode, then the trading metrics.

The training callbacks use it on the validation period and the trainer on the test period, so model
selection and the final out-of-sample number are measured exactly as a backtest measures them: the
single env in ``weights`` action mode (what every stock policy speaks), or the options env for options
policies (whose actions are strategy indices), fills at the next open, costs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from agents.policy import Policy
from envs.data.market_data import MarketData
from envs.environments.base import TradingEnvBase
from envs.environments.options import OptionsEnv, holdings
from envs.sim.metrics import Stats, compute_stats
from envs.sim.trades import round_trips, traded_value


@dataclass(frozen=True)
class Period:
    """Bars ``[start, stop)`` of a data set: the equity curve starts at ``start``'s close.

    :param name: label, e.g. ``"train"``, ``"validation"``, ``"test"``.
    :param start: first bar (the agent's first decision is after its close).
    :param stop: one past the last bar.
    """

    name: str
    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop - 1:
            raise ValueError(f"period {self.name!r}: need 0 <= start < stop - 1, got [{self.start}, {self.stop})")

    def dates(self, data: MarketData) -> tuple[str, str]:
        """First and last timestamp of the period in ``data``, as ISO strings.

        :param data: the data the period indexes.
        """
        return data.index[self.start].isoformat(), data.index[self.stop - 1].isoformat()


def split_periods(n_bars: int, train_fraction: float, val_fraction: float) -> tuple[Period, Period, Period]:
    """Train, validation and test periods in time order (walk-forward style: each lies after the last).

    :param n_bars: bars in the data.
    :param train_fraction: share of bars in train.
    :param val_fraction: share of bars in validation; the rest is test.
    """
    train_stop = int(round(n_bars * train_fraction))
    val_stop = int(round(n_bars * (train_fraction + val_fraction)))
    return Period("train", 0, train_stop), Period("validation", train_stop, val_stop), Period("test", val_stop, n_bars)


@dataclass(frozen=True)
class Evaluation:
    """One policy's episode over one period.

    :param period: the period.
    :param stats: the metrics (Sharpe, return, drawdown, turnover, win rate, ...).
    :param equity: equity at every close of the period.
    """

    period: Period
    stats: Stats
    equity: pd.Series

    def scalars(self) -> dict[str, float]:
        """The numbers logged to TensorBoard and written to metrics files."""
        s = self.stats
        return {
            "sharpe": s.sharpe, "total_return": s.total_return, "cagr": s.cagr, "max_drawdown": s.max_drawdown,
            "turnover": s.turnover, "win_rate": s.win_rate, "n_trades": float(s.n_trades),
            "exposure": s.exposure, "sortino": s.sortino,
        }


EvalEnv = TradingEnvBase | OptionsEnv
EnvFactory = Callable[[MarketData], EvalEnv]


def evaluate(policy: Policy, data: MarketData, period: Period, make_env: EnvFactory, seed: int = 0) -> Evaluation:
    """Run ``policy`` over ``period`` and compute its metrics.

    The env is built on the bars up to the end of the period only, so nothing after it exists for the
    policy or the features; the bars before the period feed the features' warm-up and normalisation.

    :param policy: the policy; its actions must be target weights (``weights`` action mode), or action
        indices of the options env.
    :param data: the full data set.
    :param period: which bars to trade.
    :param make_env: builds the single env (a stock env in ``weights`` action mode, or the options env) on
        the data it is given.
    :param seed: passed to ``policy.reset`` and ``env.reset``.
    """
    env = make_env(data.iloc(slice(0, period.stop)))
    if period.start < env.first_t:
        raise ValueError(
            f"period {period.name!r} starts at bar {period.start}, before the features' warm-up and window "
            f"end (bar {env.first_t}); use a later start or fewer/shorter features"
        )
    policy.reset(seed)
    obs, info = env.reset(seed=seed, options={"start": period.start})
    n_steps = period.stop - 1 - period.start
    first = holdings(info)
    positions = np.empty((n_steps + 1, first.size))
    positions[0] = first
    for k in range(1, n_steps + 1):
        obs, _, terminated, _, info = env.step(policy.act(obs, info))
        positions[k] = holdings(info)
        if terminated:
            positions = positions[: k + 1]
            break
    fills = env.trade_frame()
    equity = env.equity_series()
    stats = compute_stats(
        equity,
        trades=round_trips(fills) if len(fills) else None,
        positions=positions,
        traded_value=traded_value(fills, equity.index),
        costs=float(fills["commission"].sum() + fills["impact_cost"].sum()) if len(fills) else 0.0,
        periods_per_year=data.periods_per_year,
        calendar=data.calendar,
    )
    return Evaluation(period, stats, equity)

