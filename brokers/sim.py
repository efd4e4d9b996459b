"""``SimBroker``: the backtest's fill model behind the :class:`brokers.base.Broker` protocol.

The bar feed is its clock. Orders submitted after bar ``t`` wait until :meth:`SimBroker.on_bar` delivers
bar ``t+1``, then fill at that bar's open (or close, per ``ExecutionConfig.fill_at``) exactly as the
backtest envs fill: buys pay ``price * (1 + slippage + spread/2)``, sells receive
``price * (1 - slippage - spread/2)``, clipped to the bar's ``[low, high]``; commission is a fraction of
notional plus an amount per share; sells settle first and buys are scaled down to the cash (plus margin)
available, the unfilled rest being cancelled like a day order at the close. Accounting is
:class:`envs.sim.portfolio.Portfolio`'s.

It refuses what Alpaca refuses, so a runner tested against it meets the same rules: a repeated client
order id returns the first order, an opposite-side open order makes a :class:`WashTradeRejected`, a
position may not flip sign in one order, and shorts need ``allow_short``. It fills market orders only.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from brokers.base import (
    Account,
    Clock,
    Fill,
    Order,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    TradingDay,
    WashTradeRejected,
    utc,
)
from envs.data.market_data import CLOSE, HIGH, LOW
from envs.sim.execution import ExecutionConfig, Rebalance
from envs.sim.portfolio import Portfolio

MARKET_TZ = "America/New_York"


class SimBroker:
    """A simulated account over a fixed set of symbols.

    :param symbols: tradable symbols.
    :param initial_cash: starting cash.
    :param execution: cost and fill conventions (the backtest env's).
    :param bar_interval: time between bars; the clock's next open/close is one interval after the last bar.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        initial_cash: float = 100_000.0,
        execution: ExecutionConfig = ExecutionConfig(),
        bar_interval: pd.Timedelta = pd.Timedelta(days=1),
    ) -> None:
        self.symbols = tuple(symbols)
        self.execution = execution
        self.bar_interval = pd.Timedelta(bar_interval)
        self.portfolio = Portfolio(self.symbols, initial_cash)
        self._col = {s: j for j, s in enumerate(self.symbols)}
        self._orders: dict[str, Order] = {}
        # Ids of the orders still open, in submission order: every bar looks at these, not at every order
        # of the run.
        self._open: dict[str, None] = {}
        self._by_client: dict[str, str] = {}
        self._bar: np.ndarray | None = None
        self._now: pd.Timestamp | None = None

    # ------------------------------------------------------------------ the bar feed
    def on_bar(self, timestamp: object, bar: np.ndarray) -> list[Fill]:
        """Deliver the next bar: fill waiting orders on it, then mark the account at its close.

        :param timestamp: the bar's time.
        :param bar: ``(S, 5)`` OHLCV for :attr:`symbols`, in order.
        :return: one fill per order that (partly) filled.
        """
        bar = np.asarray(bar, dtype=np.float64)
        if bar.shape != (len(self.symbols), 5):
            raise ValueError(f"bar must have shape ({len(self.symbols)}, 5), got {bar.shape}")
        ts = utc(timestamp)
        if self._now is not None and ts <= self._now:
            raise ValueError(f"bar {ts.isoformat()} is not after the previous one ({self._now.isoformat()})")
        self._now = ts
        fills = self._fill_waiting(ts, bar)
        self._bar = bar
        self.portfolio.accrue_borrow(bar[:, CLOSE], self.execution.borrow_per_bar)
        return fills

    @property
    def prices(self) -> np.ndarray:
        """Last close per symbol."""
        if self._bar is None:
            raise RuntimeError("no bar delivered yet; call on_bar() first")
        return self._bar[:, CLOSE]

    # ------------------------------------------------------------------ protocol
    def account(self) -> Account:
        """Balances at the last close."""
        equity = self.portfolio.equity(self.prices)
        buying_power = max(self.portfolio.cash + (self.execution.max_leverage - 1.0) * equity, 0.0)
        return Account(cash=self.portfolio.cash, equity=equity, buying_power=buying_power)

    def positions(self) -> dict[str, Position]:
        """Open positions marked at the last close."""
        prices = self.prices if self._bar is not None else np.full(len(self.symbols), np.nan)
        return {
            s: Position(
                s, float(q), float(self.portfolio.avg_cost[j]), float(q * prices[j]), float(prices[j])
            )
            for j, (s, q) in enumerate(zip(self.symbols, self.portfolio.shares))
            if q != 0
        }

    def clock(self) -> Clock:
        """Open between bars: the next bar is the next chance to fill."""
        if self._now is None:
            raise RuntimeError("no bar delivered yet; call on_bar() first")
        nxt = self._now + self.bar_interval
        return Clock(self._now, True, nxt, nxt)

    def calendar(self, start: dt.date, end: dt.date) -> list[TradingDay]:
        """Weekday sessions 09:30-16:00 New York (the simulated market has no holidays)."""
        days = pd.bdate_range(start, end)
        return [
            TradingDay(
                d.date(),
                pd.Timestamp(dt.datetime.combine(d.date(), dt.time(9, 30)), tz=MARKET_TZ).tz_convert("UTC"),
                pd.Timestamp(dt.datetime.combine(d.date(), dt.time(16, 0)), tz=MARKET_TZ).tz_convert("UTC"),
            )
            for d in days
        ]

    def submit(self, order: OrderRequest) -> Order:
        """Queue a market order for the next bar (a repeated client order id returns the first order)."""
        cid = order.client_order_id
        if cid in self._by_client:
            return self._orders[self._by_client[cid]]
        if order.symbol not in self._col:
            raise OrderRejected(f"unknown symbol {order.symbol!r}; tradable: {list(self.symbols)}", 422, cid)
        if order.type is not OrderType.MARKET:
            raise OrderRejected("SimBroker fills market orders only", 422, cid)
        if order.is_fractional and not self.execution.fractional:
            raise OrderRejected("fractional shares are switched off (ExecutionConfig.fractional)", 422, cid)
        min_qty = float(self.execution.per_symbol((order.symbol,))[1][0])
        closes = math.isclose(float(self.portfolio.shares[self._col[order.symbol]]), -order.signed_qty)
        if order.qty < min_qty and not closes:
            # As a crypto venue does: below the pair's minimum order size unless it closes the position.
            raise OrderRejected(f"qty {order.qty:g} is below the minimum order size {min_qty:g}", 422, cid)
        same_symbol = self.open_orders(order.symbol)
        if any(o.side is order.side.opposite for o in same_symbol):
            raise WashTradeRejected("potential wash trade detected. use complex orders", 422, cid)
        held = float(self.portfolio.shares[self._col[order.symbol]])
        pending = sum(o.remaining_qty * o.side.sign for o in same_symbol)
        after = held + pending + order.signed_qty
        if held * order.side.sign < 0 and after * held < 0:
            raise OrderRejected(
                f"insufficient qty available for order (requested: {order.qty:g}, "
                f"available: {abs(held + pending):g})",
                403,
                cid,
            )
        if after < 0 and not self.execution.allow_short:
            raise OrderRejected("short selling is switched off (ExecutionConfig.allow_short)", 403, cid)
        placed = Order(
            id=str(uuid.UUID(int=len(self._orders) + 1)),
            client_order_id=cid,
            symbol=order.symbol,
            side=order.side,
            qty=float(order.qty),
            filled_qty=0.0,
            filled_avg_price=None,
            status=OrderStatus.ACCEPTED,
            type=order.type,
            time_in_force=order.time_in_force,
            submitted_at=self._now,
        )
        self._store(placed)
        self._by_client[cid] = placed.id
        return placed

    def cancel(self, order_id: str) -> None:
        """Cancel an order still waiting for its bar."""
        order = self._order(order_id)
        if order.is_open:
            self._store(replace(order, status=OrderStatus.CANCELED))

    def get_order(self, order_id: str | None = None, *, client_order_id: str | None = None) -> Order:
        """One order by id or client order id."""
        if (order_id is None) == (client_order_id is None):
            raise ValueError("pass exactly one of order_id and client_order_id")
        if client_order_id is not None:
            if client_order_id not in self._by_client:
                raise OrderNotFound(f"no order with client_order_id {client_order_id!r}")
            order_id = self._by_client[client_order_id]
        return self._order(order_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders waiting for the next bar."""
        waiting = (self._orders[i] for i in self._open)
        return [o for o in waiting if symbol is None or o.symbol == symbol]

    # ------------------------------------------------------------------ fills
    def _store(self, order: Order) -> None:
        self._orders[order.id] = order
        if order.is_open:
            self._open[order.id] = None
        else:
            self._open.pop(order.id, None)

    def _order(self, order_id: str) -> Order:
        if order_id not in self._orders:
            raise OrderNotFound(f"no order with id {order_id!r}")
        return self._orders[order_id]

    def _fill_waiting(self, ts: pd.Timestamp, bar: np.ndarray) -> list[Fill]:
        waiting = self.open_orders()
        if not waiting:
            return []
        cfg = self.execution
        pf = self.portfolio
        c_all, _ = cfg.per_symbol(self.symbols)
        per_share, k = cfg.commission_per_share, cfg.price_impact
        price = bar[:, cfg.fill_field]
        buy_price = np.minimum(price * (1.0 + k), bar[:, HIGH])
        sell_price = np.maximum(price * (1.0 - k), bar[:, LOW])
        cols = np.array([self._col[o.symbol] for o in waiting])
        c = c_all[cols]
        signed = np.array([o.remaining_qty * o.side.sign for o in waiting])
        sells = np.minimum(signed, 0.0)
        buys = np.maximum(signed, 0.0)
        # Same order of operations as envs.sim.execution.rebalance: sells settle, then buys share the budget.
        equity = pf.cash + float(pf.shares @ price)
        cash_after_sells = pf.cash + float((-sells * (sell_price[cols] * (1.0 - c) - per_share)).sum())
        buy_unit = buy_price[cols] * (1.0 + c) + per_share
        need = float((buys * buy_unit).sum())
        budget = max(cash_after_sells + (cfg.max_leverage - 1.0) * equity, 0.0)
        if need > budget:
            buys = buys * (budget / need)
            if not cfg.fractional:
                buys = np.floor(buys + 1e-9)
        filled = buys + sells
        new_cash = cash_after_sells - float((buys * buy_unit).sum())
        traded = np.zeros(len(self.symbols))
        np.add.at(traded, cols, filled)
        fill_price = np.where(traded > 0, buy_price, np.where(traded < 0, sell_price, price))
        commission = np.abs(traded) * (fill_price * c_all + per_share)
        impact = np.abs(traded) * np.abs(fill_price - price)
        pf.apply(
            Rebalance(np.float64(new_cash), pf.shares + traded, traded, fill_price, commission, impact), ts
        )
        fills = []
        for order, qty, j in zip(waiting, np.abs(filled), cols):
            done = order.filled_qty + qty
            avg = fill_price[j] if qty > 0 else order.filled_avg_price
            status = (
                OrderStatus.FILLED if math.isclose(done, order.qty, abs_tol=1e-9) else OrderStatus.CANCELED
            )
            self._store(replace(order, filled_qty=float(done), filled_avg_price=avg, status=status))
            if qty > 0:
                fills.append(
                    Fill(
                        order.client_order_id, order.symbol, order.side, float(qty), float(fill_price[j]), ts
                    )
                )
        return fills
