"""Pairs trading on a cointegrated pair: Engle-Granger test, OLS hedge ratio, z-score entry and exit."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np
from statsmodels.tsa.stattools import coint

from agents.registry import register_policy
from baselines.base import Bars, SignalBot
from baselines.signals import latch


class PairFit(NamedTuple):
    """The relation ``log a = alpha + beta log b + e`` fitted on one formation window."""

    alpha: float
    beta: float
    resid_std: float
    pvalue: float
    """Engle-Granger p-value (``statsmodels.tsa.stattools.coint``): small means cointegrated."""


@register_policy
class PairsTrading(SignalBot):
    """Trade the spread ``e = log a - alpha - beta log b`` of two symbols.

    Every ``refit`` bars the hedge ratio ``beta`` (OLS) and the spread's standard deviation are
    re-estimated on the last ``formation`` bars, and the pair is tested for cointegration. With
    ``z = e / std``: long the spread (long ``a``, short ``beta`` of ``b``) from ``z < -entry_z`` until
    ``z >= -exit_z``; short it from ``z > entry_z`` until ``z <= exit_z``. A pair whose p-value is above
    ``max_pvalue`` at the latest fit is not traded, and open positions in it are closed. The legs are
    ``1 / (1 + |beta|)`` and ``-beta / (1 + |beta|)`` of the sized weight, so gross exposure is ``fraction``.

    :param symbol_a: first leg (default: the first symbol of the data).
    :param symbol_b: second leg (default: the second symbol).
    :param formation: bars in each estimation window.
    :param refit: bars between re-estimations.
    :param entry_z: spread z-score that opens a position.
    :param exit_z: spread z-score that closes it.
    :param max_pvalue: largest Engle-Granger p-value at which the pair is traded.
    """

    name: ClassVar[str] = "pairs_trading"
    allow_short: bool = True
    fraction: float = 0.5
    symbol_a: str | None = None
    symbol_b: str | None = None
    formation: int = 250
    refit: int = 20
    entry_z: float = 2.0
    exit_z: float = 0.5
    max_pvalue: float = 0.05

    def validate(self) -> None:
        if not self.allow_short:
            raise ValueError("pairs_trading needs allow_short=True: one leg is always short")
        if self.formation < 20 or self.refit < 1:
            raise ValueError(
                f"pairs_trading needs formation >= 20 and refit >= 1, got {self.formation}, {self.refit}"
            )
        if not 0 <= self.exit_z < self.entry_z:
            raise ValueError(f"pairs_trading needs 0 <= exit_z < entry_z, got {self.exit_z}, {self.entry_z}")
        super().validate()
        self._fits: dict[tuple[int, int], PairFit] = {}

    def reset(self, seed: int | None = None) -> None:
        """Forget cached fits (they are keyed by window contents, so this only frees memory)."""
        self._fits.clear()

    def legs(self, symbols: tuple[str, ...]) -> tuple[int, int]:
        """Column indices of the two legs in ``symbols``."""
        a = self.symbol_a or (symbols[0] if symbols else None)
        b = self.symbol_b or (symbols[1] if len(symbols) > 1 else None)
        for param, sym in (("symbol_a", a), ("symbol_b", b)):
            if sym not in symbols:
                raise ValueError(
                    f"pairs_trading.{param}={sym!r} is not in the data's symbols {list(symbols)}"
                )
        if a == b:
            raise ValueError(f"pairs_trading needs two different symbols, got {a!r} twice")
        return symbols.index(a), symbols.index(b)

    def fit(self, log_a: np.ndarray, log_b: np.ndarray) -> PairFit:
        """Hedge regression and Engle-Granger test on one window of log prices.

        :param log_a: log closes of the first leg.
        :param log_b: log closes of the second leg.
        """
        beta, alpha = np.polyfit(log_b, log_a, 1)
        resid = log_a - alpha - beta * log_b
        _, pvalue, _ = coint(log_a, log_b, trend="c")
        return PairFit(float(alpha), float(beta), float(resid.std(ddof=2)), float(pvalue))

    def _cached_fit(self, r: int, log_a: np.ndarray, log_b: np.ndarray) -> PairFit:
        # Stepping act() re-reads the whole history each bar; refitting every window again each time
        # would cost O(T^2) cointegration tests. Keying on the window's bytes keeps it correct for any data.
        key = (r, hash(log_a.tobytes() + log_b.tobytes()))
        if key not in self._fits:
            self._fits[key] = self.fit(log_a, log_b)
        return self._fits[key]

    def signal(self, bars: Bars) -> np.ndarray:
        ia, ib = self.legs(tuple(bars.symbols))
        log_a, log_b = np.log(bars.close[:, ia]), np.log(bars.close[:, ib])
        n = len(log_a)
        out = np.zeros(bars.close.shape)
        first = self.formation - 1
        if n <= first:
            return out
        refits = np.arange(first, n, self.refit)
        fits = np.array([
            self._cached_fit(int(r), log_a[r - first : r + 1], log_b[r - first : r + 1]) for r in refits
        ])
        k = (np.arange(first, n) - first) // self.refit
        alpha, beta, std, pvalue = fits[k].T
        z = (log_a[first:] - alpha - beta * log_b[first:]) / np.where(std > 0, std, np.nan)
        tradable = pvalue <= self.max_pvalue
        with np.errstate(invalid="ignore"):
            long = latch((z < -self.entry_z) & tradable, (z >= -self.exit_z) | ~tradable)
            short = latch((z > self.entry_z) & tradable, (z <= self.exit_z) | ~tradable)
        side = long.astype(np.float64) - short
        out[first:, ia] = side / (1.0 + np.abs(beta))
        out[first:, ib] = -side * beta / (1.0 + np.abs(beta))
        return out
