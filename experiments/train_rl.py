"""Train a stable-baselines3 agent (PPO, A2C or SAC) on a trading env and write a run folder.

``python -m experiments.train ppo [--spec FILE] [--config FILE] [--timesteps N] [--learning-rate X] ...``
(every :class:`~experiments.rl_config.RLConfig` field and every experiment-spec field is a flag). The
agent trains under the spec's costs (every ``ExecutionConfig`` field), risk rules and sizing rule (fixed:
a full-conviction action holds ``sizing.fraction`` of equity; volatility or Kelly: the action is the
signal, which the env sizes bar by bar with :mod:`envs.sim.sizing`, the rule bots' and predictors' code),
the ones it is evaluated and paper-traded with. The data is split in time order into train, validation and test periods (the spec's
dates or fractions). Training runs on the train period, episodes of ``episode_length`` bars starting at
random train bars: through the batched vector env (:class:`~envs.environments.vector.TradingVectorEnv`),
which runs the spec's risk layer on every copy with the rules the backtest and the live runner apply
(``envs/sim/risk.py``); under a volatility or Kelly sizing rule through copies of the single env, which
sizes each action bar by bar; both behind SB3's ``VecNormalize``. ``Options-v0`` has no batched env: SB3's
``DummyVecEnv`` steps copies of :class:`~envs.environments.options.OptionsEnv` (sharing one set of option chains
per data set) behind the same ``VecNormalize``. Every ``eval_freq`` steps the policy trades the
validation period of the traded symbol and of every other training symbol (same dates), and the model with
the best mean validation Sharpe over them is kept (``select_on``); it is scored on the traded symbol's validation
next to the env's rule bots (buy-and-hold and the stock bots, or buy-and-hold and the options bots for
``Options-v0``). Training never touches the test period: its scores come from
``python -m experiments.evaluate RUN``, which counts every look. ``--seeds 0,1,2`` trains one run per
seed and reports the mean and spread of their validation scores.

A run is the folder ``runs/<algo>/<run_name>/``::

    config.yaml        the full config (reload with --config)
    spec.yaml          the experiment spec (data, splits, costs, risk, sizing, cash, seed): evaluate,
                       backtest and paper reuse it
    policy.yaml        manifest: agents.registry.load_policy(folder) gives the best model as a Policy
    best/              model.zip and vecnormalize.pkl of the best validation Sharpe
    final/             the same at the end of training
    checkpoints/       every checkpoint_freq steps
    tb/                TensorBoard: SB3's curves, validation/* metrics and equity curves, time/sps_recent
    metrics.json       periods, validation history, best model's validation scores, baselines, speed
    trials.json        configurations tried to pick the kept model (its validation checks; x seeds with
                       --seeds), which the Deflated Sharpe Ratio of its test score counts
    report.html        the best model and the baselines backtested over the validation period (interactive;
                       the test period stays sealed); stats.json, trades.csv and equity.csv beside it
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from agents.ppo import (
    ALGORITHMS,
    MODEL_FILE,
    VECNORMALIZE_FILE,
    load_agent,
    write_manifest,
)
from agents.registry import make_policy, policy_class
from agents.rl_callbacks import (
    EvaluationHook,
    StepsPerSecondCallback,
    TradingEvalCallback,
)
from agents.rl_eval import EnvFactory, EvalEnv, Period, evaluate
from agents.vec_env import ConcatVecEnv, SB3VecEnv
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.environments.base import TradingEnvBase
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from envs.environments.options import OptionsEnv
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv
from envs.features import OBSERVATION_FEATURES, FeatureConfig
from envs.options.account import OptionCosts
from envs.options.chains import SyntheticChains
from experiments.engine import MINIMAL_FEATURES, run_backtest, start_bar
from experiments.report import write_report
from experiments.rl_config import (
    ALGOS,
    LOB_ENVS,
    RLConfig,
    add_config_arguments,
    load_config,
    overrides_from_args,
    resolve,
)
from experiments.sealed import trials_of, write_trials
from experiments.spec import (
    ExperimentSpec,
    add_spec_arguments,
    backtest_config,
    policy_defaults,
    save_spec,
    spec_from_args,
)
from experiments.train_lob import train_lob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    :param run_dir: the run folder.
    :param metrics: the content of ``metrics.json``.
    """

    run_dir: Path
    metrics: dict[str, Any]


