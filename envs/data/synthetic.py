"""Seeded synthetic market: the embedded default data set.

Prices follow one of four models chosen by :attr:`SyntheticConfig.model`:

- ``"gbm"``: geometric Brownian motion with constant volatility.
- ``"merton"``: GBM plus Merton log-normal jumps.
- ``"heston"``: Heston stochastic variance (full-truncation Euler), with leverage correlation.
- ``"regime"`` (default): a market-wide Markov regime (bull, bear, sideways) that sets the drift and
  scales the Heston volatility, plus Merton jumps.

Assets are correlated through one market factor (Cholesky of the one-factor correlation matrix). When
there are at least two symbols, the first two form a cointegrated pair: in log space the second leg is
``log c + hedge_ratio * log(first leg) + spread`` with a mean-reverting Ornstein-Uhlenbeck spread.

Every bar's log return is split into an overnight gap (close to open) and a session body (open to
close). High and low come from an exact draw of the running maximum and minimum of a Brownian bridge
over the body, so ``low <= min(open, close)`` and ``high >= max(open, close)`` by construction. Volume
is log-normal, rises with ``|return|`` and, intraday, follows a U-shaped session profile.

The same seed always gives the same market; :func:`generate_market_with_state` also returns the hidden
truth (regimes, instantaneous volatility, jumps, the pair and its spread) for tests and option chains.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

import numpy as np
import pandas as pd

from envs.data.filters import lfilter
from envs.data.market_data import FIELDS, MarketData, validate

Model = Literal["gbm", "merton", "heston", "regime"]
MODELS: tuple[str, ...] = ("gbm", "merton", "heston", "regime")
REGIMES: tuple[str, ...] = ("bull", "bear", "sideways")

TRADING_DAYS = 252
SESSION_MINUTES = 390
SESSION_OPEN = pd.Timedelta(hours=9, minutes=30)
EXCHANGE_TZ = "America/New_York"


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic market. Rates and volatilities are annualised (252 trading days).

    :param n_symbols: number of assets (ignored when ``symbols`` is given).
    :param symbols: explicit symbol names; default ``SYN0, SYN1, ...``.
    :param n_days: number of trading sessions (business days, no holidays).
    :param start: first session date.
    :param freq: ``"1D"`` for daily bars, or a bar length such as ``"1min"``, ``"5min"``, ``"1h"`` for
        intraday bars inside US market hours (9:30-16:00 America/New_York), indexed in UTC by bar start.
        Heston variance is stepped per bar, so a year of 1-minute bars takes about half a second.
    :param model: price process: ``"gbm"``, ``"merton"``, ``"heston"`` or ``"regime"``.
    :param seed: seed of the ``numpy.random.default_rng`` that drives everything.
    :param initial_price: median starting price.
    :param price_dispersion: standard deviation of the log starting prices across symbols.
    :param drift: expected annual return in the ``gbm``, ``merton`` and ``heston`` models.
    :param volatility_range: each symbol's long-run volatility is drawn uniformly from this range.
    :param market_loading: each symbol's loading on the market factor is drawn uniformly from this
        range; the shock correlation of symbols i and j is ``loading_i * loading_j``.
    :param correlation: explicit ``(S, S)`` shock correlation matrix, replacing the market factor.
    :param heston_kappa: speed of mean reversion of the variance.
    :param heston_vol_of_vol: volatility of the variance process.
    :param heston_rho: correlation of price and variance shocks (negative: the leverage effect).
    :param regime_drifts: expected annual return in the bull, bear and sideways regimes.
    :param regime_vol_scale: volatility multiplier in the bull, bear and sideways regimes.
    :param regime_durations: expected length in trading days of each regime; a regime that ends
        moves to either other regime with equal probability.
    :param jump_intensity: expected jumps per year (``merton`` and ``regime`` models).
    :param jump_mean: mean log jump size.
    :param jump_std: standard deviation of the log jump size.
    :param cointegrated_pair: make the first two symbols a cointegrated pair (needs two symbols).
    :param hedge_ratio: log-price hedge ratio of the pair's second leg on its first.
    :param spread_half_life: half-life of the pair's spread in trading days.
    :param spread_std: stationary standard deviation of the pair's log spread.
    :param overnight_variance: fraction of a session's variance realised overnight (open gaps).
    :param daily_volume: median shares traded per session and symbol.
    :param volume_sensitivity: how strongly log volume rises with the size of the standardised return.
    :param volume_noise: standard deviation of the log volume noise.
    """

    n_symbols: int = 5
    symbols: tuple[str, ...] | None = None
    n_days: int = 2520
    start: str = "2015-01-02"
    freq: str = "1D"
    model: Model = "regime"
    seed: int = 0
    initial_price: float = 100.0
    price_dispersion: float = 0.5
    drift: float = 0.07
    volatility_range: tuple[float, float] = (0.15, 0.35)
    market_loading: tuple[float, float] = (0.5, 0.8)
    correlation: tuple[tuple[float, ...], ...] | None = None
    heston_kappa: float = 3.0
    heston_vol_of_vol: float = 0.3
    heston_rho: float = -0.7
    regime_drifts: tuple[float, float, float] = (0.25, -0.35, 0.0)
    regime_vol_scale: tuple[float, float, float] = (0.8, 1.6, 1.0)
    regime_durations: tuple[float, float, float] = (250.0, 60.0, 120.0)
    jump_intensity: float = 3.0
    jump_mean: float = -0.02
    jump_std: float = 0.05
    cointegrated_pair: bool = True
    hedge_ratio: float = 0.8
    spread_half_life: float = 15.0
    spread_std: float = 0.05
    overnight_variance: float = 0.2
    daily_volume: float = 1e6
    volume_sensitivity: float = 0.4
    volume_noise: float = 0.3

    def __post_init__(self) -> None:
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
            object.__setattr__(self, "n_symbols", len(self.symbols))
            if len(set(self.symbols)) != len(self.symbols):
                raise ValueError(f"symbols repeat: {list(self.symbols)}")
        positive = ("n_symbols", "n_days", "initial_price", "heston_kappa", "spread_half_life",
                    "daily_volume")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        non_negative = ("price_dispersion", "heston_vol_of_vol", "jump_intensity", "jump_std",
                        "spread_std", "volume_sensitivity", "volume_noise")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        low, high = self.volatility_range
        if not 0 < low <= high:
            raise ValueError(f"volatility_range must satisfy 0 < low <= high, got {(low, high)}")
        low, high = self.market_loading
        if not -1 < low <= high < 1:
            raise ValueError(f"market_loading must lie in (-1, 1) with low <= high, got {(low, high)}")
        if not -1 <= self.heston_rho <= 1:
            raise ValueError(f"heston_rho must lie in [-1, 1], got {self.heston_rho}")
        if not 0 <= self.overnight_variance < 1:
            raise ValueError(f"overnight_variance must lie in [0, 1), got {self.overnight_variance}")
        for name in ("regime_drifts", "regime_vol_scale", "regime_durations"):
            if len(getattr(self, name)) != len(REGIMES):
                raise ValueError(f"{name} needs one value per regime {REGIMES}")
        if min(self.regime_vol_scale) <= 0:
            raise ValueError(f"regime_vol_scale must be positive, got {self.regime_vol_scale}")
        if min(self.regime_durations) < 1:
            raise ValueError(f"regime_durations must be >= 1 day, got {self.regime_durations}")
        _bar_minutes(self.freq)
        try:
            pd.Timestamp(self.start)
        except ValueError:
            raise ValueError(f"start {self.start!r} is not a date") from None

    @property
    def symbol_names(self) -> tuple[str, ...]:
        """The symbols, explicit or ``SYN0 .. SYN{n-1}``."""
        return self.symbols or tuple(f"SYN{i}" for i in range(self.n_symbols))


