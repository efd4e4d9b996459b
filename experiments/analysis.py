"""How much to trust a backtest: walk-forward evaluation, Monte Carlo intervals, parameter stability.

- :func:`walk_forward`: tune a policy's parameters on each train window and score the chosen ones only
  on the test window that follows (:class:`envs.data.splits.WalkForward`); the test windows, stitched
  together, are an out-of-sample equity curve.
- :func:`monte_carlo`: resample the bar returns (moving-block bootstrap) for confidence intervals of the
  Sharpe ratio and the max drawdown, and shuffle the order of the closed trades for the drawdown that
  luck in sequencing alone could have produced.
- :func:`parameter_grid`: a metric over a grid of two parameters; a robust strategy sits on a plateau,
  an over-fitted one on a spike.

Policies come from a factory (``params -> policy``), e.g. ``lambda p: make_policy("sma_crossover", p)``.
Every run uses the data up to the end of its window, so indicators are warm when the window starts,
and starts trading at the window's first bar: nothing after a window's end is ever read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agents.policy import Policy
from envs.data.market_data import MarketData
from envs.data.splits import WalkForward
from envs.sim.metrics import PERIODS_PER_YEAR, Stats, compute_stats
from experiments.engine import BacktestConfig, BacktestResult, run_backtest, start_bar

PolicyFactory = Callable[[Mapping[str, Any]], Policy]
_METRICS = {f.name for f in fields(Stats) if f.type in ("float", "int")}


def _check_metric(metric: str) -> None:
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_METRICS)}")


def _score(stats: Stats, metric: str) -> float:
    value = float(getattr(stats, metric))
    return value if np.isfinite(value) else -np.inf


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as parameter dicts.

    :param grid: parameter name -> values to try.
    """
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _builds(factory: PolicyFactory, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` make a valid policy (a grid may hold pairs such as fast >= slow)."""
    try:
        factory(params)
    except ValueError:
        return False
    return True


def _run_window(
    factory: PolicyFactory, params: Mapping[str, Any], data: MarketData, window: slice,
    config: BacktestConfig,
) -> BacktestResult:
    return run_backtest(factory(params), data.iloc(slice(0, window.stop)), config, start=window.start)


# ---------------------------------------------------------------------------------------- walk-forward
@dataclass(frozen=True)
class WalkForwardResult:
    """Out-of-sample record of a walk-forward run.

    :param folds: one row per fold: windows, chosen parameters, train and test score, test return.
    :param equity: the test windows' equity stitched into one curve (each fold continues from the last).
    :param stats: metrics of the stitched out-of-sample curve.
    """

    folds: pd.DataFrame
    equity: pd.Series
    stats: Stats


def walk_forward(
    factory: PolicyFactory,
    grid: Mapping[str, Sequence[Any]],
    data: MarketData,
    splitter: WalkForward,
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    progress: bool = False,
) -> WalkForwardResult:
    """Tune on each train window, score on the next test window.

    :param factory: builds a policy from parameters.
    :param grid: parameter name -> candidate values; every valid combination is tried on each train
        window (invalid ones, which the policy refuses with a ValueError, are skipped).
    :param data: the bars.
    :param splitter: train/test window layout.
    :param config: backtest settings.
    :param metric: :class:`~envs.sim.metrics.Stats` field to maximise on train.
    :param progress: show a progress bar over folds.
    """
    _check_metric(metric)
    config = config or BacktestConfig()
    # Every window is annualised by the whole data set's calendar, not re-inferred from a short slice.
    config = replace(config, periods_per_year=config.periods_per_year or data.periods_per_year)
    combos = [p for p in expand_grid(grid) or [{}] if _builds(factory, p)]
    if not combos:
        raise ValueError(f"no combination of {dict(grid)} gives a valid policy")
    warmup = start_bar([factory(combos[0])], data, config)
    rows, pieces = [], []
    level = config.initial_cash
    for split in tqdm(splitter.split(data.n_bars), desc="walk-forward", disable=not progress):
        train = slice(max(split.train.start, warmup), split.train.stop)
        if train.stop - train.start < 2 or split.test.stop - split.test.start < 2:
            raise ValueError(f"fold {split.fold}: windows too short after the warm-up of {warmup} bars")
        scores = [_score(_run_window(factory, p, data, train, config).stats, metric) for p in combos]
        best = combos[int(np.argmax(scores))]
        test = _run_window(factory, best, data, split.test, config)
        curve = test.equity / test.equity.iloc[0]
        if pieces:
            curve = curve[curve.index > pieces[-1].index[-1]]
        pieces.append(level * curve)
        level = float(pieces[-1].iloc[-1]) if len(pieces[-1]) else level
        rows.append({
            "fold": split.fold,
            "train_start": data.index[train.start], "train_end": data.index[train.stop - 1],
            "test_start": data.index[split.test.start], "test_end": data.index[split.test.stop - 1],
            "params": best, f"train_{metric}": max(scores), f"test_{metric}": getattr(test.stats, metric),
            "test_return": test.stats.total_return,
        })
    equity = pd.concat(pieces).rename("equity")
    stats = compute_stats(
        equity, periods_per_year=config.periods_per_year or data.periods_per_year, calendar=data.calendar
    )
    return WalkForwardResult(pd.DataFrame(rows), equity, stats)


# ---------------------------------------------------------------------------------------- Monte Carlo
@dataclass(frozen=True)
class MonteCarloResult:
    """Resampled metrics of one backtest.

    :param observed: the backtest's own Sharpe ratio and max drawdown.
    :param sharpe: Sharpe ratio of each bootstrap sample of the bar returns.
    :param max_drawdown: max drawdown of each bootstrap sample.
    :param trade_max_drawdown: max drawdown of the closed trades' PnL in each shuffled order (empty
        without trades).
    """

    observed: dict[str, float]
    sharpe: np.ndarray
    max_drawdown: np.ndarray
    trade_max_drawdown: np.ndarray

    def intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Observed value, and the median and central ``level`` interval of each resampled metric.

        :param level: coverage of the interval.
        """
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        rows = {}
        for name, samples, observed in (
            ("sharpe (bootstrap)", self.sharpe, self.observed["sharpe"]),
            ("max_drawdown (bootstrap)", self.max_drawdown, self.observed["max_drawdown"]),
            ("max_drawdown (trade order)", self.trade_max_drawdown, self.observed["trade_max_drawdown"]),
        ):
            if len(samples):
                q = np.nanquantile(samples, [lo, 0.5, hi])
                rows[name] = {"observed": observed, f"{lo:.1%}": q[0], "median": q[1], f"{hi:.1%}": q[2]}
        return pd.DataFrame(rows).T


def _drawdowns(wealth: np.ndarray) -> np.ndarray:
    """Max drawdown of each row of a wealth matrix."""
    return (wealth / np.maximum.accumulate(wealth, axis=1)).min(axis=1) - 1.0


def monte_carlo(
    result: BacktestResult,
    n_samples: int = 1000,
    block: int = 1,
    seed: int = 0,
    periods_per_year: int = PERIODS_PER_YEAR,
    chunk: int = 4_000_000,
) -> MonteCarloResult:
    """Bootstrap the bar returns and shuffle the trade order of one backtest.

    :param result: the backtest.
    :param n_samples: number of resamples of each kind.
    :param block: block length of the moving-block bootstrap (1 = i.i.d.; longer keeps volatility
        clustering and autocorrelation inside blocks).
    :param seed: seed of the random generator.
    :param periods_per_year: bars per year, to annualise the Sharpe ratio.
    :param chunk: most values resampled at once (bounds memory on long series).
    """
    if n_samples < 1 or block < 1:
        raise ValueError(f"n_samples and block must be >= 1, got {n_samples}, {block}")
    rng = np.random.default_rng(seed)
    equity = result.equity.to_numpy(dtype=np.float64)
    returns = equity[1:] / equity[:-1] - 1.0
    n = len(returns)
    if n < 2:
        raise ValueError("monte_carlo needs at least three equity values")
    block = min(block, n)
    n_blocks = -(-n // block)
    sharpe = np.empty(n_samples)
    mdd = np.empty(n_samples)
    rows_per_chunk = max(1, chunk // n)
    for lo in range(0, n_samples, rows_per_chunk):
        rows = min(rows_per_chunk, n_samples - lo)
        starts = rng.integers(0, n - block + 1, size=(rows, n_blocks))
        idx = (starts[:, :, None] + np.arange(block)).reshape(rows, -1)[:, :n]
        sample = returns[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sample.mean(axis=1) / sample.std(axis=1, ddof=1)
        sharpe[lo : lo + rows] = ratio * np.sqrt(periods_per_year)
        wealth = np.cumprod(np.hstack([np.ones((rows, 1)), 1.0 + sample]), axis=1)
        mdd[lo : lo + rows] = _drawdowns(wealth)

    pnl = result.trades["pnl"].to_numpy(dtype=np.float64) if len(result.trades) else np.empty(0)
    trade_mdd = np.empty(0)
    observed_trade_mdd = float("nan")
    if len(pnl):
        start = equity[0]
        orders = rng.permuted(np.tile(pnl, (n_samples, 1)), axis=1)
        trade_mdd = _drawdowns(start + np.hstack([np.zeros((n_samples, 1)), np.cumsum(orders, axis=1)]))
        observed_trade_mdd = float(_drawdowns((start + np.concatenate([[0.0], np.cumsum(pnl)]))[None])[0])
    observed = {
        "sharpe": result.stats.sharpe,
        "max_drawdown": result.stats.max_drawdown,
        "trade_max_drawdown": observed_trade_mdd,
    }
    return MonteCarloResult(observed, sharpe, mdd, trade_mdd)


# ---------------------------------------------------------------------------------------- stability
def parameter_grid(
    factory: PolicyFactory,
    data: MarketData,
    x: tuple[str, Sequence[Any]],
    y: tuple[str, Sequence[Any]],
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    progress: bool = False,
) -> pd.DataFrame:
    """``metric`` for every pair of values of two parameters (NaN where a pair is invalid).

    :param factory: builds a policy from parameters.
    :param data: the bars.
    :param x: (name, values) of the column parameter.
    :param y: (name, values) of the row parameter.
    :param config: backtest settings.
    :param metric: :class:`~envs.sim.metrics.Stats` field to record.
    :param progress: show a progress bar.
    """
    _check_metric(metric)
    config = config or BacktestConfig()
    (x_name, x_values), (y_name, y_values) = x, y
    start = start_bar([factory({})], data, config)
    grid = pd.DataFrame(
        np.nan, index=pd.Index(list(y_values), name=y_name), columns=pd.Index(list(x_values), name=x_name)
    )
    pairs = list(itertools.product(y_values, x_values))
    for yv, xv in tqdm(pairs, desc="parameter grid", disable=not progress):
        try:
            policy = factory({x_name: xv, y_name: yv})
        except ValueError:
            continue
        grid.loc[yv, xv] = getattr(run_backtest(policy, data, config, start=start).stats, metric)
    return grid
