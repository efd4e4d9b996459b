"""Replay a whole series of target weights with the envs' fill model, without stepping the env.

When a policy hands over all its actions at once (``act_batch``) and no risk layer needs the account
state bar by bar, the backtest does not need ``env.step`` and its observation and ``info`` per bar, only
the account arithmetic. Fills are identical to stepping the env (``tests/test_backtest.py`` checks it):
same decision at bar ``t`` and fill at bar ``t+1``, same "unchanged target never trades" rule, same
borrow fee and wipe-out stop.

- One symbol (``Stocks-v0``): a compiled loop over the bars that steps like ``StocksEnv.step`` and fills
  through :func:`envs.sim.execution.fill_one`, the env's own arithmetic compiled with numba. A crossover on a
  million one-minute bars reverses ~50,000 times; a Python loop over those events costs more than the
  rest of the backtest together, hence numba here.
- Several symbols (``Portfolio-v0``): a Python loop over the bars where some target changes, each
  calling :func:`envs.sim.execution.rebalance` exactly as the env does, with everything between events (cash,
  positions, equity) filled in with numpy. Portfolio bots rebalance rarely, so the loop is short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from envs.data.market_data import CLOSE, HIGH, LOW, MarketData
from envs.sim.actions import ActionAdapter
from envs.sim.compiled import fill_one as _fill_one
from envs.sim.compiled import should_trade as _should_trade
from envs.sim.execution import ExecutionConfig, rebalance, should_trade_batch
from envs.sim.portfolio import Fill


@dataclass(frozen=True)
class Replay:
    """The record of one replayed episode (bars ``start .. end`` inclusive).

    :param equity: equity at each close, starting with the initial cash at ``start``.
    :param positions: shares held after each bar, ``(n, S)``.
    :param fills: the trade log, columns of :class:`envs.sim.portfolio.Fill`.
    """

    equity: pd.Series
    positions: np.ndarray
    fills: pd.DataFrame


def replay_weights(
    data: MarketData,
    weights: np.ndarray,
    execution: ExecutionConfig,
    initial_cash: float,
    start: int = 0,
) -> Replay:
    """Run target weights decided at bars ``start .. T-2`` and filled one bar later.

    :param data: the bars.
    :param weights: target weight per bar and symbol, ``(T, S)``; row ``t`` is decided after bar ``t``.
    :param execution: costs and fill conventions (as given to the env).
    :param initial_cash: starting cash.
    :param start: first decision bar (the env's reset bar).
    """
    n_bars, n_symbols = data.n_bars, data.n_symbols
    if weights.shape != (n_bars, n_symbols):
        raise ValueError(f"weights must have shape {(n_bars, n_symbols)}, got {weights.shape}")
    if not 0 <= start < n_bars - 1:
        raise ValueError(f"start must be in [0, {n_bars - 2}], got {start}")
    adapter = ActionAdapter("weights", n_symbols, execution.allow_short, execution.max_leverage)
    decided = adapter.to_weights_batch(weights[start : n_bars - 1])
    if n_symbols == 1:
        return _replay_one(data, np.ascontiguousarray(decided[:, 0]), execution, float(initial_cash), start)
    return _replay_many(data, decided, execution, float(initial_cash), start)


def _fill_frame(data: MarketData, bars: np.ndarray, symbols: np.ndarray, columns: dict) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": data.index[bars],
        "symbol": np.asarray(data.symbols, dtype=object)[symbols],
        **{name: np.asarray(values, dtype=np.float64) for name, values in columns.items()},
        "reason": np.full(len(bars), "policy", dtype=object),
    }, columns=list(Fill._fields))


# ---------------------------------------------------------------------------------------- one symbol
def _replay_one(
    data: MarketData, decided: np.ndarray, execution: ExecutionConfig, cash: float, start: int
) -> Replay:
    bars = data.values[:, 0, :]
    fee_rate = execution.borrow_per_bar if execution.borrow_rate else 0.0
    mine = execution.for_symbol(data.symbols[0])
    equity, held, fill_bar, fills = _stocks_kernel(
        np.ascontiguousarray(bars[:, execution.fill_field]), np.ascontiguousarray(bars[:, LOW]),
        np.ascontiguousarray(bars[:, HIGH]), np.ascontiguousarray(bars[:, CLOSE]), decided, start, cash,
        mine.commission, execution.commission_per_share, execution.price_impact,
        not execution.fractional, execution.max_leverage, execution.min_weight_change, fee_rate,
        mine.min_order_qty,
    )
    names = ("quantity", "price", "commission", "impact_cost")
    return Replay(
        pd.Series(equity, index=data.index[start : start + len(equity)], name="equity"),
        held[:, None],
        _fill_frame(data, fill_bar, np.zeros(len(fill_bar), dtype=np.int64), dict(zip(names, fills))),
    )




@numba.njit(cache=True)
def _stocks_kernel(
    price, low, high, close, decided, start, cash, c, per_share, k, whole, max_leverage, band, fee_rate, min_qty
):  # pragma: no cover - compiled; parity with the env is tested through replay_weights
    """``StocksEnv.step`` without observation and info, bar by bar, filling through ``fill_one``.

    Returns equity and shares after each bar, and the fills (bar; quantity, price, commission, impact).
    """
    n = close.shape[0] - start
    equity = np.empty(n)
    held = np.empty(n)
    fill_bar = np.empty(n, np.int64)
    fills = np.empty((4, n))
    equity[0] = cash
    held[0] = 0.0
    shares = 0.0
    target = 0.0
    n_fills = 0
    end = n
    for i in range(n - 1):
        t1 = start + i + 1
        want = decided[i]
        # One symbol's data has one calendar, so each of its bars is open (MarketData.tradable is None).
        if _should_trade(want, target, band, True, False):
            p = price[t1]
            cash, shares, delta, fill, commission, impact = _fill_one(
                cash, shares, want, p, low[t1], high[t1], c, per_share, k, whole, max_leverage, min_qty
            )
            target = want
            if delta != 0.0:
                fill_bar[n_fills] = t1
                fills[0, n_fills] = delta
                fills[1, n_fills] = fill
                fills[2, n_fills] = commission
                fills[3, n_fills] = impact
                n_fills += 1
        mark = close[t1]
        if shares < 0.0 and fee_rate != 0.0:
            cash -= fee_rate * -shares * mark
        equity[i + 1] = cash + shares * mark
        held[i + 1] = shares
        if equity[i + 1] <= 0.0:
            end = i + 2
            break
    return equity[:end], held[:end], fill_bar[:n_fills], fills[:, :n_fills]


# ---------------------------------------------------------------------------------------- many symbols
@dataclass
class _Events:
    """The account after each rebalance, and each fill column by column."""

    bars: list[int] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    shares: list[np.ndarray] = field(default_factory=list)
    fill_bar: list[int] = field(default_factory=list)
    fill_symbol: list[int] = field(default_factory=list)
    fills: list[tuple[float, float, float, float]] = field(default_factory=list)


def _replay_many(
    data: MarketData, decided: np.ndarray, execution: ExecutionConfig, cash: float, start: int
) -> Replay:
    n_bars, n_symbols = data.n_bars, data.n_symbols
    previous = np.vstack([np.zeros((1, n_symbols)), decided[:-1]])
    changed = (decided != previous).any(axis=1)
    tradable = data.tradable
    if tradable is None:
        tradable = np.ones((n_bars, n_symbols), dtype=bool)
    else:
        # A target that changed while its market was closed trades when the market opens again.
        reopens = (tradable[start + 1 :] & ~tradable[start:-1]).any(axis=1)
        changed = changed | reopens
    candidates = np.flatnonzero(changed) + start
    values = data.values
    close = values[:, :, CLOSE]
    fee_rate = execution.borrow_per_bar if execution.borrow_rate else 0.0
    # Borrow fees between events: rate * short shares * sum of closes, from a running sum of closes.
    close_sum = np.vstack([np.zeros((1, n_symbols)), np.cumsum(close, axis=0)]) if fee_rate else None
    events = _Events()
    shares = np.zeros(n_symbols)
    target = np.zeros(n_symbols)
    last_bar = start
    initial_cash = cash
    for t in candidates.tolist():
        want = decided[t - start]
        active = should_trade_batch(want, target, execution.min_weight_change, tradable[t + 1], False)
        if not active.any():
            continue
        if fee_rate:
            window = close_sum[t + 1] - close_sum[last_bar]  # type: ignore[index]
            cash -= fee_rate * float(np.maximum(-shares, 0.0) @ window)
        bar = values[t + 1]
        result = rebalance(
            np.float64(cash), shares, want, bar[:, execution.fill_field], bar[:, LOW], bar[:, HIGH],
            execution, active, data.symbols,
        )
        cash, shares = float(result.cash), result.shares
        target = np.where(active, want, target)
        last_bar = t + 1
        events.bars.append(last_bar)
        events.cash.append(cash)
        events.shares.append(shares)
        for j in np.flatnonzero(result.traded).tolist():
            events.fill_bar.append(last_bar)
            events.fill_symbol.append(j)
            events.fills.append((result.traded[j], result.fill_price[j], result.commission[j],
                                 result.impact_cost[j]))

    # Between events nothing trades: each bar holds the cash and shares of the last event before it.
    which = np.zeros(n_bars - start, dtype=np.int64)
    np.add.at(which, np.asarray(events.bars, dtype=np.int64) - start, 1)
    np.cumsum(which, out=which)
    held = np.vstack([np.zeros((1, n_symbols)), np.reshape(events.shares, (-1, n_symbols))])[which]
    cash_path = np.concatenate([[initial_cash], events.cash])[which]
    marks = close[start:]
    if fee_rate:
        paid = np.concatenate([[0.0], np.cumsum(fee_rate * (np.maximum(-held, 0.0) * marks).sum(axis=1))])
        # Fees accrue from the fill bar of the current position (inclusive) up to each bar.
        since = np.concatenate([[start], events.bars]).astype(np.int64)[which] - start
        cash_path = cash_path - (paid[1:] - paid[since])
    equity = cash_path + (held * marks).sum(axis=1)
    wiped = np.flatnonzero(equity <= 0.0)
    end = int(wiped[0]) + 1 if len(wiped) else len(equity)
    fill_bar = np.asarray(events.fill_bar, dtype=np.int64)
    keep = fill_bar < start + end
    columns = np.asarray(events.fills, dtype=np.float64).reshape(-1, 4)[keep].T
    names = ("quantity", "price", "commission", "impact_cost")
    return Replay(
        pd.Series(equity[:end], index=data.index[start : start + end], name="equity"),
        held[:end],
        _fill_frame(data, fill_bar[keep], np.asarray(events.fill_symbol, dtype=np.int64)[keep],
                    dict(zip(names, columns))),
    )