# ---------------------------------------------------------------------------------------------- environments
def load_market(config: RLConfig) -> MarketData:
    """The config's data, cut to the traded symbol for Stocks-v0 and Options-v0.

    :param config: the run config.
    """
    return _traded(config, load_data(config.data))


def _traded(config: RLConfig, data: MarketData) -> MarketData:
    if config.env == "Portfolio-v0":
        return data
    symbol = config.symbol or data.symbols[0]
    if symbol not in data.symbols:
        raise ValueError(f"RLConfig.symbol {symbol!r} is not in the data; available: {list(data.symbols)}")
    return data.select([symbol])


def _train_symbols(config: RLConfig, data: MarketData) -> tuple[str, ...]:
    """The ``train_symbols`` entries, ``all`` resolved to every symbol of ``data``."""
    return tuple(data.symbols) if config.train_symbols == ("all",) else config.train_symbols


def training_data(config: RLConfig, data: MarketData, train: Period) -> list[MarketData]:
    """The data sets the agent trains on, each cut to the bars it may learn from.

    The train period of the traded symbol, or of each ``train_symbols`` entry; plus, for every
    ``extra_train_data`` spec, the whole of that (other, independent) market for the same symbols.

    :param config: the run config.
    :param data: the full data set, every symbol.
    :param train: the train period of ``data``.
    """
    markets = [data.iloc(slice(train.start, train.stop))]
    markets += [load_data(spec) for spec in config.extra_train_data]
    if not config.train_symbols or config.env == "Portfolio-v0":
        return [_traded(config, market) for market in markets]
    symbols = _train_symbols(config, data)
    datasets = []
    for spec, market in zip((config.data, *config.extra_train_data), markets):
        missing = sorted(set(symbols) - set(market.symbols))
        if missing:
            raise ValueError(
                f"RLConfig.train_symbols {missing} are not in {spec!r}; available: {list(market.symbols)}"
            )
        datasets += [market.select([s]) for s in symbols]
    return datasets


def selection_data(config: RLConfig, data: MarketData) -> list[MarketData]:
    """The data sets besides the traded symbol whose validation period also picks the kept model.

    Every other ``train_symbols`` entry of the traded market, when ``select_on`` is ``train_symbols``: the
    same dates, so the selection sees no bar later than the traded symbol's validation period, and the
    agent is ranked on the symbols it learned from. Not the ``extra_train_data`` markets (their every bar
    is training data).

    :param config: the run config.
    :param data: the full data set, every symbol.
    """
    if config.select_on == "traded" or not config.train_symbols or config.env == "Portfolio-v0":
        return []
    traded = _traded(config, data).symbols[0]
    return [data.select([s]) for s in _train_symbols(config, data) if s != traded]


def env_kwargs(config: RLConfig, data: MarketData, spec: ExperimentSpec | None = None) -> dict[str, Any]:
    """Plain (YAML-ready) settings that shape the agent's observations and actions.

    :param config: the run config.
    :param data: the loaded data (for the symbol names).
    :param spec: the experiment spec, whose sizing fraction is the agent's position size (default: the
        one :func:`~experiments.rl_config.resolve` gives).
    """
    config, spec = resolve(config, spec)
    if config.env == "Options-v0":
        return {"env_id": OPTIONS_ENV_ID, "symbol": data.symbols[0], "action_mode": "discrete",
                **({"sentiment": True} if config.sentiment else {})}
    kwargs: dict[str, Any] = {
        "window_size": config.window_size,
        # Named even when the env's default was used, so a later change of the default cannot change what
        # a saved agent observes.
        "features": list(config.features or OBSERVATION_FEATURES),
        "action_mode": config.action_mode,
        "allow_short": config.allow_short,
        **_sizing_kwargs(spec),
    }
    if config.action_mode == "discrete" and config.switch_prob > 0:
        kwargs["switch_prob"] = config.switch_prob
    if config.env == "Stocks-v0":
        kwargs["symbol"] = data.symbols[0]
    else:
        kwargs["symbols"] = list(data.symbols)
    return kwargs


