"""Stacking: a logistic regression per horizon on the members' out-of-sample probabilities.

The meta-model must learn from member forecasts made on data the members were not fitted on, otherwise it
learns to trust whichever member overfits most. :meth:`StackingPredictor.fit` therefore splits the train
samples in time: members are fitted on the earlier part with every label that reads bars of the later part
dropped (the same purge as between walk-forward windows), they forecast the later part, and the meta-model
is fitted on those forecasts. The members are then refitted on all train samples for use.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.special import expit, logit

from agents.predictors.base import Predictor, check_fit_inputs, time_split


class StackingPredictor(Predictor):
    """A meta-learned blend of several predictors.

    :param members: unfitted member predictors (same horizons).
    :param horizons: forecast horizons in bars.
    :param seed: seed of the meta-model.
    :param holdout: fraction of the train bars (the latest) on which the meta-model is fitted.
    :param meta_c: inverse L2 regularisation strength of the logistic regressions.
    """

    def __init__(
        self, members: list[Predictor], horizons: tuple[int, ...], seed: int = 0, holdout: float = 0.3,
        meta_c: float = 1.0,
    ) -> None:
        super().__init__(horizons, seed)
        if len(members) < 2:
            raise ValueError(f"ensemble needs at least two members, got {len(members)}")
        mismatched = [type(m).__name__ for m in members if m.horizons != self.horizons]
        if mismatched:
            raise ValueError(f"ensemble members {mismatched} have other horizons than {self.horizons}")
        if not 0.05 <= holdout <= 0.5:
            raise ValueError(f"ensemble.holdout must be in [0.05, 0.5], got {holdout}")
        self.members = members
        self.window = max(m.window for m in members)
        self.holdout = float(holdout)
        self.meta_c = float(meta_c)
        self.fitted: list[Predictor] = []
        self._meta: list = []

    def _member_logits(self, members: list[Predictor], cube: np.ndarray, rows: np.ndarray) -> np.ndarray:
        probs = np.stack([m.predict_proba(cube, rows) for m in members], axis=-1)  # (N, H, M)
        return logit(np.clip(probs, 1e-4, 1 - 1e-4))

    def fit(self, cube: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> "StackingPredictor":
        from sklearn.linear_model import LogisticRegression

        check_fit_inputs(cube, rows, labels, self.horizons)
        early, late, purged = time_split(rows, labels, self.horizons, self.holdout)
        inner = [copy.deepcopy(m).fit(cube, rows[early], purged[early]) for m in self.members]
        x = self._member_logits(inner, cube, rows[late])
        self._meta = []
        for k in range(len(self.horizons)):
            known = np.isfinite(labels[late, k])
            y = labels[late, k][known]
            if len(y) == 0 or y.min() == y.max():
                self._meta.append(None)  # nothing to learn a blend from: average the members
                continue
            meta = LogisticRegression(C=self.meta_c, random_state=self.seed)
            self._meta.append(meta.fit(x[known, k], y.astype(np.int64)))
        self.fitted = [copy.deepcopy(m).fit(cube, rows, labels) for m in self.members]
        return self

    def predict_proba(self, cube: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("ensemble: call fit() before predict_proba()")
        x = self._member_logits(self.fitted, cube, rows)
        out = np.empty((len(rows), len(self.horizons)))
        for k, meta in enumerate(self._meta):
            out[:, k] = expit(x[:, k].mean(axis=-1)) if meta is None else meta.predict_proba(x[:, k])[:, 1]
        return out

    @property
    def meta_weights(self) -> np.ndarray:
        """``(H, M)`` logistic weights of each member's logit per horizon (NaN where members are averaged)."""
        return np.array([
            np.full(len(self.members), np.nan) if meta is None else meta.coef_[0] for meta in self._meta
        ])
