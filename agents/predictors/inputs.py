"""What a predictor sees: the causal feature cube and the regime detector's inputs, built once per data set.

The default features are the library's defaults minus the cross-sectional ones (market volatility, beta,
correlation and relative strength to the equal-weight market of the data's symbols). Those depend on which
other symbols are loaded, so a model trained on a universe would see different values for the same stock
traded alone; without them a symbol's inputs depend on its own bars only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agents.predictors.regime import regime_inputs
from envs.data.market_data import MarketData
from envs.features import DEFAULT_FEATURES, FeatureConfig, compute_features

CROSS_SECTIONAL_FAMILIES: tuple[str, ...] = ("mkt_rvol", "beta", "corr", "rel_strength")
PREDICTOR_FEATURES: tuple[str, ...] = tuple(
    name for name in DEFAULT_FEATURES if not name.startswith(tuple(f"{f}_" for f in CROSS_SECTIONAL_FAMILIES))
)


@dataclass(frozen=True)
class Inputs:
    """Causal inputs of one data set.

    :param features: ``(T, S, F)`` float32 causal feature values, NaN during warm-up.
    :param names: feature names, length ``F``.
    :param regime: ``(T, S, 2)`` regime detector inputs (see :func:`~agents.predictors.regime.regime_inputs`).
    :param warmup: first bar at which every feature and regime input is finite.
    :param index: the data's timestamps.
    :param symbols: the data's symbols.
    """

    features: np.ndarray
    names: tuple[str, ...]
    regime: np.ndarray
    warmup: int
    index: pd.DatetimeIndex
    symbols: tuple[str, ...]

    @property
    def n_bars(self) -> int:
        """Number of bars ``T``."""
        return self.features.shape[0]

    @classmethod
    def build(
        cls, data: MarketData, features: tuple[str, ...] = PREDICTOR_FEATURES, regime_window: int = 20
    ) -> "Inputs":
        """Compute the inputs of ``data``; row ``t`` uses bars ``<= t`` only.

        :param data: market data.
        :param features: feature names (see :func:`envs.features.feature_families`).
        :param regime_window: trailing window of the regime inputs.
        """
        computed = compute_features(data, FeatureConfig(features=tuple(features)))
        regime = regime_inputs(data.close, regime_window)
        finite = np.isfinite(regime).all(axis=(1, 2))
        not_finite = np.flatnonzero(~finite)
        regime_warmup = int(not_finite[-1]) + 1 if not_finite.size else 0
        return cls(
            computed.values, computed.names, regime, max(computed.warmup, regime_warmup),
            data.index, data.symbols,
        )
