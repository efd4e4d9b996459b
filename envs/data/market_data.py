"""Aligned market data: time x symbol x OHLCV arrays with a UTC index.

Every data source returns a :class:`MarketData` and every environment consumes one. Validation lives
here, in one place, and raises :class:`DataValidationError` naming the symbol, the timestamp and the
rule that was broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from envs.data.calendar import BarFrequency, TradingCalendar

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)


class DataValidationError(ValueError):
    """Raised when market data breaks a validation rule.

    :param rule: short name of the rule (``"nan"``, ``"non_positive_price"``, ``"high_below_low"``, ...).
    :param message: human readable explanation.
    :param symbol: the offending symbol, if one applies.
    :param timestamp: the offending timestamp, if one applies.
    """

    def __init__(
        self,
        rule: str,
        message: str,
        symbol: str | None = None,
        timestamp: pd.Timestamp | None = None,
    ) -> None:
        self.rule = rule
        self.message = message
        self.symbol = symbol
        self.timestamp = timestamp
        where = []
        if symbol is not None:
            where.append(f"symbol={symbol}")
        if timestamp is not None:
            where.append(f"timestamp={pd.Timestamp(timestamp).isoformat()}")
        prefix = f"[{rule}]" + (f" {' '.join(where)}" if where else "")
        super().__init__(f"{prefix}: {message}")


def _to_utc_index(index: Iterable) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        return idx.tz_localize("UTC")
    return idx.tz_convert("UTC")


@dataclass(frozen=True)
class MarketData:
    """OHLCV bars for several symbols on one shared, sorted UTC time index.

    ``values`` has shape ``(time, symbol, field)`` with fields ordered as :data:`FIELDS`
    (open, high, low, close, volume). Arrays are read-only: environments hand out views of them.

    :param values: float64 array ``(T, S, 5)``.
    :param index: UTC :class:`pandas.DatetimeIndex` of length ``T``.
    :param symbols: symbol names, length ``S``.
    :param calendars: declared trading calendar of each symbol (``"XNYS"``, ``"24/7"``, ``"24/5"``), or
        ``None`` to infer them (see :attr:`calendar`, :attr:`symbol_calendars`); set with :meth:`with_calendar`.
    :param extra: further per-bar fields beyond OHLCV, name -> float ``(T, S)`` array, e.g. the
        microstructure of each bar aggregated from quotes and trades (:mod:`envs.data.ticks`); NaN allowed
        (a bar without trades has no spread). :meth:`select`, :meth:`slice`, :meth:`iloc` and pickling keep
        them; set with :meth:`with_extra`, read with :meth:`extra_field`.
    """

    values: np.ndarray
    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    calendars: tuple[str, ...] | None = None
    extra: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64, copy=True)
        if values.ndim != 3 or values.shape[2] != len(FIELDS):
            raise DataValidationError(
                "shape", f"values must have shape (time, symbol, 5), got {values.shape}"
            )
        symbols = tuple(str(s) for s in self.symbols)
        index = _to_utc_index(self.index)
        if values.shape[0] != len(index):
            raise DataValidationError(
                "misaligned", f"{values.shape[0]} rows of values but {len(index)} timestamps"
            )
        if values.shape[1] != len(symbols):
            raise DataValidationError(
                "misaligned", f"{values.shape[1]} symbol columns but {len(symbols)} symbol names"
            )
        if len(set(symbols)) != len(symbols):
            raise DataValidationError("duplicate_symbol", f"symbol names repeat: {list(symbols)}")
        calendars = self.calendars
        if calendars is not None:
            from envs.data.calendar import get_calendar

            calendars = tuple(get_calendar(c).name for c in calendars)
            if len(calendars) != len(symbols):
                raise DataValidationError(
                    "misaligned", f"{len(calendars)} calendars for {len(symbols)} symbols"
                )
        object.__setattr__(self, "calendars", calendars)
        extra = {}
        for name, array in (self.extra or {}).items():
            if str(name) in FIELDS:
                raise DataValidationError("duplicate_field", f"extra field {name!r} is an OHLCV field")
            column = np.array(array, dtype=np.float64, copy=True)
            if column.shape != values.shape[:2]:
                raise DataValidationError(
                    "misaligned", f"extra field {name!r} has shape {column.shape}, the bars {values.shape[:2]}"
                )
            column.setflags(write=False)
            extra[str(name)] = column
        object.__setattr__(self, "extra", extra or None)
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "symbols", symbols)

    def __reduce__(self) -> tuple:
        # Rebuild through __init__ so unpickled arrays are read-only again (pickle restores
        # numpy arrays as writeable).
        return (type(self), (self.values, self.index, self.symbols, self.calendars, self.extra))

    # ------------------------------------------------------------------ shape and views
    @property
    def n_bars(self) -> int:
        """Number of time steps."""
        return self.values.shape[0]

    @property
    def n_symbols(self) -> int:
        """Number of symbols."""
        return self.values.shape[1]

    def field(self, name: str) -> np.ndarray:
        """Read-only ``(T, S)`` view of one field (``"open"``, ``"close"``, ...)."""
        try:
            return self.values[:, :, FIELDS.index(name)]
        except ValueError:
            raise KeyError(f"unknown field {name!r}; expected one of {FIELDS}") from None

    def extra_field(self, name: str) -> np.ndarray:
        """Read-only ``(T, S)`` array of one extra per-bar field (see ``extra``).

        :param name: the field, e.g. ``"ofi"``.
        :raises KeyError: naming the fields the bars have.
        """
        if not self.extra or name not in self.extra:
            have = sorted(self.extra or ())
            raise KeyError(f"the bars have no {name!r} field; extra fields: {have or 'none'}")
        return self.extra[name]

    def with_extra(self, fields: Mapping[str, np.ndarray]) -> "MarketData":
        """The same bars with more (or replaced) extra per-bar fields.

        :param fields: name -> ``(T, S)`` array.
        """
        return MarketData(self.values, self.index, self.symbols, self.calendars, {**(self.extra or {}), **fields})

    def _extra_rows(self, rows: slice | np.ndarray, cols: list[int] | None = None) -> dict[str, np.ndarray] | None:
        if not self.extra:
            return None
        return {k: (v[rows] if cols is None else v[rows][:, cols]) for k, v in self.extra.items()}

    @property
    def open(self) -> np.ndarray:
        return self.values[:, :, OPEN]

    @property
    def high(self) -> np.ndarray:
        return self.values[:, :, HIGH]

    @property
    def low(self) -> np.ndarray:
        return self.values[:, :, LOW]

    @property
    def close(self) -> np.ndarray:
        return self.values[:, :, CLOSE]

    @property
    def volume(self) -> np.ndarray:
        return self.values[:, :, VOLUME]

    def select(self, symbols: Sequence[str]) -> "MarketData":
        """A new MarketData with only ``symbols`` (in that order).

        Bars on which none of them trades are left out: a stock picked from a stock and crypto set gets
        its own sessions back, not the weekend bars it was padded with.
        """
        missing = [s for s in symbols if s not in self.symbols]
        if missing:
            raise KeyError(f"symbols not in data: {missing}; available: {list(self.symbols)}")
        cols = [self.symbols.index(s) for s in symbols]
        rows: slice | np.ndarray = slice(None)
        try:
            tradable = self.tradable
        except DataValidationError:
            tradable = None  # bars without a regular clock: nothing to leave out
        if tradable is not None:
            rows = tradable[:, cols].any(axis=1)
        known = self._known_calendars()
        calendars = None if known is None else tuple(known[j] for j in cols)
        return MarketData(self.values[rows][:, cols, :], self.index[rows], tuple(symbols), calendars,
                          self._extra_rows(rows, cols))

    def slice(self, start: object = None, end: object = None) -> "MarketData":
        """Bars with ``start <= timestamp <= end`` (timestamps, strings or ``None``)."""
        mask = np.ones(self.n_bars, dtype=bool)
        if start is not None:
            mask &= self.index >= _to_utc_index([start])[0]
        if end is not None:
            mask &= self.index <= _to_utc_index([end])[0]
        if not mask.any():
            raise DataValidationError("empty", f"no bars between {start} and {end}")
        return MarketData(self.values[mask], self.index[mask], self.symbols, self._known_calendars(),
                          self._extra_rows(mask))

    def iloc(self, rows: slice) -> "MarketData":
        """Bars by integer position."""
        return MarketData(self.values[rows], self.index[rows], self.symbols, self._known_calendars(),
                          self._extra_rows(rows))

    def _known_calendars(self) -> tuple[str, ...] | None:
        """Declared calendars, or those inferred already: a slice keeps its parent's clock (a short slice
        may not show enough weekends to infer it again)."""
        if self.calendars is None and "symbol_calendars" in self.__dict__:
            return tuple(c.name for c in self.__dict__["symbol_calendars"])
        return self.calendars

    # ------------------------------------------------------------------ clock
    def with_calendar(self, calendar: "str | Sequence[str] | Mapping[str, str]") -> "MarketData":
        """The same bars with declared calendars instead of inferred ones.

        :param calendar: one name for every symbol (``"XNYS"``, ``"24/7"``, ``"24/5"``; aliases ``nyse``,
            ``crypto``, ``fx``), one per symbol, or ``{symbol: name}`` (symbols left out keep the inferred one).
        """
        if isinstance(calendar, str):
            names = (calendar,) * self.n_symbols
        elif isinstance(calendar, Mapping):
            unknown = sorted(set(calendar) - set(self.symbols))
            if unknown:
                raise KeyError(f"calendar given for symbols not in data: {unknown}")
            inferred = self.symbol_calendars
            names = tuple(calendar.get(s, inferred[j].name) for j, s in enumerate(self.symbols))
        else:
            names = tuple(calendar)
        return MarketData(self.values, self.index, self.symbols, tuple(names), self.extra)

    @cached_property
    def frequency(self) -> "BarFrequency":
        """The bar frequency, inferred from the timestamps (raises on irregular or mixed spacing)."""
        from envs.data.calendar import infer_frequency

        return infer_frequency(self.index)

    @cached_property
    def symbol_calendars(self) -> "tuple[TradingCalendar, ...]":
        """Each symbol's calendar: declared, else implied by its name (``BTC/USD`` trades 24/7, ``EUR/USD``
        24/5), else the calendar the timestamps follow."""
        from envs.data.calendar import calendar_for_symbol, get_calendar, infer_calendar

        if self.calendars is not None:
            return tuple(get_calendar(c) for c in self.calendars)
        named = [calendar_for_symbol(s) for s in self.symbols]
        if all(c is not None for c in named):
            return tuple(named)  # type: ignore[arg-type]
        known = {c.name for c in named if c is not None}
        if not known or known == {"24/5"} and self.frequency.intraday:
            # Plain tickers (alone, or beside FX pairs whose hours they share) follow the timestamps.
            index_calendar = infer_calendar(self.index, self.frequency)
        else:
            # Plain tickers beside crypto or FX pairs are stocks on their exchange's own sessions.
            index_calendar = get_calendar("XNYS")
        return tuple(c if c is not None else index_calendar for c in named)

    @cached_property
    def calendar(self) -> "TradingCalendar":
        """The calendar of the time index: the one every symbol shares, else the most open of them (a stock
        and a coin together step on the coin's 24/7 clock)."""
        from envs.data.calendar import CALENDARS

        names = {c.name for c in self.symbol_calendars}
        for name in ("24/7", "24/5", "XNYS"):
            if name in names:
                return CALENDARS[name]
        return self.symbol_calendars[0]

    @cached_property
    def periods_per_year(self) -> float:
        """Bars per year of this data's frequency on its calendar (annualises returns and volatility)."""
        return self.calendar.periods_per_year(self.frequency)

    @cached_property
    def tradable(self) -> np.ndarray | None:
        """``(T, S)`` read-only booleans: is symbol ``j``'s market open during bar ``t``; ``None`` when every
        symbol trades on every bar (the usual case: one calendar). Fills never happen on a closed bar."""
        if all(c.name == self.calendar.name for c in self.symbol_calendars):
            return None
        columns = {}
        for c in {c.name: c for c in self.symbol_calendars}.values():
            columns[c.name] = c.is_open(self.index, self.frequency)
        mask = np.stack([columns[c.name] for c in self.symbol_calendars], axis=1)
        mask.setflags(write=False)
        return mask

    def clock_summary(self) -> dict[str, object]:
        """The calendar facts a report shows: calendar(s), bar frequency and bars per year."""
        per_symbol = sorted({c.name for c in self.symbol_calendars})
        return {
            "calendar": self.calendar.name if len(per_symbol) == 1 else " + ".join(per_symbol),
            "bar": self.frequency.label,
            "periods_per_year": self.periods_per_year,
        }

    # ------------------------------------------------------------------ pandas at the edges
    def to_long(self) -> pd.DataFrame:
        """Long frame: columns ``timestamp, symbol, open, high, low, close, volume``."""
        t, s = self.n_bars, self.n_symbols
        frame = pd.DataFrame(self.values.reshape(t * s, len(FIELDS)), columns=list(FIELDS))
        frame.insert(0, "symbol", np.tile(np.array(self.symbols, dtype=object), t))
        frame.insert(0, "timestamp", np.repeat(self.index.values, s))
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def to_wide(self) -> pd.DataFrame:
        """Wide frame indexed by timestamp with ``(field, symbol)`` MultiIndex columns."""
        cols = pd.MultiIndex.from_product([FIELDS, self.symbols], names=["field", "symbol"])
        data = self.values.transpose(0, 2, 1).reshape(self.n_bars, -1)
        return pd.DataFrame(data, index=self.index.rename("timestamp"), columns=cols)

    def to_frame(self, symbol: str) -> pd.DataFrame:
        """One symbol's OHLCV as a frame with capitalised columns (backtesting.py style)."""
        j = self.symbols.index(symbol)
        return pd.DataFrame(
            self.values[:, j, :], index=self.index, columns=[f.capitalize() for f in FIELDS]
        )

    @classmethod
    def from_long(cls, frame: pd.DataFrame, *, fill_gaps: bool = False) -> "MarketData":
        """Build from a long frame with ``timestamp, symbol`` and OHLCV columns (any case).

        :param fill_gaps: forward-fill bars missing for some symbols (volume 0 on filled bars)
            instead of raising. Leading gaps (before a symbol's first bar) are never filled.
        """
        frame = _lower_columns(frame)
        for col in ("timestamp", "symbol", *FIELDS):
            if col not in frame.columns:
                raise DataValidationError("missing_column", f"long frame has no {col!r} column")
        ts = _to_utc_index(pd.to_datetime(frame["timestamp"], utc=True))
        frame = frame.assign(timestamp=ts, symbol=frame["symbol"].astype(str))
        dup = frame.duplicated(["timestamp", "symbol"])
        if dup.any():
            row = frame[dup].iloc[0]
            raise DataValidationError(
                "duplicate_timestamp",
                "the same (timestamp, symbol) appears more than once",
                symbol=str(row["symbol"]),
                timestamp=row["timestamp"],
            )
        wide = frame.pivot(index="timestamp", columns="symbol", values=list(FIELDS))
        symbols = list(dict.fromkeys(str(s) for s in frame["symbol"]))
        return cls._from_pivot(wide, symbols, fill_gaps)

    @classmethod
    def from_wide(cls, frame: pd.DataFrame, *, fill_gaps: bool = False) -> "MarketData":
        """Build from a wide frame with ``(field, symbol)`` MultiIndex columns and a time index."""
        if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 2:
            raise DataValidationError(
                "missing_column", "wide frame needs (field, symbol) MultiIndex columns"
            )
        frame = frame.copy()
        frame.columns = pd.MultiIndex.from_tuples(
            [(str(f).lower(), str(s)) for f, s in frame.columns]
        )
        _check_index(frame.index, None)
        symbols = list(dict.fromkeys(s for _, s in frame.columns))
        return cls._from_pivot(frame, symbols, fill_gaps)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, symbol: str = "ASSET", *, fill_gaps: bool = False
    ) -> "MarketData":
        """Build from one symbol's OHLCV frame (columns in any case; a time index or a
        ``timestamp``/``date`` column; missing volume reads as 0)."""
        frame = _time_indexed(_lower_columns(frame), symbol)
        missing = [f for f in FIELDS if f not in frame.columns]
        if missing == ["volume"]:
            frame = frame.assign(volume=0.0)
        elif missing:
            raise DataValidationError(
                "missing_column", f"frame has no {missing} column(s)", symbol=symbol
            )
        _check_index(frame.index, symbol)
        wide = pd.concat({f: frame[[f]].rename(columns={f: symbol}) for f in FIELDS}, axis=1)
        return cls._from_pivot(wide, [symbol], fill_gaps)

    @classmethod
    def from_frames(
        cls, frames: dict[str, pd.DataFrame], *, fill_gaps: bool = False
    ) -> "MarketData":
        """Build from ``{symbol: OHLCV frame}``; the union of timestamps is the index."""
        parts = []
        for symbol, frame in frames.items():
            lowered = _time_indexed(_lower_columns(frame), symbol)
            _check_index(lowered.index, symbol)
            part = lowered.reset_index(names="timestamp")
            if "volume" not in part.columns:
                part["volume"] = 0.0
            parts.append(part.assign(symbol=symbol))
        return cls.from_long(pd.concat(parts, ignore_index=True), fill_gaps=fill_gaps)

    @classmethod
    def _from_pivot(
        cls, wide: pd.DataFrame, symbols: list[str], fill_gaps: bool
    ) -> "MarketData":
        index = _to_utc_index(wide.index)
        _check_index(index, None)
        values = np.empty((len(index), len(symbols), len(FIELDS)))
        for k, f in enumerate(FIELDS):
            block = wide[f]
            values[:, :, k] = block[symbols].to_numpy(dtype=np.float64, na_value=np.nan)
        _check_aligned(values, index, symbols, fill_gaps)
        if fill_gaps:
            values = forward_fill(values)
        data = cls(values, index, tuple(symbols))
        validate(data)
        return data

    # ------------------------------------------------------------------ misc
    def __copy__(self) -> "MarketData":
        return self

    def __deepcopy__(self, memo: dict) -> "MarketData":
        # Immutable (frozen, read-only arrays), so sharing is a faithful copy and skips re-validation.
        return self

    def __repr__(self) -> str:
        if self.n_bars == 0:
            return f"MarketData(0 bars, symbols={list(self.symbols)})"
        return (
            f"MarketData({self.n_bars} bars x {self.n_symbols} symbols {list(self.symbols)[:5]}"
            f"{'...' if self.n_symbols > 5 else ''}, {self.index[0]} .. {self.index[-1]})"
        )


