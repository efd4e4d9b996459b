"""The typed configuration of ``python -m experiments.train {ppo,a2c,sac}``: one dataclass, from YAML and flags.

What must match the evaluation (data, splits, every cost, the risk rules, sizing, cash, seeds) is the
experiment spec's (:mod:`experiments.spec`, ``--spec FILE`` and its flags). The few fields below that
overlap it (``data``, ``train_fraction``, ``val_fraction``, ``commission``, ``slippage_bps``,
``allow_short``, ``seed``) default to ``None``, "the spec's value"; a value given here (a YAML file
written before the spec existed, or Python) overrides the spec's.

Precedence: the dataclass defaults, then a YAML file (``--config``; ``experiments/configs/<algo>.yaml`` when
it exists and none is given), then command-line flags. Every field is a flag (``n_steps`` is ``--n-steps``),
its help text is the field's ``:param:`` line below, and a bad value raises :class:`ConfigError` naming the
field.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args, get_origin, get_type_hints

from agents.params import coerce, param_docs
from envs.data.calendar import CALENDARS, frequency_from_label
from envs.environments.rewards import REWARDS
from envs.sim.execution import ConfigError
from experiments.config_files import YamlConfig, check_known, coerce_field, read_fields
from experiments.spec import ExperimentSpec

Algo = Literal["ppo", "a2c", "sac"]
LOB_ENVS: tuple[str, ...] = ("MarketMaking-v0", "Execution-v0")
"""Envs that simulate their own market (trained by :mod:`experiments.train_lob`)."""
ALGOS: tuple[str, ...] = get_args(Algo)
STOCK_BASELINES: tuple[str, ...] = (
    "buy_and_hold", "sma_crossover", "rsi_reversion", "bollinger_reversion", "macd_momentum", "breakout", "consensus",
)
# Buy-and-hold of the underlying is the yardstick every options strategy is measured against.
OPTIONS_BASELINES: tuple[str, ...] = ("buy_and_hold", "covered_calls", "weekly_puts", "iron_condors", "iv_timing")
# Fields of RLConfig that the experiment spec owns; ``None`` here means "the spec's value".
SPEC_OWNED: tuple[str, ...] = ("data", "train_fraction", "val_fraction", "commission", "slippage_bps", "allow_short")


@dataclass(frozen=True)
class RLConfig(YamlConfig):
    """Everything one training run needs; the run folder keeps a copy as ``config.yaml``.

    :param algo: the stable-baselines3 algorithm: ppo, a2c or sac (sac needs a continuous action mode).
    :param env: the environment: Stocks-v0 (one symbol), Portfolio-v0 (every symbol of the data) or
        Options-v0 (option strategies on one underlying; its observation is fixed, so window_size and
        features do not apply, and it needs the discrete action mode), MarketMaking-v0 or Execution-v0
        (simulated microstructure markets: data, periods, features, costs and action_mode do not apply;
        default config experiments/configs/<algo>_<env>.yaml).
    :param data: data spec for envs.data.sources.load_data, e.g. synthetic, synthetic:seed=3, csv:PATH
        (default: the experiment spec's).
    :param symbol: symbol traded by Stocks-v0, or the underlying of Options-v0 (default: the first one of
        the data).
    :param train_symbols: Stocks-v0 and Options-v0: symbols whose train-period bars the agent learns from,
        each in its own batch of envs (empty: the traded symbol only; all: every symbol of the data).
    :param extra_train_data: data specs of other, independent markets (e.g. synthetic:seed=1) whose bars,
        all of them, are added to the training data for the same symbols: training on a simulator. Never the
        market being tested.
    :param train_fraction: share of the bars, from the start, in the train period (default: the spec's).
    :param val_fraction: share of the bars after train in the validation period (model selection); the
        rest is the test period, touched only by ``python -m experiments.evaluate`` (default: the spec's).
    :param window_size: feature rows in each observation.
    :param features: feature names (see envs.features); empty means the env's default set.
    :param sentiment: Options-v0: observe the option chains' put/call volume ratio too (its log, and its log
        over its 20-bar mean); the stock envs observe sentiment through ``features`` (``vix_level``, ...).
    :param action_mode: discrete (flat/long, or short/flat/long), weights or continuous.
    :param switch_prob: discrete action mode: the trained agent leaves its current position only for a choice
        at least this likely (0: always the most likely choice), so an agent near even odds does not churn.
    :param reward: log_return, differential_sharpe or drawdown_penalty.
    :param reward_eta: adaptation rate of the differential Sharpe reward.
    :param drawdown_penalty: weight of drawdown increases in the drawdown_penalty reward.
    :param episode_length: length of a training episode, each starting at a random bar of the train period:
        a number of bars, or trading time on the data's calendar (1Y is 252 daily NYSE bars, 8,766 hourly
        crypto bars; 30D, 2W, 12h).
    :param commission: commission as a fraction of traded notional (Options-v0: of the shares traded;
        default: the spec's).
    :param commission_per_contract: Options-v0: commission per option contract traded.
    :param slippage_bps: slippage per leg in basis points (default: the spec's).
    :param allow_short: allow short positions (default: the spec's).
    :param num_envs: parallel episodes in the batched vector env.
    :param total_timesteps: environment steps to train for.
    :param learning_rate: optimiser learning rate.
    :param anneal_lr: decay the learning rate linearly from ``learning_rate`` to zero over the run (as
        CleanRL's PPO does by default), so the late updates, where the kept model usually comes from, are small.
    :param gamma: discount factor.
    :param ent_coef: entropy bonus (ppo, a2c); sac tunes its own.
    :param net_arch: hidden layer sizes of the policy and value networks.
    :param log_std_init: initial log standard deviation of a Gaussian policy (Box actions; ppo, a2c).
    :param n_steps: steps per env per rollout (ppo, a2c).
    :param batch_size: minibatch size (ppo, sac).
    :param n_epochs: optimisation epochs per rollout (ppo).
    :param gae_lambda: GAE lambda (ppo, a2c).
    :param clip_range: policy clip range (ppo).
    :param buffer_size: replay buffer size (sac).
    :param learning_starts: steps collected before sac starts learning.
    :param norm_obs: normalise observations with running statistics (VecNormalize, saved with the model).
    :param norm_reward: scale rewards by the running std of the discounted return (VecNormalize).
    :param eval_freq: evaluate on the validation period every this many steps.
    :param select_on: which validation periods pick the kept model: ``train_symbols`` (the traded symbol's
        and every other ``train_symbols`` entry's, same dates, by their mean Sharpe) or ``traded`` (the
        traded symbol's alone).
    :param checkpoint_freq: save a checkpoint every this many steps.
    :param seed: seed of the policy, the env and the episode starts (default: the spec's first seed).
    :param runs_dir: runs are written to runs_dir/algo/run_name.
    :param run_name: name of the run folder (default: date, time and seed).
    :param torch_threads: torch intra-op threads; 1 keeps several runs from fighting over the cores.
    :param progress: show a progress bar.
    :param baselines: registered policies scored on the same periods for comparison (agents.registry names;
        default: the env's rule bots, i.e. the stock bots, or the options bots for Options-v0).
    """

    algo: Algo = "ppo"
    env: Literal["Stocks-v0", "Portfolio-v0", "Options-v0", "MarketMaking-v0", "Execution-v0"] = "Stocks-v0"
    data: str | None = None
    symbol: str | None = None
    train_symbols: tuple[str, ...] = ()
    extra_train_data: tuple[str, ...] = ()
    train_fraction: float | None = None
    val_fraction: float | None = None
    window_size: int = 1
    features: tuple[str, ...] = ()
    sentiment: bool = False
    action_mode: Literal["discrete", "weights", "continuous"] = "discrete"
    switch_prob: float = 0.0
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalty"] = "log_return"
    reward_eta: float = 0.01
    drawdown_penalty: float = 1.0
    episode_length: str = "1Y"
    commission: float | None = None
    commission_per_contract: float = 0.65
    slippage_bps: float | None = None
    allow_short: bool | None = None
    num_envs: int = 16
    total_timesteps: int = 200_000
    learning_rate: float = 3e-4
    anneal_lr: bool = False
    gamma: float = 0.99
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    log_std_init: float = 0.0
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    norm_obs: bool = True
    norm_reward: bool = True
    eval_freq: int = 10_000
    select_on: Literal["train_symbols", "traded"] = "train_symbols"
    checkpoint_freq: int = 50_000
    seed: int | None = None
    runs_dir: str = "runs"
    run_name: str | None = None
    torch_threads: int = 1
    progress: bool = True
    baselines: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "episode_length" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # a number of bars (YAML reads 252 as an int)
            value = coerce_field(f.name, _HINTS[f.name], value, _coerce_scalar)
            object.__setattr__(self, f.name, value)
        _check_span(self.episode_length)
        positive = ("window_size", "num_envs", "total_timesteps", "n_steps", "batch_size",
                    "n_epochs", "buffer_size", "eval_freq", "checkpoint_freq", "torch_threads")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"RLConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "clip_range", "reward_eta"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"RLConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"RLConfig.{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("ent_coef", "commission", "commission_per_contract", "slippage_bps", "drawdown_penalty",
                     "learning_starts"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"RLConfig.{name} must be >= 0, got {getattr(self, name)}")
        train, val = self.train_fraction, self.val_fraction
        if (train is not None and not 0 < train < 1) or (val is not None and not 0 < val < 1) or (
            train is not None and val is not None and train + val >= 1
        ):
            raise ConfigError(
                "RLConfig.train_fraction and val_fraction must be in (0, 1) and leave a test period, got "
                f"{train} and {val}"
            )
        if not self.net_arch or min(self.net_arch) < 1:
            raise ConfigError(f"RLConfig.net_arch must list positive layer sizes, got {self.net_arch}")
        if self.algo == "sac" and self.action_mode == "discrete" and self.env not in LOB_ENVS:
            raise ConfigError("RLConfig.action_mode: sac needs 'weights' or 'continuous', got 'discrete'")
        # [all] (the default config's) is what Portfolio-v0 does anyway; a list of symbols is not.
        if self.train_symbols and self.train_symbols != ("all",) and self.env == "Portfolio-v0":
            raise ConfigError("RLConfig.train_symbols applies to one-symbol envs (Portfolio-v0 trades every symbol)")
        if self.env == "Options-v0" and self.action_mode != "discrete":
            raise ConfigError(
                f"RLConfig.action_mode: Options-v0 chooses among strategies (discrete), got {self.action_mode!r}"
            )
        if self.env == "Options-v0" and self.allow_short:
            raise ConfigError("RLConfig.allow_short does not apply to Options-v0 (it never holds short stock)")
        if not 0 <= self.switch_prob < 1:
            raise ConfigError(f"RLConfig.switch_prob must be in [0, 1), got {self.switch_prob}")
        if self.sentiment and self.env != "Options-v0":
            raise ConfigError(
                f"RLConfig.sentiment is the put/call ratio of Options-v0's chains, not {self.env}'s; a stock env "
                "observes sentiment through features (vix_level, vix_term_63, vix_pctile_252, breadth_ad)"
            )
        if self.data in self.extra_train_data:
            raise ConfigError(f"RLConfig.extra_train_data must not contain the evaluated data {self.data!r}")
        if self.reward not in REWARDS:
            raise ConfigError(f"RLConfig.reward must be one of {REWARDS}, got {self.reward!r}")

    @property
    def env_id(self) -> str:
        """The Gymnasium id, ``AlpacaGym/<env>``."""
        return f"AlpacaGym/{self.env}"

    @property
    def baseline_names(self) -> tuple[str, ...]:
        """The policies compared with the agent: ``baselines``, or the env's rule bots when it is ``None``."""
        if self.baselines is not None:
            return self.baselines
        return OPTIONS_BASELINES if self.env == "Options-v0" else STOCK_BASELINES

    def replace(self, **changes: Any) -> "RLConfig":
        """A copy with ``changes`` applied (validated like the constructor).

        :param changes: field values.
        """
        check_known(changes, _HINTS, "RLConfig")
        return dataclasses.replace(self, **changes)



_HINTS = get_type_hints(RLConfig)


def _check_span(text: str) -> None:
    """``episode_length`` is a positive number of bars or a span such as 1Y, 30D, 12h."""
    if text.isdigit():
        if int(text) < 1:
            raise ConfigError(f"RLConfig.episode_length must be >= 1 bar, got {text}")
        return
    try:
        CALENDARS["24/7"].bars_in(text, frequency_from_label("1D"))
    except ValueError as err:
        raise ConfigError(f"RLConfig.episode_length: {err}") from None


def _coerce_scalar(name: str, hint: Any, value: Any) -> Any:
    """One plain value (from Python, YAML or a flag's string) as the field's type, or a ConfigError naming it."""
    try:
        value = coerce("RLConfig", name, hint, value)
    except TypeError as err:
        raise ConfigError(str(err)) from None
    return value.strip() if isinstance(value, str) else value


def field_help() -> dict[str, str]:
    """Each field's ``:param:`` text from the :class:`RLConfig` docstring."""
    return param_docs(RLConfig)


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, algo: str | None = None
) -> RLConfig:
    """Build a config from a YAML file and overrides.

    :param path: YAML file of field values; ``None`` uses ``experiments/configs/<algo>.yaml`` if it exists
        (``<algo>_<env>.yaml`` for a microstructure env given in ``overrides``).
    :param overrides: field values applied last (strings are parsed like command-line flags).
    :param algo: the algorithm, which also picks the default YAML file.
    """
    env = (overrides or {}).get("env")
    # A microstructure env has its own defaults (experiments/configs/<algo>_<env>.yaml), not the stock env's.
    values = read_fields(path, "RLConfig", f"{algo}_{env}" if path is None and env in LOB_ENVS else algo)
    if algo is not None:
        values["algo"] = algo
    values.update(overrides or {})
    check_known(values, _HINTS, "RLConfig")
    return RLConfig(**values)


def add_config_arguments(
    parser: argparse.ArgumentParser, skip: Sequence[str] = ("algo", *SPEC_OWNED, "seed"), algos: Sequence[str] = ()
) -> None:
    """Add ``--config`` and one flag per field (default ``None``: not given, so the YAML value stands).

    :param parser: the parser to extend.
    :param skip: fields that get no flag (by default the spec-owned ones: the spec's flags set them).
    :param algos: the algorithms the command trains; a field their default YAML file sets shows that value
        as its default in ``--help`` (what a run without the flag uses), not the dataclass's.
    """
    helps = field_help()
    files = {algo: read_fields(None, "RLConfig", algo) for algo in algos}
    parser.add_argument("--config", type=Path, help="YAML file of config fields (flags override it)")
    for f in fields(RLConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        names = (flag, "--timesteps") if f.name == "total_timesteps" else (flag,)
        if get_origin(_HINTS[f.name]) is tuple:
            helps[f.name] += "; comma-separated, or semicolon-separated when items contain commas"
        default = _shown(f.default)
        set_by = {algo: values[f.name] for algo, values in files.items() if f.name in values}
        if len(algos) == 1 and set_by:
            default = f"{_shown(set_by[algos[0]])}, from experiments/configs/{algos[0]}.yaml"
        elif set_by:
            from_files = ", ".join(f"{_shown(v)} for {a} (experiments/configs/{a}.yaml)" for a, v in set_by.items())
            default = from_files if len(set_by) == len(algos) else f"{from_files}, else {default}"
        parser.add_argument(
            *names, dest=f.name, default=None, metavar=f.name.upper(),
            help=f"{helps.get(f.name, '')} (default: {default})",
        )


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The field values given on the command line.

    :param args: parsed arguments of a parser extended by :func:`add_config_arguments`.
    """
    return {f.name: getattr(args, f.name) for f in fields(RLConfig) if getattr(args, f.name, None) is not None}



def resolve(config: RLConfig, spec: ExperimentSpec | None = None) -> tuple[RLConfig, ExperimentSpec]:
    """The config and spec one training run uses: the config's spec-owned fields that are set override
    the spec, and the config is completed from the spec (so ``config.data``, ``config.seed``, ... are set).

    :param config: the training config.
    :param spec: the experiment spec (default: the defaults).
    """
    spec = spec or ExperimentSpec()
    overrides: dict[str, Any] = {k: getattr(config, k) for k in SPEC_OWNED if getattr(config, k) is not None}
    if config.seed is not None:
        overrides["seeds"] = (config.seed,)
    spec = spec.replace(**overrides)
    ex = spec.execution
    symbol = config.symbol
    if symbol is None and spec.data.symbols and config.env != "Portfolio-v0":
        symbol = spec.data.symbols[0]
    completed = dataclasses.replace(
        config, data=spec.data.data, train_fraction=spec.splits.train_fraction,
        val_fraction=spec.splits.val_fraction, commission=ex.commission, slippage_bps=ex.slippage_bps,
        allow_short=ex.allow_short, seed=spec.seed, symbol=symbol,
    )
    return completed, spec
