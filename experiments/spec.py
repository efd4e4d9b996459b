"""The experiment spec: one typed tree every command reads (``--spec FILE``), stores and reuses.

An :class:`ExperimentSpec` holds what must be equal for numbers to compare: the data, the calendar
splits, every execution cost (:class:`~envs.sim.execution.ExecutionConfig`), the risk rules
(:class:`~envs.sim.risk.RiskConfig`, or none), the sizing rule every policy trades with, the starting
cash and the seeds. The sections are the library's own dataclasses wherever one exists, so each default
is written once, where the rule lives.

YAML in and out::

    data: {source: sample:SPY, symbols: []}
    splits: {train_end: '2015-12-31', val_end: '2018-12-31', test_end: null}
    execution: {commission: 0.001, spread_bps: 2.0, ...}
    risk: {max_position: 0.15, max_drawdown: 0.2, drawdown_cooloff: 20, ...}   # or null: no risk layer
    sizing: {sizing: fixed, fraction: 0.1, ...}
    initial_cash: 100000.0
    seeds: [0]

Command-line flags are generated from the same fields (:func:`add_spec_arguments`): each leaf field is
one flag named after it (``--spread-bps 5``, ``--max-drawdown 0.3``, ``--train-end 2015-12-31``,
``--data sample:SPY``, ``--no-risk``); ``none`` switches an optional rule off (``--stop-loss none``).
Precedence: defaults < ``--spec FILE`` (or the spec stored in a run folder) < flags, and
:func:`describe_changes` lists every field an explicit flag changed. Bad values raise
:class:`~envs.sim.execution.ConfigError` naming the field (``risk.max_drawdown``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_origin, get_type_hints

import pandas as pd
import yaml

from agents.params import coerce, declared_params, param_docs
from agents.rl_eval import Period, split_periods
from envs.sim.sizing import FixedFraction, Sizer, VolatilityTarget, sizer_of
from envs.data.calendar import resample
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.sim.execution import ConfigError, ExecutionConfig
from envs.sim.risk import RiskConfig
from experiments.engine import BacktestConfig

SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class DataSpec:
    """Which market the experiment trades.

    :param data: data spec for envs.data.sources.load_data: synthetic, synthetic:seed=3, sample:SPY,
        csv:PATH, ...
    :param symbols: symbols to keep (empty: every symbol of the data).
    :param calendar: trading calendar of the data: XNYS, 24/7 (crypto) or 24/5 (FX); default: inferred
        from the timestamps and symbol names.
    :param resample: resample the bars to one frequency first (1h, 1D, ...), for mixed or irregular data.
    """

    data: str = "synthetic"
    symbols: tuple[str, ...] = ()
    calendar: str | None = None
    resample: str | None = None

    def load(self) -> MarketData:
        """The bars, cut to :attr:`symbols`, resampled and with the declared calendar."""
        market = load_data(self.data)
        if self.symbols:
            missing = sorted(set(self.symbols) - set(market.symbols))
            if missing:
                raise ConfigError(f"data.symbols {missing} are not in {self.data!r}; available: {list(market.symbols)}")
            market = market.select(list(self.symbols))
        if self.resample:
            market = resample(market, self.resample)
        if self.calendar:
            try:
                market = market.with_calendar(self.calendar)
            except ValueError as err:
                raise ConfigError(f"data.calendar: {err}") from None
        return market


@dataclass(frozen=True)
class SplitSpec:
    """Train, validation and test periods in time order, by dates or, when no dates are given, by shares.

    :param train_end: last date of the train period (inclusive); with val_end, dates decide the split.
    :param val_end: last date of the validation period (inclusive); the test period starts after it.
    :param test_end: last date of the test period (inclusive; default: the end of the data).
    :param train_fraction: share of the bars in the train period, when no dates are given.
    :param val_fraction: share of the bars after train in the validation period, when no dates are given;
        the rest is the test period, touched only by the final out-of-sample evaluation.
    """

    train_end: str | None = None
    val_end: str | None = None
    test_end: str | None = None
    train_fraction: float = 0.6
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        if (self.train_end is None) != (self.val_end is None):
            raise ConfigError("splits.train_end and splits.val_end go together: give both dates or neither")
        dates = [_timestamp(name, getattr(self, name)) for name in ("train_end", "val_end", "test_end")]
        given = [d for d in dates if d is not None]
        if given != sorted(given) or len(set(given)) != len(given):
            raise ConfigError(
                f"splits dates must increase: train_end {self.train_end} < val_end {self.val_end} "
                f"< test_end {self.test_end}"
            )
        if not (0 < self.train_fraction < 1 and 0 < self.val_fraction < 1
                and self.train_fraction + self.val_fraction < 1):
            raise ConfigError(
                "splits.train_fraction and splits.val_fraction must be in (0, 1) and leave a test period, got "
                f"{self.train_fraction} and {self.val_fraction}"
            )

    @property
    def by_dates(self) -> bool:
        """True when the dates, not the fractions, decide the split."""
        return self.train_end is not None

    def periods(self, index: pd.DatetimeIndex) -> tuple[Period, Period, Period]:
        """Train, validation and test :class:`~agents.rl_eval.Period` of the bars ``index``.

        :param index: the data's UTC timestamps.
        """
        n = len(index)
        stop = n
        if self.test_end is not None:
            stop = int(index.searchsorted(_timestamp("test_end", self.test_end, end=True), side="right"))
        if self.by_dates:
            train_stop = int(index.searchsorted(_timestamp("train_end", self.train_end, end=True), side="right"))
            val_stop = int(index.searchsorted(_timestamp("val_end", self.val_end, end=True), side="right"))
        else:
            fractions = split_periods(stop, self.train_fraction, self.val_fraction)
            train_stop, val_stop = fractions[0].stop, fractions[1].stop
        bounds = {"train": (0, train_stop), "validation": (train_stop, val_stop), "test": (val_stop, stop)}
        for name, (start, end) in bounds.items():
            if end - start < 2:
                first, last = index[0], index[-1]
                raise ConfigError(
                    f"splits: the {name} period has {max(end - start, 0)} bars (data {first:%Y-%m-%d} .. "
                    f"{last:%Y-%m-%d}, {n} bars); move train_end/val_end/test_end or the fractions"
                )
        return tuple(Period(name, start, end) for name, (start, end) in bounds.items())  # type: ignore[return-value]


@dataclass(frozen=True)
class SizingSpec:
    """The one sizing rule every policy trades with: a signal in [-1, 1] per symbol becomes a weight.

    :param sizing: fixed (weight = signal x fraction), volatility (each position targets target_vol) or
        kelly (capped fractional Kelly); see envs.sim.sizing.
    :param fraction: the weight of a full-conviction position (fixed), or the cap of the other sizers.
    :param target_vol: annualised volatility per position for sizing=volatility.
    :param sizing_lookback: bars used by the volatility and Kelly estimates.
    """

    sizing: Literal["fixed", "volatility", "kelly"] = "fixed"
    fraction: float = FixedFraction.fraction
    target_vol: float = VolatilityTarget.target_vol
    sizing_lookback: int = VolatilityTarget.lookback

    def __post_init__(self) -> None:
        if not self.fraction > 0:
            raise ConfigError(f"sizing.fraction must be > 0, got {self.fraction}")
        if not self.target_vol > 0:
            raise ConfigError(f"sizing.target_vol must be > 0, got {self.target_vol}")
        if self.sizing_lookback < 2:
            raise ConfigError(f"sizing.sizing_lookback must be >= 2, got {self.sizing_lookback}")

    def params(self) -> dict[str, Any]:
        """The sizing parameters as a policy declares them (rule bots and predictors share these names)."""
        return dataclasses.asdict(self)

    def sizer(self) -> Sizer:
        """The rule itself (:mod:`envs.sim.sizing`), as an RL agent's env applies it to the agent's signal."""
        return sizer_of(self.sizing, self.fraction, self.target_vol, self.sizing_lookback)


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that must be the same for two policies' numbers to compare.

    :param data: the market.
    :param splits: train, validation and test periods.
    :param execution: costs and fill conventions (every field of ExecutionConfig).
    :param risk: the risk rules between every policy and execution, or none.
    :param sizing: the sizing rule every policy trades with.
    :param initial_cash: starting cash of every account.
    :param seeds: seeds of the runs (training runs one per seed; evaluations use the first).
    """

    data: DataSpec = field(default_factory=DataSpec)
    splits: SplitSpec = field(default_factory=SplitSpec)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    risk: RiskConfig | None = field(default_factory=RiskConfig)
    sizing: SizingSpec = field(default_factory=SizingSpec)
    initial_cash: float = 100_000.0
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.initial_cash > 0:
            raise ConfigError(f"initial_cash must be > 0, got {self.initial_cash}")
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")

    @property
    def seed(self) -> int:
        """The first seed: the one an evaluation uses."""
        return self.seeds[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready values (tuples as lists, ``risk: None`` when the layer is off)."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        """The spec as YAML, loadable with ``--spec``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with flat field changes applied (``commission=0.002``, ``risk=None``), validated.

        :param changes: leaf field names (as the flags name them) and values; ``risk=None`` switches the
            risk layer off.
        """
        return build_spec(self.to_dict(), changes)


# The sections, in order, and the dataclass of each; ``risk`` may also be None.
SECTIONS: dict[str, type] = {
    "data": DataSpec, "splits": SplitSpec, "execution": ExecutionConfig, "risk": RiskConfig, "sizing": SizingSpec,
}
TOP_LEVEL = ("initial_cash", "seeds")


def _leaf_owner() -> dict[str, str]:
    """Flat field name -> its section ('' for a top-level field); flat names are unique by construction."""
    owner: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            if f.name in owner:
                raise AssertionError(f"spec field {f.name!r} appears in two sections")
            owner[f.name] = section
    owner.update({name: "" for name in TOP_LEVEL})
    return owner


LEAVES: dict[str, str] = _leaf_owner()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _timestamp(name: str, value: str | None, end: bool = False) -> pd.Timestamp | None:
    """A split date as a UTC timestamp; a plain date means the whole day when ``end``."""
    if value is None:
        return None
    try:
        when = pd.Timestamp(str(value))
    except (TypeError, ValueError):
        raise ConfigError(f"splits.{name} must be a date such as 2015-12-31, got {value!r}") from None
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    if end and when == when.normalize():
        when = when + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return when


def _coerce(path: str, hint: Any, value: Any) -> Any:
    """One value (Python, YAML or flag text) as the field's type; errors name ``path``."""
    origin = get_origin(hint)
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip().strip("[]")
            value = [p.strip() for p in text.split(",") if p.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = hint.__args__[0]
        return tuple(_coerce(path, inner, item) for item in value)
    try:
        value = coerce("spec", path, hint, value)
    except TypeError as err:
        raise ConfigError(str(err).replace("spec.", "", 1)) from None
    # YAML reads 2015-12-31 as a date; a split keeps it as text.
    if hint in (str, str | None) and value is not None and not isinstance(value, str):
        value = str(value)
    return value


def _section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown {name} field(s) {unknown}; known: {[f.name for f in fields(cls)]}")
    typed = {k: _coerce(f"{name}.{k}", hints[k], v) for k, v in values.items()}
    try:
        return cls(**typed)
    except ConfigError:
        raise
    except ValueError as err:  # RiskConfig names its own class; say where the field sits in the spec
        raise ConfigError(f"{name}: {err}") from None


def build_spec(values: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None) -> ExperimentSpec:
    """A validated spec from nested values (a YAML mapping) and flat overrides (flags).

    :param values: ``{section: {field: value}, initial_cash: ..., seeds: [...]}``; missing fields keep
        their defaults, ``risk: null`` switches the risk layer off.
    :param overrides: flat leaf names and values applied last; ``risk=None`` switches the layer off,
        ``risk=True`` switches it on with the defaults (then the other risk fields apply).
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"unknown spec field(s) {unknown}; known: {[*SECTIONS, *TOP_LEVEL]}")
    nested: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        given = values.get(name, {})
        if given is None and name == "risk":
            nested[name] = None
            continue
        if not isinstance(given, Mapping):
            raise ConfigError(f"{name} must be a mapping of {cls.__name__} fields, got {given!r}")
        nested[name] = dict(given)
    top = {k: values[k] for k in TOP_LEVEL if k in values}
    for key, value in (overrides or {}).items():
        if key == "risk":
            if value is None or value is False:
                nested["risk"] = None
            elif nested["risk"] is None:
                nested["risk"] = {}
            continue
        if key not in LEAVES:
            raise ConfigError(f"unknown spec field {key!r}; known: {sorted(LEAVES)}")
        section = LEAVES[key]
        if not section:
            top[key] = value
        elif nested[section] is None:
            raise ConfigError(f"risk.{key} given but the risk layer is off (risk: null / --no-risk)")
        else:
            nested[section][key] = value
    built = {name: None if nested[name] is None else _section(name, cls, nested[name])
             for name, cls in SECTIONS.items()}
    hints = get_type_hints(ExperimentSpec)
    typed_top = {k: _coerce(k, hints[k], v) for k, v in top.items()}
    return ExperimentSpec(**built, **typed_top)


def load_spec(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ExperimentSpec:
    """The spec from a YAML file (or the defaults), with flat overrides applied.

    :param path: a spec YAML file, or a run folder holding ``spec.yaml``; ``None``: the defaults.
    :param overrides: flat leaf names and values (see :func:`build_spec`).
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.is_file():
            raise ConfigError(f"spec file {path} does not exist")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of spec sections, got {type(loaded).__name__}")
        try:
            return build_spec(loaded or {}, overrides)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return build_spec(values, overrides)


def save_spec(spec: ExperimentSpec, folder: str | Path) -> Path:
    """Write ``spec.yaml`` into a run folder.

    :param spec: the spec.
    :param folder: the run folder (created if missing).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILE
    path.write_text(spec.to_yaml())
    return path


def run_spec(folder: str | Path) -> ExperimentSpec | None:
    """The spec stored in a run folder, or ``None`` when the folder has none (runs from before specs).

    :param folder: the run folder.
    """
    path = Path(folder) / SPEC_FILE
    return load_spec(path) if path.is_file() else None


def flatten(spec: ExperimentSpec) -> dict[str, Any]:
    """Every leaf as ``{'section.field': value}`` (``risk`` alone when the layer is off).

    :param spec: the spec.
    """
    flat: dict[str, Any] = {}
    for name, value in spec.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def describe_changes(before: ExperimentSpec, after: ExperimentSpec) -> list[str]:
    """One line per field that differs, ``risk.max_drawdown: 0.2 -> 0.3``.

    :param before: the stored or default spec.
    :param after: the spec after overrides.
    """
    lines = []
    if (before.risk is None) != (after.risk is None):
        lines.append(f"risk: {'off' if before.risk is None else 'on'} -> {'off' if after.risk is None else 'on'}")
    a, b = flatten(before), flatten(after)
    for key in dict.fromkeys([*a, *b]):
        if key in a and key in b and a[key] != b[key]:
            lines.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return lines


# ---------------------------------------------------------------------------------------------- flags
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def spec_help() -> dict[str, str]:
    """Each leaf field's help text, from the ``:param:`` lines of its dataclass."""
    helps: dict[str, str] = {}
    for cls in (*SECTIONS.values(), ExperimentSpec):
        helps.update(param_docs(cls))
    return helps


def add_spec_arguments(
    parser: argparse.ArgumentParser, skip: Sequence[str] = (), sections: Sequence[str] | None = None
) -> None:
    """Add ``--spec FILE``, ``--no-risk`` and one flag per leaf field of the spec.

    Every flag defaults to ``None`` (not given), so a spec file's value stands unless the flag is given,
    and :func:`spec_overrides` knows exactly what the command line changed.

    :param parser: the parser to extend.
    :param skip: leaf fields that get no flag (the command sets them itself).
    :param sections: only these sections' fields (default: all).
    """
    helps = spec_help()
    group = parser.add_argument_group("experiment spec (defaults < --spec FILE < these flags)")
    group.add_argument("--spec", type=Path, default=None,
                       help="YAML experiment spec (see experiments.spec); a run folder's spec.yaml also works")
    if sections is None or "risk" in sections:
        group.add_argument("--no-risk", dest="risk", action="store_const", const=False, default=None,
                           help="switch the risk layer off (risk: null)")
        group.add_argument("--risk", dest="risk", action="store_const", const=True,
                           help="switch the risk layer on (with the default limits unless given)")
    defaults = flatten(ExperimentSpec())
    for leaf, section in LEAVES.items():
        if leaf in skip or (sections is not None and section and section not in sections):
            continue
        default = defaults.get(f"{section}.{leaf}" if section else leaf)
        if isinstance(default, list):
            default = ",".join(map(str, default))
        hint = get_type_hints(SECTIONS[section] if section else ExperimentSpec)[leaf]
        metavar = "A,B,..." if get_origin(hint) is tuple else leaf.upper()
        # A bool flag alone means true (``--allow-short``); ``--fractional false`` says false.
        toggle = {"nargs": "?", "const": "true"} if hint is bool else {}
        group.add_argument(_flag(leaf), dest=f"spec_{leaf}", default=None, metavar=metavar, **toggle,
                           help=f"{helps.get(leaf, '')} (default: {default})")


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The spec fields given on the command line (flat names), including ``risk`` on/off.

    :param args: arguments parsed by a parser extended with :func:`add_spec_arguments`.
    """
    given = {leaf: getattr(args, f"spec_{leaf}") for leaf in LEAVES if getattr(args, f"spec_{leaf}", None) is not None}
    risk = getattr(args, "risk", None)
    if risk is not None:
        given = {"risk": None if risk is False else True, **given}
    return given


def spec_from_args(args: argparse.Namespace, base: ExperimentSpec | None = None) -> tuple[ExperimentSpec, list[str]]:
    """The spec a command runs with, and the fields its flags changed.

    :param args: parsed arguments (``--spec`` and the generated flags).
    :param base: the spec to start from when no ``--spec`` is given (e.g. the one stored in a run folder);
        default: the defaults.
    """
    overrides = spec_overrides(args)
    if getattr(args, "spec", None) is not None:
        start = load_spec(args.spec)
    else:
        start = base or ExperimentSpec()
    spec = build_spec(start.to_dict(), overrides)
    return spec, describe_changes(start, spec)


# ---------------------------------------------------------------------------------------------- use
def policy_defaults(cls: type, spec: ExperimentSpec) -> dict[str, Any]:
    """The spec's parameters for a policy class: its sizing rule (for classes that declare the sizing
    parameters, as every rule bot and predictor does) and ``allow_short`` when the execution allows it.
    Explicit parameters (``--param``, a params file) are applied after these and win.

    :param cls: the policy class.
    :param spec: the spec.
    """
    declared = declared_params(cls)
    params = {k: v for k, v in spec.sizing.params().items() if k in declared}
    if spec.execution.allow_short and "allow_short" in declared:
        params["allow_short"] = True
    return params


def backtest_config(spec: ExperimentSpec, **extra: Any) -> BacktestConfig:
    """The backtest settings of a spec: its cash, execution, risk, seed and annualisation.

    :param spec: the spec.
    :param extra: other :class:`~experiments.engine.BacktestConfig` fields (``start``,
        ``commission_per_contract``).
    """
    return BacktestConfig(
        initial_cash=spec.initial_cash, execution=spec.execution, risk=spec.risk,
        periods_per_year=spec.execution.periods_per_year, seed=spec.seed, **extra,
    )


def find_run_spec(policy: str) -> ExperimentSpec | None:
    """The spec of the run a saved policy belongs to: ``spec.yaml`` in its folder or the folder above
    (a predictor run keeps its policy in ``<run>/policy``); ``None`` for a registered name.

    :param policy: a policy name or folder.
    """
    folder = Path(policy)
    if not folder.is_dir():
        return None
    for candidate in (folder, folder.parent):
        if (candidate / SPEC_FILE).is_file():
            return load_spec(candidate / SPEC_FILE)
    return None
