"""Tiny data, inputs and model settings shared by the predictor tests (each fit takes well under a second)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from agents.predictors.inputs import Inputs
from agents.predictors.labels import Labels
from agents.predictors.models import MODELS, make_predictor
from agents.predictors.pipeline import PredictorPipeline
from agents.predictors.regime import RegimeConfig
from envs.data.market_data import MarketData
from envs.data.splits import WalkForward
from envs.data.synthetic import generate_market

HORIZONS = (1, 5, 20)
FEATURES = ("ret_1", "ret_5", "rsi_14", "rvol_20", "vol_regime_20_60", "sma_ratio_20")
REGIME_WINDOW = 10
SPLITS = WalkForward(train_size=200, test_size=80)
NET = {"epochs": 2, "window": 8, "hidden": 8, "batch_size": 128}
TINY_PARAMS: dict[str, dict] = {
    "xgboost": {"n_estimators": 15},
    "random_forest": {"n_estimators": 15},
    "lightgbm": {"n_estimators": 15},
    "lstm": NET,
    "gru": NET,
    "transformer": {**NET, "heads": 2, "layers": 1},
}
TINY_PARAMS["ensemble"] = {"members": {"xgboost": TINY_PARAMS["xgboost"], "gru": NET}}
assert set(TINY_PARAMS) == set(MODELS)


@lru_cache(maxsize=None)
def market(n_days: int = 520, seed: int = 3) -> MarketData:
    """Two regime-switching symbols."""
    return generate_market(n_symbols=2, n_days=n_days, seed=seed)


def inputs_of(data: MarketData) -> Inputs:
    """The tiny feature set's inputs."""
    return Inputs.build(data, FEATURES, REGIME_WINDOW)


def labels_of(data: MarketData) -> Labels:
    """Labels for :data:`HORIZONS`."""
    return Labels.from_opens(data.open, HORIZONS)


def pipeline(model: str = "xgboost", seed: int = 0, regime: bool = True, switch: bool = False) -> PredictorPipeline:
    """An unfitted tiny pipeline."""
    predictor = make_predictor(model, HORIZONS, seed, TINY_PARAMS[model])
    config = RegimeConfig(window=REGIME_WINDOW, n_iter=5) if regime else None
    return PredictorPipeline(predictor, config, switch=switch, min_regime_samples=40, seed=seed)


def shuffle_after(data: MarketData, t: int, seed: int = 0) -> MarketData:
    """``data`` with every bar after ``t`` replaced by a shuffled copy of those bars (still valid OHLCV)."""
    rng = np.random.default_rng(seed)
    values = data.values.copy()
    tail = values[t + 1 :]
    values[t + 1 :] = tail[rng.permutation(len(tail))] * rng.uniform(0.5, 1.5)
    return MarketData(values, data.index, data.symbols)
