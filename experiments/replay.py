"""Replay a whole series of target weights with the envs' fill model, without stepping the env.

When a policy hands over all its actions at once (``act_batch``) and no risk layer needs the account
state bar by bar, the backtest does not need ``env.step``: positions only change on the bars where the
target changes, so the loop runs over those events only and everything between them (cash, positions,
equity) is filled in with numpy. Each event calls the very functions the envs call
(:func:`envs.execution.rebalance_one` for one symbol as in ``Stocks-v0``,
:func:`envs.execution.rebalance` for several as in ``Portfolio-v0``) with the same arguments, so fills
are identical to stepping the env (``tests/test_backtest.py`` checks it): same decision at bar ``t``,
fill at bar ``t+1``, same "unchanged target never trades" rule, same borrow fee and wipe-out stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from envs.actions import ActionAdapter
from envs.execution import ExecutionConfig, rebalance, rebalance_one
from envs.market_data import CLOSE, HIGH, LOW, MarketData
from envs.portfolio import Fill


@dataclass(frozen=True)
class Replay:
    """The record of one replayed episode (bars ``start .. end`` inclusive).

    :param equity: equity at each close, starting with the initial cash at ``start``.
    :param positions: shares held after each bar, ``(n, S)``.
    :param fills: the trade log, columns of :class:`envs.portfolio.Fill`.
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
    previous = np.vstack([np.zeros((1, n_symbols)), decided[:-1]])
    candidates = np.flatnonzero((decided != previous).any(axis=1)) + start

    values = data.values
    close = values[:, :, CLOSE]
    # Borrow fees between events: rate * short shares * sum of closes, from a running sum of closes.
    close_sum = None
    if execution.borrow_per_bar:
        close_sum = np.vstack([np.zeros((1, n_symbols)), np.cumsum(close, axis=0)])
    simulate = _events_one if n_symbols == 1 else _events_many
    events = simulate(values, close_sum, decided, candidates, start, execution, float(initial_cash))

    # Between events nothing trades: each bar holds the cash and shares of the last event before it.
    bars = np.arange(start, n_bars)
    # which[i] = number of events at or before bar start + i (0: still the initial account).
    which = np.zeros(len(bars), dtype=np.int64)
    np.add.at(which, np.asarray(events.bars, dtype=np.int64) - start, 1)
    np.cumsum(which, out=which)
    held = np.vstack([np.zeros((1, n_symbols)), np.reshape(events.shares, (-1, n_symbols))])[which]
    cash_path = np.concatenate([[float(initial_cash)], events.cash])[which]
    marks = close[start:]
    if execution.borrow_per_bar:
        fees = execution.borrow_per_bar * (np.maximum(-held, 0.0) * marks).sum(axis=1)
        paid = np.concatenate([[0.0], np.cumsum(fees)])
        # Fees accrue from the fill bar of the current position (inclusive) up to each bar.
        since = np.concatenate([[start], events.bars]).astype(np.int64)[which] - start
        cash_path = cash_path - (paid[1:] - paid[since])
    if n_symbols == 1:
        equity = cash_path + held[:, 0] * marks[:, 0]
    else:
        equity = cash_path + (held * marks).sum(axis=1)
    wiped = np.flatnonzero(equity <= 0.0)
    end = int(wiped[0]) + 1 if len(wiped) else len(bars)
    index = data.index[start : start + end]
    return Replay(
        pd.Series(equity[:end], index=index, name="equity"),
        held[:end],
        events.fill_frame(data, start + end),
    )