@dataclass(frozen=True)
class SyntheticState:
    """Hidden truth behind a generated market.

    :param regimes: ``(T,)`` regime label of every bar, indexing ``regime_names``.
    :param regime_names: names of the labels (``("none",)`` for models without regimes).
    :param transition_matrix: per-session regime transition probabilities.
    :param volatility: ``(T, S)`` annualised instantaneous volatility during each bar (for the
        pair's second leg, that of its hedged first leg and spread combined).
    :param jumps: ``(T, S)`` True where a jump happened in the bar.
    :param correlation: ``(S, S)`` correlation of the diffusion shocks.
    :param pair: symbols of the cointegrated pair (first leg, second leg), or ``None``.
    :param hedge_ratio: log-price hedge ratio of the pair.
    :param spread: ``(T,)`` the pair's mean-reverting log spread at each close, i.e.
        ``log close_2 - hedge_ratio * log close_1`` minus a constant (``None`` without a pair).
    :param long_run_variance: ``(S,)`` the Heston long-run variance ``theta`` of each symbol (its constant
        variance in the ``gbm`` and ``merton`` models), annualised, before the regime scale.
    :param variance_kappa: Heston mean-reversion speed of the variance (per year; 0 without Heston).
    :param regime_vol_scale: volatility multiplier of each regime label.
    :param jump_variance: annual variance the Merton jumps add to each symbol's log return,
        ``lambda (mu_J^2 + sigma_J^2)``.
    :param spread_variance: annualised variance of the pair spread's innovations (0 without a pair).
    :param bars_per_session: bars in a session (1 for daily bars).
    """

    regimes: np.ndarray
    regime_names: tuple[str, ...]
    transition_matrix: np.ndarray
    volatility: np.ndarray
    jumps: np.ndarray
    correlation: np.ndarray
    pair: tuple[str, str] | None
    hedge_ratio: float
    spread: np.ndarray | None
    long_run_variance: np.ndarray | None = None
    variance_kappa: float = 0.0
    regime_vol_scale: np.ndarray | None = None
    jump_variance: float = 0.0
    spread_variance: float = 0.0
    bars_per_session: int = 1

    def forward_variance(self, days: float = 30.0) -> np.ndarray:
        """``(T, S)``: at each bar, the model's expected mean variance (annualised, diffusion) of each symbol
        over the bars of the next ``days`` calendar days, given the state at that bar only.

        ``E[sigma^2(t + k)] = E[scale^2(regime_{t+k}) | regime_t] E[v(t + k) | v(t)]`` (the regime chain and the
        Heston variance are independent): the regime part from powers of the per-session transition matrix,
        the variance part from the discretised Heston mean ``theta + (1 - kappa dt)^k (v_t - theta)``, averaged
        over ``k = 1..H``, ``H`` the bars in ``days`` calendar days (365 calendar days hold 252 sessions). The
        pair's second leg adds its spread's variance to ``hedge_ratio^2`` times the first leg's. Uses the
        state at bar ``t`` (its regime and volatility), never a later one.

        :param days: calendar days ahead (30 for the VIX).
        """
        if self.long_run_variance is None or self.regime_vol_scale is None:
            raise ValueError("this SyntheticState predates the forward-variance fields; generate the market again")
        per_year = TRADING_DAYS * self.bars_per_session
        horizon = max(int(round(days / 365.0 * per_year)), 1)
        k = np.arange(1, horizon + 1)
        dt = 1.0 / per_year
        scale2 = np.asarray(self.regime_vol_scale, dtype=np.float64) ** 2
        # Expected scale^2 after j sessions from each regime: rows of P^j @ scale^2, averaged over the bars.
        sessions = np.ceil(k / self.bars_per_session).astype(np.int64)
        power = np.eye(len(scale2))
        by_session = {0: power @ scale2}
        for j in range(1, int(sessions.max()) + 1):
            power = power @ self.transition_matrix
            by_session[j] = power @ scale2
        expected_scale2 = np.stack([by_session[j] for j in sessions])  # (H, K)
        decay = (1.0 - self.variance_kappa * dt) ** k  # (H,)
        scale_now = np.sqrt(scale2)[self.regimes][:, None]
        variance = (np.asarray(self.volatility) / scale_now) ** 2  # (T, S) v(t)
        theta = np.asarray(self.long_run_variance, dtype=np.float64)[None, :]
        if self.pair is not None:
            # The second leg's variance is the hedged first leg's plus the spread's: forecast the first's.
            variance = variance.copy()
            variance[:, 1] = variance[:, 0]
            theta = theta.copy()
            theta[:, 1] = theta[:, 0]
        # mean_k E[s^2_k] (theta + decay_k (v - theta)) = theta mean(E s^2) + (v - theta) mean(E s^2 decay)
        level = expected_scale2.mean(axis=0)[self.regimes][:, None]
        reverting = (expected_scale2 * decay[:, None]).mean(axis=0)[self.regimes][:, None]
        forward = theta * level + (variance - theta) * reverting
        if self.pair is not None:
            forward[:, 1] = self.hedge_ratio**2 * forward[:, 0] + self.spread_variance
        return forward


