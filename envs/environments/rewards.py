"""Reward functions, written with numpy so one implementation serves one env or a batch of them.

``log_return`` (default): ``log(equity_t / equity_{t-1})`` after every cost, so an episode's rewards sum to
``log(final / initial equity)`` and a losing account can never show a positive total.
``differential_sharpe``: Moody & Saffell's differential Sharpe ratio of the log returns (exponential
moving moments with rate ``eta``), a dense reward whose sum tracks the Sharpe ratio.
``drawdown_penalty``: the log return minus ``penalty`` times the increase of the drawdown from the peak.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REWARDS = ("log_return", "differential_sharpe", "drawdown_penalty")


class Reward:
    """Stateful reward over a batch of ``n`` accounts.

    :param kind: one of :data:`REWARDS`.
    :param eta: adaptation rate of the differential Sharpe moments.
    :param penalty: weight of the drawdown increase for ``drawdown_penalty``.
    """

    def __init__(self, kind: str = "log_return", eta: float = 0.01, penalty: float = 1.0) -> None:
        if kind not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {kind!r}")
        if not 0 < eta < 1:
            raise ValueError(f"reward eta must be in (0, 1), got {eta!r}")
        if penalty < 0:
            raise ValueError(f"reward penalty must be >= 0, got {penalty!r}")
        self.kind = kind
        self.eta = eta
        self.penalty = penalty
        self._a: Any = 0.0
        self._b: Any = 0.0
        self._peak: Any = 0.0
        self._drawdown: Any = 0.0

    def reset(self, equity: np.ndarray | float, mask: np.ndarray | None = None) -> None:
        """Start new episodes at ``equity`` (for the accounts in ``mask``, or all)."""
        equity = np.asarray(equity, dtype=np.float64)
        if mask is None or np.ndim(self._peak) == 0:
            self._a = np.zeros_like(equity)
            self._b = np.zeros_like(equity)
            self._peak = equity.copy()
            self._drawdown = np.zeros_like(equity)
        else:
            self._a[mask] = 0.0
            self._b[mask] = 0.0
            self._peak[mask] = equity[mask]
            self._drawdown[mask] = 0.0

    def __call__(self, prev_equity: np.ndarray, equity: np.ndarray) -> np.ndarray:
        """Reward for moving from ``prev_equity`` to ``equity`` (arrays of the batch shape)."""
        r = np.log(equity / prev_equity)
        if self.kind == "log_return":
            return r
        if self.kind == "differential_sharpe":
            a, b = self._a, self._b
            da, db = r - a, r * r - b
            var = b - a * a
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.where(var > 1e-12, (b * da - 0.5 * a * db) / np.power(np.maximum(var, 1e-12), 1.5), 0.0)
            self._a = a + self.eta * da
            self._b = b + self.eta * db
            return d
        self._peak = np.maximum(self._peak, equity)
        drawdown = 1.0 - equity / self._peak
        increase = np.maximum(drawdown - self._drawdown, 0.0)
        self._drawdown = drawdown
        return r - self.penalty * increase
