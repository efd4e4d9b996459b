"""The Alpaca adapter: :class:`brokers.base.Broker` on alpaca-py's ``TradingClient``.

Paper trading by default. The trading endpoint comes from ``APCA_API_BASE_URL`` and is always passed as
``url_override``, so any Alpaca-compatible server (the test suite's local one included) stands in.

Failure handling, in one place:

- 5xx, 429, timeouts and dropped connections are retried with exponential backoff and jitter; a 429's
  Retry-After wins when it is longer. 4xx replies are not retried: they raise :class:`OrderRejected` with
  Alpaca's own message. A connection that cannot be opened before the first reply (nothing listens at
  the URL, unknown host) is a configuration error (:class:`BrokerConfigError`), raised at once.
- Every call's latency and retries are counted in :attr:`AlpacaBroker.health` for the dashboard.
- alpaca-py's REST layer retries 429/504 by itself (fixed 3 s, blind to Retry-After and to whether the
  POST already created the order). That built-in retry is switched off so the backoff above is the only
  one; and because any failed POST may still have reached Alpaca, every resubmission first looks the order
  up by client order id, and a "client_order_id must be unique" reply returns the existing order.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from brokers.base import (
    Account,
    BrokerConfigError,
    BrokerError,
    Clock,
    Order,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    TradingDay,
    WashTradeRejected,
    utc,
)
from brokers.credentials import AlpacaConfig
from envs.data.calendar import CRYPTO_QUOTES
from brokers.retry import RetryPolicy, TransientError, call_with_retry, is_refused

log = logging.getLogger(__name__)
T = TypeVar("T")

MARKET_TZ = "America/New_York"
DUPLICATE_CLIENT_ID = "client_order_id must be unique"
WASH_TRADE = "wash trade"


class AlpacaBroker:
    """Alpaca's trading API behind the :class:`brokers.base.Broker` protocol.

    :param config: credentials and endpoint (see :meth:`AlpacaConfig.from_env`).
    :param retry: backoff for transient failures.
    :param sleep: the wait function used between retries (tests pass a recorder).
    """

    def __init__(
        self,
        config: AlpacaConfig,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._retry = retry
        self._sleep = sleep
        self._client = TradingClient(
            config.key_id, config.secret_key, paper=config.paper, url_override=config.base_url
        )
        # See the module docstring: our retry layer is the only one.
        self._client._retry = 0
        self._reached = False
        self.health = CallStats()
        log.info("Alpaca broker on %s (%s)", config.base_url, "paper" if config.paper else "LIVE")

    @classmethod
    def from_env(cls, live: bool = False, **kwargs: Any) -> AlpacaBroker:
        """Build from Alpaca's environment variables.

        :param live: the ``--live`` flag (also needs ``ALPACA_GYM_LIVE_CONFIRM=yes``).
        :param kwargs: passed to the constructor.
        """
        return cls(AlpacaConfig.from_env(live=live), **kwargs)

    def __repr__(self) -> str:
        return f"AlpacaBroker({self.config!r})"

    # ------------------------------------------------------------------ protocol
    def account(self) -> Account:
        """Current balances."""
        acct = self._call("get account", self._client.get_account)
        return Account(
            cash=_num(acct.cash),
            equity=_num(acct.equity),
            buying_power=_num(acct.buying_power),
            currency=acct.currency or "USD",
            trading_blocked=bool(acct.trading_blocked or acct.account_blocked),
        )

    def positions(self) -> dict[str, Position]:
        """Open positions by symbol."""
        raw = self._call("get positions", self._client.get_all_positions)
        out: dict[str, Position] = {}
        for p in raw:
            qty = abs(_num(p.qty)) * (-1.0 if p.side.value == "short" else 1.0)
            symbol = _pair(p.symbol) if _is_crypto_class(p.asset_class) else p.symbol
            out[symbol] = Position(
                symbol=symbol,
                qty=qty,
                avg_entry_price=_num(p.avg_entry_price),
                market_value=_num(p.market_value),
                current_price=_num(p.current_price),
            )
        return out

    def clock(self) -> Clock:
        """The market clock now."""
        c = self._call("get clock", self._client.get_clock)
        return Clock(utc(c.timestamp), bool(c.is_open), utc(c.next_open), utc(c.next_close))

    def calendar(self, start: dt.date, end: dt.date) -> list[TradingDay]:
        """Sessions between ``start`` and ``end`` inclusive (alpaca-py gives New York wall times)."""
        days = self._call(
            "get calendar",
            lambda: self._client.get_calendar(GetCalendarRequest(start=start, end=end)),
        )
        return [
            TradingDay(
                date=d.date,
                open=pd.Timestamp(d.open).tz_localize(MARKET_TZ).tz_convert("UTC"),
                close=pd.Timestamp(d.close).tz_localize(MARKET_TZ).tz_convert("UTC"),
            )
            for d in days
        ]

    def submit(self, order: OrderRequest) -> Order:
        """Place ``order`` exactly once, however many attempts it takes.

        :param order: the order; its ``client_order_id`` makes resubmission safe.
        :raises WashTradeRejected: an opposite-side order for the symbol is open (cancel it first).
        :raises OrderRejected: any other 4xx, with Alpaca's reason.
        :raises BrokerUnavailable: transient failures outlasted the retry policy.
        """
        cid = order.client_order_id

        def attempt(n: int) -> Order:
            if n > 0:
                existing = self._find(cid)
                if existing is not None:
                    log.info("order %s reached Alpaca on an earlier attempt (%s)", cid, existing.status.value)
                    return existing
            try:
                return _to_order(self._client.submit_order(_to_request(order)))
            except APIError as err:
                if err.status_code == 422 and DUPLICATE_CLIENT_ID in _reason(err):
                    log.info("order %s already exists at Alpaca; using it", cid)
                    found = self._find(cid)
                    if found is None:
                        raise OrderRejected(_reason(err), 422, cid) from err
                    return found
                raise _translate(err, cid) from err
            except requests.RequestException as err:
                raise self._connection_error(err) from err

        return call_with_retry(attempt, self._retry, f"submit {cid}", self._sleep)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order; an order that already finished (Alpaca's 422) is left alone."""
        try:
            self._call(f"cancel {order_id}", lambda: self._client.cancel_order_by_id(order_id))
        except OrderRejected as err:
            if err.status_code != 422:
                raise
            log.info("order %s is no longer cancelable: %s", order_id, err.reason)

    def get_order(self, order_id: str | None = None, *, client_order_id: str | None = None) -> Order:
        """One order by broker id or client order id.

        :param order_id: Alpaca's order id.
        :param client_order_id: our id.
        :raises OrderNotFound: no such order.
        """
        if (order_id is None) == (client_order_id is None):
            raise ValueError("pass exactly one of order_id and client_order_id")
        if client_order_id is not None:
            found = self._call(f"get order {client_order_id}", lambda: self._find_once(client_order_id))
            if found is None:
                raise OrderNotFound(f"no order with client_order_id {client_order_id!r}")
            return found
        return _to_order(self._call(f"get order {order_id}", lambda: self._client.get_order_by_id(order_id)))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill."""
        request = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, limit=500, symbols=[symbol] if symbol else None
        )
        raw = self._call("list open orders", lambda: self._client.get_orders(request))
        return [_to_order(o) for o in raw]

    # ------------------------------------------------------------------ plumbing
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt(n: int) -> T:
            started = time.perf_counter()
            if n:
                self.health.retries += 1
            try:
                out = fn()
            except APIError as err:
                self._reached = True
                raise _translate(err) from err
            except requests.RequestException as err:
                raise self._connection_error(err) from err
            finally:
                self.health.record(time.perf_counter() - started)
            self._reached = True
            return out

        return call_with_retry(attempt, self._retry, what, self._sleep)

    def _connection_error(self, err: requests.RequestException) -> BrokerError:
        """Transient, unless no connection could ever be opened to the configured URL."""
        if not self._reached and is_refused(err):
            return BrokerConfigError(
                f"cannot reach the trading API at {self.config.base_url}: {err} (check APCA_API_BASE_URL)"
            )
        return TransientError(f"connection error: {err}")

    def _find_once(self, client_order_id: str) -> Order | None:
        try:
            return _to_order(self._client.get_order_by_client_id(client_order_id))
        except APIError as err:
            if err.status_code == 404:
                return None
            raise

    def _find(self, client_order_id: str) -> Order | None:
        """One lookup inside a submit attempt: transient failures propagate to the submit's own retry."""
        try:
            return self._find_once(client_order_id)
        except APIError as err:
            raise _translate(err, client_order_id) from err
        except requests.RequestException as err:
            raise self._connection_error(err) from err


