"""Breakout (Donchian channel): go long on a close above the highest high of the last ``entry`` bars,
exit on a close below the lowest low of the last ``exit`` bars; shorts mirror it."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from baselines.signals import latch
from envs.features.indicators import lag, rolling_max, rolling_min


@register_policy
class Breakout(SignalBot):
    """Turtle-style channel breakout; the channels exclude the current bar.

    :param entry: bars in the breakout channel.
    :param exit: bars in the (shorter) exit channel.
    """

    name: ClassVar[str] = "breakout"
    entry: int = 20
    exit: int = 10

    def validate(self) -> None:
        if not 1 <= self.exit <= self.entry:
            raise ValueError(f"breakout needs 1 <= exit <= entry, got exit={self.exit} entry={self.entry}")
        super().validate()

    def signal(self, bars: Bars) -> np.ndarray:
        close = bars.close
        upper = lag(rolling_max(bars.high, self.entry), 1)
        lower = lag(rolling_min(bars.low, self.entry), 1)
        exit_low = lag(rolling_min(bars.low, self.exit), 1)
        exit_high = lag(rolling_max(bars.high, self.exit), 1)
        with np.errstate(invalid="ignore"):
            long = latch(close > upper, close < exit_low)
            short = latch(close < lower, close > exit_high)
        return long.astype(np.float64) - short
