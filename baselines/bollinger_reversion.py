"""Bollinger mean reversion: buy a close below the lower band, sell one above the upper band, exit at
the middle band."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from baselines.signals import latch
from envs.features.indicators import bollinger


@register_policy
class BollingerReversion(SignalBot):
    """Long from %B < 0 (close under the lower band) until %B >= 0.5 (back at the SMA); short from
    %B > 1 until %B <= 0.5.

    :param window: SMA and standard deviation window.
    :param width: band half-width in standard deviations.
    """

    name: ClassVar[str] = "bollinger_reversion"
    window: int = 20
    width: float = 2.0

    def validate(self) -> None:
        if self.window < 2 or not self.width > 0:
            raise ValueError(
                f"bollinger_reversion needs window >= 2 and width > 0, got {self.window}, {self.width}"
            )
        super().validate()

    def signal(self, bars: Bars) -> np.ndarray:
        pct_b, _ = bollinger(bars.close, self.window, self.width)
        with np.errstate(invalid="ignore"):
            long = latch(pct_b < 0.0, pct_b >= 0.5)
            short = latch(pct_b > 1.0, pct_b <= 0.5)
        return long.astype(np.float64) - short
