"""Moving-average crossover: long when the fast SMA crosses above the slow one, short (or flat) when it
crosses below, holding in between; the classic backtesting.py ``SmaCross`` example."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from baselines.signals import crossed_above, hold_last
from envs.features.indicators import rolling_mean


@register_policy
class SmaCrossover(SignalBot):
    """Trade the crossings of two simple moving averages of the close.

    Nothing happens before the first crossing, as in backtesting.py (a fast average that starts above
    the slow one is not a crossing).

    :param fast: fast SMA window.
    :param slow: slow SMA window.
    """

    name: ClassVar[str] = "sma_crossover"
    fast: int = 10
    slow: int = 20

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"sma_crossover needs 1 <= fast < slow, got fast={self.fast} slow={self.slow}")
        super().validate()

    def signal(self, bars: Bars) -> np.ndarray:
        fast = rolling_mean(bars.close, self.fast)
        slow = rolling_mean(bars.close, self.slow)
        events = np.where(crossed_above(fast, slow), 1.0, np.nan)
        events = np.where(crossed_above(slow, fast), -1.0, events)
        return hold_last(events)
