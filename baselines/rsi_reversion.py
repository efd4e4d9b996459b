"""RSI mean reversion: buy oversold, sell overbought, get out when RSI is back at its middle."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from baselines.signals import latch
from envs.features.indicators import rsi


@register_policy
class RsiReversion(SignalBot):
    """Long from RSI < ``oversold`` until RSI >= ``exit_level``; short from RSI > ``overbought`` until
    RSI <= ``exit_level``. The two cannot overlap, since RSI cannot be both below and above the exit.

    :param period: Wilder RSI period.
    :param oversold: RSI level that opens a long.
    :param overbought: RSI level that opens a short.
    :param exit_level: RSI level that closes either.
    """

    name: ClassVar[str] = "rsi_reversion"
    period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    exit_level: float = 50.0

    def validate(self) -> None:
        if not 0 < self.oversold <= self.exit_level <= self.overbought < 100:
            raise ValueError(
                "rsi_reversion needs 0 < oversold <= exit_level <= overbought < 100, got "
                f"{self.oversold}, {self.exit_level}, {self.overbought}"
            )
        if self.period < 2:
            raise ValueError(f"rsi_reversion.period must be at least 2, got {self.period}")
        super().validate()

    def signal(self, bars: Bars) -> np.ndarray:
        level = rsi(bars.close, self.period)
        with np.errstate(invalid="ignore"):
            long = latch(level < self.oversold, level >= self.exit_level)
            short = latch(level > self.overbought, level <= self.exit_level)
        return long.astype(np.float64) - short
