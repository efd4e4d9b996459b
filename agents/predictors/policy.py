"""A trained predictor as a Policy: up-probability -> signal (threshold 0.6) -> sized target weights.

The policy holds the walk-forward schedule of fitted pipelines. At each bar it uses the newest model whose
``active_after`` timestamp is before the bar, so a backtest over the training data trades every test window
with the model fitted before it (out of sample throughout) and, after the data ends, the final fit.
Before the first model is active it stays flat.

The signal is long (+1) where the probability that the ``horizon``-bar return is up reaches ``threshold``,
short (-1) where it is at most ``1 - threshold`` (flat instead unless ``allow_short``), and flat between.
A sizer from :mod:`envs.sim.sizing` turns it into weights, exactly as for the rule bots.

``act`` recomputes the causal inputs from ``info["history"]`` (one call per bar in live trading);
``act_batch`` computes them once for a whole data set and gives the same weights at every bar.

Save and load go through :mod:`agents.registry`: ``save_policy(policy, folder)`` writes the manifest with
the trading parameters and :meth:`PredictorPolicy.save_artifacts` the fitted models (joblib pickles: load
only folders you trust), and ``load_policy(folder)`` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import joblib
import numpy as np
import pandas as pd

from agents.params import Parameterised
from agents.predictors.inputs import Inputs
from agents.predictors.walk_forward import ScheduledModel
from envs.sim.sizing import Sizer, on_calendar, sizer_of
from envs.data.market_data import MarketData

ARTIFACT = "predictor.joblib"


class PredictorPolicy(Parameterised):
    """Trade a fitted predictor's forecast.

    :param horizon: which forecast horizon (bars) drives the signal; one the models were trained for.
    :param threshold: up-probability needed to go long (``1 - threshold`` to go short), in ``(0.5, 1)``.
    :param allow_short: act on bearish forecasts by going short; otherwise they mean flat.
    :param sizing: ``"fixed"``, ``"volatility"`` or ``"kelly"`` (see :mod:`envs.sim.sizing`).
    :param fraction: the fixed weight, or the weight cap for the volatility and Kelly sizers.
    :param target_vol: annualised volatility per position for ``sizing="volatility"``.
    :param sizing_lookback: bars used by the volatility and Kelly estimates.
    """

    name: ClassVar[str] = "predictor"
    horizon: int = 20
    threshold: float = 0.6
    allow_short: bool = False
    sizing: Literal["fixed", "volatility", "kelly"] = "fixed"
    fraction: float = 0.1
    target_vol: float = 0.15
    sizing_lookback: int = 20

    def __init__(self, **params: Any) -> None:
        self.schedule: list[ScheduledModel] = []
        self.features: tuple[str, ...] = ()
        self.regime_window = 20
        super().__init__(**params)

    def validate(self) -> None:
        if not 0.5 < self.threshold < 1:
            raise ValueError(f"{self.name}.threshold must be in (0.5, 1), got {self.threshold}")
        self._sizer: Sizer = sizer_of(self.sizing, self.fraction, self.target_vol, self.sizing_lookback)

    @classmethod
    def from_schedule(
        cls, model: str, schedule: list[ScheduledModel], features: tuple[str, ...], regime_window: int,
        **params: Any,
    ) -> "PredictorPolicy":
        """A policy trading ``schedule`` (from :func:`~agents.predictors.walk_forward.walk_forward`).

        :param model: the model's name, used as the policy's name (``"xgboost"``, ...).
        :param schedule: fitted pipelines with their activation times, oldest first.
        :param features: feature names the pipelines were fitted on.
        :param regime_window: window of the regime inputs they were fitted on.
        :param params: the trading parameters (``horizon``, ``threshold``, ...).
        """
        policy = cls(**params)
        policy._attach(model, schedule, features, regime_window)
        return policy

    def _attach(
        self, model: str, schedule: list[ScheduledModel], features: tuple[str, ...], regime_window: int
    ) -> None:
        if not schedule:
            raise ValueError(f"{model}: the schedule holds no fitted model")
        horizons = schedule[0].pipeline.horizons
        if self.horizon not in horizons:
            raise ValueError(f"{model}.horizon must be one of the trained horizons {horizons}, got {self.horizon}")
        times = [m.active_after for m in schedule]
        if times != sorted(times):
            raise ValueError(f"{model}: schedule must be ordered by active_after")
        self.name = model  # type: ignore[misc]
        self.schedule = list(schedule)
        self.features = tuple(features)
        self.regime_window = int(regime_window)

    def probabilities(self, data: MarketData) -> np.ndarray:
        """``(T, S)`` up-probability of the ``horizon``-bar return; NaN where no model is active or warm.

        :param data: the bars (row ``t`` of the result uses bars ``<= t`` only).
        """
        if not self.schedule:
            raise RuntimeError(
                f"{self.name}: no fitted models; load a saved predictor or build one with from_schedule()"
            )
        inputs = Inputs.build(data, self.features, self.regime_window)
        k = self.schedule[0].pipeline.horizons.index(self.horizon)
        after = pd.DatetimeIndex([m.active_after for m in self.schedule])
        # For each bar, the newest model activated before it (-1: none yet).
        which = after.searchsorted(data.index, side="left") - 1
        out = np.full((data.n_bars, data.n_symbols), np.nan)
        for i in np.unique(which[which >= 0]):
            bars = np.flatnonzero(which == i)
            out[bars] = self.schedule[i].pipeline.predict(inputs, bars)[..., k]
        return out

    def signal(self, probabilities: np.ndarray) -> np.ndarray:
        """``(T, S)`` signal in ``{-1, 0, 1}`` from up-probabilities (NaN gives 0).

        :param probabilities: output of :meth:`probabilities`.
        """
        p = np.nan_to_num(probabilities, nan=0.5)
        short = -1.0 if self.allow_short else 0.0
        return np.where(p >= self.threshold, 1.0, np.where(p <= 1.0 - self.threshold, short, 0.0))

    def target_weights(self, data: MarketData) -> np.ndarray:
        """Sized target weights ``(T, S)`` for every bar of ``data``.

        :param data: the bars.
        """
        sizer = on_calendar(self._sizer, data.periods_per_year)
        weights = sizer(self.signal(self.probabilities(data)), data.close)
        return np.clip(weights, -1.0, 1.0).astype(np.float32)

    def reset(self, seed: int | None = None) -> None:
        """A fitted predictor is deterministic and keeps no episode state."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Target weights ``(S,)`` after the bar that just closed.

        :param obs: the env observation (unused: the policy computes its own inputs).
        :param info: the env info; ``info["history"]`` holds the bars up to now.
        """
        history = info["history"]
        data = MarketData(history.ohlcv, history.index, history.symbols)
        return self.target_weights(data)[-1]

    def act_batch(self, data: MarketData) -> np.ndarray:
        """Target weights ``(T, S)`` for every bar of ``data``, equal to stepping :meth:`act`.

        :param data: the bars.
        """
        return self.target_weights(data)

    def save_artifacts(self, folder: str | Path) -> None:
        """Write the fitted models next to the manifest.

        :param folder: the policy folder.
        """
        payload = {
            "model": self.name, "schedule": self.schedule, "features": self.features,
            "regime_window": self.regime_window,
        }
        joblib.dump(payload, Path(folder) / ARTIFACT)

    def load_artifacts(self, folder: str | Path) -> None:
        """Read the fitted models written by :meth:`save_artifacts`.

        :param folder: the policy folder.
        """
        path = Path(folder) / ARTIFACT
        if not path.is_file():
            raise FileNotFoundError(f"{folder} holds no fitted predictor ({ARTIFACT} is missing)")
        payload = joblib.load(path)
        self._attach(payload["model"], payload["schedule"], payload["features"], payload["regime_window"])
