"""Closed trades (round trips) from a fill log.

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
    the fills that opened or added to it; ``entry_price`` and ``exit_price`` are volume-weighted;
    ``size`` is the largest absolute position; ``costs`` are commission plus slippage and spread. A
    position still open at the end is not a closed trade and is left out.

    :param fills: rows with ``timestamp, symbol, quantity, price, commission, impact_cost`` (the env's
        trade log, :class:`envs.portfolio.Fill`).
    """
    parts = [_symbol_trades(symbol, group) for symbol, group in fills.groupby("symbol", sort=False)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    trades = pd.concat(parts, ignore_index=True)
    return trades.sort_values("exit_time", kind="stable", ignore_index=True)


def _symbol_trades(symbol: str, fills: pd.DataFrame) -> pd.DataFrame:
    qty = fills["quantity"].to_numpy(dtype=np.float64)
    price = fills["price"].to_numpy(dtype=np.float64)
    cost = (fills["commission"] + fills["impact_cost"]).to_numpy(dtype=np.float64)
    times = fills["timestamp"].to_numpy()
    after = np.cumsum(qty)
    before = np.concatenate([[0.0], after[:-1]])
    flip = before * after < 0

    # Split each flip into its closing part (back to zero) and its opening part (the new position).
    rows = np.repeat(np.arange(len(qty)), np.where(flip, 2, 1))
    first = np.concatenate([[True], rows[1:] != rows[:-1]])
    closing_half = flip[rows] & first
    part = np.where(closing_half, -before[rows], np.where(flip[rows], after[rows], qty[rows]))
    position = np.where(closing_half, 0.0, after[rows])
    share = np.abs(part) / np.abs(qty[rows])

    closed = position == 0.0
    trade = np.concatenate([[0], np.cumsum(closed)[:-1]])
    n_closed = int(closed.sum())
    if n_closed == 0:
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    keep = trade < n_closed
    trade, part, position, rows, share = trade[keep], part[keep], position[keep], rows[keep], share[keep]
    starts = np.flatnonzero(np.concatenate([[True], trade[1:] != trade[:-1]]))
    side = np.sign(part[starts])
    adding = np.sign(part) == side[trade]
    px = price[rows]

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(trade, weights=values, minlength=n_closed)

    costs = total(cost[rows] * share)
    pnl = total(-part * px) - costs
    in_qty, in_value = total(np.abs(part) * adding), total(np.abs(part) * px * adding)
    out_qty, out_value = total(np.abs(part) * ~adding), total(np.abs(part) * px * ~adding)
    return pd.DataFrame({
        "symbol": symbol,
        "side": np.where(side > 0, "long", "short"),
        "size": np.maximum.reduceat(np.abs(position), starts),
        "entry_time": times[rows[starts]],
        "exit_time": times[rows[np.flatnonzero(closed[keep])]],
        "entry_price": in_value / in_qty,
        "exit_price": out_value / out_qty,
        "pnl": pnl,
        "return": pnl / in_value,
        "costs": costs,
    })