@dataclass
class _Events:
    """What the event loop records: the account after each event and each fill, column by column."""

    bars: list[int] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    shares: list = field(default_factory=list)
    fill_bar: list[int] = field(default_factory=list)
    fill_symbol: list[int] = field(default_factory=list)
    quantity: list[float] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    commission: list[float] = field(default_factory=list)
    impact: list[float] = field(default_factory=list)

    def fill(self, bar: int, symbol: int, qty: float, price: float, commission: float, impact: float) -> None:
        self.fill_bar.append(bar)
        self.fill_symbol.append(symbol)
        self.quantity.append(qty)
        self.price.append(price)
        self.commission.append(commission)
        self.impact.append(impact)

    def fill_frame(self, data: MarketData, end_bar: int) -> pd.DataFrame:
        """The fills before ``end_bar`` as the env's trade log."""
        keep = np.asarray(self.fill_bar, dtype=np.int64) < end_bar
        bars = np.asarray(self.fill_bar, dtype=np.int64)[keep]
        symbols = np.asarray(self.fill_symbol, dtype=np.int64)[keep]
        return pd.DataFrame({
            "timestamp": data.index[bars],
            "symbol": np.asarray(data.symbols, dtype=object)[symbols],
            "quantity": np.asarray(self.quantity, dtype=np.float64)[keep],
            "price": np.asarray(self.price, dtype=np.float64)[keep],
            "commission": np.asarray(self.commission, dtype=np.float64)[keep],
            "impact_cost": np.asarray(self.impact, dtype=np.float64)[keep],
            "reason": np.full(len(bars), "policy", dtype=object),
        })


def _events_one(
    values: np.ndarray,
    close_sum: np.ndarray | None,
    decided: np.ndarray,
    candidates: np.ndarray,
    start: int,
    execution: ExecutionConfig,
    cash: float,
) -> _Events:
    """The event loop of ``Stocks-v0`` (one symbol) in Python floats, as the env steps it."""
    band = execution.min_weight_change
    fee_rate = execution.borrow_per_bar
    shares = target = 0.0
    last_bar = start
    events = _Events()
    # Bound methods for the hot loop: attribute lookups cost as much as the arithmetic here.
    event_bar, event_cash, event_shares = events.bars.append, events.cash.append, events.shares.append
    fill_bar, quantity, prices = events.fill_bar.append, events.quantity.append, events.price.append
    commissions, impacts = events.commission.append, events.impact.append
    fill_bars = values[candidates + 1, 0]
    for t, want, price, low, high in zip(
        candidates.tolist(), decided[candidates - start, 0].tolist(),
        fill_bars[:, execution.fill_field].tolist(), fill_bars[:, LOW].tolist(),
        fill_bars[:, HIGH].tolist(),
    ):
        if want == target or (abs(want - target) <= band and want != 0.0):
            continue
        if fee_rate and shares < 0.0:
            cash -= fee_rate * -shares * float(close_sum[t + 1, 0] - close_sum[last_bar, 0])  # type: ignore[index]
        cash, shares, traded, fill, commission, impact = rebalance_one(
            cash, shares, want, price, low, high, execution
        )
        target = want
        last_bar = t + 1
        event_bar(last_bar)
        event_cash(cash)
        event_shares(shares)
        if traded:
            fill_bar(last_bar)
            quantity(traded)
            prices(fill)
            commissions(commission)
            impacts(impact)
    events.fill_symbol.extend([0] * len(events.fill_bar))
    return events


def _events_many(
    values: np.ndarray,
    close_sum: np.ndarray | None,
    decided: np.ndarray,
    candidates: np.ndarray,
    start: int,
    execution: ExecutionConfig,
    cash: float,
) -> _Events:
    """The event loop of ``Portfolio-v0`` (several symbols), as the env steps it."""
    n_symbols = values.shape[1]
    band = execution.min_weight_change
    shares = np.zeros(n_symbols)
    target = np.zeros(n_symbols)
    last_bar = start
    events = _Events()
    for t in candidates.tolist():
        want = decided[t - start]
        active = (want != target) & ((np.abs(want - target) > band) | (want == 0.0))
        if not active.any():
            continue
        if execution.borrow_per_bar:
            short = np.maximum(-shares, 0.0)
            window = close_sum[t + 1] - close_sum[last_bar]  # type: ignore[index]
            cash -= execution.borrow_per_bar * float(short @ window)
        bar = values[t + 1]
        result = rebalance(
            np.float64(cash), shares, want, bar[:, execution.fill_field], bar[:, LOW], bar[:, HIGH],
            execution, active,
        )
        cash, shares = float(result.cash), result.shares
        target = np.where(active, want, target)
        last_bar = t + 1
        events.bars.append(last_bar)
        events.cash.append(cash)
        events.shares.append(shares)
        for j in np.flatnonzero(result.traded).tolist():
            events.fill(last_bar, j, float(result.traded[j]), float(result.fill_price[j]),
                        float(result.commission[j]), float(result.impact_cost[j]))
    return events
