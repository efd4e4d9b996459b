"""Statistics a quant trusts: bootstrap intervals, the Probabilistic and the Deflated Sharpe Ratio.

- :func:`stationary_bootstrap`: Politis and Romano (1994), "The Stationary Bootstrap", JASA 89(428).
  Resamples a return series in blocks of geometric length (mean ``block``), wrapping around the end, so
  the resampled series is stationary and keeps the serial dependence (volatility clusters) that an
  i.i.d. bootstrap destroys. :func:`bootstrap_intervals` gives percentile intervals for the Sharpe ratio,
  the total return and the maximum drawdown.
- :func:`probabilistic_sharpe_ratio`: Bailey and López de Prado (2012), "The Sharpe Ratio Efficient
  Frontier", Journal of Risk 15(2): the probability that the true Sharpe ratio exceeds a benchmark one,
  given the track record's length, skewness and kurtosis,
  ``PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` on per-bar ratios.
- :func:`deflated_sharpe_ratio`: Bailey and López de Prado (2014), "The Deflated Sharpe Ratio", Journal of
  Portfolio Management 40(5): the PSR against the Sharpe ratio the best of ``n_trials`` skill-less
  configurations would show by luck, :func:`expected_max_sharpe`.

All Sharpe ratios here are per bar (not annualised), as in the papers' formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as st

EULER_GAMMA = 0.5772156649015329


def sharpe_per_bar(returns: np.ndarray) -> float:
    """Mean over standard deviation (ddof=1) of per-bar returns; NaN for a flat or too short series.

    :param returns: simple returns per bar.
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else float("nan")


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds ``benchmark`` (Bailey and López de Prado).

    :param sharpe: observed per-bar Sharpe ratio.
    :param n: number of returns.
    :param skew: skewness of the returns.
    :param kurtosis: kurtosis of the returns (3 for a normal distribution; not the excess).
    :param benchmark: the per-bar Sharpe ratio to beat (e.g. buy-and-hold's, or :func:`expected_max_sharpe`).
    """
    if n < 2 or not np.isfinite(sharpe):
        return float("nan")
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not variance > 0:
        return float("nan")
    return float(st.norm.cdf((sharpe - benchmark) * np.sqrt(n - 1) / np.sqrt(variance)))


def psr_of_returns(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """:func:`probabilistic_sharpe_ratio` of a return series, its moments measured from it.

    :param returns: per-bar returns.
    :param benchmark: per-bar Sharpe ratio to beat.
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 3 or not r.std() > 0:
        return float("nan")
    return probabilistic_sharpe_ratio(
        sharpe_per_bar(r), len(r), float(st.skew(r)), float(st.kurtosis(r, fisher=False)), benchmark
    )


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """The expected largest per-bar Sharpe ratio among ``n_trials`` configurations with no skill.

    ``sqrt(V) ((1 - gamma) Z^-1(1 - 1/N) + gamma Z^-1(1 - 1/(N e)))``, gamma the Euler-Mascheroni constant.

    :param n_trials: number of configurations tried (tuning trials times seeds).
    :param sharpe_variance: variance of the per-bar Sharpe ratios across the trials.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    z = (1 - EULER_GAMMA) * st.norm.ppf(1 - 1 / n_trials) + EULER_GAMMA * st.norm.ppf(1 - 1 / (n_trials * np.e))
    return float(np.sqrt(sharpe_variance) * z)


def deflated_sharpe_ratio(
    sharpe: float, n: int, n_trials: int, sharpe_variance: float, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """The PSR against the best Sharpe ratio luck alone gives over ``n_trials`` configurations.

    :param sharpe: observed per-bar Sharpe ratio of the chosen configuration.
    :param n: number of returns.
    :param n_trials: number of configurations tried.
    :param sharpe_variance: variance of the per-bar Sharpe ratios across the trials.
    :param skew: skewness of the chosen configuration's returns.
    :param kurtosis: kurtosis (not the excess) of its returns.
    """
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, expected_max_sharpe(n_trials, sharpe_variance))


def stationary_bootstrap(n: int, n_samples: int, block: float, rng: np.random.Generator) -> np.ndarray:
    """Index arrays of the stationary bootstrap (Politis and Romano): ``(n_samples, n)``.

    Each resample starts at a uniform random bar; at every step it moves on to the next bar (wrapping
    around) with probability ``1 - 1/block`` or jumps to a new uniform random bar, so blocks have a
    geometric length of mean ``block``.

    :param n: length of the series.
    :param n_samples: number of resampled series.
    :param block: mean block length in bars (>= 1; 1 is the i.i.d. bootstrap).
    :param rng: the random generator.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    jumps = rng.random((n_samples, n)) < 1.0 / block
    jumps[:, 0] = True
    starts = rng.integers(0, n, size=(n_samples, n))
    # Position within the current block: steps since the last jump.
    step = np.arange(n)
    last_jump = np.maximum.accumulate(np.where(jumps, step, 0), axis=1)
    anchor = np.take_along_axis(starts, last_jump, axis=1)
    return (anchor + step - last_jump) % n


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval.

    :param estimate: the statistic of the observed series.
    :param low: lower bound.
    :param high: upper bound.
    """

    estimate: float
    low: float
    high: float


def bootstrap_intervals(
    returns: np.ndarray,
    periods_per_year: float,
    n_samples: int = 1000,
    block: float | None = None,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Stationary-bootstrap percentile intervals of the annualised Sharpe ratio, the total return and the
    maximum drawdown of a return series.

    :param returns: per-bar simple returns.
    :param periods_per_year: bars per year, to annualise the Sharpe ratio.
    :param n_samples: resampled series.
    :param block: mean block length; default ``n ** (1/3)`` (the usual rate for variance-type statistics).
    :param level: the interval's coverage.
    :param seed: seed of the resampling.
    """
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if n < 3:
        nan = Interval(float("nan"), float("nan"), float("nan"))
        return {"sharpe": nan, "total_return": nan, "max_drawdown": nan}
    block = block if block is not None else max(1.0, n ** (1 / 3))
    samples = r[stationary_bootstrap(n, n_samples, block, np.random.default_rng(seed))]
    observed = {k: float(v[0]) for k, v in _path_stats(r[None, :], periods_per_year).items()}
    resampled = _path_stats(samples, periods_per_year)
    tail = (1 - level) / 2 * 100
    out = {}
    for key, values in resampled.items():
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
        out[key] = Interval(observed[key], float(low), float(high))
    return out


def _path_stats(paths: np.ndarray, periods_per_year: float) -> dict[str, np.ndarray]:
    """Annualised Sharpe, total return and max drawdown (negative) of each row of returns."""
    sd = paths.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 0, paths.mean(axis=1) / sd * np.sqrt(periods_per_year), np.nan)
    wealth = np.cumprod(1.0 + paths, axis=1)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0), axis=1)
    return {"sharpe": sharpe, "total_return": wealth[:, -1] - 1.0, "max_drawdown": (wealth / peak - 1.0).min(axis=1)}
