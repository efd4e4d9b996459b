"""PSR, DSR and the stationary bootstrap against the papers' worked example and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from experiments.compare import vol_matched_return
from experiments.significance import (
    bootstrap_intervals,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    psr_of_returns,
    stationary_bootstrap,
)


def test_deflated_sharpe_ratio_reproduces_the_papers_worked_example():
    """Bailey and López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: an annualised
    Sharpe ratio of 2.5 over 1,250 daily returns, picked from N=100 trials whose annualised Sharpe ratios
    vary with variance 1/2, returns with skewness -3 and kurtosis 10: SR0 = 0.1132 per day, DSR = 0.9004."""
    sharpe, variance = 2.5 / np.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sharpe, 1250, 100, variance, skew=-3, kurtosis=10) == pytest.approx(0.9004, abs=5e-5)


def test_psr_closed_forms():
    # Normal returns: the variance term is 1 + SR^2 / 2 (Lo 2002's asymptotic variance of the Sharpe ratio).
    sr, n = 0.1, 500
    expected = st.norm.cdf(sr * np.sqrt(n - 1) / np.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(expected, rel=1e-12)
    # Beating itself is a coin flip; negative skew and fat tails make a positive Sharpe ratio less sure.
    assert probabilistic_sharpe_ratio(sr, n, benchmark=sr) == 0.5
    assert probabilistic_sharpe_ratio(sr, n, skew=-2, kurtosis=9) < probabilistic_sharpe_ratio(sr, n)
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_psr_is_calibrated_on_skill_less_returns():
    """With a true Sharpe ratio of 0, PSR(0) is uniform: about 5% of samples exceed 0.95."""
    rng = np.random.default_rng(0)
    values = np.array([psr_of_returns(rng.normal(0, 0.01, 250)) for _ in range(2000)])
    assert np.mean(values > 0.95) == pytest.approx(0.05, abs=0.015)


def test_stationary_bootstrap_blocks_have_geometric_length():
    idx = stationary_bootstrap(2000, 50, block=10.0, rng=np.random.default_rng(1))
    assert idx.shape == (50, 2000) and idx.min() >= 0 and idx.max() < 2000
    continues = np.diff(idx, axis=1) % 2000 == 1
    # A block continues with probability 1 - 1/block (plus the rare jump onto the next bar).
    assert continues.mean() == pytest.approx(0.9 + 0.1 / 2000, abs=0.01)
    assert (stationary_bootstrap(5, 3, 1.0, np.random.default_rng(2)) < 5).all()
    with pytest.raises(ValueError, match="block"):
        stationary_bootstrap(5, 3, 0.5, np.random.default_rng(2))


def test_bootstrap_interval_covers_the_true_sharpe_ratio():
    """Coverage of the 95% interval of the annualised Sharpe ratio on i.i.d. normal returns (true 1.0)."""
    rng = np.random.default_rng(3)
    true = 1.0
    hits = 0
    for k in range(60):
        r = rng.normal(true * 0.01 / np.sqrt(252), 0.01, 1000)  # mean / sd * sqrt(252) = true
        ci = bootstrap_intervals(r, 252, n_samples=400, seed=k)["sharpe"]
        hits += ci.low <= true <= ci.high
    assert hits / 60 > 0.85
    out = bootstrap_intervals(np.array([0.01, -0.02, 0.03, 0.0]), 252, n_samples=50)
    assert out["max_drawdown"].estimate == pytest.approx(-0.02) and out["total_return"].low <= out["total_return"].high


def test_volatility_matched_return_ignores_position_size():
    rng = np.random.default_rng(4)
    bench = rng.normal(0.0004, 0.01, 500)
    policy = rng.normal(0.0005, 0.01, 500)
    assert vol_matched_return(policy * 0.1, bench, 252) == pytest.approx(vol_matched_return(policy, bench, 252))