def _sizing_kwargs(spec: ExperimentSpec) -> dict[str, Any]:
    """How the agent's actions are sized, as plain values: a fixed fraction is its position size; a volatility
    or Kelly rule is the spec's sizing section, which the env applies to the agent's signal bar by bar."""
    if spec.sizing.sizing == "fixed":
        return {"position_size": spec.sizing.fraction}
    return {"position_size": 1.0, "sizing": spec.sizing.params()}


def _single_env_kwargs(config: RLConfig, spec: ExperimentSpec) -> dict[str, Any]:
    """The single env's settings: the config's observation and reward, the spec's account, costs and risk."""
    return {
        "window_size": config.window_size,
        "features": FeatureConfig(features=config.features) if config.features else None,
        "reward": config.reward,
        "reward_eta": config.reward_eta,
        "drawdown_penalty": config.drawdown_penalty,
        "execution": spec.execution,
        "risk": spec.risk,
        "initial_cash": spec.initial_cash,
    }


def _options_env_kwargs(config: RLConfig, spec: ExperimentSpec) -> dict[str, Any]:
    costs = OptionCosts.from_execution(spec.execution, config.commission_per_contract)
    return {"costs": costs, "reward": config.reward, "initial_cash": spec.initial_cash, "sentiment": config.sentiment}


def eval_env_factory(
    config: RLConfig, env: str | None = None, spec: ExperimentSpec | None = None, agent: bool = False
) -> EnvFactory:
    """Builds the single env policies are scored in, with the training costs and risk rules: a stock env in
    ``weights`` action mode, or the options env (whose actions are strategy indices).

    :param config: the run config.
    :param env: the env to build (default: ``config.env``), e.g. Stocks-v0 for a stock bot compared with an
        options agent.
    :param spec: the experiment spec (default: the one :func:`~experiments.rl_config.resolve` gives).
    :param agent: the agent's env: under a volatility or Kelly rule it sizes the agent's signal, as the
        training env does (rule bots and predictors size their own signals).
    """
    config, spec = resolve(config, spec)
    env = env or config.env
    if env == "Options-v0":
        options_kwargs = _options_env_kwargs(config, spec)

        def make_options(data: MarketData) -> EvalEnv:
            return OptionsEnv(data, **options_kwargs)

        return make_options
    env_cls: type[TradingEnvBase] = StocksEnv if env == "Stocks-v0" else PortfolioEnv
    kwargs = _single_env_kwargs(config, spec)
    if agent and spec.sizing.sizing != "fixed":
        kwargs["sizing"] = spec.sizing.sizer()
    if config.env == "Options-v0":
        # A stock bot next to an options agent reads only the raw history, as in a backtest; the config's
        # features (which Options-v0 ignores) would only delay its first bar.
        kwargs.update(window_size=1, features=MINIMAL_FEATURES)

    def make(data: MarketData) -> EvalEnv:
        return env_cls(data, action_mode="weights", **kwargs)

    return make