class CallStats:
    """Latency and retries of a broker's API calls (read by the runner into each decision's health)."""

    def __init__(self) -> None:
        self.calls = 0
        self.retries = 0
        self.last_latency = 0.0
        self._total = 0.0

    def record(self, seconds: float) -> None:
        """Count one HTTP attempt that took ``seconds``.

        :param seconds: wall time of the attempt.
        """
        self.calls += 1
        self.last_latency = seconds
        self._total += seconds

    def snapshot(self) -> dict[str, float]:
        """Calls, retries, last and mean latency in milliseconds."""
        mean = self._total / self.calls if self.calls else 0.0
        return {
            "calls": self.calls,
            "retries": self.retries,
            "latency_ms": round(self.last_latency * 1e3, 2),
            "mean_latency_ms": round(mean * 1e3, 2),
        }


def _to_request(order: OrderRequest) -> MarketOrderRequest | LimitOrderRequest:
    fields = dict(
        symbol=order.symbol,
        qty=float(order.qty),
        side=order.side.value,
        time_in_force=order.time_in_force.value,
        client_order_id=order.client_order_id,
    )
    if order.type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=order.limit_price, **fields)
    return MarketOrderRequest(**fields)


def _to_order(o: AlpacaOrder) -> Order:
    order_type = o.order_type or o.type
    return Order(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=_pair(o.symbol or "") if _is_crypto_class(o.asset_class) else o.symbol or "",
        side=Side(o.side.value),
        qty=_num(o.qty),
        filled_qty=_num(o.filled_qty),
        filled_avg_price=None if o.filled_avg_price is None else float(o.filled_avg_price),
        status=OrderStatus(o.status.value),
        type=OrderType(order_type.value) if order_type is not None else OrderType.MARKET,
        time_in_force=TimeInForce(o.time_in_force.value),
        limit_price=None if o.limit_price is None else float(o.limit_price),
        submitted_at=utc(o.submitted_at) if o.submitted_at else None,
    )


