"""Regime detector: a Gaussian hidden Markov (or mixture) model on trailing return and volatility.

Each bar of each symbol is described by two causal, scale-free inputs over the last ``window`` bars:
the trend t-statistic (mean log return over its standard error) and the log realised volatility relative
to its expanding mean. Being scale free, they mean the same for a calm and a wild stock, so one detector
serves a whole universe and gives a symbol the same states whether it is traded alone or in a basket.
A :class:`hmmlearn.hmm.GaussianHMM` (or a :class:`sklearn.mixture.GaussianMixture`) is fitted on the
bars of a train window, pooled over symbols, and states are numbered by their volatility, calm first, so
that state ``k`` means the same thing after every refit.

The state probabilities are *filtered*: ``P(state_t | inputs_0..t)`` from the forward recursion alone.
hmmlearn's own ``predict_proba`` runs forward-backward, whose probability at ``t`` depends on later bars,
so it would leak the future into a feature; the forward pass is therefore done here. A mixture model has
no dynamics and its per-bar posterior is causal as it is.

The probabilities are appended to the features (``regime_0`` ... ``regime_{K-1}``) and their argmax picks
the model in a regime-switching pipeline (see :mod:`agents.predictors.pipeline`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from envs.features.indicators import log_returns, realized_vol, rolling_mean

logger = logging.getLogger(__name__)

RegimeMethod = Literal["hmm", "gmm"]
REGIME_METHODS: tuple[str, ...] = ("hmm", "gmm")


def regime_inputs(close: np.ndarray, window: int = 20) -> np.ndarray:
    """Causal detector inputs ``(T, S, 2)``: trend t-statistic and relative log volatility.

    Both are NaN until ``2 * window`` bars are in (the volatility's expanding mean needs ``window``
    values of its own).

    :param close: ``(T, S)`` closes.
    :param window: trailing bars of each statistic.
    """
    vol = np.maximum(realized_vol(close, window), 1e-12)
    trend = rolling_mean(log_returns(close), window) / vol * np.sqrt(window)
    log_vol = np.log(vol)
    relative = log_vol - pd.DataFrame(log_vol).expanding(min_periods=window).mean().to_numpy()
    return np.stack([trend, relative], axis=-1)


@dataclass(frozen=True)
class RegimeConfig:
    """How regimes are detected.

    :param n_states: number of hidden states.
    :param method: ``"hmm"`` (Gaussian HMM, filtered) or ``"gmm"`` (Gaussian mixture, per bar).
    :param window: trailing bars of the return and volatility inputs.
    :param n_iter: EM iterations (each one is a full forward-backward pass over the train bars).
    """

    n_states: int = 3
    method: RegimeMethod = "hmm"
    window: int = 20
    n_iter: int = 25

    def __post_init__(self) -> None:
        if self.n_states < 2:
            raise ValueError(f"regime.n_states must be at least 2, got {self.n_states}")
        if self.method not in REGIME_METHODS:
            raise ValueError(f"regime.method must be one of {REGIME_METHODS}, got {self.method!r}")
        if self.window < 2:
            raise ValueError(f"regime.window must be at least 2, got {self.window}")
        if self.n_iter < 1:
            raise ValueError(f"regime.n_iter must be at least 1, got {self.n_iter}")


class RegimeDetector:
    """Fits hidden states on a train window and gives causal state probabilities for any bars.

    :param config: detector settings.
    :param seed: seed of the EM initialisation.
    """

    def __init__(self, config: RegimeConfig | None = None, seed: int = 0) -> None:
        self.config = config or RegimeConfig()
        self.seed = seed
        self._center: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._means: np.ndarray | None = None
        self._covars: np.ndarray | None = None
        self._start: np.ndarray | None = None
        self._transition: np.ndarray | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names of the state probabilities, calm state first."""
        return tuple(f"regime_{k}" for k in range(self.config.n_states))

    def fit(self, inputs: np.ndarray, stop: int) -> "RegimeDetector":
        """Fit on bars before ``stop`` of every symbol.

        :param inputs: ``(T, S, 2)`` from :func:`regime_inputs`.
        :param stop: exclusive end of the train window.
        """
        train = inputs[:stop]
        finite = np.isfinite(train).all(axis=-1)  # (t, S)
        if finite.sum() < 10 * self.config.n_states:
            raise ValueError(
                f"regime detector: {int(finite.sum())} usable bars before bar {stop}; need at least "
                f"{10 * self.config.n_states} for {self.config.n_states} states"
            )
        rows = train[finite]
        self._center, self._scale = rows.mean(axis=0), rows.std(axis=0) + 1e-12
        # One sequence per symbol, each a contiguous block of finite bars (NaN only leads).
        sequences = [self._standardise(train[finite[:, s], s]) for s in range(train.shape[1])]
        sequences = [x for x in sequences if len(x)]
        x = np.concatenate(sequences)
        if self.config.method == "hmm":
            from hmmlearn.hmm import GaussianHMM

            model = GaussianHMM(
                self.config.n_states, covariance_type="diag", n_iter=self.config.n_iter,
                random_state=self.seed, init_params="",
            )
            self._initialise(model, x)
            model.fit(x, lengths=[len(s) for s in sequences])
            means, covars = model.means_, model.covars_
            start, transition = model.startprob_, model.transmat_
        else:
            from sklearn.mixture import GaussianMixture

            model = GaussianMixture(
                self.config.n_states, covariance_type="full", max_iter=self.config.n_iter,
                random_state=self.seed,
            )
            model.fit(x)
            means, covars = model.means_, model.covariances_
            start, transition = model.weights_, None
        order = np.argsort(means[:, 1])  # calm (low volatility) first
        self._means, self._covars, self._start = means[order], covars[order], start[order]
        self._transition = None if transition is None else transition[np.ix_(order, order)]
        logger.debug("regime detector: fitted %d states on %d bars", self.config.n_states, len(x))
        return self

    def _initialise(self, model: object, x: np.ndarray) -> None:
        """Start EM from ``n_states`` equal-count volatility bands, persistent states and a uniform start.

        hmmlearn's default start (k-means means, the pooled covariance for every state, random
        transitions) gives every state the same broad emission, and on these smooth, autocorrelated
        inputs EM then collapses all states onto one Gaussian (a worse fit than a plain mixture). Band
        means and variances keep the states apart from the first step, and this start is deterministic.
        """
        k = self.config.n_states
        bands = np.array_split(np.argsort(x[:, 1], kind="stable"), k)
        stay = 0.95
        model.startprob_ = np.full(k, 1.0 / k)
        model.transmat_ = np.full((k, k), (1.0 - stay) / (k - 1)) + np.eye(k) * (stay - (1.0 - stay) / (k - 1))
        model.means_ = np.stack([x[band].mean(axis=0) for band in bands])
        model.covars_ = np.stack([x[band].var(axis=0) + 1e-3 for band in bands])

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self._center) / self._scale

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Filtered state probabilities ``(T, S, K)`` (float32); NaN where the inputs are not defined.

        Row ``t`` uses inputs ``<= t`` only.

        :param inputs: ``(T, S, 2)`` from :func:`regime_inputs`.
        """
        if self._means is None:
            raise RuntimeError("regime detector: call fit() before probabilities()")
        finite = np.isfinite(inputs).all(axis=-1)
        x = self._standardise(np.where(finite[..., None], inputs, 0.0))
        log_lik = np.stack(
            [multivariate_normal(m, c, allow_singular=True).logpdf(x) for m, c in zip(self._means, self._covars)],
            axis=-1,
        ).reshape(*finite.shape, -1)
        if self._transition is None:
            log_post = log_lik + np.log(self._start)
            probs = np.exp(log_post - logsumexp(log_post, axis=-1, keepdims=True))
        else:
            probs = self._forward(log_lik, finite)
        probs[~finite] = np.nan
        return probs.astype(np.float32)

    def _forward(self, log_lik: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Forward recursion ``a_t = normalise((a_{t-1} @ A) * lik_t)``, all symbols at once.

        The loop runs over bars because each step needs the previous one; each step is one small matrix
        product over symbols. A symbol's chain starts from the stationary guess ``startprob`` at its first
        finite bar.
        """
        lik = np.exp(log_lik - log_lik.max(axis=-1, keepdims=True))
        probs = np.zeros_like(lik)
        prior = np.broadcast_to(self._start, lik.shape[1:]).copy()
        started = np.zeros(lik.shape[1], dtype=bool)
        for t in range(lik.shape[0]):
            predicted = np.where(started[:, None], prior @ self._transition, self._start)
            post = np.maximum(predicted, 1e-12) * lik[t]
            post /= post.sum(axis=-1, keepdims=True)
            now = finite[t]
            prior = np.where(now[:, None], post, prior)
            started |= now
            probs[t] = post
        return probs
