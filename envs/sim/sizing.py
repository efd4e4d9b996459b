"""Position sizing: turn a policy's signal (direction and conviction in ``[-1, 1]``) into target weights.

Every sizer is a causal, vectorised function of the signal and the closes up to each bar, so it serves a
bot's ``act`` (last row of the history) and ``act_batch`` (all rows) alike, and the envs, which size an RL
agent's actions bar by bar with the same rule (:class:`SizingState`). The weight at bar ``t`` depends on
the last :attr:`window` rows only.

- :class:`FixedFraction`: ``weight = signal * fraction`` (the seed's position size, 0.1).
- :class:`VolatilityTarget`: scales each position so its own annualised volatility, measured over a
  trailing window, would be ``target_vol``; capped at ``max_weight``.
- :class:`CappedKelly`: a fraction of the Kelly bet ``mu / sigma^2`` of the returns the signal itself
  earned over a trailing window (yesterday's signal times today's return), capped at ``max_weight``.
  No edge measured, no position.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from envs.features.indicators import log_returns, rolling_mean, rolling_std


class Sizer(Protocol):
    """Maps a signal ``(T, S)`` and closes ``(T, S)`` to target weights ``(T, S)``."""

    @property
    def window(self) -> int:
        """Rows (bars) the weight at a bar depends on, that bar included."""

    def __call__(self, signal: np.ndarray, close: np.ndarray) -> np.ndarray:
        """Target weights for every bar, using rows ``<= t`` only for row ``t``."""


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class FixedFraction:
    """Each position is ``signal * fraction`` of equity.

    :param fraction: weight of a full-conviction position.
    """

    fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_positive("fraction", self.fraction)

    @property
    def window(self) -> int:
        """One row: the weight is the signal's."""
        return 1

    def __call__(self, signal: np.ndarray, close: np.ndarray) -> np.ndarray:
        return signal * self.fraction


@dataclass(frozen=True)
class VolatilityTarget:
    """Weight ``signal * min(max_weight, target_vol / realised_vol)``; flat until volatility is known.

    :param target_vol: annualised volatility each position should contribute.
    :param lookback: bars of log returns in the volatility estimate.
    :param max_weight: cap on the absolute weight.
    :param periods_per_year: bars per year, to annualise; ``None`` until the data's calendar sets it
        (:class:`baselines.base.SignalBot` passes ``MarketData.periods_per_year``: 252 for daily NYSE bars,
        8,766 for hourly crypto).
    """

    target_vol: float = 0.15
    lookback: int = 20
    max_weight: float = 1.0
    periods_per_year: float | None = None

    def __post_init__(self) -> None:
        _check_positive("target_vol", self.target_vol)
        _check_positive("max_weight", self.max_weight)
        if self.lookback < 2:
            raise ValueError(f"lookback must be at least 2, got {self.lookback}")

    @property
    def window(self) -> int:
        """``lookback`` log returns need ``lookback + 1`` closes."""
        return self.lookback + 1

    def __call__(self, signal: np.ndarray, close: np.ndarray) -> np.ndarray:
        if self.periods_per_year is None:
            raise ValueError(
                "VolatilityTarget.periods_per_year is not set: give the data's (MarketData.periods_per_year)"
            )
        vol = rolling_std(log_returns(close), self.lookback) * np.sqrt(self.periods_per_year)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.minimum(self.target_vol / vol, self.max_weight)
        return signal * np.nan_to_num(scale, nan=0.0, posinf=self.max_weight)


@dataclass(frozen=True)
class CappedKelly:
    """Weight ``signal * clip(scale * mu / sigma^2, 0, max_weight)`` from the signal's own track record.

    :param scale: fraction of full Kelly (0.5 is "half Kelly", which halves the growth-rate variance).
    :param lookback: bars of the signal's past returns used for ``mu`` and ``sigma``.
    :param max_weight: cap on the absolute weight.
    """

    scale: float = 0.5
    lookback: int = 60
    max_weight: float = 0.25

    def __post_init__(self) -> None:
        _check_positive("scale", self.scale)
        _check_positive("max_weight", self.max_weight)
        if self.lookback < 2:
            raise ValueError(f"lookback must be at least 2, got {self.lookback}")

    @property
    def window(self) -> int:
        """``lookback`` earned returns need the signal and close of ``lookback + 1`` bars."""
        return self.lookback + 1

    def __call__(self, signal: np.ndarray, close: np.ndarray) -> np.ndarray:
        # The return the unit-sized signal earned at bar t was decided at bar t-1.
        earned = np.sign(signal[:-1]) * (close[1:] / close[:-1] - 1.0)
        earned = np.vstack([np.full((1, close.shape[1]), np.nan), earned])
        mu = rolling_mean(earned, self.lookback)
        var = rolling_std(earned, self.lookback) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kelly = self.scale * mu / var
        return signal * np.clip(np.nan_to_num(kelly, nan=0.0, posinf=0.0), 0.0, self.max_weight)


