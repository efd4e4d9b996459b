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