def generate_market(config: SyntheticConfig | None = None, **overrides: object) -> MarketData:
    """Generate a synthetic market.

    :param config: the parameters; defaults to :class:`SyntheticConfig()`.
    :param overrides: fields of :class:`SyntheticConfig` to replace, e.g. ``seed=3, n_symbols=2``.
    :return: validated :class:`MarketData`.
    """
    return generate_market_with_state(config, **overrides)[0]


def generate_market_with_state(
    config: SyntheticConfig | None = None, **overrides: object
) -> tuple[MarketData, SyntheticState]:
    """Generate a synthetic market together with its hidden state.

    :param config: the parameters; defaults to :class:`SyntheticConfig()`.
    :param overrides: fields of :class:`SyntheticConfig` to replace.
    :return: the validated market and its :class:`SyntheticState`.
    """
    cfg = _with_overrides(config or SyntheticConfig(), overrides)
    rng = np.random.default_rng(cfg.seed)
    n_sym = cfg.n_symbols
    calendar = _Calendar.build(cfg)
    n_bars = len(calendar.index)

    vol = rng.uniform(*cfg.volatility_range, size=n_sym)
    log_p0 = np.log(cfg.initial_price) + cfg.price_dispersion * rng.standard_normal(n_sym)
    log_volume0 = np.log(cfg.daily_volume) + 0.5 * rng.standard_normal(n_sym)
    corr = _correlation(cfg, rng)
    chol = np.linalg.cholesky(corr)

    # Two correlated shocks per bar: the overnight gap and the session body.
    z_gap = rng.standard_normal((n_bars, n_sym)) @ chol.T
    z_body = rng.standard_normal((n_bars, n_sym)) @ chol.T
    dt = calendar.gap_dt + calendar.body_dt
    z_bar = (np.sqrt(calendar.gap_dt)[:, None] * z_gap
             + np.sqrt(calendar.body_dt)[:, None] * z_body) / np.sqrt(dt)[:, None]

    regimes, regime_names, transition, drift, scale = _regimes(cfg, calendar, rng)
    if cfg.model in ("heston", "regime"):
        z_var = cfg.heston_rho * z_bar + np.sqrt(1 - cfg.heston_rho**2) * rng.standard_normal(
            (n_bars, n_sym)
        )
        variance = _heston_variance(vol**2, cfg.heston_kappa, cfg.heston_vol_of_vol, dt, z_var)
    else:
        variance = np.broadcast_to(vol**2, (n_bars, n_sym))
    sigma = scale * np.sqrt(variance)

    counts, jump, compensator = _jumps(cfg, dt, rng)
    log_drift = drift - compensator - 0.5 * sigma**2
    # News jumps land in the overnight gap at a session's first bar, inside the body otherwise.
    opens = calendar.session_open[:, None]
    gap = (log_drift * calendar.gap_dt[:, None] + sigma * np.sqrt(calendar.gap_dt)[:, None] * z_gap
           + np.where(opens, jump, 0.0))
    body = (log_drift * calendar.body_dt[:, None]
            + sigma * np.sqrt(calendar.body_dt)[:, None] * z_body + np.where(opens, 0.0, jump))
    body_sd = sigma * np.sqrt(calendar.body_dt)[:, None]

    pair, spread, spread_var = None, None, 0.0
    if cfg.cointegrated_pair and n_sym >= 2:
        spread, spread_var = _ou_spread(cfg, dt, rng)
        gap, body, body_sd, sigma = _make_pair(cfg, spread, spread_var, calendar, gap, body,
                                               body_sd, sigma)
        pair = (cfg.symbol_names[0], cfg.symbol_names[1])
        counts[:, 1] = counts[:, 0]

    values = _bars(log_p0, gap, body, body_sd, rng)
    values[:, :, FIELDS.index("volume")] = _volume(cfg, calendar, gap + body, sigma, log_volume0,
                                                   rng)
    # Sessions are weekdays (holidays are not modelled); bars per year follow the NYSE's 252.
    data = validate(MarketData(values, calendar.index, cfg.symbol_names, ("XNYS",) * n_sym))
    state = SyntheticState(
        regimes=regimes,
        regime_names=regime_names,
        transition_matrix=transition,
        volatility=np.ascontiguousarray(sigma),
        jumps=counts > 0,
        correlation=corr,
        pair=pair,
        hedge_ratio=cfg.hedge_ratio,
        spread=spread,
        long_run_variance=vol**2,
        variance_kappa=cfg.heston_kappa if cfg.model in ("heston", "regime") else 0.0,
        regime_vol_scale=(np.asarray(cfg.regime_vol_scale, dtype=np.float64) if cfg.model == "regime"
                          else np.ones(1)),
        jump_variance=(cfg.jump_intensity * (cfg.jump_mean**2 + cfg.jump_std**2)
                       if cfg.model in ("merton", "regime") else 0.0),
        spread_variance=spread_var if pair is not None else 0.0,
        bars_per_session=len(calendar.index) // cfg.n_days,
    )
    return data, state


