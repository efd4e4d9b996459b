"""``python -m experiments.backtest``: run policies through the same env and compare them.

Examples::

    python -m experiments.backtest sma_crossover rsi_reversion consensus --data synthetic
    python -m experiments.backtest sma_crossover --data sample:GOOG --param fast=5 --param slow=30 \\
        --no-risk --allow-short --fractional false --commission 0.002 --out reports/goog
    python -m experiments.backtest runs/ppo_agent buy_and_hold --data csv:prices.csv --start 2020-01-01
    python -m experiments.backtest sma_crossover --grid fast=5,10,20 --grid slow=30,50,100 \\
        --walk-forward 500:125 --monte-carlo 1000

Costs, risk rules, sizing, data and seed come from the experiment spec (:mod:`experiments.spec`):
``--spec FILE``, else the spec stored in the run folder of a saved policy given, else the defaults; every
spec field is also a flag, and the fields a flag changes are printed. Every policy trades with the spec's
sizing rule (bots and predictors take its ``sizing``/``fraction`` parameters).

Each POLICY is a registered name (see ``--list``) or the folder of a saved policy. Parameters come from
``--params FILE.yaml`` (``{policy: {param: value}}``) and ``--param [policy.]key=value`` (later wins).
The comparison table is printed, and the HTML report and PNG charts are written to ``--out``.

Options bots (``covered_calls``, ``weekly_puts``, ``iron_condors``, ``iv_timing``) run in
``AlpacaGym/Options-v0`` on one underlying and compare with stock bots on the same bars and start bar::

    python -m experiments.backtest covered_calls iv_timing buy_and_hold --data synthetic --symbols SYN0

The risk layer and the stock-only execution flags do not apply to them; the run says so under the table
(see :mod:`experiments.engine` for what each metric means for an options run).

Market makers and execution schedules run on the simulated microstructure envs, every policy on the same
``--episodes`` episodes (seed: the spec's), into the same table, report and results with the env's metrics
(P/L, inventory path, fill rate, spread captured, adverse selection; implementation shortfall and schedule;
see :mod:`experiments.microstructure`)::

    python -m experiments.backtest avellaneda_stoikov glft fixed_spread --env MarketMaking-v0
    python -m experiments.backtest runs/ppo/<run> almgren_chriss twap --env Execution-v0

The data, costs, risk rules and sizing of the spec do not apply there (the env simulates its own market).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from agents.params import declared_params
from agents.registry import (
    MANIFEST,
    check_overrides,
    load_param_file,
    make_policy,
    params_for,
    parse_overrides,
    policy_class,
    policy_names,
)
from envs.data.market_data import MarketData
from envs.data.splits import WalkForward
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from experiments.analysis import monte_carlo, parameter_grid, walk_forward
from experiments.cli import Parser, UserError, command
from experiments.compare import comparison_rows
from experiments.engine import BacktestConfig, BacktestResult, run_backtest, start_bar
from experiments.microstructure import DEFAULT_POLICIES as LOB_DEFAULT_POLICIES
from experiments.microstructure import LOB_ENV_IDS, LobResult, run_lob, table_rows
from experiments.sealed import (
    PERIODS,
    count_test_evaluation,
    period_window,
    run_folder,
    trials_of,
)
from experiments.spec import (
    ExperimentSpec,
    SizingSpec,
    add_spec_arguments,
    backtest_config,
    describe_changes,
    find_run_spec,
    policy_defaults,
    spec_from_args,
)

logger = logging.getLogger("experiments.backtest")

LOB_ENVS = {env_id.split("/")[1]: env_id for env_id in LOB_ENV_IDS}
"""Short names of the simulated microstructure envs -> their ids."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = Parser(
        prog="python -m experiments.backtest",
        description="Backtest policies through the same env, print a comparison, write an HTML report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("policies", nargs="*", metavar="POLICY", help="registered name or saved-policy folder")
    p.add_argument("--list", action="store_true", help="list the registered policies and their parameters")
    p.add_argument("--start", help="first decision date (inclusive); earlier bars only warm up indicators")
    p.add_argument("--end", help="last date (inclusive)")
    p.add_argument("--period", choices=PERIODS,
                   help="trade only this period of the spec's splits (the test period is counted per run)")
    p.add_argument("--out", default="reports/backtest", help="output folder for report.html and PNGs")
    p.add_argument("--params", type=Path, help="YAML file {policy: {param: value}}")
    p.add_argument("--param", action="append", default=[], metavar="[POLICY.]KEY=VALUE",
                   help="set a parameter (repeatable); without POLICY it applies to every policy that has it")
    p.add_argument("--contract-commission", type=float, default=0.65,
                   help="commission per option contract (options bots)")
    p.add_argument("--monte-carlo", type=int, default=0, metavar="N",
                   help="add bootstrap and trade-order Monte Carlo intervals with N samples")
    p.add_argument("--block", type=int, default=5, help="block length of the Monte Carlo bootstrap")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="parameter values for --walk-forward tuning and the stability heatmap (first policy)")
    p.add_argument("--walk-forward", metavar="TRAIN:TEST[:GAP]",
                   help="walk-forward evaluation of the first policy over --grid, window sizes in bars "
                        "or trading time (e.g. 2Y:6M or 500:125)")
    p.add_argument("--anchored", action="store_true", help="anchored (growing) walk-forward train windows")
    p.add_argument("--metric", default="sharpe", help="metric to tune and to draw in the heatmap")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    lob = p.add_argument_group("simulated microstructure envs (market making, execution)")
    lob.add_argument("--env", choices=[short for short in LOB_ENVS],
                     help="run the policies on this simulated env (default: the env the policies name; "
                          "stock and options policies trade the data)")
    lob.add_argument("--episodes", type=int, default=2048, help="simulated episodes per policy")
    lob.add_argument("--running-penalty", type=float, help="MarketMaking-v0's phi (default: the env's)")
    lob.add_argument("--terminal-penalty", type=float, help="MarketMaking-v0's alpha (default: the env's)")
    lob.add_argument("--alpha-impact", type=float,
                     help="MarketMaking-v0: short-term alpha kick per net market order, the source of adverse "
                          "selection (default: the env's, 0)")
    add_spec_arguments(p)
    return p


