"""Reference: the moving-average crossover through our env against backtesting.py's own run on its GOOG data.

backtesting.py's conventions: decision at a bar's close, market order filled at the next open,
commission 0.002 on both legs, all-in whole shares (``buy()``/``sell()`` with the default size), long and
short, ``exclusive_orders=True`` (a new signal closes the open trade first), the last trade left open.
Our side: ``sma_crossover`` with ``fraction=1.0``, weights +1/-1 held between crossings, whole shares,
shorting allowed, risk layer off.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest  # noqa: E402
from backtesting.test import GOOG  # noqa: E402

from baselines.sma_crossover import SmaCrossover  # noqa: E402
from envs.data.market_data import MarketData  # noqa: E402
from envs.sim.execution import ExecutionConfig  # noqa: E402
from experiments.benchmarks.backtest import backtesting_sma_cross  # noqa: E402
from experiments.engine import BacktestConfig, run_backtest  # noqa: E402


@pytest.fixture(scope="module")
def reference() -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(GOOG, backtesting_sma_cross(10, 20), cash=10_000, commission=0.002, exclusive_orders=True)
        return bt.run()


@pytest.fixture(scope="module")
def ours():
    data = MarketData.from_frame(GOOG, "GOOG")
    config = BacktestConfig(
        initial_cash=10_000,
        execution=ExecutionConfig(commission=0.002, fractional=False, allow_short=True),
        risk=None,
    )
    bot = SmaCrossover(fast=10, slow=20, fraction=1.0, allow_short=True)
    return data, run_backtest(bot, data, config)


def test_same_trade_bars_sides_and_prices(reference, ours):
    """All 93 closed trades enter and exit on the same bars, on the same side, at the same prices."""
    data, result = ours
    theirs, mine = reference["_trades"], result.trades[~result.trades["open"]]
    assert len(mine) == len(theirs) == 93
    bar = data.index.get_indexer
    np.testing.assert_array_equal(bar(pd.DatetimeIndex(mine["entry_time"])), theirs["EntryBar"])
    np.testing.assert_array_equal(bar(pd.DatetimeIndex(mine["exit_time"])), theirs["ExitBar"])
    np.testing.assert_array_equal(np.where(mine["side"] == "long", 1, -1), np.sign(theirs["Size"]))
    np.testing.assert_allclose(mine["entry_price"], theirs["EntryPrice"])
    np.testing.assert_allclose(mine["exit_price"], theirs["ExitPrice"])


def test_same_trade_sizes_and_pnl(reference, ours):
    """Whole-share sizes and net PnL of every closed trade."""
    _, result = ours
    theirs, mine = reference["_trades"], result.trades[~result.trades["open"]]
    signed = np.where(mine["side"] == "long", 1, -1) * mine["size"]
    np.testing.assert_array_equal(signed, theirs["Size"])
    np.testing.assert_allclose(mine["pnl"], theirs["PnL"], rtol=1e-9)


def test_same_final_equity_as_backtesting_py(reference, ours):
    _, result = ours
    # backtesting.py leaves the last trade open and marks it at the last close, as we do.
    assert result.positions[-1, 0] != 0
    assert result.equity.iloc[-1] == pytest.approx(reference["Equity Final [$]"], rel=1e-3)


def test_the_open_trade_counts_marked_to_market(ours):
    """The position still open at the end is one more trade, valued at the last close with no exit cost:
    closed trades' PnL plus its PnL is the whole run's PnL."""
    data, result = ours
    open_trade = result.trades[result.trades["open"]]
    assert len(open_trade) == 1 and result.stats.n_trades == 94
    assert open_trade["exit_price"].iloc[0] == data.close[-1, 0]
    assert result.trades["pnl"].sum() == pytest.approx(result.equity.iloc[-1] - result.equity.iloc[0], rel=1e-9)

