"""Features: the causal feature library (:mod:`envs.features.library`), the indicators it is built on
(:mod:`envs.features.indicators`), microstructure features from quotes and trades
(:mod:`envs.features.microstructure`) and sentiment and breadth (:mod:`envs.features.sentiment`).

Every value at bar ``t`` uses bars ``<= t`` only; features are computed once per :class:`~envs.data.MarketData`.
"""

from envs.features.library import (
    DEFAULT_FEATURES,
    LEVEL_FEATURES,
    NORMALIZATIONS,
    OBS_BOUND,
    OBSERVATION_FEATURES,
    FeatureConfig,
    Features,
    FeatureSpec,
    compute_features,
    feature_families,
    normalize,
)

__all__ = [
    "DEFAULT_FEATURES",
    "LEVEL_FEATURES",
    "NORMALIZATIONS",
    "OBS_BOUND",
    "OBSERVATION_FEATURES",
    "FeatureConfig",
    "FeatureSpec",
    "Features",
    "compute_features",
    "feature_families",
    "normalize",
]
