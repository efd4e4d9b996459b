"""One fitted forecaster: a regime detector and the model(s) it switches between, fitted on one window.

:meth:`PredictorPipeline.fit` takes the bars ``[start, stop)`` of a train window. The regime detector is
fitted on them alone; its filtered state probabilities (causal) are appended to the features; the samples
are every symbol at every bar of the window that has at least one label reading bars before ``stop`` only
(:meth:`~agents.predictors.labels.Labels.until`). With ``switch=True`` one more model is fitted per regime
on the samples whose most likely state is that regime, and at prediction time each sample goes to its
regime's model (the pooled model stands in for a regime with too few train samples).
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from agents.predictors.base import Predictor
from agents.predictors.inputs import Inputs
from agents.predictors.labels import Labels
from agents.predictors.regime import RegimeConfig, RegimeDetector

logger = logging.getLogger(__name__)


class PredictorPipeline:
    """Regime detector plus model(s); a prototype until :meth:`fit`, which fits copies of ``predictor``.

    :param predictor: an unfitted model, copied for each fit.
    :param regime: regime detector settings, or ``None`` for no regime features.
    :param switch: fit one model per regime and route each sample to its regime's model.
    :param min_regime_samples: train samples a regime needs to get its own model.
    :param seed: seed of the regime detector.
    """

    def __init__(
        self, predictor: Predictor, regime: RegimeConfig | None = None, switch: bool = False,
        min_regime_samples: int = 500, seed: int = 0,
    ) -> None:
        if switch and regime is None:
            raise ValueError("switch=True needs a regime detector (regime must not be None)")
        self.prototype = predictor
        self.regime = regime
        self.switch = switch
        self.min_regime_samples = int(min_regime_samples)
        self.seed = int(seed)
        self.detector: RegimeDetector | None = None
        self.model: Predictor | None = None
        self.regime_models: dict[int, Predictor] = {}
        self.feature_names: tuple[str, ...] = ()

    @property
    def horizons(self) -> tuple[int, ...]:
        """Forecast horizons in bars."""
        return self.prototype.horizons

    def first_bar(self, inputs: Inputs) -> int:
        """First bar with a full window of finite inputs.

        :param inputs: the data set's inputs.
        """
        return inputs.warmup + self.prototype.window - 1

    def _cube(self, inputs: Inputs) -> np.ndarray:
        if self.detector is None:
            return inputs.features
        probabilities = self.detector.probabilities(inputs.regime)
        return np.concatenate([inputs.features, probabilities], axis=-1)

    def fit(self, inputs: Inputs, labels: Labels, stop: int, start: int = 0) -> "PredictorPipeline":
        """Fit on bars ``[start, stop)``; nothing at or after ``stop`` is read.

        :param inputs: the data set's inputs.
        :param labels: the data set's labels (cut at ``stop`` here).
        :param stop: exclusive end of the train window.
        :param start: first bar of the train window.
        """
        if labels.horizons != self.horizons:
            raise ValueError(f"labels have horizons {labels.horizons}, the model {self.horizons}")
        if self.regime is not None:
            self.detector = RegimeDetector(self.regime, self.seed).fit(inputs.regime[start:stop], stop - start)
            self.feature_names = (*inputs.names, *self.detector.names)
        else:
            self.feature_names = inputs.names
        cube = self._cube(inputs)
        direction = labels.until(stop).direction
        first = max(start, self.first_bar(inputs))
        t, s = np.nonzero(np.isfinite(direction[first:stop]).any(axis=-1))
        rows = np.column_stack([t + first, s])
        y = direction[rows[:, 0], rows[:, 1]]
        missing = [h for h, known in zip(self.horizons, np.isfinite(y).any(axis=0)) if not known]
        if len(rows) == 0 or missing:
            raise ValueError(
                f"train window [{start}, {stop}) has no labelled samples for horizon(s) "
                f"{missing or list(self.horizons)}: inputs are warm from bar {self.first_bar(inputs)} and a "
                "label of horizon h needs h + 1 more bars inside the window; use a longer train window or "
                "features with shorter warm-ups"
            )
        self.model = copy.deepcopy(self.prototype).fit(cube, rows, y)
        self.regime_models = {}
        if self.switch:
            state = self._states(cube, rows)
            for k in range(self.regime.n_states):
                mine = state == k
                if mine.sum() < self.min_regime_samples or not np.isfinite(y[mine]).any(axis=0).all():
                    logger.info("regime %d: %d train samples, using the pooled model", k, int(mine.sum()))
                    continue
                self.regime_models[k] = copy.deepcopy(self.prototype).fit(cube, rows[mine], y[mine])
        logger.debug("fitted on bars [%d, %d): %d samples", start, stop, len(rows))
        return self

    def _states(self, cube: np.ndarray, rows: np.ndarray) -> np.ndarray:
        n_states = self.regime.n_states
        return np.argmax(cube[rows[:, 0], rows[:, 1], -n_states:], axis=-1)

    def predict(self, inputs: Inputs, bars: np.ndarray) -> np.ndarray:
        """Up-probabilities ``(len(bars), S, H)`` for the given bars; NaN before :meth:`first_bar`.

        :param inputs: the data set's inputs.
        :param bars: bar positions to predict.
        """
        if self.model is None:
            raise RuntimeError("call fit() before predict()")
        bars = np.asarray(bars, dtype=np.int64)
        out = np.full((len(bars), len(inputs.symbols), len(self.horizons)), np.nan)
        usable = np.flatnonzero(bars >= self.first_bar(inputs))
        if len(usable) == 0:
            return out
        cube = self._cube(inputs)
        n_symbols = len(inputs.symbols)
        symbol = np.tile(np.arange(n_symbols), len(usable))
        rows = np.column_stack([np.repeat(bars[usable], n_symbols), symbol])
        positions = np.repeat(usable, n_symbols), symbol
        probs = self.model.predict_proba(cube, rows)
        if self.regime_models:
            state = self._states(cube, rows)
            for k, model in self.regime_models.items():
                mine = state == k
                if mine.any():
                    probs[mine] = model.predict_proba(cube, rows[mine])
        out[positions] = probs
        return out