SIZERS = {"fixed": FixedFraction, "volatility": VolatilityTarget, "kelly": CappedKelly}


def on_calendar(sizer: Sizer, periods_per_year: float) -> Sizer:
    """``sizer`` with the data's bars per year where it annualises and was left unset (a volatility target
    on hourly crypto must not annualise with 252).

    :param sizer: any sizer.
    :param periods_per_year: the data's (``MarketData.periods_per_year``).
    """
    if isinstance(sizer, VolatilityTarget) and sizer.periods_per_year is None:
        return dataclasses.replace(sizer, periods_per_year=float(periods_per_year))
    return sizer


def make_sizer(method: str, fraction: float, **options: float) -> Sizer:
    """Build a sizer by name; ``fraction`` is the fixed weight, or the weight cap of the others.

    :param method: ``"fixed"``, ``"volatility"`` or ``"kelly"``.
    :param fraction: fixed fraction, or ``max_weight`` for the volatility and Kelly sizers.
    :param options: other fields of the chosen sizer (``target_vol``, ``lookback``, ``scale``).
    """
    if method not in SIZERS:
        raise ValueError(f"unknown sizing {method!r}; choose one of {sorted(SIZERS)}")
    if method == "fixed":
        return FixedFraction(fraction)
    return SIZERS[method](max_weight=fraction, **options)


def sizer_of(sizing: str, fraction: float, target_vol: float, sizing_lookback: int) -> Sizer:
    """The sizer named by the sizing parameters every policy declares (rule bots, predictors, and the
    experiment spec's ``sizing`` section, which an RL agent's env sizes with).

    :param sizing: ``"fixed"``, ``"volatility"`` or ``"kelly"``.
    :param fraction: the fixed weight, or the weight cap of the other sizers.
    :param target_vol: annualised volatility per position (volatility sizing).
    :param sizing_lookback: bars of the volatility and Kelly estimates.
    """
    options: dict[str, float] = {"target_vol": target_vol} if sizing == "volatility" else {}
    if sizing != "fixed":
        options["lookback"] = sizing_lookback
    return make_sizer(sizing, fraction, **options)


# Sizers whose weight is the signal times a factor of the closes alone: the factor is computed once per data.
_SIGNAL_FREE_SCALE = (FixedFraction, VolatilityTarget)


class SizingState:
    """A sizing rule applied bar by bar, as an env sizes an RL agent's actions: the agent's action is the
    signal, and the target weight is what the sizer gives for the episode's signals so far.

    The weight at bar ``t`` is row ``t`` of ``sizer(signals, close)`` over the env's bars, where
    ``signals`` holds the signals recorded at earlier bars of the episode (zero, i.e. flat, before its
    start) and the new one at ``t``; clipped to ``[-1, 1]`` like a rule bot's. Sizers whose factor depends
    on the closes only (fixed, volatility) compute it once for the whole data; the others (Kelly, whose
    factor is the signal's own track record) run on the last :attr:`Sizer.window` rows.

    :param sizer: the sizing rule (already on the data's calendar, see :func:`on_calendar`).
    :param close: ``(T, S)`` closes of the env's data.
    """

    def __init__(self, sizer: Sizer, close: np.ndarray) -> None:
        self.sizer = sizer
        self.signals = np.zeros_like(close, dtype=np.float64)
        self.load(close)

    def load(self, close: np.ndarray) -> None:
        """Take the env's (possibly extended) closes; the signals recorded so far are kept.

        :param close: ``(T, S)`` closes.
        """
        kept = self.signals
        self.close = np.asarray(close, dtype=np.float64)
        self.signals = np.zeros_like(self.close)
        n = min(len(kept), len(self.signals))
        self.signals[:n] = kept[:n]
        self._scale = (
            self.sizer(np.ones_like(self.close), self.close) if isinstance(self.sizer, _SIGNAL_FREE_SCALE) else None
        )

    def reset(self) -> None:
        """A new episode: no signal recorded yet."""
        self.signals[:] = 0.0

    def weights(self, t: int, signal: np.ndarray) -> np.ndarray:
        """Target weights ``(S,)`` for ``signal`` at bar ``t`` (nothing is recorded).

        :param t: the bar that just closed.
        :param signal: ``(S,)`` signal in ``[-1, 1]``.
        """
        signal = np.asarray(signal, dtype=np.float64)
        if self._scale is not None:
            weights = signal * self._scale[t]
        else:
            lo = max(0, t - self.sizer.window + 1)
            signals = self.signals[lo : t + 1].copy()
            signals[-1] = signal
            weights = self.sizer(signals, self.close[lo : t + 1])[-1]
        return np.clip(weights, -1.0, 1.0)

    def record(self, t: int, signal: np.ndarray) -> None:
        """Keep the signal acted on at bar ``t`` (the Kelly sizer's track record reads it later).

        :param t: the bar.
        :param signal: ``(S,)`` signal.
        """
        self.signals[t] = signal
