"""Forward-return labels that a decision at bar ``t`` can actually earn, and nothing it could not see.

A policy decides after bar ``t`` closes and its order fills at bar ``t+1``'s open (the env's convention).
The label of horizon ``h`` at ``t`` is therefore the log return from ``open[t+1]`` to ``open[t+1+h]``: what
holding the position for ``h`` bars earns. It reads bars ``t+1 .. t+1+h``, all after the features at ``t``,
and :meth:`Labels.end` says which bar it reads last. A model fitted on a train window ending at bar
``stop`` (exclusive) may only see labels whose last bar is before ``stop``: :meth:`Labels.until` drops the
others, which purges the last ``h + 1`` decision bars of every train window for horizon ``h``.

>>> import numpy as np
>>> opens = np.array([[100.0], [101.0], [102.0], [104.0]])
>>> labels = Labels.from_opens(opens, (1, 2))
>>> np.round(labels.returns[:, 0, :], 4).tolist()
[[0.0099, 0.0293], [0.0194, nan], [nan, nan], [nan, nan]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 20)


def check_horizons(horizons: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Validate forecast horizons: distinct positive bar counts, returned as a sorted tuple.

    :param horizons: horizons in bars.
    """
    values = tuple(int(h) for h in horizons)
    if not values:
        raise ValueError("horizons: at least one horizon is required")
    if min(values) < 1:
        raise ValueError(f"horizons: every horizon must be at least 1 bar, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"horizons: listed more than once in {values}")
    return tuple(sorted(values))


@dataclass(frozen=True)
class Labels:
    """Forward log returns per bar, symbol and horizon.

    :param returns: ``(T, S, H)`` float64; NaN where the label runs past the data (or past a cut).
    :param horizons: the horizons ``H``, in bars, ascending.
    """

    returns: np.ndarray
    horizons: tuple[int, ...]

    @classmethod
    def from_opens(cls, opens: np.ndarray, horizons: tuple[int, ...] = DEFAULT_HORIZONS) -> "Labels":
        """Labels from a ``(T, S)`` array of open prices.

        :param opens: open prices, one row per bar.
        :param horizons: horizons in bars.
        """
        horizons = check_horizons(horizons)
        log_open = np.log(np.asarray(opens, dtype=np.float64))
        n_bars = log_open.shape[0]
        returns = np.full((*log_open.shape, len(horizons)), np.nan)
        for k, h in enumerate(horizons):
            last = n_bars - 1 - h  # decisions up to here have open[t+1+h] in the data
            if last > 0:
                returns[:last, :, k] = log_open[1 + h : n_bars] - log_open[1:last + 1]
        return cls(returns, horizons)

    @property
    def direction(self) -> np.ndarray:
        """``(T, S, H)``: 1.0 where the forward return is positive, 0.0 where not, NaN where unknown."""
        return np.where(np.isfinite(self.returns), (self.returns > 0).astype(np.float64), np.nan)

    def end(self, t: np.ndarray | int) -> np.ndarray:
        """Last bar each horizon's label at decision bar ``t`` reads: ``t + 1 + h``, shape ``(..., H)``.

        :param t: decision bar(s).
        """
        return np.asarray(t)[..., None] + 1 + np.asarray(self.horizons)

    def until(self, stop: int) -> "Labels":
        """Only the labels that read bars before ``stop``; the rest become NaN.

        :param stop: first bar that must stay unseen (a train window's exclusive end).
        """
        t = np.arange(self.returns.shape[0])
        unseen = self.end(t) >= stop  # (T, H)
        return Labels(np.where(unseen[:, None, :], np.nan, self.returns), self.horizons)