def make_train_env(config: RLConfig, datasets: Sequence[MarketData], spec: ExperimentSpec | None = None) -> VecEnv:
    """The training env over the training data sets, behind ``VecNormalize``: the batched vector env, with
    the spec's risk layer, when its sizing is fixed; copies of the single env (which sizes each action by a
    volatility or Kelly rule bar by bar) otherwise.

    :param config: the run config.
    :param datasets: the data the agent may learn from (see :func:`training_data`).
    :param spec: the experiment spec (default: the one :func:`~experiments.rl_config.resolve` gives).
    """
    config, spec = resolve(config, spec)
    if config.num_envs < len(datasets):
        raise ValueError(f"RLConfig.num_envs ({config.num_envs}) must be >= the {len(datasets)} training data sets")
    sizes = [len(part) for part in np.array_split(np.arange(config.num_envs), len(datasets))]
    if config.env == "Options-v0":
        venv: VecEnv = _options_train_env(config, spec, datasets, sizes)
    elif spec.sizing.sizing != "fixed":
        venv = _sized_train_env(config, spec, datasets, sizes)
    else:
        venv = _stock_train_env(config, spec, datasets, sizes)
    return VecNormalize(
        venv, norm_obs=config.norm_obs, norm_reward=config.norm_reward, gamma=config.gamma, clip_obs=10.0
    )


def _options_train_env(
    config: RLConfig, spec: ExperimentSpec, datasets: Sequence[MarketData], sizes: Sequence[int]
) -> VecEnv:
    """``sizes[k]`` copies of the options env on ``datasets[k]``, stepped in turn by ``DummyVecEnv``.

    The env is a Python loop per step with no batched counterpart, but it takes about 0.25 ms of the
    roughly 1.3 ms a training step costs here, so the simple ``DummyVecEnv`` is enough.
    """
    kwargs = _options_env_kwargs(config, spec)
    factories = []
    for data, n in zip(datasets, sizes):
        # The chains depend only on the bars, so the copies of one data set share them.
        chains = SyntheticChains.from_market(data)
        length = _episode_length(config, spec, data)
        factories += [_options_env_maker(data, chains, length, kwargs)] * n
    return DummyVecEnv(factories)


def _options_env_maker(
    data: MarketData, chains: SyntheticChains, episode_length: int, kwargs: dict[str, Any]
) -> Callable[[], Monitor]:
    def make() -> Monitor:
        return Monitor(OptionsEnv(data, chains=chains, episode_length=episode_length, **kwargs))

    return make


def _stock_train_env(
    config: RLConfig, spec: ExperimentSpec, datasets: Sequence[MarketData], sizes: Sequence[int]
) -> VecEnv:
    """One batched :class:`TradingVectorEnv` of ``sizes[k]`` envs per data set, side by side, each copy
    trading through the spec's risk layer."""
    venvs = []
    for data, n in zip(datasets, sizes):
        vector = TradingVectorEnv(
            n,
            kind="stocks" if config.env == "Stocks-v0" else "portfolio",
            data=data,
            action_mode=config.action_mode,
            episode_length=_episode_length(config, spec, data),
            sizing=spec.sizing.sizer(),
            **_single_env_kwargs(config, spec),
        )
        venvs.append(SB3VecEnv(vector))
    return venvs[0] if len(venvs) == 1 else ConcatVecEnv(venvs)


def _sized_train_env(
    config: RLConfig, spec: ExperimentSpec, datasets: Sequence[MarketData], sizes: Sequence[int]
) -> VecEnv:
    """``sizes[k]`` copies of the single stock env on ``datasets[k]`` with the spec's risk layer and sizing rule.

    A volatility or Kelly rule sizes each signal from state the compiled vector kernel does not carry (the
    episode's own signals for Kelly); the single env runs the sizers' own code.
    """
    env_cls: type[TradingEnvBase] = StocksEnv if config.env == "Stocks-v0" else PortfolioEnv
    kwargs = {**_single_env_kwargs(config, spec), "action_mode": config.action_mode,
              "sizing": spec.sizing.sizer()}
    factories = []
    for data, n in zip(datasets, sizes):
        length = _episode_length(config, spec, data)
        factories += [_stock_env_maker(env_cls, data, length, kwargs)] * n
    return DummyVecEnv(factories)


