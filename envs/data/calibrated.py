"""Calibrated markets: seeded price processes whose best achievable policy is known.

Each family puts a known amount of learnable structure into daily log returns, set by one
signal-to-noise knob ``snr``, so that "the agent learned" is a measurement against the oracle
(:mod:`baselines.oracles`) that knows the generating parameters but not the future:

- ``"momentum"``: AR(1) log returns ``r[t] - mu = phi (r[t-1] - mu) + e[t]`` with unconditional
  volatility ``volatility``; ``snr = phi / sqrt(1 - phi**2)``, the standard deviation of the
  predictable part of a return over that of its surprise.
- ``"mean_reversion"``: an Ornstein-Uhlenbeck log price ``x[t] - m = a (x[t-1] - m) + e[t]`` around
  ``m = log(initial_price)``, ``e`` with the daily volatility of ``volatility``;
  ``snr = sqrt((1 - a) / (1 + a))``, the same ratio as for momentum.
- ``"pair"``: two symbols, the first a driftless random walk, the second
  ``log p1 = log c + hedge_ratio * log p0 + s`` with ``s`` the mean-reverting spread of
  ``"mean_reversion"`` (Portfolio-v0's cointegrated pair).
- ``"hmm"``: a hidden two-state Markov chain (bull, bear) with expected spell ``regime_duration``
  days sets the drift ``drift +- k``; ``snr = k / daily volatility``.
- ``"garch"``: GARCH(1,1) returns with a small drift; ``snr`` is the drift's annual Sharpe ratio
  ``drift / volatility`` at the long-run volatility, ``garch_alpha`` and ``garch_beta`` set how much the
  volatility moves and how long it persists.
- ``"null"``: a driftless random walk (``snr`` must be 0). The best policy is flat; any trading only
  pays costs. This is the control that catches false skill.

Bars open at the previous close (no overnight gap), so an action taken at a close and filled at the
next open earns exactly the next bar's close-to-close return, which is what the oracles' analytic
Sharpe ratios assume. High and low are drawn from the Brownian bridge of the bar's return and volume
is log-normal rising with ``|return|``, as in :mod:`envs.data.synthetic`; the bars pass the same
:func:`~envs.data.market_data.validate`. Symbols are independent draws of the same process. The same
seed always gives the same market. Load one with ``load_data("synthetic:model=momentum,snr=0.2,seed=3")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal

import numba
import numpy as np

from envs.data.filters import lfilter
from envs.data.market_data import FIELDS, MarketData, validate
from envs.data.synthetic import TRADING_DAYS, SyntheticConfig, _bars, _Calendar, _volume

Family = Literal["momentum", "mean_reversion", "pair", "hmm", "garch", "null"]
FAMILIES: tuple[str, ...] = ("momentum", "mean_reversion", "pair", "hmm", "garch", "null")

DEFAULT_SNR: dict[str, float] = {
    "momentum": 0.2,
    "mean_reversion": 0.1,
    "pair": 0.1,
    "hmm": 0.15,
    "garch": 0.5,
    "null": 0.0,
}
"""The default difficulty of each family: the ``snr`` used when none is given. With the default volatility
(30%) and 10 bps commission the long-only oracle scores a Sharpe ratio near 1.2 (momentum), 0.8 (mean
reversion) and 0.7 (hmm, 120-day regimes) on a 100,000-day series of training seed 1; weaker signals
leave too little above the costs to tell learners apart."""


@dataclass(frozen=True)
class CalibratedConfig:
    """Parameters of a calibrated market (daily bars, rates and volatilities annualised over 252 days).

    :param model: the family: momentum, mean_reversion, pair, hmm, garch or null.
    :param snr: the signal-to-noise knob (see the module docstring for each family's definition);
        ``None`` takes the family's default from :data:`DEFAULT_SNR`.
    :param seed: seed of the ``numpy.random.default_rng`` that drives everything.
    :param n_symbols: number of independent symbols (``pair`` always has two).
    :param symbols: explicit symbol names; default ``SYN0, SYN1, ...``.
    :param n_days: number of daily bars.
    :param start: first session date.
    :param volatility: annual volatility of the log returns (garch: the long-run volatility;
        mean_reversion and pair: of the price or spread innovations).
    :param drift: annual expected log return (momentum, hmm: the mean of the two regimes; garch:
        ignored, the drift is ``snr * volatility``; mean_reversion and null: must stay 0).
    :param regime_duration: hmm: expected length of a regime spell in days.
    :param garch_alpha: garch: weight of the last squared surprise in the variance forecast.
    :param garch_beta: garch: weight of the last variance forecast.
    :param hedge_ratio: pair: log-price hedge ratio of the second leg on the first.
    :param initial_price: starting price (mean_reversion: the price level it reverts to).
    :param daily_volume: median shares traded per day and symbol.
    """

    model: Family = "momentum"
    snr: float | None = None
    seed: int = 0
    n_symbols: int = 1
    symbols: tuple[str, ...] | None = None
    n_days: int = 2520
    start: str = "2015-01-02"
    volatility: float = 0.3
    drift: float = 0.0
    regime_duration: float = 120.0
    garch_alpha: float = 0.1
    garch_beta: float = 0.85
    hedge_ratio: float = 0.8
    initial_price: float = 100.0
    daily_volume: float = 1e6

    def __post_init__(self) -> None:
        if self.model not in FAMILIES:
            raise ValueError(f"CalibratedConfig.model must be one of {FAMILIES}, got {self.model!r}")
        if self.snr is None:
            object.__setattr__(self, "snr", DEFAULT_SNR[self.model])
        if self.model == "pair":
            object.__setattr__(self, "n_symbols", 2)
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
            if len(set(self.symbols)) != len(self.symbols) or (
                self.model == "pair" and len(self.symbols) != 2
            ):
                raise ValueError(f"CalibratedConfig.symbols must be distinct names (pair: two), got "
                                 f"{list(self.symbols)}")
            object.__setattr__(self, "n_symbols", len(self.symbols))
        for name in ("n_symbols", "n_days", "volatility", "initial_price", "daily_volume"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CalibratedConfig.{name} must be positive, got {getattr(self, name)!r}")
        assert self.snr is not None
        if not self.snr >= 0:
            raise ValueError(f"CalibratedConfig.snr must be >= 0, got {self.snr!r}")
        if self.model == "null" and (self.snr != 0 or self.drift != 0):
            raise ValueError("CalibratedConfig: the null market has no signal; snr and drift must be 0")
        if self.model in ("mean_reversion", "pair") and self.drift != 0:
            raise ValueError(f"CalibratedConfig.drift does not apply to {self.model!r} (it reverts to a level)")
        if self.regime_duration < 1:
            raise ValueError(f"CalibratedConfig.regime_duration must be >= 1 day, got {self.regime_duration}")
        if not (self.garch_alpha >= 0 and self.garch_beta >= 0 and self.garch_alpha + self.garch_beta < 1):
            raise ValueError(
                "CalibratedConfig.garch_alpha and garch_beta must be >= 0 with a sum below 1 (a finite "
                f"long-run variance), got {self.garch_alpha} and {self.garch_beta}"
            )

    @property
    def symbol_names(self) -> tuple[str, ...]:
        """The symbols, explicit or ``SYN0 .. SYN{n-1}``."""
        return self.symbols or tuple(f"SYN{i}" for i in range(self.n_symbols))

    @property
    def daily_vol(self) -> float:
        """Standard deviation of one day's log return (or innovation)."""
        return self.volatility / math.sqrt(TRADING_DAYS)

    @property
    def daily_drift(self) -> float:
        """Expected log return per day (garch: ``snr`` times the daily volatility)."""
        if self.model == "garch":
            return float(self.snr) * self.daily_vol / math.sqrt(TRADING_DAYS)
        return self.drift / TRADING_DAYS

    @property
    def phi(self) -> float:
        """momentum: the AR(1) coefficient ``snr / sqrt(1 + snr**2)``."""
        snr = float(self.snr)
        return snr / math.sqrt(1.0 + snr * snr)

    @property
    def reversion(self) -> float:
        """mean_reversion and pair: the OU coefficient ``a = (1 - snr**2) / (1 + snr**2)`` per day."""
        s2 = float(self.snr) ** 2
        return (1.0 - s2) / (1.0 + s2)

    @property
    def transition_matrix(self) -> np.ndarray:
        """hmm: per-day transition probabilities of (bull, bear)."""
        leave = 1.0 / self.regime_duration
        return np.array([[1.0 - leave, leave], [leave, 1.0 - leave]])

    @property
    def regime_means(self) -> np.ndarray:
        """hmm: expected daily log return in (bull, bear)."""
        k = float(self.snr) * self.daily_vol
        return np.array([self.daily_drift + k, self.daily_drift - k])

    @property
    def garch_omega(self) -> float:
        """garch: the constant of the variance recursion that makes ``volatility`` the long-run one."""
        return self.daily_vol**2 * (1.0 - self.garch_alpha - self.garch_beta)


@dataclass(frozen=True)
class CalibratedState:
    """Hidden truth behind a calibrated market, aligned with its bars.

    :param expected_return: ``(T, S)`` the true conditional mean of the next bar's log return given
        the bars up to ``t`` (hmm: given the hidden regime, which no policy sees; pair: of the spread).
    :param variance: ``(T, S)`` the true conditional variance of the next bar's log return given the
        bars up to ``t`` (garch: the variance forecast).
    :param regimes: ``(T, S)`` hmm regime of each bar (0 bull, 1 bear); zeros for other families.
    :param spread: ``(T,)`` pair: the log spread ``log p1 - hedge_ratio log p0 - log c``; else ``None``.
    """

    expected_return: np.ndarray
    variance: np.ndarray
    regimes: np.ndarray
    spread: np.ndarray | None


def generate_calibrated(config: CalibratedConfig | None = None, **overrides: object) -> MarketData:
    """Generate a calibrated market.

    :param config: the parameters; defaults to :class:`CalibratedConfig()`.
    :param overrides: fields of :class:`CalibratedConfig` to replace, e.g. ``model="hmm", seed=3``.
    :return: validated :class:`MarketData`.
    """
    return generate_calibrated_with_state(config, **overrides)[0]


def generate_calibrated_with_state(
    config: CalibratedConfig | None = None, **overrides: object
) -> tuple[MarketData, CalibratedState]:
    """Generate a calibrated market together with its hidden state.

    :param config: the parameters; defaults to :class:`CalibratedConfig()`.
    :param overrides: fields of :class:`CalibratedConfig` to replace.
    :return: the validated market and its :class:`CalibratedState`.
    """
    cfg = _with_overrides(config or CalibratedConfig(), overrides)
    rng = np.random.default_rng(cfg.seed)
    shape = (cfg.n_days, cfg.n_symbols)
    sd = cfg.daily_vol
    z = rng.standard_normal(shape)
    regimes = np.zeros(shape, dtype=np.int64)
    spread = None
    variance = np.full(shape, sd**2)
    if cfg.model == "momentum":
        phi, mu = cfg.phi, cfg.daily_drift
        # Start in the stationary law so the first bar is as predictable as any other.
        start = sd * rng.standard_normal(cfg.n_symbols)
        shocks = sd * math.sqrt(1.0 - phi**2) * z
        dev, _ = lfilter([1.0], [1.0, -phi], shocks, axis=0, zi=(phi * start)[None, :])
        returns = mu + dev
        expected = mu + phi * dev
        variance = np.full(shape, sd**2 * (1.0 - phi**2))
    elif cfg.model in ("mean_reversion", "pair"):
        a = cfg.reversion
        level = _ou(a, sd, z, rng)
        if cfg.model == "mean_reversion":
            log_price = math.log(cfg.initial_price) + level
            returns = np.diff(log_price, axis=0, prepend=math.log(cfg.initial_price))
            expected = -(1.0 - a) * level
        else:
            walk = np.cumsum(sd * rng.standard_normal(cfg.n_days))
            log_p0 = math.log(cfg.initial_price) + walk
            log_p1 = math.log(cfg.initial_price) + cfg.hedge_ratio * walk + level[:, 0]
            log_price = np.column_stack([log_p0, log_p1])
            returns = np.diff(log_price, axis=0, prepend=math.log(cfg.initial_price))
            spread = level[:, 0]
            expected = np.column_stack([np.zeros(cfg.n_days), -(1.0 - a) * spread])
            variance = np.column_stack([np.full(cfg.n_days, sd**2),
                                        np.full(cfg.n_days, (1 + cfg.hedge_ratio**2) * sd**2)])
    elif cfg.model == "hmm":
        regimes = np.column_stack([_two_state_chain(cfg.regime_duration, cfg.n_days, rng)
                                   for _ in range(cfg.n_symbols)])
        means = cfg.regime_means
        returns = means[regimes] + sd * z
        stay = 1.0 - 1.0 / cfg.regime_duration
        # Given today's regime, tomorrow's mean mixes the two regimes by the transition probabilities.
        expected = stay * means[regimes] + (1.0 - stay) * means[1 - regimes]
    elif cfg.model == "garch":
        returns, variance = _garch(cfg, z)
        expected = np.full(shape, cfg.daily_drift)
        bar_variance = np.vstack([np.full((1, cfg.n_symbols), sd**2), variance[:-1]])
    else:
        returns = sd * z
        expected = np.zeros(shape)

    if cfg.model != "garch":
        # Every other family's conditional variance is the same at every bar.
        bar_variance = np.broadcast_to(variance, shape)
    data = _to_bars(cfg, returns, np.sqrt(bar_variance), rng)
    state = CalibratedState(
        expected_return=np.ascontiguousarray(expected),
        variance=np.ascontiguousarray(np.broadcast_to(variance, shape)),
        regimes=regimes,
        spread=spread,
    )
    return data, state


def _with_overrides(config: CalibratedConfig, overrides: dict[str, object]) -> CalibratedConfig:
    known = {f.name for f in fields(CalibratedConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown CalibratedConfig field(s) {unknown}; known: {sorted(known)}")
    if "model" in overrides and "snr" not in overrides:
        # A new family without an explicit snr takes that family's default, not the old family's.
        overrides = {**overrides, "snr": None}
    return replace(config, **overrides) if overrides else config


def _ou(a: float, sd: float, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) deviation ``y[t] = a y[t-1] + sd z[t]`` per column, started in its stationary law."""
    stationary_sd = sd / math.sqrt(max(1.0 - a * a, 1e-12))
    start = stationary_sd * rng.standard_normal(z.shape[1])
    level, _ = lfilter([1.0], [1.0, -a], sd * z, axis=0, zi=(a * start)[None, :])
    return level


def _two_state_chain(duration: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A symmetric two-state Markov chain, one spell at a time (spell lengths are geometric)."""
    labels = np.empty(n, dtype=np.int64)
    state = int(rng.integers(2))
    t = 0
    while t < n:
        spell = int(rng.geometric(1.0 / duration))
        labels[t:t + spell] = state
        t += spell
        state = 1 - state
    return labels


def _garch(cfg: CalibratedConfig, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) returns and each bar's variance forecast for the next bar.

    :return: returns ``(T, S)`` and ``forecast[t]``, the variance of ``returns[t + 1]`` known at ``t``.
    """
    h0 = cfg.daily_vol**2
    returns, forecast = _garch_path(z, cfg.garch_omega, cfg.garch_alpha, cfg.garch_beta, h0, cfg.daily_drift)
    return returns, forecast


@numba.njit(cache=True)
def _garch_path(
    z: np.ndarray, omega: float, alpha: float, beta: float, h0: float, mu: float
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n, s = z.shape
    returns = np.empty((n, s))
    forecast = np.empty((n, s))
    for j in range(s):
        h = h0
        for t in range(n):
            e = np.sqrt(h) * z[t, j]
            returns[t, j] = mu + e
            h = omega + alpha * e * e + beta * h
            forecast[t, j] = h
    return returns, forecast


def garch_forecast(returns: np.ndarray, cfg: CalibratedConfig) -> np.ndarray:
    """The GARCH variance forecast of the next bar from observed log returns, with the true parameters.

    ``h[t+1] = omega + alpha (r[t] - mu)**2 + beta h[t]`` from ``h[0]`` the long-run variance (where the
    generator starts), a linear filter of the squared surprises.

    :param returns: ``(T, S)`` log returns, row 0 the first bar's.
    :param cfg: the market's parameters.
    :return: ``(T, S)``, row ``t`` the forecast of bar ``t + 1``'s variance.
    """
    surprise2 = (np.asarray(returns, dtype=np.float64) - cfg.daily_drift) ** 2
    h0 = cfg.daily_vol**2
    drive = cfg.garch_omega + cfg.garch_alpha * surprise2
    out, _ = lfilter([1.0], [1.0, -cfg.garch_beta], drive, axis=0,
                     zi=np.full((1, surprise2.shape[1]), cfg.garch_beta * h0))
    return out


def hamilton_filter(returns: np.ndarray, cfg: CalibratedConfig) -> np.ndarray:
    """Probability of the bull regime at the next bar given the log returns up to each bar.

    The Hamilton filter with the true means, volatility and transition matrix, started from the
    stationary law (one half each), one column per symbol.

    :param returns: ``(T, S)`` log returns, row 0 the first bar's.
    :param cfg: the market's parameters (``model="hmm"``).
    :return: ``(T, S)`` predicted ``P(bull at t + 1 | r[0..t])``.
    """
    means = cfg.regime_means
    return _hamilton(np.asarray(returns, dtype=np.float64), float(means[0]), float(means[1]),
                     cfg.daily_vol, 1.0 - 1.0 / cfg.regime_duration)


@numba.njit(cache=True)
def _hamilton(
    returns: np.ndarray, mu_bull: float, mu_bear: float, sd: float, stay: float
) -> np.ndarray:  # pragma: no cover - compiled
    n, s = returns.shape
    out = np.empty((n, s))
    inv = 0.5 / (sd * sd)
    for j in range(s):
        prior = 0.5
        for t in range(n):
            r = returns[t, j]
            if np.isnan(r):
                post = prior
            else:
                # Likelihood ratio of the two Gaussians; the common factor cancels.
                lb = np.exp(-(r - mu_bull) ** 2 * inv)
                lr = np.exp(-(r - mu_bear) ** 2 * inv)
                post = prior * lb / (prior * lb + (1.0 - prior) * lr)
            prior = stay * post + (1.0 - stay) * (1.0 - post)
            out[t, j] = prior
    return out


def _to_bars(cfg: CalibratedConfig, returns: np.ndarray, bar_sd: np.ndarray,
             rng: np.random.Generator) -> MarketData:
    """OHLCV from daily log returns: open at the previous close, the bridge's high and low, volume."""
    shape_cfg = SyntheticConfig(n_symbols=cfg.n_symbols, symbols=cfg.symbol_names, n_days=cfg.n_days,
                                start=cfg.start, freq="1D", overnight_variance=0.0,
                                daily_volume=cfg.daily_volume, cointegrated_pair=False)
    calendar = _Calendar.build(shape_cfg)
    log_p0 = np.full(cfg.n_symbols, math.log(cfg.initial_price))
    gap = np.zeros_like(returns)
    values = _bars(log_p0, gap, returns, bar_sd, rng)
    log_volume0 = np.log(cfg.daily_volume) + 0.5 * rng.standard_normal(cfg.n_symbols)
    sigma = bar_sd * math.sqrt(TRADING_DAYS)
    values[:, :, FIELDS.index("volume")] = _volume(shape_cfg, calendar, returns, sigma, log_volume0, rng)
    # Weekday sessions like the synthetic market's, annualised as the NYSE's 252 a year.
    return validate(MarketData(values, calendar.index, cfg.symbol_names, ("XNYS",) * cfg.n_symbols))