def _load_data(spec: ExperimentSpec, end: str | None) -> MarketData:
    data = spec.data.load()
    if end:
        data = data.slice(None, end)
    # The clock is read here so irregular bars fail (one error line, by @command) before any policy runs.
    data.periods_per_year
    return data


def bars(text: str, data: MarketData) -> int:
    """A window length in bars: a whole number of bars, or trading time on the data's calendar (``2Y``,
    ``6M``, ``4W``, ``30D``, ``12h``).

    :param text: the length.
    :param data: the bars whose calendar and frequency convert it.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    return data.calendar.bars_in(text, data.frequency)


def _clock_text(data: MarketData, periods_per_year: float) -> str:
    clock = data.clock_summary()
    return f"{clock['calendar']}, {clock['bar']} bars, {periods_per_year:,.6g} bars a year"


def _start_index(data: MarketData, start: str | None) -> int | None:
    """Bar index of the first decision at or after ``start``. Earlier bars stay in the data: features and
    indicators are causal, so they warm up on history before the start without seeing past it."""
    if not start:
        return None
    when = pd.Timestamp(start)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    index = int(data.index.searchsorted(when))
    if index >= data.n_bars - 1:
        raise UserError(f"--start {start} leaves no bars to trade (data ends {data.index[-1]:%Y-%m-%d})")
    return index


def _declared(name: str) -> list[str]:
    """The parameter names ``--param`` may set on a policy: a class's declared ones, or a saved policy's."""
    if Path(name).is_dir():
        manifest = Path(name) / MANIFEST
        saved = yaml.safe_load(manifest.read_text()) if manifest.is_file() else None
        return list((saved or {}).get("params") or {})
    return list(declared_params(policy_class(name)))


def _check_symbols(name: str, policy: Any, data: MarketData) -> None:
    """Refuse a trained agent on data with another number of symbols than it was trained on (its observation
    would not fit), naming the symbols to select."""
    n = getattr(policy, "n_symbols", None)
    if n is None or n == data.n_symbols or getattr(policy, "env_id", None) is not None:
        return
    saved = getattr(policy, "env_kwargs", None) or {}
    trained = list(saved.get("symbols") or ([saved["symbol"]] if saved.get("symbol") else []))
    hint = (
        f"add --symbols {','.join(trained)}" if trained and set(trained) <= set(data.symbols)
        else f"select {n} of them with --symbols"
    )
    which = f" ({', '.join(trained)})" if trained else ""
    raise UserError(
        f"{name} was trained on {n} symbol(s){which} but the data has {data.n_symbols} "
        f"({', '.join(data.symbols)}): {hint}"
    )


def _run_periods(name: str, data_spec: str) -> dict[str, dict[str, str]] | None:
    """The train/validation/test periods of a training run folder evaluated on the data it trained on."""
    metrics = Path(name) / "metrics.json"
    if not Path(name).is_dir() or not metrics.is_file():
        return None
    saved = json.loads(metrics.read_text())
    periods = saved.get("periods")
    if saved.get("data") != data_spec or not isinstance(periods, dict) or "test" not in periods:
        return None
    return periods


def _out_of_sample_start(args: argparse.Namespace, data_spec: str) -> str | None:
    """``--start`` as given, or, when a trained run is backtested on its own data without ``--start`` and
    ``--end``, the first bar of its test period (its training and validation bars are in-sample). A
    ``--start`` inside a run's in-sample bars is kept, with a warning."""
    for name in args.policies:
        periods = _run_periods(name, data_spec)
        if periods is None:
            continue
        test_start = periods["test"]["start"][:10]
        seen_end = periods.get("validation", periods.get("train", {})).get("end", "")[:10]
        if args.start is None and args.end is None:
            print(f"note: {name} trained and validated on {data_spec} up to {seen_end}; backtesting its "
                  f"held-out test period from {test_start} (give --start to choose)", file=sys.stderr)
            return test_start
        if (args.start or "") < test_start:
            print(f"warning: {name} trained and validated on these bars up to {seen_end}; results before "
                  f"{test_start} (its test period) are in-sample", file=sys.stderr)
    return args.start