def _stock_env_maker(
    env_cls: type[TradingEnvBase], data: MarketData, episode_length: int, kwargs: dict[str, Any]
) -> Callable[[], Monitor]:
    def make() -> Monitor:
        return Monitor(env_cls(data, episode_length=episode_length, **kwargs))

    return make


def _episode_length(config: RLConfig, spec: ExperimentSpec, data: MarketData) -> int:
    probe = eval_env_factory(config, spec=spec)(data)
    room = probe.last_t - probe.first_t
    if room < 2:
        raise ValueError(
            f"the training data has {data.n_bars} bars, too few after the features' warm-up "
            f"({probe.first_t} bars); use more data or a larger train_fraction"
        )
    text = config.episode_length
    # A span of trading time becomes bars on the data's own calendar (a year is 252 daily NYSE bars,
    # 8,766 hourly crypto bars), never a fixed 252.
    length = int(text) if text.isdigit() else data.calendar.bars_in(text, data.frequency)
    if length > room:
        logger.warning("episode_length %s (%d bars) exceeds the %d training bars after warm-up; using %d",
                       text, length, room, room)
    return min(length, room)


def build_model(config: RLConfig, venv: VecEnv) -> BaseAlgorithm:
    """The SB3 algorithm with the config's hyper-parameters.

    Switches off torch's argument checks of probability distributions for the process: SB3 builds a
    distribution for every forward pass and samples actions from it, which are in its support by
    construction, and the checks cost about a tenth of a training step of the default config.

    :param config: the run config.
    :param venv: the training env.
    """
    torch.distributions.Distribution.set_default_validate_args(False)
    common: dict[str, Any] = {
        "learning_rate": LinearSchedule(config.learning_rate, 0.0, 1.0) if config.anneal_lr else config.learning_rate,
        "gamma": config.gamma,
        "seed": config.seed,
        "device": "cpu",
        "verbose": 0,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
    }
    if config.algo != "sac" and isinstance(venv.action_space, gym.spaces.Box):
        common["policy_kwargs"]["log_std_init"] = config.log_std_init
    if config.algo == "ppo":
        specific = {
            "n_steps": config.n_steps, "batch_size": config.batch_size, "n_epochs": config.n_epochs,
            "gae_lambda": config.gae_lambda, "clip_range": config.clip_range, "ent_coef": config.ent_coef,
        }
        # SB3's Adam (its eps) with the update of all parameters in one fused kernel instead of a loop of ops
        # per tensor: the same arithmetic (up to float32 rounding), about a third of the foreach step's time
        # for this small network on CPU.
        common["policy_kwargs"]["optimizer_kwargs"] = {"eps": 1e-5, "fused": True}
    elif config.algo == "a2c":
        specific = {"n_steps": config.n_steps, "gae_lambda": config.gae_lambda, "ent_coef": config.ent_coef}
    else:
        specific = {
            "batch_size": config.batch_size, "buffer_size": config.buffer_size,
            "learning_starts": config.learning_starts,
        }
    return ALGORITHMS[config.algo]("MlpPolicy", venv, **common, **specific)


# ---------------------------------------------------------------------------------------------- training
def run_folder(config: RLConfig) -> Path:
    """``runs_dir/algo/run_name``, the name defaulting to the date, time and seed.

    :param config: the run config.
    """
    name = config.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-seed{config.seed}"
    return Path(config.runs_dir) / config.algo / name


