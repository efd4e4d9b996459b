"""Trading calendars and bar frequencies: the clock of every market.

A :class:`~envs.data.market_data.MarketData` knows when its markets trade and how far apart its bars are.
Annualisation (bars per year), durations, walk-forward windows and episode lengths given as time spans
all come from here, never from a 252-bars-a-year default applied to hourly or minute data.

Calendars (see :data:`CALENDARS`):

- ``"XNYS"``: US equities, the New York Stock Exchange's regular sessions with holidays and early closes,
  from the maintained ``exchange_calendars`` package. 252 sessions a year, 390 minutes a session
  (the convention of empyrical and most tools: a year of daily bars is 252, of minute bars 252 * 390).
- ``"24/7"``: crypto, always open. 365.25 days a year, so bars per year match the calendar span exactly
  (a gap-free year of hourly bars is 8,766 bars).
- ``"24/5"``: FX, open from Sunday 17:00 to Friday 17:00 New York time. 365.25 * 5 / 7 = 260.9 days a
  year of 24 hours each.

Bars are stamped at their start (Alpaca's convention); a daily bar is stamped with its session's date.
Weekly and monthly bars are 52 and 12 a year on every calendar.

The frequency is the most common spacing of the bars; every spacing must be a whole multiple of it
(gaps are allowed: nights, weekends, holidays, quiet minutes), and intraday data must not hold a stretch
of one bar a day (daily and intraday bars mixed). Otherwise :func:`infer_frequency` raises
:class:`~envs.data.market_data.DataValidationError` (rule ``irregular_frequency`` or ``mixed_frequency``)
unless the caller resamples with :func:`resample`.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from envs.data.market_data import MarketData

YEAR_DAYS = 365.25
"""Calendar days in a year (the average over leap years)."""
NEW_YORK = "America/New_York"
_NS_PER_DAY = 86_400 * 10**9

CRYPTO_QUOTES = frozenset({"USD", "USDT", "USDC", "EUR", "BTC", "ETH"})
"""Quote currencies of the crypto pairs recognised by name (``BTC/USD``, ``ETH/BTC``, ``BTC-USD``)."""
FIAT = frozenset({
    "USD", "EUR", "JPY", "GBP", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "DKK", "HKD", "SGD", "MXN",
    "ZAR", "TRY", "CNH", "PLN", "HUF", "CZK",
})
"""ISO codes of fiat currencies: a pair of two of them is FX (24/5), not crypto."""


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 nanoseconds (pandas may hold them in seconds or microseconds)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


# ------------------------------------------------------------------------------------ frequency
@dataclass(frozen=True)
class BarFrequency:
    """How far apart the bars are.

    :param step: nominal bar length (``1min``, ``1h``, ``1D``, ``7D``; 30 days for monthly bars).
    :param label: short name: ``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``, ``"1W"``, ``"1M"``.
    """

    step: pd.Timedelta
    label: str

    @property
    def intraday(self) -> bool:
        """True for bars shorter than a day."""
        return self.step < pd.Timedelta(days=1)

    @property
    def daily(self) -> bool:
        """True for one bar a day."""
        return self.step == pd.Timedelta(days=1)

    @property
    def weekly_or_longer(self) -> bool:
        """True for weekly and monthly bars (their number per year is the same on every calendar)."""
        return self.step >= pd.Timedelta(days=7)

    def __str__(self) -> str:
        return self.label


def _label(step: pd.Timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("D", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(step)


def frequency_from_label(label: str) -> BarFrequency:
    """A :class:`BarFrequency` from a label such as ``"1h"``, ``"15min"``, ``"1D"``, ``"1W"``, ``"1M"``.

    :param label: the bar length.
    """
    text = label.strip()
    if text in ("1M", "M", "ME", "1ME", "MS"):
        return BarFrequency(pd.Timedelta(days=30), "1M")
    if text in ("1W", "W"):
        return BarFrequency(pd.Timedelta(days=7), "1W")
    try:
        step = pd.Timedelta(text)
    except ValueError:
        raise ValueError(f"bar frequency {label!r} is not a length such as '1min', '1h', '1D', '1W', '1M'") from None
    if step <= pd.Timedelta(0):
        raise ValueError(f"bar frequency must be positive, got {label!r}")
    return BarFrequency(step, "1W" if step == pd.Timedelta(days=7) else _label(step))


def infer_frequency(index: pd.DatetimeIndex, symbol: str | None = None) -> BarFrequency:
    """The bar frequency of a sorted UTC index, or a clear error if it has none.

    :param index: bar timestamps (sorted, unique).
    :param symbol: named in the error, if the index is one symbol's.
    :raises DataValidationError: ``irregular_frequency`` when a spacing is not a whole multiple of the
        most common one, ``mixed_frequency`` when intraday bars and daily bars are mixed.
    """
    from envs.data.market_data import DataValidationError

    if len(index) < 2:
        raise DataValidationError(
            "irregular_frequency", "one bar has no frequency; declare it (MarketData.with_calendar)", symbol
        )
    ns = _ns(index)
    diffs = np.diff(ns)
    days = diffs / _NS_PER_DAY
    if np.all((days >= 27.5) & (days <= 31.5)):
        return BarFrequency(pd.Timedelta(days=30), "1M")
    values, counts = np.unique(diffs, return_counts=True)
    step = int(values[np.argmax(counts)])
    if step == 7 * _NS_PER_DAY and counts.max() >= 0.5 * len(diffs):
        base = BarFrequency(pd.Timedelta(days=7), "1W")
    else:
        base = BarFrequency(pd.Timedelta(step, unit="ns"), _label(pd.Timedelta(step, unit="ns")))
    # Daily bars of a calendar with daylight saving are 23 or 25 hours apart twice a year when stamped at
    # local midnight; a whole number of days is what matters.
    unit = _NS_PER_DAY if base.daily else step
    remainder = diffs % unit
    if base.daily:
        remainder = np.minimum(remainder, unit - remainder)
        off = remainder > 2 * 3_600 * 10**9
    else:
        off = remainder != 0
    if off.any():
        k = int(np.argmax(off)) + 1
        raise DataValidationError(
            "irregular_frequency",
            f"bars are {base.label} apart but this one is {pd.Timedelta(int(diffs[k - 1]), unit='ns')} "
            f"after the previous bar, not a whole number of bars; resample to one frequency "
            f"(--resample RULE, or envs.data.calendar.resample(data, RULE))",
            symbol,
            index[k],
        )
    if base.intraday:
        per_day = pd.Series(1, index=index.normalize()).groupby(level=0).size()
        # The busy days show what a full day holds; a stretch of one-bar days next to them is daily data.
        typical = float(per_day.quantile(0.9))
        lonely = per_day == 1
        if typical >= 3 and lonely.mean() > 0.2:
            raise DataValidationError(
                "mixed_frequency",
                f"{int(lonely.sum())} of {len(per_day)} days have a single bar while a typical day has "
                f"{typical:.0f} {base.label} bars: daily and intraday bars are mixed; resample to one "
                f"frequency (--resample RULE, or envs.data.calendar.resample(data, RULE))",
                symbol,
                per_day.index[int(np.argmax(lonely.to_numpy()))],
            )
    return base


# ------------------------------------------------------------------------------------ calendars
@dataclass(frozen=True)
class TradingCalendar:
    """When a market trades, and how many bars of a given frequency make a year.

    :param name: ``"XNYS"``, ``"24/7"`` or ``"24/5"``.
    :param description: one line for reports.
    :param days_per_year: trading days (sessions) in a year.
    :param session_minutes: minutes of trading in a regular session.
    """

    name: str
    description: str
    days_per_year: float
    session_minutes: float

    def periods_per_year(self, frequency: BarFrequency) -> float:
        """Bars of ``frequency`` in one year of this calendar.

        :param frequency: the bar frequency.
        """
        if frequency.label == "1M":
            return 12.0
        if frequency.label == "1W":
            return 52.0
        if not frequency.intraday:
            return self.days_per_year / (frequency.step / pd.Timedelta(days=1))
        minutes = frequency.step / pd.Timedelta(minutes=1)
        if self.session_minutes >= 24 * 60:
            return self.days_per_year * self.session_minutes / minutes
        # A session that is not a whole number of bars still has a bar for its last part (6.5 hours = 7
        # hourly bars, whether stamped 9:30, 10:30, ... or 9:00, 10:00, ...).
        return self.days_per_year * math.ceil(self.session_minutes / minutes - 1e-9)

    def bars_in(self, span: str | pd.Timedelta, frequency: BarFrequency) -> int:
        """Number of bars in a span of trading time such as ``"1Y"``, ``"6M"``, ``"2W"``, ``"30D"``, ``"12h"``.

        Years and months are fractions of :meth:`periods_per_year`; weeks and days are trading days of this
        calendar (a week is 5 sessions on XNYS, 7 days on 24/7); hours and minutes count trading time.

        :param span: the length, a number followed by a unit (Y, M, W, D, h, min), or a Timedelta.
        :param frequency: the bar frequency.
        """
        per_year = self.periods_per_year(frequency)
        if isinstance(span, pd.Timedelta):
            amount, unit = span / pd.Timedelta(days=1), "D"
        else:
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(Y|y|M|W|w|D|d|h|H|min|m)\s*", str(span))
            if match is None:
                raise ValueError(
                    f"span {span!r} is not a number of bars nor a length such as '1Y', '6M', '2W', "
                    "'30D', '12h' or '90min'"
                )
            amount, unit = float(match.group(1)), match.group(2)
        per_day = per_year / self.days_per_year
        if unit in ("Y", "y"):
            bars = amount * per_year
        elif unit == "M":
            bars = amount * per_year / 12.0
        elif unit in ("W", "w"):
            bars = amount * per_day * self.days_per_year / (YEAR_DAYS / 7.0)
        elif unit in ("D", "d"):
            bars = amount * per_day
        else:
            minutes = amount * (60.0 if unit in ("h", "H") else 1.0)
            bars = minutes / (frequency.step / pd.Timedelta(minutes=1))
        return max(int(round(bars)), 1)

    def is_open(self, index: pd.DatetimeIndex, frequency: BarFrequency) -> np.ndarray:
        """Whether the market trades during each bar (a bar starting at ``t`` lasting ``frequency``).

        :param index: UTC bar timestamps.
        :param frequency: the bar frequency.
        """
        if self.name == "24/7" or frequency.weekly_or_longer:
            return np.ones(len(index), dtype=bool)
        if self.name == "24/5":
            if not frequency.intraday:
                return np.asarray(index.normalize().day_of_week < 5)
            # Trades from Sunday 17:00 to Friday 17:00 in New York: shift by 7 hours so the FX week is
            # Monday 00:00 to Saturday 00:00 of the shifted clock.
            shifted = index.tz_convert(NEW_YORK).tz_localize(None) + pd.Timedelta(hours=7)
            ends = shifted + (frequency.step - pd.Timedelta(1, unit="ns"))
            # A bar that starts before the Sunday open but runs past it trades too.
            return np.asarray((shifted.day_of_week < 5) | ((shifted.day_of_week == 6) & (ends.day_of_week == 0)))
        return _exchange_is_open(self.name, index, frequency)

    def __str__(self) -> str:
        return self.name


CALENDARS: dict[str, TradingCalendar] = {
    "XNYS": TradingCalendar("XNYS", "US equities (NYSE sessions, holidays, early closes)", 252.0, 390.0),
    "24/7": TradingCalendar("24/7", "crypto (always open)", YEAR_DAYS, 24 * 60.0),
    "24/5": TradingCalendar("24/5", "FX (Sunday 17:00 to Friday 17:00 New York)", YEAR_DAYS * 5 / 7, 24 * 60.0),
}
"""The known calendars by name."""
ALIASES = {"NYSE": "XNYS", "US": "XNYS", "EQUITY": "XNYS", "CRYPTO": "24/7", "FX": "24/5", "FOREX": "24/5"}


def get_calendar(name: str | TradingCalendar) -> TradingCalendar:
    """A calendar by name (``"XNYS"``, ``"24/7"``, ``"24/5"``; aliases ``nyse``, ``crypto``, ``fx``).

    :param name: the name, or a calendar (returned as is).
    """
    if isinstance(name, TradingCalendar):
        return name
    key = ALIASES.get(str(name).strip().upper(), str(name).strip().upper())
    if key not in CALENDARS:
        raise ValueError(f"unknown calendar {name!r}; known: {sorted(CALENDARS)} (aliases {sorted(ALIASES)})")
    return CALENDARS[key]


@functools.lru_cache(maxsize=8)
def _exchange_sessions(name: str, first_year: int, last_year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session dates (UTC midnight, ns), opens and closes (UTC ns) of an exchange between two years."""
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars trips pandas' deprecation warnings in its own code; nothing to act on here.
        warnings.simplefilter("ignore")
        calendar = exchange_calendars.get_calendar(
            name, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )
        schedule = calendar.schedule
    dates = _ns(pd.DatetimeIndex(schedule.index).tz_localize(None))
    opens = _ns(pd.DatetimeIndex(schedule["open"]))
    closes = _ns(pd.DatetimeIndex(schedule["close"]))
    return dates, opens, closes


