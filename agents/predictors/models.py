"""Predictors by name: what ``python -m experiments.train MODEL`` accepts."""

from __future__ import annotations

from typing import Any

from agents.predictors.base import Predictor
from agents.predictors.ensemble import StackingPredictor
from agents.predictors.nets import TorchPredictor
from agents.predictors.trees import TreePredictor

TREE_MODELS: tuple[str, ...] = ("xgboost", "random_forest", "lightgbm")
NET_MODELS: tuple[str, ...] = ("lstm", "gru", "transformer")
MODELS: tuple[str, ...] = (*TREE_MODELS, *NET_MODELS, "ensemble")
DEFAULT_MEMBERS: tuple[str, ...] = ("xgboost", "random_forest", "lightgbm", "lstm", "transformer")


def make_predictor(
    name: str, horizons: tuple[int, ...], seed: int = 0, params: dict[str, Any] | None = None
) -> Predictor:
    """An unfitted predictor.

    :param name: one of :data:`MODELS`.
    :param horizons: forecast horizons in bars.
    :param seed: seed of the model.
    :param params: model keyword arguments. For ``"ensemble"``: ``members`` (a list of member names, or a
        mapping of member name to that member's params; default :data:`DEFAULT_MEMBERS`), and the
        :class:`~agents.predictors.ensemble.StackingPredictor` options ``holdout`` and ``meta_c``.
    """
    params = dict(params or {})
    if name in TREE_MODELS:
        return TreePredictor(name, horizons, seed, **params)
    if name in NET_MODELS:
        return TorchPredictor(name, horizons, seed, **params)
    if name == "ensemble":
        members = params.pop("members", DEFAULT_MEMBERS)
        if not isinstance(members, dict):
            members = {m: {} for m in members}
        nested = [m for m in members if m == "ensemble" or m not in MODELS]
        if nested:
            raise ValueError(f"ensemble members must be among {MODELS[:-1]}, got {nested}")
        built = [make_predictor(m, horizons, seed + i, p) for i, (m, p) in enumerate(members.items())]
        return StackingPredictor(built, horizons, seed, **params)
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