def train(
    config: RLConfig,
    run_dir: str | Path | None = None,
    on_evaluation: EvaluationHook | None = None,
    extra_callbacks: Sequence[BaseCallback] = (),
    spec: ExperimentSpec | None = None,
) -> TrainResult:
    """Train, select the best model on validation, score it there, and write the run folder (with its
    config and spec). The test period is not touched: ``python -m experiments.evaluate`` scores it.

    :param config: the run config.
    :param run_dir: the run folder (default: :func:`run_folder`).
    :param on_evaluation: called after each validation check with ``(timesteps, evaluation, score)``: the
        traded symbol's evaluation and the score models are ranked by (see :func:`selection_data`).
    :param extra_callbacks: more SB3 callbacks.
    :param spec: the experiment spec: data, splits, costs, risk, sizing, cash (default: the defaults);
        the config's spec-owned fields, where set, override it (see :func:`~experiments.rl_config.resolve`).
    """
    config, spec = resolve(config, spec)
    torch.set_num_threads(config.torch_threads)
    run_dir = Path(run_dir) if run_dir is not None else run_folder(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config.to_yaml())
    if config.env in LOB_ENVS:
        # Simulated microstructure markets: no data or periods; scored against their closed forms.
        return TrainResult(run_dir, train_lob(config, run_dir, build_model, extra_callbacks))
    save_spec(spec, run_dir)

    if config.env == "Options-v0":
        logger.info("Options-v0 has a fixed observation (market, volatility, Greeks, account): "
                    "window_size and features do not apply")
    full = spec.data.load()
    data = _traded(config, full)
    train_period, val_period, test_period = spec.splits.periods(data.index)
    kwargs = env_kwargs(config, data, spec)
    make_env = eval_env_factory(config, spec=spec, agent=True)
    venv = make_train_env(config, training_data(config, full, train_period), spec)
    model = build_model(config, venv)
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard", "csv"]))
    # Written first so the folder is a loadable agent as soon as the first best model is saved.
    write_manifest(run_dir, config.algo, f"best/{MODEL_FILE}", kwargs, f"best/{VECNORMALIZE_FILE}")

    evaluator = TradingEvalCallback(
        data, val_period, make_env, kwargs, config.eval_freq, best_dir=run_dir / "best", on_evaluation=on_evaluation,
        verbose=1, also_select_on=selection_data(config, full),
    )
    checkpoints = CheckpointCallback(
        max(config.checkpoint_freq // config.num_envs, 1), str(run_dir / "checkpoints"), name_prefix=config.algo,
        save_vecnormalize=True,
    )
    started = time.perf_counter()
    model.learn(
        whole_rollouts(model, config.total_timesteps),
        callback=[evaluator, checkpoints, StepsPerSecondCallback(), *extra_callbacks],
        progress_bar=config.progress,
    )
    seconds = time.perf_counter() - started
    _save_model(model, run_dir / "final")

    # The saved agent, reloaded through the registry's loader, is what gets scored (and later evaluated).
    agent = load_agent(run_dir)
    metrics: dict[str, Any] = {
        "algo": config.algo,
        "env": config.env_id,
        "data": config.data,
        "periods": {
            p.name: dict(zip(("start", "end"), p.dates(data))) for p in (train_period, val_period, test_period)
        },
        "timesteps": int(model.num_timesteps),
        "train_seconds": seconds,
        "steps_per_second": model.num_timesteps / seconds,
        "best_timesteps": evaluator.best_timesteps,
        "validation_history": [{"timesteps": t, **s} for t, s in evaluator.history],
        "best": {val_period.name: evaluate(agent, data, val_period, make_env, seed=spec.seed).scalars()},
        "baselines": compare_baselines(config, data, (val_period,), spec),
    }
    (run_dir / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2))
    # The kept model is the best of every validation check: each check was a configuration tried.
    checks = len(evaluator.history)
    write_trials(run_dir, checks, validation_checks=checks)
    write_run_report(config, spec, data, run_dir, agent, val_period)
    logger.info("run written to %s", run_dir)
    return TrainResult(run_dir, metrics)


