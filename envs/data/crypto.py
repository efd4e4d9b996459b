"""A synthetic crypto market: 24/7 bars with fat tails, volatility clustering and quieter weekends.

Each bar's log return is ``sigma_t * weekend_t * e_t`` plus a drift, where

- ``e_t`` is a multivariate Student-t shock with ``tail_dof`` degrees of freedom, scaled to unit variance
  and correlated across coins by ``correlation`` (one chi-square draw per bar is shared, so crashes hit
  every coin at once, as they do);
- ``sigma_t**2`` follows a GARCH(1, 1): ``omega + garch_alpha * r_{t-1}**2 + garch_beta * sigma_{t-1}**2``
  with ``omega`` set so the long-run volatility is ``annual_vol`` (volatility clustering);
- ``weekend_t`` is ``weekend_vol`` on Saturdays and Sundays (UTC) and 1 otherwise, and volume drops to
  ``weekend_volume`` of its weekday level: without institutional flow, weekends trade thinner and calmer.

Bars never pause: the market trades every hour of every day (calendar ``24/7``), each bar opening at the
previous close. Symbols are pairs such as ``BTC/USD``; quantities are fractional.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from envs.data.calendar import YEAR_DAYS, frequency_from_label
from envs.data.market_data import MarketData, validate


@dataclass(frozen=True)
class CryptoConfig:
    """Parameters of :func:`generate_crypto_market`.

    :param n_bars: number of bars.
    :param symbols: pair names (``BASE/QUOTE``).
    :param initial_prices: first open of each symbol.
    :param start: first bar's timestamp (UTC).
    :param freq: bar length (``"1h"``, ``"15min"``, ``"1D"``).
    :param seed: random seed.
    :param annual_vol: long-run annualised volatility (0.7 = 70%, bitcoin's order of magnitude).
    :param annual_drift: annualised log drift.
    :param tail_dof: Student-t degrees of freedom of the shocks (lower is fatter; above 2).
    :param garch_alpha: GARCH reaction to the last squared return.
    :param garch_beta: GARCH persistence of variance (``alpha + beta < 1``).
    :param weekend_vol: volatility on weekend bars relative to weekdays.
    :param weekend_volume: volume on weekend bars relative to weekdays.
    :param correlation: correlation of the shocks between any two coins.
    :param volume: mean weekday volume per bar, in coins of the first symbol (scaled by price for the rest).
    """

    n_bars: int = 24 * 365
    symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    initial_prices: tuple[float, ...] = (30_000.0, 2_000.0)
    start: str = "2021-01-01"
    freq: str = "1h"
    seed: int = 0
    annual_vol: float = 0.7
    annual_drift: float = 0.0
    tail_dof: float = 4.0
    garch_alpha: float = 0.08
    garch_beta: float = 0.9
    weekend_vol: float = 0.7
    weekend_volume: float = 0.6
    correlation: float = 0.7
    volume: float = 500.0

    def __post_init__(self) -> None:
        if self.n_bars < 2:
            raise ValueError(f"CryptoConfig.n_bars must be at least 2, got {self.n_bars}")
        if len(self.initial_prices) != len(self.symbols):
            raise ValueError(
                f"CryptoConfig.initial_prices has {len(self.initial_prices)} values for "
                f"{len(self.symbols)} symbols"
            )
        if self.tail_dof <= 2:
            raise ValueError(f"CryptoConfig.tail_dof must be above 2 (finite variance), got {self.tail_dof}")
        if not (self.garch_alpha >= 0 and self.garch_beta >= 0 and self.garch_alpha + self.garch_beta < 1):
            raise ValueError(
                "CryptoConfig.garch_alpha + garch_beta must be below 1 with both >= 0, got "
                f"{self.garch_alpha} + {self.garch_beta}"
            )
        if not -1 / max(len(self.symbols) - 1, 1) < self.correlation < 1 and len(self.symbols) > 1:
            raise ValueError(f"CryptoConfig.correlation must be in (-1/(n-1), 1), got {self.correlation}")
        for name in ("annual_vol", "weekend_vol", "weekend_volume", "volume"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CryptoConfig.{name} must be positive, got {getattr(self, name)}")


def generate_crypto_market(config: CryptoConfig | None = None, **overrides: object) -> MarketData:
    """Generate a 24/7 crypto market (see the module docstring for the model).

    :param config: the parameters; defaults to :class:`CryptoConfig()`.
    :param overrides: fields of :class:`CryptoConfig` to replace.
    :return: validated :class:`MarketData` with calendar ``24/7`` for every symbol.
    """
    known = {f.name for f in fields(CryptoConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown CryptoConfig option(s) {unknown}; known: {sorted(known)}")
    cfg = replace(config or CryptoConfig(), **overrides)  # type: ignore[arg-type]
    frequency = frequency_from_label(cfg.freq)
    index = pd.date_range(pd.Timestamp(cfg.start, tz="UTC"), periods=cfg.n_bars, freq=frequency.step)
    per_year = YEAR_DAYS * pd.Timedelta(days=1) / frequency.step
    rng = np.random.default_rng(cfg.seed)
    n, s = cfg.n_bars, len(cfg.symbols)

    corr = np.full((s, s), cfg.correlation)
    np.fill_diagonal(corr, 1.0)
    normal = rng.standard_normal((n, s)) @ np.linalg.cholesky(corr).T
    # One chi-square per bar for all coins: a multivariate t, whose tails are joint.
    mix = np.sqrt((cfg.tail_dof - 2.0) / rng.chisquare(cfg.tail_dof, size=(n, 1)))
    shocks = normal * mix

    is_weekend = np.asarray(index.day_of_week >= 5)[:, None]
    weekend = np.where(is_weekend, cfg.weekend_vol, 1.0)
    # Long-run variance per bar, corrected for the calmer weekends so the year's volatility is annual_vol.
    base_var = cfg.annual_vol**2 / per_year / float(np.mean(weekend**2))
    omega = base_var * (1.0 - cfg.garch_alpha - cfg.garch_beta)
    variance = np.empty((n, s))
    returns = np.empty((n, s))
    h = np.full(s, base_var)
    drift = cfg.annual_drift / per_year
    for t in range(n):
        variance[t] = h
        eps = np.sqrt(h) * shocks[t]
        returns[t] = drift + weekend[t] * eps
        h = omega + cfg.garch_alpha * eps**2 + cfg.garch_beta * h

    log_close = np.log(np.asarray(cfg.initial_prices, dtype=np.float64)) + np.cumsum(returns, axis=0)
    close = np.exp(log_close)
    open_ = np.exp(np.vstack([np.log(cfg.initial_prices)[None, :], log_close[:-1]]))
    # Intrabar range: half-normal excursions beyond the open/close, of the bar's own volatility.
    bar_sd = weekend * np.sqrt(variance)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal((n, s))) * 0.5 * bar_sd)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal((n, s))) * 0.5 * bar_sd)
    activity = np.abs(returns) / np.sqrt(base_var)
    coins = cfg.volume * cfg.initial_prices[0] / np.asarray(cfg.initial_prices)
    volume = (coins * np.where(is_weekend, cfg.weekend_volume, 1.0)
              * (0.5 + 0.5 * activity) * rng.lognormal(0.0, 0.3, (n, s)))

    values = np.stack([open_, high, low, close, volume], axis=2)  # in FIELDS order
    return validate(MarketData(values, index, tuple(cfg.symbols), ("24/7",) * s))