def _is_crypto_class(asset_class: object) -> bool:
    return str(getattr(asset_class, "value", asset_class)) == "crypto"


def _pair(symbol: str) -> str:
    """Alpaca lists a crypto position as ``BTCUSD``; the run trades it as ``BTC/USD``."""
    if "/" in symbol:
        return symbol
    for quote in sorted(CRYPTO_QUOTES, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def _num(value: object) -> float:
    return 0.0 if value is None or value == "" else float(value)


def _reason(err: APIError) -> str:
    """Alpaca's message from an error body, or the raw body when it is not JSON."""
    try:
        return str(json.loads(str(err))["message"])
    except (ValueError, KeyError, TypeError):
        return str(err)


def _retry_after(err: APIError) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    response = err.response
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def _translate(err: APIError, client_order_id: str | None = None) -> BrokerError:
    """Map an alpaca-py error to ours: transient (retry) or a reject carrying Alpaca's reason."""
    status = err.status_code or 0
    reason = _reason(err)
    if status == 429:
        return TransientError(f"rate limited: {reason}", retry_after=_retry_after(err))
    if status >= 500 or status == 0:
        return TransientError(f"HTTP {status}: {reason}")
    if status == 404:
        return OrderNotFound(reason)
    if WASH_TRADE in reason.lower():
        return WashTradeRejected(reason, status, client_order_id)
    return OrderRejected(reason, status, client_order_id)
