"""The typed configuration of ``python -m experiments.train MODEL`` for the ML predictors.

Precedence: the dataclass defaults, then a YAML file (``--config``; ``experiments/configs/<model>.yaml``
when it exists and none is given), then ``--set key=value`` overrides. Values given as text are parsed as
YAML (``--set threshold=0.55``, ``--set params.n_estimators=50``, ``--set regime=false``), lists also as
``a,b,c`` (``--set horizons=1,5,20``); a dotted key sets one entry of the ``params`` mapping. A bad
value raises :class:`~envs.sim.execution.ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_origin, get_type_hints

import yaml

from agents.params import coerce, param_docs
from agents.predictors.inputs import PREDICTOR_FEATURES
from agents.predictors.labels import DEFAULT_HORIZONS
from agents.predictors.models import MODELS
from envs.sim.execution import ConfigError
from experiments.config_files import YamlConfig, check_known, coerce_field, read_fields


@dataclass(frozen=True)
class PredictorConfig(YamlConfig):
    """Everything one predictor training run needs; the run folder keeps a copy as ``config.yaml``.

    :param model: xgboost, random_forest, lightgbm, lstm, gru, transformer or ensemble.
    :param data: data spec for envs.data.sources.load_data, e.g. synthetic, synthetic:seed=3, csv:PATH.
    :param symbols: symbols to keep (empty: all of the data's).
    :param seed: seed of every model, the regime detector and the backtest.
    :param horizons: forecast horizons in bars; every model predicts all of them.
    :param features: feature names (see envs.features); empty means the predictor default set.
    :param train_size: bars per walk-forward train window (the first one, when anchored).
    :param test_size: bars per test window.
    :param step: bars the windows move per fold (default: test_size).
    :param anchored: grow the train window from bar 0 instead of rolling it.
    :param gap: embargo bars between train and test, on top of the label purge.
    :param refit_final: also fit on the last train window, for use after the data ends.
    :param regime: add the regime detector's filtered state probabilities to the features.
    :param regime_method: hmm (Gaussian HMM) or gmm (Gaussian mixture).
    :param regime_states: number of hidden regimes.
    :param regime_window: trailing bars of the regime inputs.
    :param regime_iterations: EM iterations of the regime detector.
    :param switch: fit one model per regime and route each bar to its regime's model.
    :param min_regime_samples: train samples a regime needs for its own model.
    :param params: keyword arguments of the model (e.g. n_estimators, epochs, window; members for ensemble).
    :param horizon: forecast horizon the policy trades on; empty (null): with threshold, chosen by the best
        net Sharpe of the walk-forward's out-of-sample forecasts on the training data.
    :param threshold: up-probability needed to go long (1 - threshold to go short); empty (null): chosen
        with the horizon, among 0.51, 0.53, 0.55, 0.6 and 0.65.
    :param allow_short: go short on bearish forecasts instead of flat.
    :param sizing: fixed, volatility or kelly position sizing.
    :param fraction: fixed weight per position, or the cap of the other sizers.
    :param backtest: backtest the trained policy out of sample against the baselines.
    :param risk: put the default risk layer (position caps, 2% stops, drawdown breaker) between every
        backtested policy and execution, as experiments.backtest does; false trades the targets unchanged.
    :param baselines: registered policies in the backtest comparison.
    :param runs_dir: runs are written to runs_dir/model/run_name.
    :param run_name: name of the run folder (default: date, time and seed).
    :param progress: show progress bars.
    """

    model: str = "xgboost"
    data: str = "synthetic"
    symbols: tuple[str, ...] = ()
    seed: int = 0
    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    features: tuple[str, ...] = ()
    train_size: int = 756
    test_size: int = 252
    step: int | None = None
    # Every past bar, not the last 756: on the calibrated momentum market the final fit then learns from 5x
    # the data (xgboost, training seeds 1-2 on tuning seeds 201-205: 79% of the oracle's Sharpe rolling,
    # 91% anchored, with the shallower default trees).
    anchored: bool = True
    gap: int = 0
    refit_final: bool = True
    regime: bool = True
    regime_method: Literal["hmm", "gmm"] = "hmm"
    regime_states: int = 3
    regime_window: int = 20
    regime_iterations: int = 25
    switch: bool = False
    min_regime_samples: int = 500
    params: dict[str, Any] = field(default_factory=dict)
    # A fixed 20-bar rule at 0.6 traded nothing learnable on the calibrated momentum market, whose forecasts
    # carry skill at one bar only (training seed 1: out-of-sample IC 0.116 at h1, -0.015 at h5, 0.008 at h20).
    horizon: int | None = None
    threshold: float | None = None
    allow_short: bool = False
    sizing: Literal["fixed", "volatility", "kelly"] = "fixed"
    fraction: float = 0.1
    backtest: bool = True
    risk: bool = True
    baselines: tuple[str, ...] = ("buy_and_hold", "consensus")
    runs_dir: str = "runs"
    run_name: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = coerce_field(f.name, _HINTS[f.name], getattr(self, f.name), _coerce_scalar)
            object.__setattr__(self, f.name, value)
        if self.model not in MODELS:
            raise ConfigError(f"PredictorConfig.model must be one of {list(MODELS)}, got {self.model!r}")
        for name in ("train_size", "test_size", "regime_states", "regime_window", "regime_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PredictorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.gap < 0 or self.min_regime_samples < 0:
            raise ConfigError("PredictorConfig.gap and min_regime_samples must be >= 0")
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"PredictorConfig.horizons must list positive bar counts, got {self.horizons}")
        if self.horizon is not None and self.horizon not in self.horizons:
            raise ConfigError(f"PredictorConfig.horizon must be one of horizons {self.horizons}, got {self.horizon}")
        if self.threshold is not None and not 0.5 < self.threshold < 1:
            raise ConfigError(f"PredictorConfig.threshold must be in (0.5, 1), got {self.threshold}")
        if not self.fraction > 0:
            raise ConfigError(f"PredictorConfig.fraction must be > 0, got {self.fraction}")
        if self.switch and not self.regime:
            raise ConfigError("PredictorConfig.switch needs regime=true")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features to use: the configured ones, or the predictor default set."""
        return self.features or PREDICTOR_FEATURES



_HINTS = get_type_hints(PredictorConfig)


def _coerce_scalar(name: str, hint: Any, value: Any) -> Any:
    """One plain value (from Python, YAML or ``--set``) as the field's type, or a ConfigError naming the field.

    Text is read as YAML unless the field is text: names (symbols, features) stay text even where YAML
    would read them as something else ("ON" is a boolean to YAML).
    """
    if isinstance(value, str) and hint is not str:
        value = _parse_text(name, value)
    if get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"PredictorConfig.{name} must be a mapping, got {value!r}")
        return dict(value)
    # Strings were parsed as YAML above, so a str reaching a number or bool field is an error here.
    if isinstance(value, str) and hint in (bool, int, float):
        raise ConfigError(f"PredictorConfig.{name} must be {hint.__name__}, got {value!r}")
    try:
        return coerce("PredictorConfig", name, hint, value)
    except TypeError as err:
        raise ConfigError(str(err)) from None


