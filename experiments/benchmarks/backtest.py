"""Backtest speed: the SMA(10, 20) crossover through our backtest, backtesting.py and vectorbt.

All three run the same strategy with the same conventions on the same bars: signal at a bar's close,
market order at the next open, all-in whole shares, long/short reversal on each crossing, last trade left
open. Data: backtesting.py's GOOG (2,148 daily bars, commission 0.002, cash 10,000) and a synthetic
1,000,000-bar series (one-minute GBM bars over ten years; commission 0 there, because 54,000 reversals
at 0.2% a leg would leave nothing to trade and every library would stop trading after a few hundred).

Timed, each from prices to a trade record:

- ours: ``sma_crossover.act_batch`` plus the vectorised replay of the env's fill model (the
  ``experiments.engine`` fast path), and separately ``run_backtest`` which also builds round trips and
  every metric (comparable to ``Backtest.run``, which computes its stats too);
- backtesting.py: ``Backtest(...).run()``;
- vectorbt: rolling means, crossings, ``Portfolio.from_signals`` and its trade records and equity curve
  (built lazily, so asked for explicitly); its first call compiles with numba and is reported
  separately, "warm" is the best of the later calls. Our replay kernel is compiled with numba too but
  cached on disk, so only the very first run after an install pays for it; our first call is reported.

Trades are compared on entry bar, exit bar and signed size of every closed trade.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from baselines.sma_crossover import SmaCrossover
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from envs.sim.replay import replay_weights
from experiments.engine import BacktestConfig, run_backtest, start_bar

logger = logging.getLogger(__name__)

GOAL_VS_BACKTESTING = 10.0
GOAL_VS_VECTORBT = 1.0
FAST, SLOW = 10, 20


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def _trades(entry_bar: np.ndarray, exit_bar: np.ndarray, size: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"entry": entry_bar.astype(int), "exit": exit_bar.astype(int), "size": size.astype(int)}
    )


# ------------------------------------------------------------------------------------------- ours
def _ours(data: MarketData, cash: float, commission: float, repeats: int) -> dict[str, Any]:
    execution = ExecutionConfig(commission=commission, fractional=False, allow_short=True)
    config = BacktestConfig(initial_cash=cash, execution=execution, risk=None)
    bot = SmaCrossover(fast=FAST, slow=SLOW, fraction=1.0, allow_short=True)
    start = start_bar([bot], data, config)

    def core():
        return replay_weights(data, bot.act_batch(data), execution, cash, start)

    first, _ = _best(core, 1)
    seconds, run = _best(core, repeats)
    full_seconds, result = _best(lambda: run_backtest(bot, data, config, start=start), repeats)
    trades = result.trades
    bar = data.index.get_indexer
    signed = np.where(trades["side"] == "long", 1, -1) * trades["size"].to_numpy()
    entries, exits = bar(pd.DatetimeIndex(trades["entry_time"])), bar(pd.DatetimeIndex(trades["exit_time"]))
    record = _trades(entries, exits, signed)
    return {
        "seconds": seconds, "first_seconds": first, "full_seconds": full_seconds,
        "equity": float(run.equity.iloc[-1]), "trades": record,
    }


# ------------------------------------------------------------------------------------ backtesting.py
def backtesting_sma_cross(fast: int = FAST, slow: int = SLOW) -> type:
    """backtesting.py's own SMA crossover example as a ``Strategy`` class (the peer side of this benchmark
    and of ``tests/test_backtest_reference.py``): buy all-in when the fast mean crosses above the slow one,
    sell when it crosses below. backtesting.py is imported here, only when the peer is run.

    :param fast: bars of the fast simple moving average.
    :param slow: bars of the slow simple moving average.
    """
    from backtesting import Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        n1, n2 = fast, slow

        def init(self):
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.sell()

    return SmaCross


def _backtesting(frame: pd.DataFrame, cash: float, commission: float, repeats: int) -> dict[str, Any]:
    from backtesting import Backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(frame, backtesting_sma_cross(), cash=cash, commission=commission, exclusive_orders=True)
        seconds, stats = _best(bt.run, repeats)
    t = stats["_trades"]
    record = _trades(t["EntryBar"].to_numpy(), t["ExitBar"].to_numpy(), t["Size"].to_numpy())
    return {"seconds": seconds, "equity": float(stats["Equity Final [$]"]), "trades": record}


# ------------------------------------------------------------------------------------------- vectorbt
def _vectorbt(frame: pd.DataFrame, cash: float, commission: float, repeats: int) -> dict[str, Any]:
    import vectorbt as vbt

    close, open_ = frame["Close"], frame["Open"]

    def run():
        fast, slow = close.rolling(FAST).mean(), close.rolling(SLOW).mean()
        up = (fast.shift() < slow.shift()) & (fast > slow)
        down = (slow.shift() < fast.shift()) & (slow > fast)
        # Orders execute one bar after the signal, at that bar's open.
        pf = vbt.Portfolio.from_signals(
            close=close, entries=up.shift(1, fill_value=False), short_entries=down.shift(1, fill_value=False),
            price=open_, fees=commission, size=np.inf, size_granularity=1, init_cash=cash,
            upon_opposite_entry="reverse", freq="1D",
        )
        # vectorbt builds trades and the equity curve lazily; ours are part of the run, so time them too.
        pf.trades.records, pf.value()
        return pf

    first, _ = _best(run, 1)
    warm, pf = _best(run, repeats)
    records = pf.trades.records
    closed = records[records["status"] == 1]
    signed = np.where(closed["direction"] == 0, 1, -1) * closed["size"]
    record = _trades(closed["entry_idx"], closed["exit_idx"], signed)
    return {"seconds": warm, "first_seconds": first, "equity": float(pf.final_value()), "trades": record}


# ------------------------------------------------------------------------------------------- driver
def _compare(
    label: str, data: MarketData, cash: float, commission: float, repeats: int, bt_repeats: int
) -> list[str]:
    frame = data.to_frame(data.symbols[0])
    frame.index = frame.index.tz_localize(None)
    ours = _ours(data, cash, commission, repeats)
    logger.info("%s: ours %.4f s (with metrics %.4f s), final equity %.2f, %d trades",
                label, ours["seconds"], ours["full_seconds"], ours["equity"], len(ours["trades"]))
    theirs_bt = _backtesting(frame, cash, commission, bt_repeats)
    logger.info(
        "%s: backtesting.py %.4f s, final equity %.2f", label, theirs_bt["seconds"], theirs_bt["equity"]
    )
    theirs_vbt = _vectorbt(frame, cash, commission, repeats)
    logger.info("%s: vectorbt first call %.3f s, warm %.4f s, final equity %.2f",
                label, theirs_vbt["first_seconds"], theirs_vbt["seconds"], theirs_vbt["equity"])

    def same(other: dict[str, Any]) -> str:
        a, b = ours["trades"], other["trades"]
        if len(a) != len(b):
            return f"NO ({len(a)} vs {len(b)} trades)"
        differ = (a.to_numpy() != b.to_numpy()).any(axis=1)
        if not differ.any():
            return "yes"
        return f"NO ({differ.sum()} of {len(a)} trades differ, first #{np.argmax(differ)})"

    n = f"{data.n_bars:,} bars"
    return [
        f"backtest {label} ({n}): ours {ours['seconds']:.4f} s ({ours['full_seconds']:.4f} s with metrics), "
        f"backtesting.py {theirs_bt['seconds']:.4f} s, "
        f"ratio {theirs_bt['seconds'] / ours['full_seconds']:.1f}x "
        f"(goal >= {GOAL_VS_BACKTESTING:.0f}x); trades identical: {same(theirs_bt)}",
        f"backtest {label} ({n}): ours {ours['seconds']:.4f} s (first call {ours['first_seconds']:.2f} s), "
        f"vectorbt warm {theirs_vbt['seconds']:.4f} s "
        f"(first call {theirs_vbt['first_seconds']:.2f} s), "
        f"ratio {theirs_vbt['seconds'] / ours['seconds']:.2f}x "
        f"(goal >= {GOAL_VS_VECTORBT:.0f}x); trades identical: {same(theirs_vbt)}",
    ]


def run(quick: bool) -> list[str]:
    """Run the comparison on GOOG and on the long synthetic series; return the ratio lines.

    :param quick: use a 100,000-bar synthetic series instead of 1,000,000.
    """
    from backtesting.test import GOOG

    lines = _compare("GOOG", MarketData.from_frame(GOOG, "GOOG"), 10_000.0, 0.002, repeats=5, bt_repeats=3)
    days = 257 if quick else 2565
    long = generate_market(n_symbols=1, n_days=days, freq="1min", model="gbm", seed=0)
    lines += _compare("synthetic", long, 10_000.0, 0.0, repeats=3, bt_repeats=1)
    return lines