# ---------------------------------------------------------------------- calendar
def _bar_minutes(freq: str) -> int | None:
    """Bar length in minutes for intraday ``freq``, ``None`` for daily bars."""
    try:
        length = pd.Timedelta(freq)
    except ValueError:
        raise ValueError(f"freq {freq!r} is not a bar length such as '1D', '5min' or '1h'") from None
    if length == pd.Timedelta(days=1):
        return None
    minutes = length / pd.Timedelta(minutes=1)
    if minutes != int(minutes) or not 1 <= minutes <= SESSION_MINUTES:
        raise ValueError(
            f"freq {freq!r}: intraday bars must be whole minutes between 1min and "
            f"{SESSION_MINUTES}min, or '1D' for daily bars"
        )
    return int(minutes)


@dataclass(frozen=True)
class _Calendar:
    """Bar timestamps, each bar's trading time in years (overnight gap and session body) and its
    share of the session's volume."""

    index: pd.DatetimeIndex
    session: np.ndarray
    session_open: np.ndarray
    gap_dt: np.ndarray
    body_dt: np.ndarray
    volume_share: np.ndarray

    @classmethod
    def build(cls, cfg: SyntheticConfig) -> "_Calendar":
        days = pd.bdate_range(pd.Timestamp(cfg.start).normalize(), periods=cfg.n_days)
        day_dt = 1.0 / TRADING_DAYS
        minutes = _bar_minutes(cfg.freq)
        if minutes is None:
            n = cfg.n_days
            return cls(
                index=days.tz_localize("UTC"),
                session=np.arange(n),
                session_open=np.ones(n, dtype=bool),
                gap_dt=np.full(n, cfg.overnight_variance * day_dt),
                body_dt=np.full(n, (1 - cfg.overnight_variance) * day_dt),
                volume_share=np.ones(n),
            )
        starts = np.arange(0, SESSION_MINUTES, minutes)
        length = np.minimum(minutes, SESSION_MINUTES - starts)
        per_day = len(starts)
        stamps = (np.repeat(days.values, per_day)
                  + np.tile(SESSION_OPEN.to_timedelta64() + starts.astype("timedelta64[m]"),
                            cfg.n_days))
        index = pd.DatetimeIndex(stamps).tz_localize(EXCHANGE_TZ).tz_convert("UTC")
        first = np.zeros(per_day, dtype=bool)
        first[0] = True
        # U-shaped intraday volume: busiest at the open and the close, summing to one session.
        time_of_day = (starts + length / 2) / SESSION_MINUTES
        share = length * (1.0 + 2.0 * (2 * time_of_day - 1) ** 2)
        return cls(
            index=index,
            session=np.repeat(np.arange(cfg.n_days), per_day),
            session_open=np.tile(first, cfg.n_days),
            gap_dt=np.tile(np.where(first, cfg.overnight_variance * day_dt, 0.0), cfg.n_days),
            body_dt=np.tile((1 - cfg.overnight_variance) * day_dt * length / SESSION_MINUTES,
                            cfg.n_days),
            volume_share=np.tile(share / share.sum(), cfg.n_days),
        )


