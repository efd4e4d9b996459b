"""A read-only view of the raw bars up to the current one: what rule bots read from ``info``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.data.market_data import CLOSE, HIGH, LOW, OPEN, VOLUME, MarketData


class History:
    """Bars ``0..t`` of a :class:`MarketData`, inclusive, as read-only ``(t+1, S)`` arrays.

    Views are made on access, so creating one per step costs almost nothing, and the underlying arrays
    are read-only: nothing a policy does can change the data, and nothing after ``t`` is reachable.

    :param data: the full data set.
    :param t: index of the current (last visible) bar.
    """

    __slots__ = ("_values", "_data", "t")

    def __init__(self, data: MarketData, t: int) -> None:
        self._data = data
        self._values = data.values
        self.t = t

    @property
    def open(self) -> np.ndarray:
        return self._values[: self.t + 1, :, OPEN]

    @property
    def high(self) -> np.ndarray:
        return self._values[: self.t + 1, :, HIGH]

    @property
    def low(self) -> np.ndarray:
        return self._values[: self.t + 1, :, LOW]

    @property
    def close(self) -> np.ndarray:
        return self._values[: self.t + 1, :, CLOSE]

    @property
    def volume(self) -> np.ndarray:
        return self._values[: self.t + 1, :, VOLUME]

    @property
    def ohlcv(self) -> np.ndarray:
        """``(t+1, S, 5)`` read-only block."""
        return self._values[: self.t + 1]

    @property
    def index(self) -> pd.DatetimeIndex:
        return self._data.index[: self.t + 1]

    @property
    def periods_per_year(self) -> float:
        """Bars per year of the data's calendar and frequency (a property of the market, not of prices)."""
        return self._data.periods_per_year

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._data.symbols

    @property
    def timestamp(self) -> pd.Timestamp:
        return self._data.index[self.t]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return self.t == other.t and (
            self._data is other._data or np.array_equal(self.ohlcv, other.ohlcv)
        )

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> "History":
        return self

    def __deepcopy__(self, memo: dict) -> "History":
        # Read-only view of read-only data: a copy could differ in nothing. SB3's DummyVecEnv deep-copies
        # every info dict, and copying the data set each step made the env 10x slower there.
        return self

    def __len__(self) -> int:
        return self.t + 1

    def __repr__(self) -> str:
        return f"History(t={self.t}, bars={self.t + 1}, symbols={list(self.symbols)})"