def write_run_report(
    config: RLConfig, spec: ExperimentSpec, data: MarketData, run_dir: Path, agent: Any, period: Period
) -> Path:
    """Backtest the saved agent and the config's baselines over ``period`` (the validation period: the one the
    model was selected on, so in-sample for that choice; the test period stays sealed for
    ``experiments.evaluate``) with the spec's costs, risk rules and sizing, and write ``report.html``,
    ``stats.json``, ``trades.csv`` and ``equity.csv`` into the run folder.

    :param config: the run config.
    :param spec: the experiment spec.
    :param data: the traded data.
    :param run_dir: the run folder.
    :param agent: the saved agent, reloaded.
    :param period: the period to backtest.
    """
    backtest = backtest_config(spec, commission_per_contract=config.commission_per_contract)
    window = data.iloc(slice(0, period.stop))
    policies = [agent, *(make_policy(n, policy_defaults(policy_class(n), spec)) for n in config.baseline_names)]
    # Every curve starts on the same bar: the period's first, or the latest warm-up if that is later.
    start = max(period.start, start_bar(policies, window, backtest))
    results = [run_backtest(p, window, backtest, start=start) for p in policies]
    return write_report(
        results, window, run_dir,
        title=f"{config.algo.upper()} {run_dir.name}: validation period (model selection; test sealed)",
        settings={"data": config.data, "env": config.env, "timesteps": config.total_timesteps,
                  "period": f"{window.index[start]:%Y-%m-%d} to {window.index[-1]:%Y-%m-%d}",
                  "execution": backtest.execution, "risk": backtest.risk, "sizing": spec.sizing},
        periods_per_year=backtest.periods_per_year,
    )