# ---------------------------------------------------------------------- processes
def _with_overrides(config: SyntheticConfig, overrides: dict[str, object]) -> SyntheticConfig:
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SyntheticConfig field(s) {unknown}; known: {sorted(known)}")
    return replace(config, **overrides) if overrides else config


def _correlation(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Shock correlation: the explicit matrix, or the one-factor matrix from market loadings."""
    loading = rng.uniform(*cfg.market_loading, size=cfg.n_symbols)
    if cfg.correlation is None:
        corr = np.outer(loading, loading)
        np.fill_diagonal(corr, 1.0)
        return corr
    corr = np.asarray(cfg.correlation, dtype=np.float64)
    n = cfg.n_symbols
    if corr.shape != (n, n):
        raise ValueError(f"correlation must have shape ({n}, {n}), got {corr.shape}")
    if not np.allclose(corr, corr.T) or not np.allclose(np.diag(corr), 1.0):
        raise ValueError("correlation must be symmetric with ones on the diagonal")
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise ValueError("correlation must be positive definite") from None
    return corr


def _regimes(
    cfg: SyntheticConfig, calendar: _Calendar, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Regime label per bar and the annual drift and volatility scale it implies.

    :return: labels ``(T,)``, label names, transition matrix, drift and scale (broadcastable
        to ``(T, S)``).
    """
    n_bars = len(calendar.index)
    if cfg.model != "regime":
        return (np.zeros(n_bars, dtype=np.int64), ("none",), np.ones((1, 1)),
                np.full((1, 1), cfg.drift), np.ones((1, 1)))
    transition = _transition_matrix(cfg.regime_durations)
    regimes = _regime_path(transition, cfg.regime_durations, cfg.n_days, rng)[calendar.session]
    drift = np.asarray(cfg.regime_drifts)[regimes][:, None]
    scale = np.asarray(cfg.regime_vol_scale)[regimes][:, None]
    return regimes, REGIMES, transition, drift, scale


def _jumps(
    cfg: SyntheticConfig, dt: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Merton jumps: per-bar counts, total log jump, and the annual drift compensator.

    The compensator keeps ``drift`` the expected return with jumps included.
    """
    shape = (len(dt), cfg.n_symbols)
    if cfg.model not in ("merton", "regime") or cfg.jump_intensity == 0:
        return np.zeros(shape, dtype=np.int64), np.zeros(shape), 0.0
    counts = rng.poisson(cfg.jump_intensity * dt[:, None], size=shape)
    jump = counts * cfg.jump_mean + np.sqrt(counts) * cfg.jump_std * rng.standard_normal(shape)
    compensator = cfg.jump_intensity * (np.exp(cfg.jump_mean + 0.5 * cfg.jump_std**2) - 1)
    return counts, jump, compensator


def _transition_matrix(durations: tuple[float, ...]) -> np.ndarray:
    """Per-session transition matrix: stay with ``1 - 1/duration``, else move to another regime."""
    k = len(durations)
    leave = 1.0 / np.asarray(durations, dtype=np.float64)
    matrix = np.repeat((leave / (k - 1))[:, None], k, axis=1)
    np.fill_diagonal(matrix, 1.0 - leave)
    return matrix


def _regime_path(
    transition: np.ndarray, durations: tuple[float, ...], n: int, rng: np.random.Generator
) -> np.ndarray:
    """Markov chain of ``n`` sessions, simulated one regime spell at a time.

    A spell's length is geometric with the regime's leave probability, which is exactly the
    chain's holding time, so the loop runs once per regime change instead of once per session.
    """
    k = len(durations)
    # With equal exit probabilities to the other regimes the stationary law is proportional to
    # the expected durations; starting there keeps the chain stationary from the first bar.
    start = np.asarray(durations) / np.sum(durations)
    labels = np.empty(n, dtype=np.int64)
    state = int(rng.choice(k, p=start))
    t = 0
    while t < n:
        spell = int(rng.geometric(1.0 - transition[state, state]))
        labels[t:t + spell] = state
        t += spell
        exits = transition[state].copy()
        exits[state] = 0.0
        state = int(rng.choice(k, p=exits / exits.sum()))
    return labels


def _heston_variance(
    theta: np.ndarray, kappa: float, xi: float, dt: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Heston variance at the start of each bar, full-truncation Euler.

    The recursion is non-linear (the truncation), so it loops over time; everything that does not
    depend on the previous step is precomputed as arrays to keep each step a few vector operations.
    """
    n = len(dt)
    mean_pull = kappa * theta[None, :] * dt[:, None]
    decay = kappa * dt
    shock = xi * np.sqrt(dt)[:, None] * z
    out = np.empty((n, len(theta)))
    v = theta.astype(np.float64)
    for t in range(n):
        positive = np.maximum(v, 0.0)
        out[t] = positive
        v = v + mean_pull[t] - decay[t] * positive + shock[t] * np.sqrt(positive)
    return out


def _ou_spread(
    cfg: SyntheticConfig, dt: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Stationary AR(1) (discretised Ornstein-Uhlenbeck) log spread, one value per close.

    Intraday bars differ in length only at the session open, so one coefficient from the average
    bar length keeps the half-life right in trading days and lets ``lfilter`` run the recursion.

    :return: the spread and the annualised variance of its innovations.
    """
    bar_years = float(np.mean(dt))
    phi = 0.5 ** (bar_years * TRADING_DAYS / cfg.spread_half_life)
    innovation_var = cfg.spread_std**2 * (1 - phi**2)
    innovation = np.sqrt(innovation_var) * rng.standard_normal(len(dt))
    initial = cfg.spread_std * rng.standard_normal()
    spread, _ = lfilter([1.0], [1.0, -phi], innovation, zi=[phi * initial])
    return spread, innovation_var / bar_years


def _make_pair(
    cfg: SyntheticConfig,
    spread: np.ndarray,
    spread_var: float,
    calendar: _Calendar,
    gap: np.ndarray,
    body: np.ndarray,
    body_sd: np.ndarray,
    sigma: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rewrite symbol 1 so that ``log close_1 = log c + hedge_ratio * log close_0 + spread``.

    Its returns become the hedged first leg's returns plus the spread's change, split between gap
    and body in proportion to their trading time; ``log c`` follows from both starting prices.
    """
    beta = cfg.hedge_ratio
    gap_share = calendar.gap_dt / (calendar.gap_dt + calendar.body_dt)
    change = np.diff(spread, prepend=spread[0])
    gap, body, body_sd, sigma = (a.copy() for a in (gap, body, body_sd, sigma))
    gap[:, 1] = beta * gap[:, 0] + gap_share * change
    body[:, 1] = beta * body[:, 0] + (1 - gap_share) * change
    body_sd[:, 1] = np.sqrt(beta**2 * body_sd[:, 0] ** 2 + spread_var * calendar.body_dt)
    sigma[:, 1] = np.sqrt(beta**2 * sigma[:, 0] ** 2 + spread_var)
    return gap, body, body_sd, sigma


# ---------------------------------------------------------------------- bars
def _bars(
    log_p0: np.ndarray,
    gap: np.ndarray,
    body: np.ndarray,
    body_sd: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """OHLC from gap and body log returns; volume is filled in by the caller.

    The maximum of a Brownian bridge from 0 to ``b`` with variance ``s**2`` has the closed-form
    quantile ``(b + sqrt(b**2 - 2 s**2 log U)) / 2`` (minimum: mirrored), which is always beyond
    both end points, so high and low bracket open and close exactly.
    """
    n_bars, n_sym = gap.shape
    log_close = log_p0[None, :] + np.cumsum(gap + body, axis=0)
    log_open = log_close - body
    var2 = 2 * body_sd**2
    u_high, u_low = rng.random((2, n_bars, n_sym))
    up = 0.5 * (body + np.sqrt(body**2 - var2 * np.log1p(-u_high)))
    down = 0.5 * (body - np.sqrt(body**2 - var2 * np.log1p(-u_low)))
    values = np.empty((n_bars, n_sym, len(FIELDS)))
    values[:, :, 0] = np.exp(log_open)
    values[:, :, 1] = np.exp(log_open + up)
    values[:, :, 2] = np.exp(log_open + down)
    values[:, :, 3] = np.exp(log_close)
    # exp() of log_open + 0 and of log_close can differ from high/low in the last ulp.
    values[:, :, 1] = np.maximum(values[:, :, 1], np.maximum(values[:, :, 0], values[:, :, 3]))
    values[:, :, 2] = np.minimum(values[:, :, 2], np.minimum(values[:, :, 0], values[:, :, 3]))
    return values


def _volume(
    cfg: SyntheticConfig,
    calendar: _Calendar,
    log_return: np.ndarray,
    sigma: np.ndarray,
    log_volume0: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Log-normal volume that rises with the bar's absolute return.

    Returns are standardised by each symbol's average volatility, not the bar's own, so volume
    also rises in volatile regimes (and a bar whose Heston variance touched zero stays finite).
    """
    dt = calendar.gap_dt + calendar.body_dt
    typical = np.sqrt(np.mean(sigma**2, axis=0))
    surprise = np.abs(log_return) / (typical[None, :] * np.sqrt(dt)[:, None]) - np.sqrt(2 / np.pi)
    log_volume = (log_volume0[None, :] + np.log(calendar.volume_share)[:, None]
                  + cfg.volume_sensitivity * surprise
                  + cfg.volume_noise * rng.standard_normal(log_return.shape))
    return np.round(np.exp(log_volume))
