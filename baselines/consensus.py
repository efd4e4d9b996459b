"""The consensus bot: RSI, MACD and momentum vote; trade only when they agree strongly enough."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from envs.features.indicators import macd, rsi


@register_policy
class Consensus(SignalBot):
    """Three votes in ``{-1, 0, +1}`` per bar: RSI (+1 oversold, -1 overbought, 0 between), MACD
    (sign of the histogram) and momentum (sign of the ``momentum`` -bar return). Agreement is the mean
    vote; the bot takes its direction when ``|agreement| > threshold`` and is flat otherwise. With the
    default 0.6, two votes one way and none against are enough; a split vote never trades.

    :param threshold: agreement needed to trade (the seed's signal threshold).
    :param rsi_period: Wilder RSI period.
    :param oversold: RSI level voting bullish.
    :param overbought: RSI level voting bearish.
    :param momentum: lookback of the momentum return, in bars.
    """

    name: ClassVar[str] = "consensus"
    threshold: float = 0.6
    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    momentum: int = 20

    def validate(self) -> None:
        if not 0 <= self.threshold < 1:
            raise ValueError(f"consensus.threshold must be in [0, 1), got {self.threshold}")
        if not 0 < self.oversold < self.overbought < 100:
            raise ValueError(
                f"consensus needs 0 < oversold < overbought < 100, got {self.oversold}, {self.overbought}"
            )
        if self.momentum < 1 or self.rsi_period < 2:
            raise ValueError(
                f"consensus needs momentum >= 1 and rsi_period >= 2, got {self.momentum}, {self.rsi_period}"
            )
        super().validate()

    def votes(self, bars: Bars) -> np.ndarray:
        """The three votes, shape ``(3, T, S)``: RSI, MACD, momentum (0 while warming up)."""
        close = bars.close
        level = rsi(close, self.rsi_period)
        with np.errstate(invalid="ignore"):
            rsi_vote = np.where(level < self.oversold, 1.0, np.where(level > self.overbought, -1.0, 0.0))
        _, _, hist = macd(close)
        momentum = np.full(close.shape, np.nan)
        momentum[self.momentum :] = close[self.momentum :] / close[: -self.momentum] - 1.0
        return np.nan_to_num(np.stack([rsi_vote, np.sign(hist), np.sign(momentum)]))

    def signal(self, bars: Bars) -> np.ndarray:
        agreement = self.votes(bars).mean(axis=0)
        return np.where(np.abs(agreement) > self.threshold, np.sign(agreement), 0.0)
