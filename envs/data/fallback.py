"""Remote bar sources (Alpaca, yfinance, a MinIO/S3 store): their shared contract and the fallback loader.

Every source is a :class:`BarSource`: ``fetch(symbols, start, end, timeframe) -> MarketData``. Timeframes
are written the Alpaca way, ``"<n><unit>"`` with unit ``Min``, ``Hour``, ``Day``, ``Week`` or ``Month``
(``"1Day"``, ``"15Min"``). Daily and longer bars are stamped at midnight UTC of their New York session
date whichever source served them, so bars from different sources line up.

:class:`FallbackSource` tries sources in a configured order and logs which one served. Each source also
registers a ``load_data`` scheme (see :func:`envs.data.sources.register_source`) whose argument reads
``SYMBOLS[;key=value...]``, e.g. ``"yfinance:SPY,AAPL;start=2020-01-01;end=2021-01-01"``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from envs.data.market_data import MarketData

log = logging.getLogger(__name__)

UNITS = ("Min", "Hour", "Day", "Week", "Month")
CACHE_ENV = "ALPACA_GYM_CACHE"
MARKET_TZ = "America/New_York"


class DataSourceError(RuntimeError):
    """A source could not serve the request; the message names the source and the symbols."""


@runtime_checkable
class BarSource(Protocol):
    """Anything that serves historical bars."""

    name: str

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        """Bars for ``symbols`` with ``start <= timestamp <= end``."""


def default_cache_dir() -> Path:
    """Where sources cache downloads: ``$ALPACA_GYM_CACHE`` or ``~/.cache/alpaca-gym``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "alpaca-gym")


def parse_timeframe(timeframe: str) -> tuple[int, str]:
    """Split ``"15Min"`` into ``(15, "Min")``.

    :param timeframe: ``<n><unit>`` with a unit from :data:`UNITS`.
    """
    m = re.fullmatch(r"(\d+)(Min|Hour|Day|Week|Month)", timeframe)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"timeframe {timeframe!r} is not <n><unit> with unit in {UNITS}, e.g. '1Day'")
    return int(m.group(1)), m.group(2)


def is_daily_or_longer(timeframe: str) -> bool:
    """True for ``Day``, ``Week`` and ``Month`` bars."""
    return parse_timeframe(timeframe)[1] in ("Day", "Week", "Month")


def session_dates(index: pd.Index) -> pd.DatetimeIndex:
    """Stamp daily bars at midnight UTC of their New York date (naive times are taken as New York dates).

    :param index: bar timestamps as a source delivered them.
    """
    idx = pd.DatetimeIndex(index)
    local = idx.tz_localize(MARKET_TZ) if idx.tz is None else idx.tz_convert(MARKET_TZ)
    return pd.DatetimeIndex(local.tz_localize(None).normalize()).tz_localize("UTC")


def time_range(start: object, end: object) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``start`` and ``end`` as UTC timestamps (naive values are UTC; ``end`` defaults to now).

    :param start: first timestamp or date.
    :param end: last timestamp or date (inclusive), or None for now.
    """

    def as_utc(value: object) -> pd.Timestamp:
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    lo = as_utc(start)
    hi = pd.Timestamp.now(tz="UTC").floor("s") if end is None else as_utc(end)
    if hi < lo:
        raise ValueError(f"end {hi.isoformat()} is before start {lo.isoformat()}")
    return lo, hi


class FallbackSource:
    """Try several sources in order; the first that serves every symbol wins.

    :param sources: sources in order of preference (e.g. the MinIO store, then yfinance, then Alpaca).
    """

    name = "fallback"

    def __init__(self, sources: Sequence[BarSource]) -> None:
        if not sources:
            raise ValueError("FallbackSource needs at least one source")
        self.sources = tuple(sources)
        self.last_served: str | None = None

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        """Bars from the first source that succeeds.

        :param symbols: symbols to load.
        :param start: first timestamp.
        :param end: last timestamp (inclusive).
        :param timeframe: bar size, e.g. ``"1Day"``.
        :raises DataSourceError: every source failed; the message lists each one's error.
        """
        errors = []
        for source in self.sources:
            try:
                data = source.fetch(symbols, start, end, timeframe)
            except Exception as err:  # noqa: BLE001 - any failure means "try the next source"
                log.warning("source %s failed for %s: %s", source.name, list(symbols), err)
                errors.append(f"{source.name}: {err}")
                continue
            self.last_served = source.name
            log.info("%d bars x %d symbols served by %s", data.n_bars, data.n_symbols, source.name)
            return data
        raise DataSourceError(f"no source could serve {list(symbols)}: " + "; ".join(errors))


def spec_loader(
    make: Callable[[str, dict[str, str]], tuple[BarSource, list[str]]],
) -> Callable[..., MarketData]:
    """A ``load_data`` loader for a remote source.

    :param make: builds the source and the symbol list from the spec's main part and its options.
    """

    def loader(argument: str, **kwargs: Any) -> MarketData:
        main, _, rest = argument.partition(";")
        options: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in rest.split(";"))):
            key, sep, value = (s.strip() for s in item.partition("="))
            if not sep:
                raise ValueError(f"option {item!r} in spec {argument!r} is not key=value")
            options[key] = value
        options.update({k: str(v) for k, v in kwargs.items() if v is not None})
        start = options.pop("start", None)
        if start is None:
            raise ValueError(f"spec {argument!r} needs a start (';start=YYYY-MM-DD' or start=...)")
        end = options.pop("end", None)
        timeframe = options.pop("timeframe", "1Day")
        source, symbols = make(main.strip(), options)
        return source.fetch(symbols, start, end, timeframe)

    return loader


def spec_options(
    source: str, options: dict[str, str], known: Sequence[str], flags: Sequence[str] = ()
) -> dict[str, Any]:
    """A remote source's spec options as keyword arguments of its constructor.

    :param source: the scheme, for the error message.
    :param options: the spec's options other than start, end and timeframe (as :func:`spec_loader` passes them).
    :param known: the option names the source takes, flags included.
    :param flags: the boolean options, read as true for ``1``, ``true`` or ``yes`` (any case).
    :raises ValueError: an option the source does not take, naming it and the known ones.
    """
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown {source} option(s) {unknown}; known: start, end, timeframe, {', '.join(known)}"
        )
    return {k: str(v).lower() in ("1", "true", "yes") if k in flags else v for k, v in options.items()}


def split_symbols(text: str) -> list[str]:
    """``"SPY, aapl"`` -> ``["SPY", "AAPL"]``; an empty list is an error.

    :param text: comma-separated symbols.
    """
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise ValueError("no symbols given")
    return symbols
