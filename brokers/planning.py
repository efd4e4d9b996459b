"""Order planning: from target weights to the orders that get there.

Target shares are ``weight * equity / price`` at the decision's prices, truncated towards zero to whole
shares unless fractional trading is on. An order's quantity is fixed when it is sent, after the decision
bar's close, so that close prices it; the backtest env sizes at the fill price (the next bar's open), which
no order can know in advance. That is the one rule the backtest and a paper run cannot share: on the
simulated broker they trade the same bars, sides and prices, and differ only in quantities, by the
overnight gap (equal to the cent on bars without one; ``tests/test_paper_parity.py``). Two Alpaca rules
shape the plan:

- a position never flips sign in one order: a flip becomes a closing leg and an opening leg, and the
  opening leg waits for the closing one to fill (``depends_on``);
- short positions are whole shares (Alpaca does not sell fractional shares short), and fractional
  quantities are market orders with day time-in-force (:class:`brokers.base.OrderRequest` enforces it).

Orders that reduce a position come first, so their proceeds are cash before the buys go out.

Orders still open at the broker (``pending``, e.g. a stale order whose cancel Alpaca has not finished) may
yet fill, so they count: a same-side open order is taken as filled and only the rest is ordered, and a
symbol with an open order on the other side (or a flip with anything open) gets no new order until those
finish. Whatever the order of the cancel and fill events, a position then never goes past its target by
more than what was already in flight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from brokers.base import OrderRequest, Side
from brokers.order_ids import client_order_id

QTY_DECIMALS = 6


@dataclass(frozen=True)
class PlannedOrder:
    """An order and the order that must fill before it is sent.

    :param request: the order.
    :param depends_on: client order id of the closing leg this opening leg waits for, or None.
    """

    request: OrderRequest
    depends_on: str | None = None


def target_shares(
    weights: Mapping[str, float], prices: Mapping[str, float], equity: float, fractional: bool
) -> dict[str, float]:
    """Shares that hold ``weights`` of ``equity`` at ``prices``.

    :param weights: target weight of equity per symbol (negative = short).
    :param prices: price per symbol.
    :param equity: account equity.
    :param fractional: allow fractional long shares (shorts are always whole shares).
    """
    if not math.isfinite(equity) or equity <= 0:
        raise ValueError(f"equity must be a positive number, got {equity!r}")
    symbols = list(weights)
    missing = [s for s in symbols if s not in prices]
    if missing:
        raise KeyError(f"no price for {missing}")
    w = np.array([weights[s] for s in symbols], dtype=np.float64)
    p = np.array([prices[s] for s in symbols], dtype=np.float64)
    bad = ~np.isfinite(w) | ~np.isfinite(p) | (p <= 0)
    if bad.any():
        s = symbols[int(np.argmax(bad))]
        raise ValueError(f"{s}: weight {weights[s]!r} and price {prices[s]!r} must be finite, price > 0")
    raw = w * equity / p
    scale = 10.0**QTY_DECIMALS
    shares = np.where(fractional & (raw > 0), np.trunc(raw * scale) / scale, np.trunc(raw))
    return dict(zip(symbols, shares.tolist()))


def plan_orders(
    weights: Mapping[str, float],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    run_id: str,
    bar_ts: object,
    fractional: bool = True,
    min_trade_value: float = 1.0,
    pending: Mapping[str, tuple[float, float]] | None = None,
) -> list[PlannedOrder]:
    """The orders that move ``positions`` to ``weights``.

    Only the symbols in ``weights`` trade (the runner passes those whose target changed, as the backtest
    env trades only on a changed target; a weight of 0 closes). Client order ids come from
    (``run_id``, ``bar_ts``, symbol, leg), so planning the same decision again gives the same ids.

    :param weights: target weight of equity per symbol.
    :param positions: current signed shares per symbol (the broker's, after reconciliation).
    :param prices: price per symbol used for sizing (the decision bar's close).
    :param equity: account equity.
    :param run_id: the run.
    :param bar_ts: the decision's bar.
    :param fractional: allow fractional long shares.
    :param min_trade_value: skip trades smaller than this in cash.
    :param pending: ``symbol -> (shares to buy, shares to sell)`` still open at the broker
        (:attr:`brokers.reconcile.Reconciliation.pending`).
    :return: closing and reducing orders first, then opening and increasing ones.
    """
    target = target_shares(weights, prices, equity, fractional)
    first: list[PlannedOrder] = []
    then: list[PlannedOrder] = []
    for symbol in sorted(target):
        held = float(positions.get(symbol, 0.0))
        want = target[symbol]
        buying, selling = (pending or {}).get(symbol, (0.0, 0.0))
        # Closing sells or covers exactly what is held (a position may carry more decimals than an order).
        delta = -held if want == 0 else round(want - held, QTY_DECIMALS)
        flip = held != 0 and want != 0 and (held > 0) != (want > 0)
        if buying or selling:
            against = selling if delta > 0 else buying
            if flip or against:
                continue  # wait until the open orders finish: they may still move the position either way
            delta = round(delta - (buying if delta > 0 else -selling), QTY_DECIMALS)
            if delta * (want - held) <= 0:
                continue
        if delta == 0 or abs(delta) * prices[symbol] < min_trade_value:
            continue
        side = Side.BUY if delta > 0 else Side.SELL
        if flip:
            close_id = client_order_id(run_id, bar_ts, symbol, "close")
            first.append(PlannedOrder(OrderRequest(symbol, side, abs(held), close_id)))
            open_id = client_order_id(run_id, bar_ts, symbol, "open")
            then.append(PlannedOrder(OrderRequest(symbol, side, abs(want), open_id), depends_on=close_id))
            continue
        order = PlannedOrder(OrderRequest(symbol, side, abs(delta), client_order_id(run_id, bar_ts, symbol)))
        (first if abs(want) < abs(held) else then).append(order)
    return first + then
