"""MACD momentum: long while the MACD line is above its signal line, short (or flat) while below."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from envs.features.indicators import macd


@register_policy
class MacdMomentum(SignalBot):
    """Signal = sign of the MACD histogram (0 while the EMAs warm up).

    :param fast: fast EMA span.
    :param slow: slow EMA span.
    :param signal_span: EMA span of the signal line.
    """

    name: ClassVar[str] = "macd_momentum"
    fast: int = 12
    slow: int = 26
    signal_span: int = 9

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow or self.signal_span < 1:
            raise ValueError(
                f"macd_momentum needs 1 <= fast < slow and signal_span >= 1, got {self.fast}, "
                f"{self.slow}, {self.signal_span}"
            )
        super().validate()

    def signal(self, bars: Bars) -> np.ndarray:
        _, _, hist = macd(bars.close, self.fast, self.slow, self.signal_span)
        return np.nan_to_num(np.sign(hist))