def _build(name: str, spec: ExperimentSpec, from_file: dict, overrides: list) -> Any:
    """A policy with the spec's sizing rule, then the params file's and the flags' parameters."""
    if Path(name).is_dir():
        params: dict[str, Any] = dict(from_file.get(name, {}))
        params.update({k: v for target, k, v in overrides if target == name})
        return make_policy(name, params)
    cls = policy_class(name)
    params = {**policy_defaults(cls, spec), **from_file.get(name, {})}
    params.update(params_for(name, cls, overrides))
    return make_policy(name, params)


def resolve_spec(args: argparse.Namespace, console: Console) -> ExperimentSpec:
    """The spec of this backtest: ``--spec``, else the spec stored with the first saved run among the
    policies, else the defaults; then the flags. Every field a flag changes is printed.

    :param args: the parsed arguments.
    :param console: where to print the changes.
    """
    stored = next((s for s in map(find_run_spec, args.policies) if s is not None), None)
    spec, changes = spec_from_args(args, base=stored)
    if changes:
        source = args.spec or ("the run's spec" if stored is not None else "the default spec")
        console.print(f"spec: {len(changes)} field(s) changed from {source} by flags:")
        for line in changes:
            console.print(f"  {line}")
    return spec


def _grid(items: Sequence[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise UserError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [v.strip() for v in values.split(",")]
    return grid


def _splitter(args: argparse.Namespace, data: MarketData) -> WalkForward:
    try:
        sizes = [bars(v, data) for v in args.walk_forward.split(":")]
        if len(sizes) not in (2, 3):
            raise ValueError
    except ValueError:
        build_parser().error(
            f"--walk-forward expects TRAIN:TEST[:GAP] in bars or trading time (2Y:6M), got {args.walk_forward!r}"
        )
    return WalkForward(sizes[0], sizes[1], anchored=args.anchored, gap=sizes[2] if len(sizes) == 3 else 0)


def _agent_symbols(policies: Sequence[Any]) -> tuple[str, ...]:
    """The symbols a saved agent among ``policies`` was trained on (its ``env_kwargs``), if any."""
    for policy in policies:
        kwargs = getattr(policy, "env_kwargs", None) or {}
        if kwargs.get("symbols"):
            return tuple(kwargs["symbols"])
        if kwargs.get("symbol"):
            return (kwargs["symbol"],)
    return ()


def equal_footing(spec: ExperimentSpec) -> str:
    """One line saying what every policy in the table shared: sizing, risk rules and costs.

    :param spec: the backtest's spec.
    """
    sizing = spec.sizing
    size = (f"{sizing.fraction:.0%} of equity per full-conviction position" if sizing.sizing == "fixed"
            else f"{sizing.sizing} sizing capped at {sizing.fraction:.0%}")
    if spec.risk is None:
        risk = "no risk layer"
    else:
        rules = {k: v for k, v in dataclasses.asdict(spec.risk).items() if v is not None}
        risk = "risk rules " + ", ".join(f"{k}={v}" for k, v in rules.items())
    ex = spec.execution
    costs = f"commission {ex.commission:g}, slippage {ex.slippage_bps:g} bps, spread {ex.spread_bps:g} bps"
    return (f"equal footing: every stock policy (and buy & hold) trades {size}, {risk}, {costs}; "
            '"buy & hold, no rules" holds all the equity with no risk layer')


def own_sizing(policy: Any) -> SizingSpec | None:
    """The sizing rule a saved run trades with: an RL agent's is part of what it learned (its env sizes its
    signal with the rule of its training), a saved predictor's is in its parameters; ``None`` for a policy
    without one.

    :param policy: a policy.
    """
    kwargs = getattr(policy, "env_kwargs", None)
    if kwargs is not None and getattr(policy, "env_id", None) is None:
        if kwargs.get("sizing"):
            return SizingSpec(**kwargs["sizing"])
        return SizingSpec(fraction=float(kwargs.get("position_size", 1.0)))
    if all(hasattr(policy, k) for k in ("sizing", "fraction", "target_vol", "sizing_lookback")):
        return SizingSpec(policy.sizing, policy.fraction, policy.target_vol, policy.sizing_lookback)
    return None


def sizing_notes(policies: Sequence[Any], spec: ExperimentSpec) -> list[str]:
    """One line per policy whose sizing is not the spec's (a saved run evaluated with another ``--sizing``
    or ``--fraction``): the equal-footing line does not hold for it.

    :param policies: the compared policies.
    :param spec: the backtest's spec.
    """
    notes = []
    for policy in policies:
        own = own_sizing(policy)
        if own is not None and own != spec.sizing:
            name = getattr(policy, "name", type(policy).__name__)
            notes.append(f"note: {name} trades its own sizing ({own.sizing}, fraction {own.fraction:g}), not the "
                         f"spec's ({spec.sizing.sizing}, fraction {spec.sizing.fraction:g})")
    return notes


BENCHMARK_NAME = "buy & hold"
NO_RULES_NAME = "buy & hold, no rules"


def run_comparison(
    policies: Sequence[Any], data: MarketData, spec: ExperimentSpec, config: BacktestConfig, progress: bool = True
) -> tuple[list[BacktestResult], BacktestResult]:
    """Backtest ``policies`` on equal footing, plus the benchmark lines.

    The benchmark is buy-and-hold under the same rules (the spec's sizing, costs and risk layer), named
    "buy & hold" unless ``buy_and_hold`` is among the policies; its equity is every run's benchmark for
    alpha and beta. A last column, "buy & hold, no rules", holds every symbol equally with all the equity
    and no risk layer: what the market did.

    :param policies: the policies.
    :param data: the bars.
    :param spec: the experiment spec.
    :param config: the backtest settings (from the spec).
    :param progress: show progress bars.
    :return: the results in column order, and the benchmark's result.
    """
    names = [getattr(p, "name", "") for p in policies]
    if "buy_and_hold" in names:
        bench_policy = policies[names.index("buy_and_hold")]
    else:
        bench_policy = make_policy("buy_and_hold", policy_defaults(policy_class("buy_and_hold"), spec))
        bench_policy.name = BENCHMARK_NAME
    no_rules = make_policy("buy_and_hold", {"fraction": 1.0})
    no_rules.name = NO_RULES_NAME
    start = start_bar([*policies, bench_policy], data, config)  # refuses e.g. an options bot on several symbols
    long_run = progress and data.n_bars * len(policies) > 50_000
    bench_equity = run_backtest(bench_policy, data, config, start=start).equity
    lineup = [*policies, *([] if bench_policy in policies else [bench_policy])]
    results = [
        run_backtest(p, data, config, start=start, progress=long_run, benchmark=bench_equity)
        for p in tqdm(lineup, desc="policies", unit="policy", disable=len(lineup) < 2 or not progress)
    ]
    results.append(
        run_backtest(no_rules, data, dataclasses.replace(config, risk=None), start=start, benchmark=bench_equity)
    )
    return results, results[lineup.index(bench_policy)]


def print_table(
    results: Sequence[BacktestResult],
    console: Console,
    title: str = "Backtest comparison",
    benchmark: BacktestResult | None = None,
    periods_per_year: float = 252,
    seed: int = 0,
    extra_trials: int = 0,
) -> None:
    """The comparison table: one column per policy; with a benchmark, the fair-comparison rows of
    :func:`experiments.compare.comparison_rows` (intervals, PSR and DSR, volatility-matched return, risk
    interventions).

    :param results: backtest results.
    :param console: where to print.
    :param title: the table's title.
    :param benchmark: buy-and-hold under the same rules.
    :param periods_per_year: bars per year.
    :param seed: seed of the bootstrap.
    :param extra_trials: configurations tried beyond the columns (for the Deflated Sharpe Ratio).
    """
    from experiments.report import (
        TABLE_FIELDS,
        clock_label,
        format_value,
        run_notes,
        short_env_id,
    )

    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    for r in results:
        table.add_column(r.name, justify="right", overflow="fold")
    table.add_row("env", *(short_env_id(r.env_id) for r in results))
    table.add_row("annualised", *(clock_label(r.stats) for r in results))
    for field in TABLE_FIELDS:
        table.add_row(field, *(format_value(field, asdict(r.stats)[field]) for r in results))
    table.add_row("open trades", *(str(int(r.trades["open"].sum())) if "open" in r.trades else "0" for r in results))
    if benchmark is not None:
        for label, cells in comparison_rows(results, benchmark, periods_per_year, seed=seed,
                                            extra_trials=extra_trials):
            table.add_row(label, *cells)
    console.print(table)
    for note, names in run_notes(results).items():
        console.print(f"note ({', '.join(names)}): {note}")


def _policy_env(name: str) -> str | None:
    """The env id a policy names (a registered class's ``env_id``, a saved agent's ``env_kwargs.env_id``)."""
    if Path(name).is_dir():
        manifest = Path(name) / MANIFEST
        saved = yaml.safe_load(manifest.read_text()) if manifest.is_file() else None
        return ((saved or {}).get("env_kwargs") or {}).get("env_id")
    return getattr(policy_class(name), "env_id", None)


def _lob_env(args: argparse.Namespace) -> str | None:
    """The simulated microstructure env of this backtest: ``--env``, else the one every policy names; a mix
    of microstructure and other policies is refused (they trade different markets)."""
    if args.env is not None:
        return LOB_ENVS[args.env]
    envs = {name: _policy_env(name) for name in args.policies}
    lob = {name: env for name, env in envs.items() if env in LOB_ENV_IDS}
    if not lob:
        return None
    if len(lob) != len(envs) or len(set(lob.values())) > 1:
        other = ", ".join(f"{n} ({(e or 'stocks').split('/')[-1]})" for n, e in envs.items())
        raise UserError(f"these policies trade different markets: {other}; backtest the policies of one "
                        f"simulated env together (--env {' or --env '.join(LOB_ENVS)})")
    return next(iter(lob.values()))


def lob_env_kwargs(args: argparse.Namespace, env_id: str) -> dict[str, Any]:
    """The env arguments the flags set (the env's defaults otherwise).

    :param args: the parsed arguments.
    :param env_id: the microstructure env.
    """
    given = {"running_penalty": args.running_penalty, "terminal_penalty": args.terminal_penalty,
             "alpha_impact": args.alpha_impact}
    given = {k: v for k, v in given.items() if v is not None}
    if env_id != LOB_ENVS["MarketMaking-v0"] and given:
        raise UserError(f"--{next(iter(given)).replace('_', '-')} is a MarketMaking-v0 setting, not {env_id}'s")
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if k != "alpha_impact"}
    if "alpha_impact" in given:
        kwargs["book"] = {"alpha_impact": given["alpha_impact"]}
    return kwargs


def print_lob_table(results: Sequence[LobResult], console: Console, title: str) -> None:
    """The comparison table of microstructure runs: one column per policy, one row per metric.

    :param results: runs on one env.
    :param console: where to print.
    :param title: the table's title.
    """
    from experiments.report import short_env_id

    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    for r in results:
        table.add_column(r.name, justify="right", overflow="fold")
    table.add_row("env", *(short_env_id(r.env_id) for r in results))
    for label, cells in table_rows(results):
        table.add_row(label, *cells)
    console.print(table)


def run_lob_backtest(args: argparse.Namespace, env_id: str, console: Console) -> int:
    """Backtest market makers or execution schedules on the simulated env ``env_id``: every policy on the same
    episodes, the table printed, the report and results written to ``--out``.

    :param args: the parsed arguments.
    :param env_id: the microstructure env.
    :param console: where to print.
    """
    from experiments.report import write_lob_report

    for flag, value in (("--start", args.start), ("--end", args.end), ("--period", args.period),
                        ("--walk-forward", args.walk_forward)):
        if value:
            raise UserError(f"{flag} does not apply to {env_id}: a simulated market has no bars (use --episodes)")
    if args.grid or args.monte_carlo:
        raise UserError(f"--grid and --monte-carlo do not apply to {env_id}")
    if args.episodes < 2:
        raise UserError(f"--episodes must be at least 2, got {args.episodes}")
    names = args.policies or list(LOB_DEFAULT_POLICIES[env_id])
    args.policies = names
    spec = resolve_spec(args, console)
    from_file = load_param_file(args.params) if args.params else {}
    overrides = parse_overrides(args.param)
    check_overrides(overrides, {name: _declared(name) for name in names})
    policies = [_build(name, spec, from_file, overrides) for name in names]
    for name, policy in zip(names, policies):
        if getattr(policy, "env_id", None) != env_id:
            raise UserError(f"{name} is not a {env_id} policy (it trades "
                            f"{getattr(policy, 'env_id', None) or 'stocks'})")
    kwargs = lob_env_kwargs(args, env_id)
    results = [run_lob(p, env_id, args.episodes, spec.seed, progress=True, **kwargs)
               for p in tqdm(policies, desc="policies", unit="policy", disable=len(policies) < 2)]
    short = env_id.split("/")[1]
    print_lob_table(results, console, f"Backtest comparison ({short}, {args.episodes:,} episodes, seed {spec.seed})")
    console.print(f"equal footing: every policy ran the same {args.episodes:,} simulated {short} episodes; the "
                  "spec's data, costs, risk rules and sizing do not apply (the env simulates its market)")
    settings: dict[str, object] = {"env": env_id, **results[0].settings}
    path = write_lob_report(results, args.out, settings=settings)
    console.print(f"report: {path}")
    return 0


def _list_policies(console: Console) -> None:
    table = Table(title="Registered policies")
    table.add_column("name")
    table.add_column("parameters (defaults)")
    for name in policy_names():
        cls = policy_class(name)
        defaults = ", ".join(f"{k}={getattr(cls, k, '?')!r}" for k in declared_params(cls))
        table.add_row(name, defaults)
    console.print(table)


@command
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m experiments.backtest``.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    # Piped output (CI logs, `make demo | tee`) has no terminal width; rich would squeeze the table to 80.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if args.list:
        _list_policies(console)
        return 0
    lob_env = _lob_env(args)
    if lob_env is not None:
        return run_lob_backtest(args, lob_env, console)
    if not args.policies:
        build_parser().error("give at least one POLICY (or --list)")

    # Imported here, not at the top: bokeh and matplotlib take seconds to import and --list needs neither.
    from experiments.report import plot_heatmap, readable, write_report

    spec = resolve_spec(args, console)  # a ConfigError names the field; @command prints it
    from_file = load_param_file(args.params) if args.params else {}
    overrides = parse_overrides(args.param)
    check_overrides(overrides, {name: _declared(name) for name in args.policies})
    policies = [_build(name, spec, from_file, overrides) for name in args.policies]
    data = _load_data(spec, args.end)
    traded = _agent_symbols(policies)
    data_given = args.spec_data is not None or args.spec_symbols is not None
    if traded and not data_given and not spec.data.symbols and set(traded) <= set(data.symbols):
        # A saved agent on its run's own data (its stored spec names all of the data's symbols) trades
        # the symbols it trained on.
        data = data.select(list(traded))
    for name, policy in zip(args.policies, policies):
        _check_symbols(name, policy, data)
    if args.period is None and args.start is None and args.end is None:
        for name in args.policies:
            periods = _run_periods(name, spec.data.data)
            if periods is None:
                continue
            # A trained run on its own data: its train and validation bars are in-sample, so the
            # backtest is of its sealed test period, counted as one more look at it.
            seen_end = periods.get("validation", periods.get("train", {})).get("end", "")[:10]
            print(f"note: {name} trained and validated on {spec.data.data} up to {seen_end}; backtesting its "
                  f"held-out test period from {periods['test']['start'][:10]} (counted as a test evaluation; "
                  "give --start or --period to choose)", file=sys.stderr)
            args.period = "test"
            break
    period_start = None
    if args.period:
        if args.start or args.end:
            raise UserError("--period takes its bars from the spec's splits; drop --start/--end")
        data, period_start = period_window(spec, data, args.period)
    config = backtest_config(
        spec, commission_per_contract=args.contract_commission,
        start=period_start if args.period else _start_index(data, _out_of_sample_start(args, spec.data.data)),
    )
    results, benchmark = run_comparison(policies, data, spec, config)
    title = "Backtest comparison"
    if args.period:
        title += f" ({args.period} period)"
    looks = []
    if args.period == "test":
        for name in args.policies:
            run = run_folder(name)
            if run is not None:
                stored = find_run_spec(name)
                note = "; ".join(describe_changes(stored, spec)) if stored is not None else ""
                looks.append(f"{name}: test evaluation #{count_test_evaluation(run, note)} of this run")
        if looks:
            title += ", " + "; ".join(look.rpartition(": ")[2] for look in looks)
    # Configurations tried to pick the saved runs (tuning trials) count towards the Deflated Sharpe Ratio.
    extra_trials = sum(trials_of(run) - 1 for run in map(run_folder, args.policies) if run is not None)
    print_table(results, console, title=title, benchmark=benchmark, periods_per_year=benchmark.stats.periods_per_year,
                seed=spec.seed, extra_trials=extra_trials)
    for look in looks:
        print(look)
    console.print(equal_footing(spec))
    for note in sizing_notes(policies, spec):
        console.print(note)
    execution = spec.execution

    extras: list = []
    if args.monte_carlo:
        for r in results:
            mc = monte_carlo(r, args.monte_carlo, args.block, spec.seed, r.stats.periods_per_year)
            heading = f"{r.name}: Monte Carlo 95% intervals ({args.monte_carlo} samples)"
            extras.append((heading, mc.intervals()))
    grid = _grid(args.grid)
    if grid and len(grid) != 2 and not args.walk_forward:
        build_parser().error("--grid: the stability heatmap needs exactly two parameters")
    name = args.policies[0]
    base = dict(getattr(policies[0], "params", {}) or {})

    def factory(params: dict[str, Any]) -> Any:
        return make_policy(name, {**base, **params})

    if len(grid) == 2:
        (x_name, xs), (y_name, ys) = list(grid.items())
        heat = parameter_grid(factory, data, (x_name, xs), (y_name, ys), config, args.metric, True)
        extras.append((f"{name}: {args.metric} over {x_name} x {y_name}",
                       plot_heatmap(heat, args.metric, f"{name}: parameter stability")))
    if args.walk_forward:
        splitter = _splitter(args, data)
        wf = walk_forward(factory, grid, data, splitter, config, args.metric, progress=True)
        console.print(f"walk-forward out-of-sample: total return {wf.stats.total_return:.2%}, "
                      f"sharpe {wf.stats.sharpe:.3f}, max drawdown {wf.stats.max_drawdown:.2%}")
        extras.append((f"{name}: walk-forward folds", readable(wf.folds.set_index("fold"))))
    settings: dict[str, object] = {
        "data": spec.data.data, "bars loaded": data.n_bars,
        "first traded bar": f"{results[0].equity.index[0]:%Y-%m-%d}",
        "calendar": _clock_text(data, config.periods_per_year or data.periods_per_year),
        "initial cash": spec.initial_cash,
        "execution": execution, "risk": config.risk, "sizing": spec.sizing,
    }
    if all(r.env_id == OPTIONS_ENV_ID for r in results):
        # Options-v0 sizes every position so that cash covers its worst case; the risk rules never ran.
        settings["risk"] = "not applied (Options-v0)"
    if any(r.env_id == OPTIONS_ENV_ID for r in results):
        settings["option costs"] = config.option_costs()
    path = write_report(results, data, args.out, settings=settings, extras=extras)
    console.print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
