"""The VIX beside the bars: the real CBOE VIX sample, the synthetic market's model-implied VIX, and
:func:`with_vix`, which joins either to a :class:`~envs.data.market_data.MarketData` as its extra per-bar
field ``vix`` so the feature library's ``vix_level``, ``vix_term_<n>`` and ``vix_pctile_<n>`` can be
observed by every env.

Data specs: ``synthetic:seed=3,vix=true`` (the model's VIX of that market) and ``sample:SPX?vix=true`` (the
real VIX, 2014-01-03 to 2019-01-03; bars before it hold NaN, so the features' warm-up starts there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.data.market_data import DataValidationError, MarketData
from envs.data.synthetic import SyntheticState


def real_vix() -> pd.Series:
    """The VIX daily close, 2014-01-03 to 2019-01-03 (1,259 days), from the ``arch`` package's data."""
    from arch.data import vix  # imported here: arch's import costs a second that other sources need not pay

    series = vix.load()["vix"].astype(float).dropna()  # the file lists market holidays without a close
    series.index = pd.DatetimeIndex(series.index).tz_localize("UTC")
    return series.rename("VIX")


def synthetic_vix(data: MarketData, state: SyntheticState, days: float = 30.0) -> pd.Series:
    """The VIX of a synthetic market: ``100 x`` the model-implied volatility of its equal-weight index over
    the next ``days`` calendar days, given the state at each bar (as the VIX is the market's expectation of
    the next 30 days' volatility, not today's).

    Each symbol's expected mean variance comes from :meth:`SyntheticState.forward_variance` (the regime
    chain's and the Heston variance's conditional expectations); the index's diffusion variance combines
    them with the shock correlation (cross terms ``rho_ij sqrt(F_i F_j)``, exact for one symbol), and the
    Merton jumps add ``lambda (mu_J^2 + sigma_J^2)`` per unit of jump loading (a pair's second leg carries
    ``hedge_ratio`` times the first leg's jumps). Causal: the value at bar ``t`` uses the state at ``t``
    only, never the realised future.

    :param data: the market (for the index).
    :param state: its hidden state (``generate_market_with_state``).
    :param days: calendar days ahead.
    """
    forward = state.forward_variance(days)
    n = forward.shape[1]
    weights = np.full(n, 1.0 / n)
    scaled = np.sqrt(forward) * weights
    variance = np.einsum("ti,ij,tj->t", scaled, state.correlation, scaled)
    loading = weights.copy()
    if state.pair is not None:
        loading[0] += state.hedge_ratio * loading[1]
        loading[1] = 0.0
    variance = variance + state.jump_variance * float(loading @ loading)
    return pd.Series(100.0 * np.sqrt(variance), index=data.index, name="VIX")


def with_vix(data: MarketData, vix: pd.Series) -> MarketData:
    """``data`` with the extra per-bar field ``vix``: at each bar the latest VIX close at or before the bar's
    timestamp (an as-of join, so a holiday in one calendar repeats the last close and never reads ahead),
    the same for every symbol; NaN before the VIX's first close.

    :param data: the bars.
    :param vix: VIX closes (in points) on a UTC DatetimeIndex.
    :raises DataValidationError: when the VIX has no close on or before the bars' last timestamp.
    """
    vix = vix.dropna().sort_index()
    if vix.empty or vix.index[0] > data.index[-1]:
        raise DataValidationError(
            "vix", f"the VIX ({_span(vix)}) has no close on or before the bars' last bar {data.index[-1].date()}"
        )
    aligned = vix.reindex(data.index, method="ffill").to_numpy(dtype=float)
    return data.with_extra({"vix": np.repeat(aligned[:, None], data.n_symbols, axis=1)})


def _span(vix: pd.Series) -> str:
    return f"{vix.index[0].date()} to {vix.index[-1].date()}" if len(vix) else "empty"