def _lower_columns(frame: pd.DataFrame) -> pd.DataFrame:
    renamed = frame.rename(columns={c: str(c).lower() for c in frame.columns})
    if "date" in renamed.columns and "timestamp" not in renamed.columns:
        renamed = renamed.rename(columns={"date": "timestamp"})
    if "ticker" in renamed.columns and "symbol" not in renamed.columns:
        renamed = renamed.rename(columns={"ticker": "symbol"})
    return renamed


def _time_indexed(frame: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
    """Use the ``timestamp`` column as the index; refuse a numeric index (not a time)."""
    if "timestamp" in frame.columns:
        return frame.set_index("timestamp")
    if pd.api.types.is_numeric_dtype(frame.index.dtype):
        raise DataValidationError(
            "missing_column", "frame needs a time index or a timestamp/date column", symbol=symbol
        )
    return frame


def _check_aligned(
    values: np.ndarray, index: pd.DatetimeIndex, symbols: list[str], fill_gaps: bool
) -> None:
    """Every symbol needs a bar at every timestamp; ``fill_gaps`` fills all but leading gaps."""
    absent = np.isnan(values).all(axis=2)
    if len(symbols) < 2 or not absent.any():
        return
    if fill_gaps:
        # Only a bar before a symbol's first bar stays unfilled.
        absent &= np.logical_and.accumulate(absent, axis=0)
        hint = "it starts after other symbols; slice the data to a common start"
    else:
        hint = "pass fill_gaps=True to forward-fill gaps"
    absent &= ~absent.all(axis=1, keepdims=True)
    if absent.any():
        t, j = np.argwhere(absent)[0]
        raise DataValidationError(
            "misaligned", f"no bar where other symbols have one ({hint})", symbols[j], index[t]
        )


def _check_index(index: pd.Index, symbol: str | None) -> None:
    idx = _to_utc_index(index)
    if len(idx) == 0:
        raise DataValidationError("empty", "no bars", symbol=symbol)
    if idx.hasnans:
        raise DataValidationError("nan_timestamp", "index has missing timestamps", symbol=symbol)
    dup = idx.duplicated()
    if dup.any():
        raise DataValidationError(
            "duplicate_timestamp", "timestamp appears more than once", symbol, idx[dup][0]
        )
    diffs = np.diff(idx.asi8)
    if (diffs < 0).any():
        k = int(np.argmax(diffs < 0)) + 1
        raise DataValidationError(
            "unsorted_timestamp",
            f"timestamps are not increasing (previous {idx[k - 1].isoformat()})",
            symbol,
            idx[k],
        )


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Forward-fill missing bars per symbol: open/high/low/close become the last close, volume 0.

    Used only when a caller explicitly asks for ``fill_gaps=True``. Leading gaps stay NaN (and fail
    validation) because there is no earlier bar to fill from.
    """
    out = values.copy()
    t, s, _ = out.shape
    missing = np.isnan(out[:, :, CLOSE])
    if not missing.any():
        return out
    idx = np.where(~missing, np.arange(t)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    last_close = out[idx, np.arange(s)[None, :], CLOSE]
    for k in (OPEN, HIGH, LOW, CLOSE):
        out[:, :, k] = np.where(missing, last_close, out[:, :, k])
    out[:, :, VOLUME] = np.where(missing, 0.0, np.nan_to_num(out[:, :, VOLUME], nan=0.0))
    return out


def bar_rules(v: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """The per-bar rules: ``(rule, message, broken)`` with ``broken`` True where a bar breaks the rule.

    Shared by :func:`validate` (which raises on the first broken bar) and the live feed (which skips that
    symbol's bar and trades on).

    :param v: ``(time, symbol, field)`` OHLCV values.
    """
    prices = v[:, :, :VOLUME]
    with np.errstate(invalid="ignore"):
        return [
            ("nan", "value is NaN or infinite (pass fill_gaps=True to forward-fill gaps)",
             ~np.isfinite(v).all(axis=2)),
            ("non_positive_price", "a price is zero or negative", (prices <= 0).any(axis=2)),
            ("high_below_low", "high is below low", v[:, :, HIGH] < v[:, :, LOW]),
            ("open_outside_range", "open is outside [low, high]",
             (v[:, :, OPEN] < v[:, :, LOW]) | (v[:, :, OPEN] > v[:, :, HIGH])),
            ("close_outside_range", "close is outside [low, high]",
             (v[:, :, CLOSE] < v[:, :, LOW]) | (v[:, :, CLOSE] > v[:, :, HIGH])),
            ("negative_volume", "volume is negative", v[:, :, VOLUME] < 0),
        ]


def validate(data: MarketData) -> MarketData:
    """Check every rule and raise :class:`DataValidationError` on the first violation.

    Rules: finite values, positive prices, ``high >= low``, open and close inside ``[low, high]``,
    non-negative volume, sorted and unique timestamps. Returns ``data`` so calls can be chained.
    """
    _check_index(data.index, None)
    v = data.values
    for rule, message, bad in bar_rules(v):
        if bad.any():
            t, s = np.argwhere(bad)[0]
            row = dict(zip(FIELDS, v[t, s].tolist()))
            raise DataValidationError(
                rule, f"{message} (bar {t}: {row})", data.symbols[s], data.index[t]
            )
    return data
