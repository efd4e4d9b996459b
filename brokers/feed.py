"""Bars for the live runner: data-API failures classified, bad bars skipped per symbol.

:class:`AlpacaBars` reads Alpaca's historical bars endpoint through alpaca-py (raw JSON rows, so one bad
bar cannot fail the whole reply) and hands the runner :class:`LiveBars`:

- **failures by class**: 5xx, 429 and dropped connections are retried with the broker's backoff
  (:mod:`brokers.retry`), then raise :class:`DataUnavailable`, which the broker loop treats as an outage
  (it keeps retrying while the market is open); other 4xx raise :class:`DataRejected` and a refused
  connection before the first reply raises :class:`brokers.base.BrokerConfigError`, both fatal at once;
- **bad bars**: a bar with a missing, null, NaN or inconsistent value (the rules of
  :func:`envs.data.market_data.bar_rules`), stamped after the broker's clock, or out of order is skipped
  with a warning naming the symbol, the timestamp and the rule. A reply with bare ``NaN`` values (not
  JSON) is read leniently so those bars are named too; one that cannot be read at all is fetched again
  one symbol at a time so only the broken symbol loses its bars. The symbol keeps its last good bar
  (forward-filled, volume 0) and :attr:`LiveBars.stale` tells the runner not to trade it on that bar.

Good bars are kept between fetches, so a symbol whose reply broke still has its history.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import requests
from alpaca.common.exceptions import APIError

from brokers.base import BrokerConfigError, BrokerError, BrokerUnavailable, is_crypto
from brokers.credentials import AlpacaConfig
from brokers.retry import RetryPolicy, TransientError, call_with_retry, is_refused
from envs.data.fallback import is_daily_or_longer, parse_timeframe, session_dates
from envs.data.market_data import FIELDS, DataValidationError, MarketData, bar_rules, forward_fill

log = logging.getLogger(__name__)
ALPACA_DATA_URL = "https://data.alpaca.markets"
_RAW_FIELDS = ("o", "h", "l", "c", "v")


class DataUnavailable(BrokerUnavailable):
    """The data API kept failing with transient errors until the retries ran out."""


class DataRejected(BrokerError):
    """The data API refused the request (a 4xx other than 429); retrying would not help."""


@dataclass(frozen=True)
class BadBar:
    """A bar that was skipped.

    :param symbol: its symbol.
    :param timestamp: its timestamp as sent (None when the reply could not be read at all).
    :param rule: the rule it broke (``nan``, ``future_timestamp``, ``unsorted_timestamp``, ...).
    :param detail: what was wrong, for the log.
    """

    symbol: str
    timestamp: pd.Timestamp | None
    rule: str
    detail: str

    def __str__(self) -> str:
        when = "-" if self.timestamp is None else self.timestamp.isoformat()
        return f"{self.symbol} bar {when} skipped [{self.rule}]: {self.detail}"


@dataclass(frozen=True)
class LiveBars:
    """Aligned bars with the symbols' gaps forward-filled.

    :param data: the bars (leading timestamps where some symbol has no bar yet are dropped).
    :param missing: ``(timestamp, symbol)`` pairs whose bar was missing or bad (forward-filled in ``data``).
    :param bad: the bars skipped by this fetch.
    """

    data: MarketData
    missing: frozenset[tuple[pd.Timestamp, str]]
    bad: tuple[BadBar, ...]

    def stale(self, at: pd.Timestamp) -> frozenset[str]:
        """Symbols without a good bar at ``at``.

        :param at: a timestamp of :attr:`data`.
        """
        return frozenset(s for t, s in self.missing if t == at)


class AlpacaBars:
    """Alpaca's stock bars for the live runner.

    :param config: credentials and data endpoint (``APCA_API_DATA_URL``; Alpaca's when unset).
    :param feed: ``"iex"`` or ``"sip"``.
    :param adjustment: ``"raw"``, ``"split"``, ``"dividend"`` or ``"all"``.
    :param retry: backoff for transient failures (each fetch; the broker loop retries beyond it).
    :param sleep: the wait function (tests pass a simulated clock).
    """

    def __init__(
        self,
        config: AlpacaConfig,
        feed: str = "iex",
        adjustment: str = "all",
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient

        self.url = config.data_url or ALPACA_DATA_URL
        self.feed = feed
        self.adjustment = adjustment
        self._retry = retry
        self._sleep = sleep
        self._client = StockHistoricalDataClient(
            config.key_id, config.secret_key, url_override=config.data_url, raw_data=True
        )
        self._client._retry = 0  # our backoff is the only one (see brokers.alpaca)
        self._crypto = CryptoHistoricalDataClient(
            config.key_id, config.secret_key, url_override=config.data_url, raw_data=True
        )
        self._crypto._retry = 0
        self._reached = False
        self._kept: dict[str, dict[pd.Timestamp, np.ndarray]] = {}
        self._warned: set[tuple[str, str, str]] = set()

    def __repr__(self) -> str:
        return f"AlpacaBars(url={self.url!r}, feed={self.feed!r})"

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str, now: object
    ) -> LiveBars:
        """Bars of ``symbols`` between ``start`` and ``end``, bad bars skipped.

        :param symbols: the traded symbols, in the runner's order.
        :param start: first timestamp.
        :param end: last timestamp.
        :param timeframe: bar size (``1Day``, ``15Min``, ...).
        :param now: the broker's clock: a bar stamped after it is refused.
        :raises DataUnavailable: transient failures outlasted the retries.
        :raises DataRejected: the API refused the request.
        """
        lo, hi, now = pd.Timestamp(start), pd.Timestamp(end), pd.Timestamp(now)
        raw = self._get(list(symbols), lo, hi, timeframe)
        bad_reply: list[BadBar] = []
        if raw is None:  # not JSON: ask per symbol so only the broken one loses this fetch
            raw = {}
            for s in symbols:
                one = self._get([s], lo, hi, timeframe)
                if one is None:
                    bad_reply.append(BadBar(s, None, "malformed_response", "the data API's reply is not JSON"))
                else:
                    raw.update(one)
        bad: list[BadBar] = bad_reply
        daily = is_daily_or_longer(timeframe)
        for s in symbols:
            # A crypto day is a UTC day, not a New York session.
            self._keep(s, raw.get(s) or [], now, daily and not is_crypto(s), bad)
        fresh = tuple(b for b in bad if self._warn(b))
        return self._assemble(list(symbols), lo, fresh)

    # ------------------------------------------------------------------ internals
    def _get(
        self, symbols: list[str], lo: pd.Timestamp, hi: pd.Timestamp, timeframe: str
    ) -> dict[str, list[dict[str, Any]]] | None:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        amount, unit = parse_timeframe(timeframe)
        frame = TimeFrame(amount, TimeFrameUnit(unit))
        stocks = [s for s in symbols if not is_crypto(s)]
        coins = [s for s in symbols if is_crypto(s)]
        request = StockBarsRequest(
            symbol_or_symbols=stocks,
            timeframe=frame,
            start=lo.to_pydatetime(),
            end=(hi + pd.Timedelta(days=1) if is_daily_or_longer(timeframe) else hi).to_pydatetime(),
            adjustment=Adjustment(self.adjustment),
            feed=DataFeed(self.feed),
        ) if stocks else None
        # Crypto bars come from their own endpoint, around the clock.
        crypto = CryptoBarsRequest(
            symbol_or_symbols=coins, timeframe=frame, start=lo.to_pydatetime(), end=hi.to_pydatetime()
        ) if coins else None

        def both() -> dict[str, list[dict[str, Any]]]:
            out = dict(self._client.get_stock_bars(request)) if request is not None else {}
            if crypto is not None:
                out.update(self._crypto.get_crypto_bars(crypto))
            return out

        def attempt(_: int) -> dict[str, list[dict[str, Any]]] | None:
            try:
                out = both()
            except requests.JSONDecodeError as err:
                self._reached = True
                return _lenient(err.doc)
            except APIError as err:
                status = err.status_code or 0
                if status == 429 or status >= 500 or status == 0:
                    raise TransientError(f"data API HTTP {status}") from err
                raise DataRejected(f"data API refused the bars request (HTTP {status}): {_message(err)}") from err
            except requests.RequestException as err:
                if not self._reached and is_refused(err):
                    raise BrokerConfigError(
                        f"cannot reach the data API at {self.url}: {err} (check APCA_API_DATA_URL)"
                    ) from err
                raise TransientError(f"data API connection error: {err}") from err
            self._reached = True
            return out

        try:
            return call_with_retry(attempt, self._retry, "fetch bars", self._sleep)
        except BrokerUnavailable as err:
            raise DataUnavailable(str(err)) from err

    def _keep(
        self, symbol: str, rows: list[dict[str, Any]], now: pd.Timestamp, daily: bool, bad: list[BadBar]
    ) -> None:
        """Check ``rows`` in the order they came and keep the good ones."""
        kept = self._kept.setdefault(symbol, {})
        last: pd.Timestamp | None = None
        good_ts, good_vals = [], []
        for row in rows:
            try:
                ts = pd.Timestamp(row["t"])
                ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            except (KeyError, TypeError, ValueError):
                bad.append(BadBar(symbol, None, "bad_timestamp", f"unreadable timestamp in {row!r}"))
                continue
            values = np.array([_number(row.get(k)) for k in _RAW_FIELDS], dtype=np.float64)
            absent = [FIELDS[i] for i, k in enumerate(_RAW_FIELDS) if row.get(k) is None]
            if absent:
                bad.append(BadBar(symbol, ts, "missing_value", f"{', '.join(absent)} missing or null"))
                continue
            if ts > now:
                bad.append(BadBar(symbol, ts, "future_timestamp", f"stamped after the clock ({now.isoformat()})"))
                continue
            if last is not None and ts <= last:
                rule = "duplicate_timestamp" if ts == last else "unsorted_timestamp"
                bad.append(BadBar(symbol, ts, rule, f"comes after {last.isoformat()}"))
                continue
            broken = [(r, m) for r, m, mask in bar_rules(values[None, None, :]) if mask[0, 0]]
            if broken:
                rule, message = broken[0]
                bad.append(BadBar(symbol, ts, rule, f"{message}: {dict(zip(FIELDS, values.tolist()))}"))
                continue
            last = ts
            good_ts.append(ts)
            good_vals.append(values)
        if good_ts:
            stamps = pd.DatetimeIndex(good_ts)
            if daily:
                stamps = session_dates(stamps)
            kept.update(zip(stamps, good_vals))

    def _assemble(self, symbols: list[str], lo: pd.Timestamp, bad: tuple[BadBar, ...]) -> LiveBars:
        empty = [s for s in symbols if not self._kept.get(s)]
        if empty:
            raise DataUnavailable(f"no good bar yet for {empty}")
        stamps = set().union(*(self._kept[s] for s in symbols))
        index = pd.DatetimeIndex(sorted(t for t in stamps if t >= lo.floor("D")))
        values = np.full((len(index), len(symbols), len(FIELDS)), np.nan)
        pos = {t: i for i, t in enumerate(index)}
        for j, s in enumerate(symbols):
            for t, v in self._kept[s].items():
                values[pos[t], j] = v
        have = ~np.isnan(values[:, :, 0])
        # Start where every symbol has had a bar: a gap before that has nothing to be filled from.
        first = int(np.argmax(np.maximum.accumulate(have, axis=0).all(axis=1)))
        index, values, have = index[first:], values[first:], have[first:]
        data = MarketData(forward_fill(values), index, tuple(symbols))
        # A stock has no bar while its market is closed (a Saturday beside crypto): not missing, closed.
        try:
            tradable = data.tradable if len(index) > 1 else None
        except DataValidationError:  # too few or uneven bars yet to tell the calendars apart
            tradable = None
        if tradable is not None:
            have |= ~tradable
        missing = frozenset((index[t], symbols[j]) for t, j in np.argwhere(~have))
        return LiveBars(data, missing, bad)

    def _warn(self, bad: BadBar) -> bool:
        """Log a skipped bar once (every poll re-reads the history); True the first time."""
        key = (bad.symbol, str(bad.timestamp), bad.rule)
        if key in self._warned:
            return False
        self._warned.add(key)
        log.warning("%s", bad)
        return True


def _lenient(text: str) -> dict[str, list[dict[str, Any]]] | None:
    """The bars of a reply that strict JSON refused (bare ``NaN`` or ``Infinity`` values, which Python's
    parser reads), so the bad bars can be named and skipped one by one; None when it is not even that or
    has more pages (those would be lost)."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("next_page_token") or not isinstance(body.get("bars"), dict):
        return None
    return body["bars"]


def _message(err: APIError) -> str:
    """Alpaca's ``message`` from an error body, or the body as it came."""
    try:
        return str(json.loads(str(err))["message"])
    except (ValueError, KeyError, TypeError):
        return str(err)


def _number(value: object) -> float:
    """A bar field as a float; missing, null or unreadable values are NaN (the ``nan`` rule catches them)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
