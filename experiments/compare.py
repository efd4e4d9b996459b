"""The fair-comparison rows under a backtest table: intervals, significance, a volatility-matched view and
how often each risk rule stepped in.

- **intervals**: stationary-bootstrap 95% intervals of Sharpe, total return and max drawdown
  (:func:`experiments.significance.bootstrap_intervals`).
- **PSR vs buy & hold**: the probability that the policy's true Sharpe ratio beats the benchmark's
  observed one (buy-and-hold under the same rules).
- **DSR**: the Deflated Sharpe Ratio over the configurations compared (each column is one trial, plus
  the trials a run recorded, e.g. tuning trials and seeds), with the variance of their Sharpe ratios.
- **return @ benchmark vol**: the annualised return of the policy's returns scaled by the ratio of the
  benchmark's volatility to its own, so a policy holding 10% of equity and one holding 100% compare on
  skill rather than on size.
- **risk: <rule>**: the number of interventions of each risk rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as st

from envs.sim.metrics import simple_returns
from experiments.engine import BacktestResult
from experiments.significance import (
    bootstrap_intervals,
    deflated_sharpe_ratio,
    psr_of_returns,
    sharpe_per_bar,
)

RISK_RULES: tuple[str, ...] = (
    "max_drawdown", "stop_loss", "max_position", "max_correlation", "max_positions", "max_heat",
)


def vol_matched_return(returns: np.ndarray, benchmark: np.ndarray, periods_per_year: float) -> float:
    """Annualised compound return of ``returns`` scaled to the benchmark's volatility.

    :param returns: the policy's per-bar returns.
    :param benchmark: the benchmark's per-bar returns on the same bars.
    :param periods_per_year: bars per year.
    """
    sd, sd_b = np.std(returns, ddof=1), np.std(benchmark, ddof=1)
    if len(returns) < 2 or not sd > 0 or not sd_b > 0:
        return float("nan")
    wealth = float(np.prod(1.0 + returns * (sd_b / sd)))
    return wealth ** (periods_per_year / len(returns)) - 1.0 if wealth > 0 else -1.0


def risk_counts(result: BacktestResult) -> dict[str, int]:
    """Interventions per risk rule in one run.

    :param result: the run.
    """
    rules = result.risk_events["rule"].value_counts() if len(result.risk_events) else {}
    return {rule: int(rules.get(rule, 0)) for rule in RISK_RULES}


def comparison_rows(
    results: Sequence[BacktestResult],
    benchmark: BacktestResult,
    periods_per_year: float,
    n_samples: int = 1000,
    seed: int = 0,
    extra_trials: int = 0,
) -> list[tuple[str, list[str]]]:
    """Rows (label, one cell per result) for the comparison table.

    :param results: the compared runs (the table's columns).
    :param benchmark: buy-and-hold under the same rules, the yardstick of PSR and the volatility match.
    :param periods_per_year: bars per year.
    :param n_samples: bootstrap resamples.
    :param seed: seed of the bootstrap.
    :param extra_trials: configurations tried beyond the columns (tuning trials, seeds), for the DSR.
    """
    bench = simple_returns(benchmark.equity.to_numpy())
    bench_sharpe = sharpe_per_bar(bench)
    returns = [simple_returns(r.equity.to_numpy()) for r in results]
    intervals = [bootstrap_intervals(r, periods_per_year, n_samples, seed=seed) for r in returns]
    sharpes = np.array([sharpe_per_bar(r) for r in returns])
    finite = sharpes[np.isfinite(sharpes)]
    n_trials = len(results) + extra_trials
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0

    def ci(key: str, pct: bool) -> list[str]:
        fmt = "{:.1%}" if pct else "{:.2f}"
        return [
            "n/a" if not np.isfinite(i[key].low) else f"[{fmt.format(i[key].low)}, {fmt.format(i[key].high)}]"
            for i in intervals
        ]

    def dsr(r: np.ndarray, sr: float) -> str:
        if len(r) < 3 or not np.isfinite(sr):
            return "n/a"
        value = deflated_sharpe_ratio(
            sr, len(r), max(n_trials, 1), variance, float(st.skew(r)), float(st.kurtosis(r, fisher=False))
        )
        return "n/a" if not np.isfinite(value) else f"{value:.2f}"

    rows: list[tuple[str, list[str]]] = [
        ("sharpe 95% CI", ci("sharpe", False)),
        ("return 95% CI", ci("total_return", True)),
        ("max DD 95% CI", ci("max_drawdown", True)),
        ("PSR vs buy & hold", [_prob(psr_of_returns(r, bench_sharpe)) for r in returns]),
        (f"DSR ({n_trials} trials)", [dsr(r, sr) for r, sr in zip(returns, sharpes)]),
        ("return @ benchmark vol", [_pct(vol_matched_return(r, bench, periods_per_year)) for r in returns]),
    ]
    counts = [risk_counts(r) for r in results]
    for rule in RISK_RULES:
        if any(c[rule] for c in counts):
            rows.append((f"risk: {rule}", [str(c[rule]) for c in counts]))
    return rows


def _prob(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.1%}"