def _sessions_for(name: str, index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first = max(int(index[0].year) - 1, 1990)
    last = max(int(index[-1].year) + 1, pd.Timestamp.now(tz="UTC").year + 1)
    # Decade-aligned bounds so the few data sets of one run share a cached schedule.
    return _exchange_sessions(name, first - first % 10, last + (9 - last % 10))


def _exchange_is_open(name: str, index: pd.DatetimeIndex, frequency: BarFrequency) -> np.ndarray:
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    dates, opens, closes = _sessions_for(name, index)
    if not frequency.intraday:
        # A daily bar is stamped with its session's date (midnight UTC, or midnight New York = 04:00/05:00 UTC).
        days = _ns(index.tz_convert("UTC").normalize().tz_localize(None))
        return np.isin(days, dates)
    start = _ns(index)
    # The first session closing after the bar starts is the only one the bar can overlap.
    k = np.searchsorted(closes, start, side="right")
    inside = k < len(closes)
    k = np.minimum(k, len(closes) - 1)
    return inside & (opens[k] < start + frequency.step.value)


# ------------------------------------------------------------------------------------ inference
def calendar_for_symbol(symbol: str) -> TradingCalendar | None:
    """The calendar a symbol's name implies: ``BTC/USD``, ``ETH-USD`` -> 24/7; ``EUR/USD`` -> 24/5; None
    for a plain ticker (its calendar comes from the data's timestamps).

    :param symbol: the symbol.
    """
    parts = re.split(r"[/\-_]", symbol.upper())
    if len(parts) == 1 and len(symbol) in (6, 7) and symbol.upper()[-3:] in ("USD",) and symbol.isalpha():
        base, quote = symbol.upper()[:-3], "USD"
        if base in FIAT:
            return CALENDARS["24/5"]
        return None
    if len(parts) != 2 or not all(parts):
        return None
    base, quote = parts
    if base in FIAT and quote in FIAT:
        return CALENDARS["24/5"]
    if quote in CRYPTO_QUOTES and base.isalnum() and len(base) <= 10:
        return CALENDARS["24/7"]
    return None


def infer_calendar(index: pd.DatetimeIndex, frequency: BarFrequency) -> TradingCalendar:
    """Which calendar a set of timestamps follows.

    Bars on most Saturdays mean 24/7 (crypto). Otherwise intraday bars during New York nights mean 24/5
    (FX), and daily bars on NYSE holidays mean 24/5 too (a weekday calendar); the rest is XNYS.

    :param index: UTC bar timestamps.
    :param frequency: their frequency.
    """
    if frequency.weekly_or_longer or len(index) < 2:
        return CALENDARS["24/7"] if frequency.weekly_or_longer and _weekend_share(index) > 0.1 else CALENDARS["XNYS"]
    span_days = (index[-1] - index[0]) / pd.Timedelta(days=1)
    saturdays = max(span_days / 7.0, 1.0)
    utc = index.tz_convert("UTC")
    days_with_saturday_bars = len(np.unique(utc.normalize()[utc.day_of_week == 5]))
    if span_days >= 7 and days_with_saturday_bars >= 0.5 * math.floor(saturdays):
        return CALENDARS["24/7"]
    if span_days < 7 and days_with_saturday_bars > 0:
        return CALENDARS["24/7"]
    if frequency.intraday:
        local_hour = index.tz_convert(NEW_YORK).hour
        night = (local_hour >= 20) | (local_hour < 4)
        return CALENDARS["24/5"] if night.mean() > 0.05 else CALENDARS["XNYS"]
    open_on_nyse = _exchange_is_open("XNYS", index, frequency)
    return CALENDARS["XNYS"] if (~open_on_nyse).mean() < 0.002 else CALENDARS["24/5"]


def _weekend_share(index: pd.DatetimeIndex) -> float:
    return float(np.mean(index.tz_convert("UTC").day_of_week >= 5)) if len(index) else 0.0


# ------------------------------------------------------------------------------------ resampling
def resample(data: "MarketData", rule: str) -> "MarketData":
    """Bars aggregated to a coarser frequency: first open, highest high, lowest low, last close, summed volume.

    Empty periods (nights, weekends) are dropped, not filled. The declared calendars carry over, and so do
    the extra per-bar fields, each combined by its rule in
    :data:`envs.data.ticks.BAR_FIELD_AGGREGATION` (the ``vix`` field by its last value; a field without a
    rule is an error rather than dropped).

    :param data: the bars.
    :param rule: a pandas offset such as ``"1h"``, ``"1D"``, ``"1W"``.
    """
    from envs.data.market_data import FIELDS, MarketData

    wide = data.to_wide()
    how = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    try:
        grouped = wide.resample(rule, label="left", closed="left")
    except ValueError as err:
        raise ValueError(f"cannot resample to {rule!r}: {err}") from None
    parts = {f: getattr(grouped, how[f])()[f] for f in FIELDS}
    # A period where no symbol traded is dropped; one where only some did is filled for the others from
    # their last close (volume 0), as aligning symbols of different calendars always is.
    keep = parts["close"].notna().any(axis=1).to_numpy()
    frame = pd.concat({f: parts[f][keep] for f in FIELDS}, axis=1)
    frame.columns = pd.MultiIndex.from_tuples([(f, s) for f, s in frame.columns])
    out = MarketData.from_wide(frame, fill_gaps=True)
    if data.extra:
        out = out.with_extra({name: _resample_extra(data, name, rule)[keep] for name in data.extra})
    return out.with_calendar(data.calendars) if data.calendars is not None else out


def _resample_extra(data: "MarketData", name: str, rule: str) -> np.ndarray:
    """One extra per-bar field on the coarser bars of :func:`resample` (before empty periods are dropped)."""
    from envs.data.market_data import DataValidationError
    from envs.data.ticks import BAR_FIELD_AGGREGATION

    rules = {**BAR_FIELD_AGGREGATION, "vix": "last"}  # the VIX is a level: a coarse bar's is its last close
    how = rules.get(name)
    if how is None:
        raise DataValidationError(
            "extra_field", f"cannot resample the extra field {name!r}: no aggregation rule (known: {sorted(rules)})"
        )

    def grouped(values: np.ndarray) -> "pd.core.resample.Resampler":
        return pd.DataFrame(values, index=data.index).resample(rule, label="left", closed="left")

    x = data.extra_field(name)
    if how == "trade_mean":
        # A mean over the coarse bar's trades: each fine bar's mean weighted by its trades.
        weight = np.where(np.isfinite(x), data.extra_field("n_trades"), 0.0)
        total = grouped(weight).sum().to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out = grouped(np.where(weight > 0, x * weight, 0.0)).sum().to_numpy() / total
        return np.where(total > 0, out, np.nan)
    if how == "sum":
        return grouped(x).sum().to_numpy(dtype=float)
    return getattr(grouped(x), how)().to_numpy(dtype=float)


def combine(*parts: "MarketData") -> "MarketData":
    """Several markets on one clock: the union of their timestamps from the latest first bar (where every
    symbol has a price) to the last bar of any, each symbol keeping its own calendar.

    A symbol has no bar while its market is closed (a stock on a Saturday beside crypto); those bars are
    filled from its last close with volume 0 so every array stays aligned, and
    :attr:`~envs.data.market_data.MarketData.tradable` marks them closed, so no env, replay or runner
    ever fills on them.

    :param parts: the markets; symbol names must not repeat.
    :raises DataValidationError: when a part's bars fall between another part's bars (the union would
        have no single frequency): resample the parts to one frequency first.
    """
    from envs.data.market_data import DataValidationError, MarketData

    if not parts:
        raise ValueError("combine needs at least one MarketData")
    symbols = [s for p in parts for s in p.symbols]
    if len(set(symbols)) != len(symbols):
        raise DataValidationError("duplicate_symbol", f"symbol names repeat across parts: {symbols}")
    first = max(p.index[0] for p in parts)
    last = max(p.index[-1] for p in parts)
    # Declared calendars stay; the others follow the symbols' names in the combined set (a plain ticker
    # beside a crypto pair is a stock on NYSE sessions).
    declared = [p.calendars[j] if p.calendars is not None else None for p in parts for j in range(p.n_symbols)]
    frames = []
    for p in parts:
        frame = p.to_long()
        frames.append(frame[(frame["timestamp"] >= first) & (frame["timestamp"] <= last)])
    long = pd.concat(frames, ignore_index=True)
    # Leading bars of a symbol that opens later (a stock whose first session starts after midnight) are
    # dropped so the combined set starts where every symbol has a price.
    starts = long.groupby("symbol")["timestamp"].min()
    long = long[long["timestamp"] >= starts.max()]
    combined = MarketData.from_long(long, fill_gaps=True)
    inferred = dict(zip(combined.symbols, combined.symbol_calendars))
    calendars = tuple(declared[symbols.index(s)] or inferred[s].name for s in combined.symbols)
    return MarketData(combined.values, combined.index, combined.symbols, calendars)
