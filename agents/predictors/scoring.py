"""Out-of-sample forecast quality per horizon: accuracy, log loss and the information coefficient.

The information coefficient (IC) is Spearman's rank correlation between the predicted up-probability and
the realised forward return, pooled over every scored ``(bar, symbol)``: it rewards ranking the returns
right even when the probabilities are badly calibrated. ``base_rate`` is the share of up moves, so an
accuracy can be read against always guessing the majority.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import log_loss

METRICS: tuple[str, ...] = ("accuracy", "log_loss", "ic", "base_rate", "n")


def score(probabilities: np.ndarray, returns: np.ndarray, horizons: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Metrics per horizon, keyed ``"h1"``, ``"h5"``, ...; samples where either input is NaN are skipped.

    :param probabilities: ``(..., H)`` predicted up-probabilities.
    :param returns: ``(..., H)`` realised forward log returns, same shape.
    :param horizons: the horizons ``H``, for the keys.
    """
    if probabilities.shape != returns.shape or probabilities.shape[-1] != len(horizons):
        raise ValueError(
            f"probabilities {probabilities.shape} and returns {returns.shape} must match, "
            f"with {len(horizons)} horizons last"
        )
    p = probabilities.reshape(-1, len(horizons))
    r = returns.reshape(-1, len(horizons))
    out = {}
    for k, h in enumerate(horizons):
        ok = np.isfinite(p[:, k]) & np.isfinite(r[:, k])
        pk, rk = p[ok, k], r[ok, k]
        up = (rk > 0).astype(np.int64)
        metrics = {name: float("nan") for name in METRICS}
        metrics["n"] = float(ok.sum())
        if ok.sum() >= 2:
            metrics["accuracy"] = float(np.mean((pk > 0.5) == up))
            metrics["log_loss"] = float(log_loss(up, np.clip(pk, 1e-6, 1 - 1e-6), labels=[0, 1]))
            metrics["base_rate"] = float(up.mean())
            if np.ptp(pk) > 0 and np.ptp(rk) > 0:
                metrics["ic"] = float(spearmanr(pk, rk).statistic)
        out[f"h{h}"] = metrics
    return out


THRESHOLDS: tuple[float, ...] = (0.51, 0.53, 0.55, 0.6, 0.65)
"""Up-probability thresholds :func:`choose_rule` tries."""


def rule_sharpe(
    probabilities: np.ndarray, next_returns: np.ndarray, threshold: float, allow_short: bool, commission: float
) -> float:
    """Per-bar Sharpe ratio, net of commission, of trading one horizon's forecasts bar by bar.

    The position after bar ``t`` is long where the up-probability is above ``threshold``, short (or flat)
    where it is below ``1 - threshold`` and flat between, equally weighted over the symbols, held for one
    bar; NaN forecasts (outside the test windows) are flat.

    :param probabilities: ``(T, S)`` up-probabilities of one horizon.
    :param next_returns: ``(T, S)`` the one-bar log return each decision earns (the horizon-1 label).
    :param threshold: the up-probability to go long, in ``(0.5, 1)``.
    :param allow_short: go short below ``1 - threshold`` instead of flat.
    :param commission: cost per unit of weight traded.
    """
    p = np.nan_to_num(probabilities, nan=0.5)
    low = -1.0 if allow_short else 0.0
    side = np.where(p > threshold, 1.0, np.where(p < 1.0 - threshold, low, 0.0)) / p.shape[1]
    known = np.isfinite(next_returns).all(axis=1) & np.isfinite(probabilities).any(axis=1)
    gross = (side * np.expm1(np.nan_to_num(next_returns))).sum(axis=1)
    traded = np.abs(np.diff(side, axis=0, prepend=0.0)).sum(axis=1)
    pnl = (gross - commission * traded)[known]
    if pnl.size < 2 or pnl.std() == 0:
        return 0.0
    return float(pnl.mean() / pnl.std())


def choose_rule(
    probabilities: np.ndarray,
    next_returns: np.ndarray,
    horizons: tuple[int, ...],
    allow_short: bool,
    commission: float,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> tuple[int, float, float]:
    """The horizon and threshold whose out-of-sample forecasts traded best, net of commission.

    Meant for walk-forward forecasts on the training data: it picks the trading rule from the test
    windows of the folds, which every model saw only after it was fitted.

    :param probabilities: ``(T, S, H)`` out-of-sample up-probabilities, NaN outside the test windows.
    :param next_returns: ``(T, S)`` one-bar log return each decision earns.
    :param horizons: the horizons ``H``.
    :param allow_short: whether the policy may go short.
    :param commission: cost per unit of weight traded.
    :param thresholds: candidate up-probability thresholds.
    :return: ``(horizon, threshold, per-bar Sharpe ratio)``.
    """
    best = (horizons[-1], thresholds[-1], -np.inf)
    for k, horizon in enumerate(horizons):
        for threshold in thresholds:
            sharpe = rule_sharpe(probabilities[..., k], next_returns, threshold, allow_short, commission)
            if sharpe > best[2]:
                best = (horizon, threshold, sharpe)
    return best
