"""The Broker protocol and the typed records every broker speaks.

The live runner only knows :class:`Broker`; :class:`brokers.sim.SimBroker` (the backtest's fill model) and
:class:`brokers.alpaca.AlpacaBroker` (alpaca-py) both implement it. Quantities are signed floats in shares
for positions and positive floats for orders; timestamps are UTC :class:`pandas.Timestamp`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import pandas as pd

from envs.data.calendar import calendar_for_symbol

MAX_CLIENT_ORDER_ID = 48  # Alpaca's limit on client_order_id length


class Side(str, Enum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    """Order types the runner places."""

    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(str, Enum):
    """How long an order stays working."""

    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(str, Enum):
    """Order states, named as Alpaca names them."""

    NEW = "new"
    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    CALCULATED = "calculated"
    HELD = "held"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_REVIEW = "pending_review"

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer fill."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
        OrderStatus.DONE_FOR_DAY,
    }
)


def utc(value: object) -> pd.Timestamp:
    """A UTC timestamp from anything pandas understands (naive values are taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def is_crypto(symbol: str) -> bool:
    """True for a crypto pair (``BTC/USD``, ``ETH/BTC``): it trades 24/7 by its name's calendar.

    :param symbol: the symbol.
    """
    calendar = calendar_for_symbol(symbol)
    return calendar is not None and calendar.name == "24/7"


@dataclass(frozen=True)
class OrderRequest:
    """An order the runner wants placed.

    Fractional stock quantities must be market orders with day time-in-force (Alpaca rejects anything
    else), so the constructor refuses them up front with an error naming the order. Crypto pairs
    (:func:`is_crypto`) trade around the clock and take no day orders: their default time-in-force is gtc,
    and only gtc or ioc are accepted.

    :param symbol: asset symbol.
    :param side: buy or sell.
    :param qty: positive number of shares (may be fractional).
    :param client_order_id: deterministic id (see :func:`brokers.order_ids.client_order_id`), at most 48
        characters; the broker refuses a second order with the same id.
    :param type: market or limit.
    :param time_in_force: day by default (gtc for crypto).
    :param limit_price: required for limit orders.
    """

    symbol: str
    side: Side
    qty: float
    client_order_id: str
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "type", OrderType(self.type))
        object.__setattr__(self, "time_in_force", TimeInForce(self.time_in_force))
        where = f"order {self.client_order_id!r} ({self.side.value} {self.qty} {self.symbol})"
        if is_crypto(self.symbol):
            if self.time_in_force is TimeInForce.DAY:
                object.__setattr__(self, "time_in_force", TimeInForce.GTC)
            if self.time_in_force not in (TimeInForce.GTC, TimeInForce.IOC):
                raise ValueError(
                    f"{where}: crypto orders are gtc or ioc, got time_in_force={self.time_in_force.value}"
                )
        if not self.symbol:
            raise ValueError(f"{where}: symbol is empty")
        if not (isinstance(self.qty, (int, float)) and math.isfinite(self.qty) and self.qty > 0):
            raise ValueError(f"{where}: qty must be a positive finite number, got {self.qty!r}")
        if not 0 < len(self.client_order_id) <= MAX_CLIENT_ORDER_ID:
            raise ValueError(
                f"{where}: client_order_id must have 1..{MAX_CLIENT_ORDER_ID} characters, "
                f"got {len(self.client_order_id)}"
            )
        if self.type is OrderType.LIMIT and (self.limit_price is None or self.limit_price <= 0):
            raise ValueError(f"{where}: a limit order needs a positive limit_price")
        if self.type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError(f"{where}: a market order takes no limit_price")
        if self.is_fractional and not is_crypto(self.symbol) and (
            self.type is not OrderType.MARKET or self.time_in_force is not TimeInForce.DAY
        ):
            raise ValueError(
                f"{where}: fractional quantities must be market orders with time_in_force=day, got "
                f"type={self.type.value} time_in_force={self.time_in_force.value}"
            )

    @property
    def is_fractional(self) -> bool:
        """True when ``qty`` is not a whole number of shares."""
        return float(self.qty) != math.floor(self.qty)

    @property
    def signed_qty(self) -> float:
        """``qty`` with the side's sign."""
        return self.side.sign * float(self.qty)


