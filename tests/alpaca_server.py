"""A local HTTP server that speaks Alpaca's trading and market-data REST APIs, with fault injection.

alpaca-py's ``TradingClient`` and ``StockHistoricalDataClient`` work against it unmodified through
``url_override``. It keeps a small brokerage in memory (cash, positions, orders, a market clock and
calendar, historical bars, quotes and trades) and behaves like Alpaca where the runner has to cope with Alpaca:

- market orders fill at a settable price while the market is open (otherwise they wait, as on Alpaca);
- a repeated ``client_order_id`` gets Alpaca's 422 "client_order_id must be unique";
- an order against an open opposite-side order for the same symbol gets the 422 "potential wash trade";
- selling more than is held (or covering more than is short) in one order is refused with 403;
- fractional quantities are accepted only as market/day orders;
- crypto pairs (``BTC/USD``) trade around the clock, as gtc or ioc orders, and their bars come from the
  crypto endpoint (``CryptoHistoricalDataClient``); a crypto position is listed as ``BTCUSD``;
- faults can be queued per route: an HTTP error (500, 429 with Retry-After, a 403/422 reject), a dropped
  connection, either before or after the request took effect, and for new orders a partial or late fill.

Use it as a context manager or call :meth:`FakeAlpaca.start` / :meth:`FakeAlpaca.stop`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd

log = logging.getLogger(__name__)
MARKET_TZ = "America/New_York"


# ---------------------------------------------------------------------------------------- faults
@dataclass(frozen=True)
class HttpError:
    """Reply with an Alpaca-style error.

    :param status: HTTP status.
    :param message: Alpaca's ``message`` field.
    :param retry_after: value of a Retry-After header (seconds), for 429s.
    :param after_processing: perform the request first (the POST takes effect), then fail the reply.
    """

    status: int = 500
    message: str = "internal server error"
    retry_after: float | None = None
    after_processing: bool = False


@dataclass(frozen=True)
class DropConnection:
    """Close the socket without a reply.

    :param after_processing: perform the request first, then drop.
    """

    after_processing: bool = False


@dataclass(frozen=True)
class PartialFill:
    """The next new order fills only ``fraction`` of its quantity now; the rest waits for
    :meth:`FakeAlpaca.fill_pending`.

    :param fraction: share of the quantity filled at once (whole-share orders round down).
    """

    fraction: float = 0.5


@dataclass(frozen=True)
class LateFill:
    """The next new order is accepted but fills only on :meth:`FakeAlpaca.fill_pending`."""


@dataclass(frozen=True)
class PendingCancel:
    """The next cancel is accepted but, as on Alpaca, happens asynchronously: the order is
    ``pending_cancel`` and can still fill (:meth:`FakeAlpaca.fill_pending`) until
    :meth:`FakeAlpaca.finish_cancels` cancels it. Inject it on ``DELETE /v2/orders/``."""


@dataclass(frozen=True)
class LandFills:
    """Fill every open order just before answering the matched request (fills landing while the runner
    reads orders and positions one after the other)."""


Fault = HttpError | DropConnection | PartialFill | LateFill | PendingCancel | LandFills


def server_error(status: int = 500, **kwargs: Any) -> HttpError:
    """A 5xx reply."""
    return HttpError(status, "internal server error", **kwargs)


def rate_limited(retry_after: float = 1.0) -> HttpError:
    """A 429 with Retry-After."""
    return HttpError(429, "rate limit exceeded", retry_after=retry_after)


def rejected(message: str = "insufficient buying power", status: int = 403) -> HttpError:
    """A 4xx order reject with a reason."""
    return HttpError(status, message)


class ApiError(Exception):
    """An Alpaca error reply raised inside a route."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_CODES = {403: 40310000, 404: 40410000, 422: 42210000, 429: 42910000}


# ---------------------------------------------------------------------------------------- state
@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str
    time_in_force: str
    limit_price: float | None
    created_at: pd.Timestamp
    status: str = "accepted"
    filled_qty: float = 0.0
    filled_value: float = 0.0
    filled_at: pd.Timestamp | None = None
    canceled_at: pd.Timestamp | None = None
    hold: bool = False  # a partial/late fault keeps the rest unfilled until fill_pending()

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "accepted", "pending_new", "partially_filled", "pending_cancel")

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