def whole_rollouts(model: BaseAlgorithm, total_timesteps: int) -> int:
    """``total_timesteps`` rounded up to whole rollouts (``n_steps`` x envs for PPO/A2C, one step of every env
    for SAC): SB3 always finishes the rollout it started, so this is what it trains for, and what its
    progress bar then counts to (it would otherwise end at e.g. 204,800/200,000).

    :param model: the algorithm, with its env.
    :param total_timesteps: the steps asked for.
    """
    rollout = int(getattr(model, "n_steps", 1)) * model.get_env().num_envs
    steps = -(-total_timesteps // rollout) * rollout
    if steps != total_timesteps:
        logger.info("training %s steps: whole rollouts of %s (n_steps x envs) covering the %s asked for",
                    f"{steps:,}", f"{rollout:,}", f"{total_timesteps:,}")
    return steps


def _save_model(model: BaseAlgorithm, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        normalizer.save(str(folder / VECNORMALIZE_FILE))


def compare_baselines(
    config: RLConfig, data: MarketData, periods: Sequence[Period], spec: ExperimentSpec | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Score the config's baselines on the same periods, bars, costs, risk rules and sizing as the agent.

    Each bot trades in its own kind of env: an options bot in Options-v0, a stock bot in the config's stock
    env (Stocks-v0 on the underlying when the agent trades options).

    :param config: the run config (``baseline_names``, env and costs).
    :param data: the full data set.
    :param periods: the periods to score.
    :param spec: the experiment spec (default: the one :func:`~experiments.rl_config.resolve` gives).
    """
    config, spec = resolve(config, spec)
    stock_env = "Stocks-v0" if config.env == "Options-v0" else config.env
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in config.baseline_names:
        policy = make_policy(name, policy_defaults(policy_class(name), spec))
        env = "Options-v0" if getattr(policy, "env_id", None) == OPTIONS_ENV_ID else stock_env
        make_env = eval_env_factory(config, env, spec)
        results[name] = {p.name: evaluate(policy, data, p, make_env, seed=spec.seed).scalars() for p in periods}
    return results


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


SUMMARY_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("sharpe", "val sharpe", False), ("total_return", "val return", True), ("max_drawdown", "val maxdd", True),
    ("exposure", "val exposure", True),
)


def summary_table(metrics: dict[str, Any]) -> str:
    """Validation Sharpe, return, max drawdown and exposure of the agent and the baselines, as text (no
    test scores: those come from ``python -m experiments.evaluate``).

    :param metrics: the content of ``metrics.json``.
    """
    rows = [("agent (best validation)", metrics["best"])] + list(metrics["baselines"].items())
    lines = [f"{'policy':<26}" + "".join(f"{label:>13}" for _, label, _ in SUMMARY_FIELDS)]
    for name, scores in rows:
        val = scores["validation"]
        lines.append(f"{name:<26}" + "".join(f"{_fmt(val[key], pct):>13}" for key, _, pct in SUMMARY_FIELDS))
    return "\n".join(lines)


def seeds_table(runs: Sequence[TrainResult]) -> str:
    """The agent's validation scores per seed, then their mean and standard deviation across seeds.

    :param runs: one training run per seed.
    """
    lines = [f"{'seed':<26}" + "".join(f"{label:>13}" for _, label, _ in SUMMARY_FIELDS)]
    values = []
    for run in runs:
        val = run.metrics["best"]["validation"]
        values.append([np.nan if val[key] is None else val[key] for key, _, _ in SUMMARY_FIELDS])
        seed = yaml.safe_load((run.run_dir / "config.yaml").read_text())["seed"]
        lines.append(f"{seed!s:<26}" + "".join(f"{_fmt(val[key], pct):>13}" for key, _, pct in SUMMARY_FIELDS))
    table = np.array(values, dtype=float)
    for label, row in (("mean", np.nanmean(table, axis=0)), ("std (across seeds)", np.nanstd(table, axis=0, ddof=1))):
        lines.append(f"{label:<26}" + "".join(
            f"{_fmt(float(v), pct):>13}" for v, (_, _, pct) in zip(row, SUMMARY_FIELDS)
        ))
    return "\n".join(lines)


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.2f}"


# ---------------------------------------------------------------------------------------------- command line
def add_subcommands(subparsers: Any) -> None:
    """Add ``ppo``, ``a2c`` and ``sac`` to a subparsers action (used by ``experiments.train``).

    :param subparsers: the result of ``ArgumentParser.add_subparsers``.
    """
    for algo in ALGOS:
        sub = subparsers.add_parser(
            algo, help=f"train stable-baselines3 {algo.upper()} on a trading env",
            description=f"Train {algo.upper()}; every config field is a flag (precedence: defaults < "
            f"--config YAML (default experiments/configs/{algo}.yaml if present) < flags). Data, splits, "
            "costs, risk, sizing and seeds come from the experiment spec (--spec FILE and its flags); "
            "--seeds 0,1,2 trains one run per seed. Only validation scores are printed: test scores come "
            "from `python -m experiments.evaluate RUN`.",
        )
        add_config_arguments(sub, algos=(algo,))
        add_spec_arguments(sub)
        sub.set_defaults(handler=run_command, algo=algo)


def run_command(args: argparse.Namespace) -> int:
    """Handle a parsed ``ppo``/``a2c``/``sac`` command: train and print the comparison table.

    :param args: the parsed arguments.
    """
    config = load_config(args.config, overrides_from_args(args), algo=args.algo)
    spec, changes = spec_from_args(args)  # a ConfigError names the field; the command prints it
    for line in changes:
        logger.info("spec: %s", line)
    runs = []
    for seed in spec.seeds:
        name = config.run_name
        if name is not None and len(spec.seeds) > 1:
            name = f"{name}-seed{seed}"
        seeded = dataclasses.replace(config, seed=None, run_name=name)
        runs.append(train(seeded, spec=spec.replace(seeds=(seed,))))
    for result in runs:
        print(result.metrics.get("summary") or summary_table(result.metrics))
        print(f"\nrun folder: {result.run_dir}\ntensorboard --logdir {result.run_dir.parent}\n")
    if len(runs) > 1:
        # Picking one seed's run later is a choice among every seed's validation checks: its Deflated Sharpe
        # Ratio counts them all.
        checks = sum(trials_of(result.run_dir) for result in runs)
        for result in runs:
            write_trials(result.run_dir, checks, validation_checks=checks, seeds=len(runs))
        print(f"agent's validation scores over {len(runs)} seeds:")
        print(seeds_table(runs))
    if config.env not in LOB_ENVS:  # a simulated market's run was scored on its test episodes already
        print("test scores: python -m experiments.evaluate RUN (each look at the test period is counted)")
    return 0