@dataclass(frozen=True)
class Order:
    """The broker's view of an order.

    :param id: the broker's order id.
    :param client_order_id: our deterministic id.
    :param symbol: asset symbol.
    :param side: buy or sell.
    :param qty: ordered shares.
    :param filled_qty: shares filled so far.
    :param filled_avg_price: average fill price, ``None`` until something fills.
    :param status: current status.
    :param type: market or limit.
    :param time_in_force: time in force.
    :param limit_price: limit price for limit orders.
    :param submitted_at: when the broker accepted it.
    """

    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: OrderStatus
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: float | None = None
    submitted_at: pd.Timestamp | None = None

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return not self.status.is_terminal

    @property
    def remaining_qty(self) -> float:
        """Shares not yet filled."""
        return max(self.qty - self.filled_qty, 0.0)


@dataclass(frozen=True)
class Fill:
    """One execution (or the increment of a partial fill) of an order.

    :param client_order_id: the order it belongs to.
    :param symbol: asset symbol.
    :param side: buy or sell.
    :param qty: positive filled shares.
    :param price: fill price.
    :param timestamp: when it was observed.
    """

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    timestamp: pd.Timestamp

    @property
    def signed_qty(self) -> float:
        """``qty`` with the side's sign."""
        return self.side.sign * self.qty


@dataclass(frozen=True)
class Position:
    """A holding at the broker.

    :param symbol: asset symbol.
    :param qty: signed shares (negative when short).
    :param avg_entry_price: average entry price.
    :param market_value: signed market value at ``current_price``.
    :param current_price: the broker's last price.
    """

    symbol: str
    qty: float
    avg_entry_price: float
    market_value: float
    current_price: float


@dataclass(frozen=True)
class Account:
    """Account balances.

    :param cash: settled plus unsettled cash.
    :param equity: cash plus the market value of positions.
    :param buying_power: what the broker lets us spend now.
    :param currency: account currency.
    :param trading_blocked: True when the broker refuses orders.
    """

    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"
    trading_blocked: bool = False


@dataclass(frozen=True)
class Clock:
    """The market clock.

    :param timestamp: the broker's current time.
    :param is_open: whether the regular session is open now.
    :param next_open: start of the next regular session.
    :param next_close: end of the current or next regular session.
    """

    timestamp: pd.Timestamp
    is_open: bool
    next_open: pd.Timestamp
    next_close: pd.Timestamp


@dataclass(frozen=True)
class TradingDay:
    """One session of the market calendar (holidays are simply absent).

    :param date: the session's date in New York.
    :param open: session open (UTC).
    :param close: session close (UTC); early closes show here.
    """

    date: dt.date
    open: pd.Timestamp
    close: pd.Timestamp


class BrokerError(RuntimeError):
    """Base class of every broker failure."""


class OrderRejected(BrokerError):
    """The broker refused a request (a 4xx); retrying would not help.

    :param reason: the broker's own message.
    :param status_code: HTTP status (or 0 for the simulated broker).
    :param client_order_id: the order concerned, if any.
    """

    def __init__(self, reason: str, status_code: int = 0, client_order_id: str | None = None) -> None:
        self.reason = reason
        self.status_code = status_code
        self.client_order_id = client_order_id
        what = f"order {client_order_id!r}" if client_order_id else "request"
        super().__init__(f"broker rejected {what} (HTTP {status_code}): {reason}")


class WashTradeRejected(OrderRejected):
    """The broker refused an order because an opposite-side order is open for the same symbol."""


class OrderNotFound(BrokerError):
    """No order with that id exists at the broker."""


class BrokerUnavailable(BrokerError):
    """The broker kept failing with transient errors (5xx, 429, dropped connections) until retries ran out."""


class BrokerConfigError(BrokerError):
    """The broker cannot be used as configured (no server at the URL, unknown host): retrying won't help."""


@runtime_checkable
class Broker(Protocol):
    """What the live runner needs from a broker."""

    def account(self) -> Account:
        """Current balances."""

    def positions(self) -> dict[str, Position]:
        """Open positions by symbol (flat symbols are absent)."""

    def clock(self) -> Clock:
        """The market clock now."""

    def calendar(self, start: dt.date, end: dt.date) -> list[TradingDay]:
        """Trading sessions between ``start`` and ``end`` inclusive."""

    def submit(self, order: OrderRequest) -> Order:
        """Place ``order``; placing the same ``client_order_id`` twice returns the first order."""

    def cancel(self, order_id: str) -> None:
        """Cancel an open order by broker id (a no-op if it already finished)."""

    def get_order(self, order_id: str | None = None, *, client_order_id: str | None = None) -> Order:
        """One order by broker id or by client order id; raises :class:`OrderNotFound`."""

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill, optionally for one symbol."""
