"""Closed trades (round trips) from a fill log, and the cash it traded at each bar.

A trade runs from the fill that opens a position out of flat until the fill that brings it back to flat.
A fill that flips a position (long 15, sell 25) is split: the part that closes the old position ends that
trade and the rest opens the next one, with the fill's commission and slippage shared in proportion.
Positions are the running sum of the fills, which is how the envs book them, so a position closed by the
env is exactly zero here too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRADE_COLUMNS = (
    "symbol", "side", "size", "entry_time", "exit_time", "entry_price", "exit_price", "pnl", "return",
    "costs",
)


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per closed trade, ordered by exit time.

    ``pnl`` is the trade's net cash result, every cost included; ``return`` is ``pnl`` over the value of
    the fills that opened or added to it, and NaN when that value is zero (an option leg sold at a zero
    bid: a return on no capital is undefined, while its ``pnl`` still counts); ``entry_price`` and
    ``exit_price`` are volume-weighted;
    ``size`` is the largest absolute position; ``costs`` are commission plus slippage and spread. A
    position still open at the end is not a closed trade and is left out.

    :param fills: rows with ``timestamp, symbol, quantity, price, commission, impact_cost`` in time
        order (the env's trade log, :class:`envs.sim.portfolio.Fill`).
    """
    if len(fills) == 0:
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    codes, symbols = pd.factorize(fills["symbol"].to_numpy())
    order = np.argsort(codes, kind="stable")
    code = codes[order]
    qty = fills["quantity"].to_numpy(dtype=np.float64)[order]
    price = fills["price"].to_numpy(dtype=np.float64)[order]
    cost = fills["commission"].to_numpy(dtype=np.float64) + fills["impact_cost"].to_numpy(dtype=np.float64)
    cost = cost[order]
    times = fills["timestamp"].array[order]
    group_start = np.concatenate([[True], code[1:] != code[:-1]])
    # Positions per symbol as the envs book them (a running sum), so a closed position is exactly zero;
    # one cumsum per symbol, since differencing a global cumsum would not be exact.
    bounds = np.append(np.flatnonzero(group_start), len(qty))
    after = np.concatenate([np.cumsum(qty[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    before = np.where(group_start, 0.0, np.roll(after, 1))
    flip = before * after < 0

    # Split each flip into its closing part (back to zero) and its opening part (the new position).
    rows = np.repeat(np.arange(len(qty)), np.where(flip, 2, 1))
    first = np.concatenate([[True], rows[1:] != rows[:-1]])
    closing_half = flip[rows] & first
    part = np.where(closing_half, -before[rows], np.where(flip[rows], after[rows], qty[rows]))
    position = np.where(closing_half, 0.0, after[rows])
    closed = position == 0.0

    # A trade starts at a symbol's first fill and after every part that closes one.
    starts_here = np.concatenate([[True], closed[:-1]]) | (group_start[rows] & first)
    trade = np.cumsum(starts_here) - 1
    complete = np.zeros(trade[-1] + 1, dtype=bool)
    complete[trade[closed]] = True
    keep = complete[trade]
    if not keep.any():
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    trade = (np.cumsum(complete) - 1)[trade[keep]]
    rows, part, position, closed = rows[keep], part[keep], position[keep], closed[keep]
    n_trades = int(trade[-1]) + 1
    starts = np.flatnonzero(starts_here[keep])
    side = np.sign(part[starts])
    adding = np.sign(part) == side[trade]
    size = np.abs(part)
    px = price[rows]

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(trade, weights=values, minlength=n_trades)

    costs = total(cost[rows] * size / np.abs(qty[rows]))
    pnl = total(-part * px) - costs
    in_qty, in_value = total(size * adding), total(size * px * adding)
    out_qty, out_value = total(size * ~adding), total(size * px * ~adding)
    exit_time = times[rows[closed]]
    by_exit = np.argsort(exit_time, kind="stable")
    frame = pd.DataFrame({
        "symbol": np.asarray(symbols, dtype=object)[code[rows[starts]]],
        "side": np.where(side > 0, "long", "short"),
        "size": np.maximum.reduceat(np.abs(position), starts),
        "entry_time": times[rows[starts]],
        "exit_time": exit_time,
        "entry_price": in_value / in_qty,
        "exit_price": out_value / out_qty,
        "pnl": pnl,
        "return": np.divide(pnl, in_value, out=np.full(n_trades, np.nan), where=in_value > 0),
        "costs": costs,
    })
    if (np.diff(by_exit) == 1).all():
        return frame
    return frame.iloc[by_exit].reset_index(drop=True)


def traded_value(fills: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    """Gross cash traded at each bar of ``index`` (the ``traded_value`` of :func:`envs.sim.metrics.compute_stats`).

    :param fills: the fill log, with ``timestamp``, ``quantity`` (shares, also for options) and ``price``
        (per share) columns.
    :param index: the bars, e.g. the equity curve's index.
    :return: shape ``(len(index),)``, zero where nothing traded.
    """
    traded = np.zeros(len(index))
    if len(fills):
        value = np.abs(fills["quantity"].to_numpy(float)) * fills["price"].to_numpy(float)
        np.add.at(traded, index.searchsorted(fills["timestamp"]), value)
    return traded


def round_trips_marked(
    fills: pd.DataFrame, positions: np.ndarray, close: np.ndarray, symbols: tuple[str, ...], end: pd.Timestamp
) -> pd.DataFrame:
    """:func:`round_trips` plus every position still open at ``end``, marked to market at ``close``.

    An open position counts as a trade closed at the last close with no exit cost, flagged ``open=True``:
    a strategy holding a loser at the end shows the loss in its win rate and profit factor instead of a
    perfect record of the winners it did close.

    :param fills: the fill log (see :func:`round_trips`).
    :param positions: shares held per symbol at ``end``, shape ``(S,)``.
    :param close: last close per symbol, shape ``(S,)``.
    :param symbols: symbol names, in the order of ``positions``.
    :param end: time of the last close.
    """
    held = np.flatnonzero(np.asarray(positions, dtype=np.float64) != 0)
    if len(held) == 0:
        return round_trips(fills).assign(open=False)
    marks = pd.DataFrame({
        "timestamp": [end] * len(held),
        "symbol": [symbols[j] for j in held],
        "quantity": -np.asarray(positions, dtype=np.float64)[held],
        "price": np.asarray(close, dtype=np.float64)[held],
        "commission": 0.0,
        "impact_cost": 0.0,
    })
    columns = list(marks.columns)
    trades = round_trips(pd.concat([fills[columns], marks], ignore_index=True) if len(fills) else marks)
    is_open = np.zeros(len(trades), dtype=bool)
    for j in held:
        # The open position's trade is that symbol's last one (it ends at the mark).
        rows = np.flatnonzero(trades["symbol"].to_numpy() == symbols[j])
        if len(rows):
            is_open[rows[-1]] = True
    return trades.assign(open=is_open)