def _parse_text(name: str, text: str) -> Any:
    """A command-line value read as YAML (``[1, 5]``, ``true``, ``0.55``, ``{n_estimators: 50}``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"PredictorConfig.{name}: cannot parse {text!r}: {err}") from None


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` strings as overrides; ``params.key=value`` sets one model parameter.

    :param items: the strings given to ``--set``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        head, dot, sub = key.partition(".")
        if dot:
            if head != "params" or not sub:
                raise ConfigError(f"--set {key}: only params.<name> may be dotted")
            overrides.setdefault("params", {})[sub] = _parse_text(key, text.strip())
        else:
            overrides[key] = text.strip()
    return overrides


def field_help() -> dict[str, str]:
    """Each field's ``:param:`` text from the :class:`PredictorConfig` docstring."""
    return param_docs(PredictorConfig)


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, model: str | None = None
) -> PredictorConfig:
    """Build a config from a YAML file and overrides.

    :param path: YAML file of field values; ``None`` uses ``experiments/configs/<model>.yaml`` if it exists.
    :param overrides: field values applied last; a ``params`` mapping is merged into the file's.
    :param model: the model, which also picks the default YAML file.
    """
    values = read_fields(path, "PredictorConfig", model)
    if model is not None:
        values["model"] = model
    overrides = dict(overrides or {})
    if isinstance(overrides.get("params"), dict):
        overrides["params"] = {**(values.get("params") or {}), **overrides["params"]}
    values.update(overrides)
    check_known(values, _HINTS, "PredictorConfig")
    return PredictorConfig(**values)
