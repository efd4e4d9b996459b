"""Buy and hold: equal weight in every symbol from the first bar, never trades again."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import register_policy
from baselines.base import Bars, SignalBot


@register_policy
class BuyAndHold(SignalBot):
    """Hold ``fraction`` of equity split equally over all symbols (the benchmark for alpha and beta).

    :param fraction: total weight invested (1.0 = fully invested).
    """

    name: ClassVar[str] = "buy_and_hold"
    fraction: float = 1.0

    def signal(self, bars: Bars) -> np.ndarray:
        close = bars.close
        return np.full(close.shape, 1.0 / close.shape[1])
