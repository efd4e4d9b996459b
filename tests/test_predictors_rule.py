"""Choosing a predictor's trading rule (horizon, threshold) from its out-of-sample walk-forward forecasts."""

from __future__ import annotations

import numpy as np

from agents.predictors.scoring import choose_rule, rule_sharpe


def test_choose_rule_picks_the_horizon_whose_forecasts_earn() -> None:
    rng = np.random.default_rng(0)
    returns = 0.01 * rng.standard_normal((3000, 2))
    informative = 0.5 + 0.2 * np.tanh(returns / 0.01 + rng.standard_normal(returns.shape))
    noise = rng.uniform(0.3, 0.7, size=returns.shape)
    probabilities = np.stack([noise, informative, noise], axis=-1)
    probabilities[:500] = np.nan  # before the first test window
    horizon, threshold, sharpe = choose_rule(probabilities, returns, (1, 5, 20), allow_short=True,
                                             commission=0.0)
    assert horizon == 5 and 0.5 < threshold < 1 and sharpe > 0.3
    assert sharpe == rule_sharpe(probabilities[..., 1], returns, threshold, True, 0.0)


def test_costs_push_towards_a_stricter_threshold_and_flat_forecasts_never_trade() -> None:
    rng = np.random.default_rng(1)
    returns = 0.01 * rng.standard_normal((4000, 1))
    probabilities = (0.5 + 0.1 * np.tanh(returns / 0.01 + 2 * rng.standard_normal(returns.shape)))[..., None]
    free = choose_rule(probabilities, returns, (1,), allow_short=False, commission=0.0)
    costly = choose_rule(probabilities, returns, (1,), allow_short=False, commission=0.002)
    assert costly[1] >= free[1] and costly[2] < free[2]
    assert rule_sharpe(np.full((100, 1), 0.5), returns[:100], 0.55, True, 0.001) == 0.0