@dataclass
class _Position:
    qty: float = 0.0
    avg_entry_price: float = 0.0


@dataclass
class _Rule:
    method: str
    path: str
    fault: Fault
    times: int
    skip: int = 0


@dataclass
class FakeAlpaca:
    """The in-memory brokerage and its HTTP server.

    :param prices: last price per symbol; these are also the known assets.
    :param cash: starting cash.
    :param now: the server's clock (UTC); move it with :meth:`set_time`.
    :param holidays: dates (New York) with no session.
    :param early_closes: dates that close early, with their New York close time.
    :param api_key: the key id the server accepts.
    :param secret_key: the secret the server accepts.
    :param max_page_size: caps ``limit`` on the bars endpoint so tests can force pagination.
    :param bars_until_now: serve only bars stamped up to the clock, as Alpaca does (plus rows whose
        ``injected`` column is True: a future-dated bar sent on purpose).
    """

    prices: dict[str, float] = field(default_factory=dict)
    cash: float = 100_000.0
    now: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2024-03-05 15:00", tz="UTC"))
    holidays: set[dt.date] = field(default_factory=set)
    early_closes: dict[dt.date, dt.time] = field(default_factory=dict)
    api_key: str = "test-key-id"
    secret_key: str = "test-secret-key"
    max_page_size: int = 10_000
    bars_until_now: bool = False

    def __post_init__(self) -> None:
        self.now = pd.Timestamp(self.now).tz_convert("UTC")
        self.positions: dict[str, _Position] = {}
        self.orders: dict[str, _Order] = {}
        self.requests: list[tuple[str, str]] = []
        self.bars: dict[str, pd.DataFrame] = {}
        self.ticks: dict[str, pd.DataFrame] = {}
        self._by_client: dict[str, str] = {}
        self._rules: list[_Rule] = []
        self._outages: list[tuple[pd.Timestamp, tuple[str, ...], Fault]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAlpaca:
        """Serve on 127.0.0.1 at a free port, in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to pass as ``url_override`` / ``APCA_API_BASE_URL``."""
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test controls
    def inject(
        self, fault: Fault, method: str = "POST", path: str = "/v2/orders", times: int = 1, skip: int = 0
    ) -> None:
        """Queue ``fault`` for the next ``times`` requests whose method matches and path starts with ``path``.

        :param fault: what to do instead of (or after) answering.
        :param method: HTTP method to match.
        :param path: path prefix to match.
        :param times: how many matching requests it affects.
        :param skip: let this many matching requests through first.
        """
        with self._lock:
            self._rules.append(_Rule(method.upper(), path, fault, times, skip))

    def set_price(self, symbol: str, price: float) -> None:
        """Set the price market orders for ``symbol`` fill at."""
        with self._lock:
            self.prices[symbol] = float(price)

    def set_time(self, now: object) -> None:
        """Move the server clock (naive values are UTC)."""
        ts = pd.Timestamp(now)
        with self._lock:
            self.now = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    def set_bars(self, frame: pd.DataFrame, timeframe: str = "1Day", sort: bool = True) -> None:
        """Historical bars for the data API: a long frame with timestamp, symbol and OHLCV columns.

        :param frame: the bars; values may be NaN (sent as a bare ``NaN``, which is not JSON) or None
            (sent as ``null``).
        :param timeframe: the bar size they answer.
        :param sort: sort by symbol and time; False keeps each symbol's rows in the frame's order (to send
            bars out of order).
        """
        keys = ["symbol", "timestamp"] if sort else ["symbol"]
        with self._lock:
            self.bars[timeframe] = frame.sort_values(keys, kind="stable").reset_index(drop=True)

    def set_ticks(self, kind: str, frame: pd.DataFrame) -> None:
        """Historical quotes or trades for the data API: a long frame with ``timestamp``, ``symbol`` and
        Alpaca's short field names (quotes: ``bp``, ``bs``, ``ap``, ``as``; trades: ``p``, ``s``).

        :param kind: ``"quotes"`` or ``"trades"``.
        :param frame: the events.
        """
        with self._lock:
            self.ticks[kind] = frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)

    def outage(self, until: object, paths: tuple[str, ...] = ("/v2/",), fault: Fault | None = None) -> None:
        """Fail every request to ``paths`` (prefixes) until the server clock reaches ``until``.

        :param until: end of the outage (server time, naive = UTC).
        :param paths: path prefixes affected (``/v2/stocks`` is the data API).
        :param fault: the failure (503 by default).
        """
        ts = pd.Timestamp(until)
        with self._lock:
            self._outages.append(
                (ts.tz_localize("UTC") if ts.tzinfo is None else ts, paths, fault or server_error(503))
            )

    def fill_pending(self) -> None:
        """Fill every open market order in full at the current prices (late and partial fills land, and so
        do orders whose cancel is still pending)."""
        with self._lock:
            for order in self.orders.values():
                if order.is_open and order.type == "market":
                    order.hold = False
                    self._fill(order, order.qty - order.filled_qty)

    def finish_cancels(self) -> None:
        """Complete every pending cancel (orders that did not fill meanwhile end ``canceled``)."""
        with self._lock:
            for order in self.orders.values():
                if order.status == "pending_cancel":
                    order.status = "canceled"
                    order.canceled_at = self.now

    def count(self, method: str, path: str) -> int:
        """How many requests with this method and exact path the server answered or faulted."""
        return sum(1 for m, p in self.requests if m == method.upper() and p == path)

    # ------------------------------------------------------------------ market clock
    def session(self, day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """(open, close) in UTC of ``day``'s regular session, or None on weekends and holidays."""
        if day.weekday() >= 5 or day in self.holidays:
            return None
        close = self.early_closes.get(day, dt.time(16, 0))
        open_ = pd.Timestamp(dt.datetime.combine(day, dt.time(9, 30)), tz=MARKET_TZ)
        end = pd.Timestamp(dt.datetime.combine(day, close), tz=MARKET_TZ)
        return open_.tz_convert("UTC"), end.tz_convert("UTC")

    def is_open(self) -> bool:
        """Whether the regular session is open at the server's ``now``."""
        today = self.now.tz_convert(MARKET_TZ).date()
        s = self.session(today)
        return s is not None and s[0] <= self.now < s[1]

    def _next_sessions(self) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
        day = self.now.tz_convert(MARKET_TZ).date()
        found = []
        while len(found) < 2:
            s = self.session(day)
            if s is not None and s[1] > self.now:
                found.append(s)
            day += dt.timedelta(days=1)
        return tuple(found)

    # ------------------------------------------------------------------ brokerage
    def _equity(self) -> float:
        return self.cash + sum(p.qty * self.prices[s] for s, p in self.positions.items())

    def _fill(self, order: _Order, qty: float) -> None:
        if qty <= 0:
            return
        price = self.prices[order.symbol]
        if order.type == "limit" and order.sign * (price - order.limit_price) > 0:
            return
        pos = self.positions.setdefault(order.symbol, _Position())
        signed = order.sign * qty
        if pos.qty == 0 or math.copysign(1, pos.qty) == math.copysign(1, signed):
            pos.avg_entry_price = (abs(pos.qty) * pos.avg_entry_price + qty * price) / (abs(pos.qty) + qty)
        pos.qty = round(pos.qty + signed, 9)
        if pos.qty == 0:
            del self.positions[order.symbol]
        self.cash -= signed * price
        order.filled_qty = round(order.filled_qty + qty, 9)
        order.filled_value += qty * price
        if order.filled_qty >= order.qty:
            order.status = "filled"
        elif order.status != "pending_cancel":
            order.status = "partially_filled"
        if order.status == "filled":
            order.filled_at = self.now

    def _create_order(self, body: dict[str, Any], fill: Fault | None) -> _Order:
        symbol = str(body.get("symbol", ""))
        if symbol not in self.prices:
            raise ApiError(422, f'asset "{symbol}" not found')
        side, kind, tif = body.get("side"), body.get("type", "market"), body.get("time_in_force")
        if (
            side not in ("buy", "sell")
            or kind not in ("market", "limit")
            or tif not in ("day", "gtc", "ioc", "fok", "opg", "cls")
        ):
            raise ApiError(422, f"invalid side/type/time_in_force: {side}/{kind}/{tif}")
        try:
            qty = float(body["qty"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(422, "qty is required") from None
        if not qty > 0:
            raise ApiError(422, "qty must be > 0")
        cid = str(body.get("client_order_id") or uuid.uuid4())
        if len(cid) > 48:
            raise ApiError(422, "client_order_id must be no more than 48 characters")
        if cid in self._by_client:
            raise ApiError(422, "client_order_id must be unique")
        if _is_crypto(symbol):
            # Alpaca trades crypto around the clock, good-till-cancelled or immediate-or-cancel only.
            if tif not in ("gtc", "ioc"):
                raise ApiError(422, f"invalid crypto time_in_force {tif!r}: use gtc or ioc")
        elif qty != math.floor(qty) and (kind != "market" or tif != "day"):
            raise ApiError(422, "fractional orders must be market orders with day time_in_force")
        sign = 1 if side == "buy" else -1
        if any(o.is_open and o.symbol == symbol and o.sign == -sign for o in self.orders.values()):
            raise ApiError(422, "potential wash trade detected. use complex orders")
        held = self.positions.get(symbol, _Position()).qty
        pending = sum(
            o.sign * (o.qty - o.filled_qty) for o in self.orders.values() if o.is_open and o.symbol == symbol
        )
        if held * sign < 0 and qty > abs(held + pending):
            raise ApiError(
                403,
                f"insufficient qty available for order (requested: {qty:g}, "
                f"available: {abs(held + pending):g})",
            )
        if held * sign >= 0 and sign < 0 and qty != math.floor(qty):
            raise ApiError(403, "fractional orders cannot be sold short")
        price = float(body.get("limit_price") or self.prices[symbol])
        if sign > 0 and held >= 0 and qty * price > self.cash:
            raise ApiError(403, "insufficient buying power")
        order = _Order(
            id=str(uuid.UUID(int=len(self.orders) + 1)),
            client_order_id=cid,
            symbol=symbol,
            side=side,
            qty=qty,
            type=kind,
            time_in_force=tif,
            limit_price=None if body.get("limit_price") is None else float(body["limit_price"]),
            created_at=self.now,
            status="new" if kind == "limit" else "accepted",
        )
        self.orders[order.id] = order
        self._by_client[cid] = order.id
        if self.is_open() or _is_crypto(symbol):
            if isinstance(fill, PartialFill):
                now_qty = qty * fill.fraction
                self._fill(order, math.floor(now_qty) if qty == math.floor(qty) else round(now_qty, 9))
                order.hold = True
            elif isinstance(fill, LateFill):
                order.hold = True
            else:
                self._fill(order, qty)
        return order

    def _cancel(self, order: _Order, pending: bool = False) -> None:
        if not order.is_open or order.status == "pending_cancel":
            raise ApiError(422, "order is not cancelable")
        if pending:
            order.status = "pending_cancel"
            return
        order.status = "canceled"
        order.canceled_at = self.now

    def _order_by_id(self, order_id: str) -> _Order:
        if order_id not in self.orders:
            raise ApiError(404, f"order not found for {order_id}")
        return self.orders[order_id]

    # ------------------------------------------------------------------ JSON shapes
    def _order_json(self, o: _Order) -> dict[str, Any]:
        ts = _iso(o.created_at)
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": ts,
            "updated_at": _iso(self.now),
            "submitted_at": ts,
            "filled_at": _iso(o.filled_at),
            "expired_at": None,
            "canceled_at": _iso(o.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": _asset_id(o.symbol),
            "symbol": o.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": _qty(o.qty),
            "filled_qty": _qty(o.filled_qty),
            "filled_avg_price": f"{o.filled_value / o.filled_qty:.6f}" if o.filled_qty else None,
            "order_class": "simple",
            "order_type": o.type,
            "type": o.type,
            "side": o.side,
            "time_in_force": o.time_in_force,
            "limit_price": None if o.limit_price is None else f"{o.limit_price:g}",
            "stop_price": None,
            "status": o.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }

    def _position_json(self, symbol: str, p: _Position) -> dict[str, Any]:
        price = self.prices[symbol]
        value, cost = p.qty * price, p.qty * p.avg_entry_price
        crypto = _is_crypto(symbol)
        return {
            "asset_id": _asset_id(symbol),
            # Alpaca lists a crypto position without the slash of its order symbol: BTC/USD -> BTCUSD.
            "symbol": symbol.replace("/", ""),
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "asset_class": "crypto" if crypto else "us_equity",
            "asset_marginable": not crypto,
            "avg_entry_price": f"{p.avg_entry_price:.6f}",
            "qty": _qty(abs(p.qty)),
            "qty_available": _qty(abs(p.qty)),
            "side": "long" if p.qty > 0 else "short",
            "market_value": f"{value:.6f}",
            "cost_basis": f"{cost:.6f}",
            "unrealized_pl": f"{value - cost:.6f}",
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": f"{price:.6f}",
            "lastday_price": f"{price:.6f}",
            "change_today": "0",
        }

    def _account_json(self) -> dict[str, Any]:
        equity = self._equity()
        long_value = sum(p.qty * self.prices[s] for s, p in self.positions.items() if p.qty > 0)
        return {
            "id": str(uuid.UUID(int=0)),
            "account_number": "PA0000000",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": f"{max(self.cash, 0):.2f}",
            "regt_buying_power": f"{max(self.cash, 0):.2f}",
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": f"{max(self.cash, 0):.2f}",
            "cash": f"{self.cash:.2f}",
            "accrued_fees": "0",
            "portfolio_value": f"{equity:.2f}",
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-01T00:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": f"{equity:.2f}",
            "last_equity": f"{equity:.2f}",
            "long_market_value": f"{long_value:.2f}",
            "short_market_value": f"{equity - self.cash - long_value:.2f}",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        }

    def _asset_json(self, symbol: str) -> dict[str, Any]:
        crypto = _is_crypto(symbol)
        return {
            "id": _asset_id(symbol),
            "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "fractionable": True,
            "attributes": [],
        }

    # ------------------------------------------------------------------ routes
    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Answer one request: (status, JSON body or None)."""
        for pattern, verb, handler in self._routes():
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                with self._lock:
                    return handler(query, body, *m.groups())
        raise ApiError(404, f"endpoint not found: {method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            (r"/v2/account", "GET", lambda q, b: (200, self._account_json())),
            (r"/v2/clock", "GET", self._get_clock),
            (r"/v2/calendar", "GET", self._get_calendar),
            (r"/v2/assets", "GET", lambda q, b: (200, [self._asset_json(s) for s in sorted(self.prices)])),
            (r"/v2/assets/([^/]+)", "GET", self._get_asset),
            (r"/v2/orders", "POST", lambda q, b: (200, self._order_json(self._create_order(b or {}, None)))),
            (r"/v2/orders", "GET", self._list_orders),
            (r"/v2/orders", "DELETE", self._cancel_all),
            (r"/v2/orders:by_client_order_id", "GET", self._get_by_client_id),
            (r"/v2/orders/([^/]+)", "GET", lambda q, b, oid: (200, self._order_json(self._order_by_id(oid)))),
            (r"/v2/orders/([^/]+)", "DELETE", lambda q, b, oid: (204, self._cancel(self._order_by_id(oid)))),
            (
                r"/v2/positions",
                "GET",
                lambda q, b: (200, [self._position_json(s, p) for s, p in sorted(self.positions.items())]),
            ),
            (r"/v2/positions", "DELETE", self._close_all),
            (r"/v2/positions/([^/]+)", "GET", self._get_position),
            (r"/v2/positions/([^/]+)", "DELETE", lambda q, b, s: (200, self._order_json(self._close(s)))),
            (r"/v2/stocks/bars", "GET", self._get_bars),
            (r"/v1beta3/crypto/us/bars", "GET", self._get_bars),
            (r"/v2/stocks/quotes", "GET", lambda q, b: self._get_ticks("quotes", q)),
            (r"/v2/stocks/trades", "GET", lambda q, b: self._get_ticks("trades", q)),
        ]

    def _get_clock(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        (open1, close1), (open2, _) = self._next_sessions()
        is_open = open1 <= self.now < close1
        return 200, {
            "timestamp": _iso(self.now, MARKET_TZ),
            "is_open": is_open,
            "next_open": _iso(open2 if is_open else open1, MARKET_TZ),
            "next_close": _iso(close1, MARKET_TZ),
        }

    def _get_calendar(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        today = self.now.tz_convert(MARKET_TZ).date()
        start = dt.date.fromisoformat(query.get("start", today.isoformat()))
        end = dt.date.fromisoformat(query.get("end", start.isoformat()))
        days = []
        for day in pd.date_range(start, end, freq="D").date:
            s = self.session(day)
            if s is not None:
                o, c = (t.tz_convert(MARKET_TZ) for t in s)
                days.append(
                    {
                        "date": day.isoformat(),
                        "open": o.strftime("%H:%M"),
                        "close": c.strftime("%H:%M"),
                        "session_open": "0400",
                        "session_close": "2000",
                        "settlement_date": day.isoformat(),
                    }
                )
        return 200, days

    def _get_asset(self, query: dict[str, str], body: Any, symbol: str) -> tuple[int, Any]:
        symbol = self._symbol_of(symbol)
        if symbol not in self.prices:
            raise ApiError(404, f"asset not found for {symbol}")
        return 200, self._asset_json(symbol)

    def _list_orders(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status = query.get("status", "open")
        symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
        chosen = [
            o
            for o in self.orders.values()
            if (status == "all" or o.is_open == (status == "open"))
            and (symbols is None or o.symbol in symbols)
        ]
        chosen.sort(
            key=lambda o: (o.created_at, int(uuid.UUID(o.id))),
            reverse=query.get("direction", "desc") == "desc",
        )
        return 200, [self._order_json(o) for o in chosen[: int(query.get("limit", 50))]]

    def _cancel_all(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        out = []
        for o in self.orders.values():
            if o.is_open:
                self._cancel(o)
                out.append({"id": o.id, "status": 200, "body": self._order_json(o)})
        return 207, out

    def _get_by_client_id(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        cid = query.get("client_order_id", "")
        if cid not in self._by_client:
            raise ApiError(404, f"order not found for {cid}")
        return 200, self._order_json(self.orders[self._by_client[cid]])

    def _get_position(self, query: dict[str, str], body: Any, symbol: str) -> tuple[int, Any]:
        symbol = self._symbol_of(symbol)
        if symbol not in self.positions:
            raise ApiError(404, "position does not exist")
        return 200, self._position_json(symbol, self.positions[symbol])

    def _close(self, symbol: str) -> _Order:
        symbol = self._symbol_of(symbol)
        if symbol not in self.positions:
            raise ApiError(404, "position does not exist")
        qty = self.positions[symbol].qty
        side = "sell" if qty > 0 else "buy"
        tif = "gtc" if _is_crypto(symbol) else "day"
        return self._create_order(
            {"symbol": symbol, "qty": abs(qty), "side": side, "type": "market", "time_in_force": tif}, None
        )

    def _symbol_of(self, name: str) -> str:
        """A position path names crypto without its slash (``BTCUSD``); find the pair it means."""
        return next((s for s in self.prices if s.replace("/", "") == name), name)

    def _close_all(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 207, [
            {"symbol": s, "status": 200, "body": self._order_json(self._close(s))}
            for s in sorted(self.positions)
        ]

    def _get_bars(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        timeframe = query.get("timeframe", "")
        if timeframe not in self.bars:
            raise ApiError(422, f"invalid timeframe {timeframe!r}")
        frame = self.bars[timeframe]
        symbols = query.get("symbols", "").split(",")
        mask = frame["symbol"].isin(symbols)
        if "start" in query:
            mask &= frame["timestamp"] >= pd.Timestamp(query["start"])
        if "end" in query:
            mask &= frame["timestamp"] <= pd.Timestamp(query["end"])
        if self.bars_until_now:
            mask &= (frame["timestamp"] <= self.now) | frame.get("injected", False)
        rows = frame[mask]
        offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        limit = min(int(query.get("limit") or self.max_page_size), self.max_page_size)
        page = rows.iloc[offset : offset + limit]
        bars: dict[str, list[dict[str, Any]]] = {}
        for r in page.itertuples(index=False):
            bars.setdefault(r.symbol, []).append(
                {
                    "t": _iso(r.timestamp),
                    "o": r.open,
                    "h": r.high,
                    "l": r.low,
                    "c": r.close,
                    "v": r.volume,
                    "n": 1,
                    "vw": r.close,
                }
            )
        more = offset + limit < len(rows)
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {"bars": bars, "next_page_token": token}

    def _get_ticks(self, kind: str, query: dict[str, str]) -> tuple[int, Any]:
        frame = self.ticks.get(kind, pd.DataFrame(columns=["timestamp", "symbol"]))
        mask = frame["symbol"].isin(query.get("symbols", "").split(","))
        if "start" in query:
            mask &= frame["timestamp"] >= pd.Timestamp(query["start"])
        if "end" in query:
            mask &= frame["timestamp"] <= pd.Timestamp(query["end"])
        rows = frame[mask]
        offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        limit = min(int(query.get("limit") or self.max_page_size), self.max_page_size)
        page = rows.iloc[offset : offset + limit]
        fields = [c for c in page.columns if c not in ("timestamp", "symbol")]
        events: dict[str, list[dict[str, Any]]] = {}
        for r in page.to_dict("records"):
            events.setdefault(r["symbol"], []).append({"t": _iso(r["timestamp"]), **{f: r[f] for f in fields}})
        more = offset + limit < len(rows)
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {kind: events, "next_page_token": token}

    # ------------------------------------------------------------------ fault matching
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for until, paths, fault in self._outages:
                if self.now < until and path.startswith(paths):
                    return fault
            for rule in self._rules:
                if rule.method == method and path.startswith(rule.path) and rule.times > 0:
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.times -= 1
                    return rule.fault
        return None


def alpaca_daily(long: pd.DataFrame) -> pd.DataFrame:
    """Restamp long-format daily bars (midnight UTC of the session date) the way Alpaca stamps them:
    midnight New York, expressed in UTC.

    :param long: frame with a UTC ``timestamp`` column.
    """
    local = long["timestamp"].dt.tz_localize(None).dt.tz_localize(MARKET_TZ)
    return long.assign(timestamp=local.dt.tz_convert("UTC"))


def _is_crypto(symbol: str) -> bool:
    """Crypto pairs carry a slash (``BTC/USD``); stock tickers never do."""
    return "/" in symbol


def _qty(value: float) -> str:
    """Quantities as Alpaca writes them: decimal strings with up to 9 places."""
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _iso(ts: pd.Timestamp | None, tz: str = "UTC") -> str | None:
    if ts is None:
        return None
    ts = pd.Timestamp(ts).tz_convert(tz)
    return ts.isoformat().replace("+00:00", "Z")


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-asset/{symbol}"))


def _handler_for(state: FakeAlpaca) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and the client's
            # delayed ACK add ~40 ms to every keep-alive request.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("fake alpaca: " + format, *args)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if (self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")) != (
                state.api_key,
                state.secret_key,
            ):
                self._reply(401, {"code": 40110000, "message": "request is not authorized"})
                return
            fault = state._take_fault(method, url.path)
            if isinstance(fault, (HttpError, DropConnection)) and not fault.after_processing:
                self._fault(fault)
                return
            fill = fault if isinstance(fault, (PartialFill, LateFill)) else None
            if isinstance(fault, LandFills):
                state.fill_pending()
            try:
                body = json.loads(raw) if raw else None
                if fill is not None:
                    with state._lock:
                        status, payload = 200, state._order_json(state._create_order(body or {}, fill))
                elif isinstance(fault, PendingCancel) and method == "DELETE":
                    with state._lock:
                        oid = url.path.rsplit("/", 1)[-1]
                        status, payload = 204, state._cancel(state._order_by_id(oid), pending=True)
                else:
                    status, payload = state.route(method, url.path, query, body)
            except ApiError as err:
                status, payload = (
                    err.status,
                    {"code": _CODES.get(err.status, 40010000), "message": err.message},
                )
            if isinstance(fault, (HttpError, DropConnection)):
                self._fault(fault)
                return
            self._reply(status, payload)

        def _fault(self, fault: HttpError | DropConnection) -> None:
            if isinstance(fault, DropConnection):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            code = _CODES.get(fault.status, 50010000)
            self._reply(fault.status, {"code": code, "message": fault.message}, headers)

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if status == 204 or payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
