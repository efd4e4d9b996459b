"""``python -m experiments.backtest``: run policies through the same env and compare them.

Examples::

    python -m experiments.backtest sma_crossover rsi_reversion consensus --data synthetic
    python -m experiments.backtest sma_crossover --data sample:GOOG --param fast=5 --param slow=30 \\
        --no-risk --allow-short --whole-shares --commission 0.002 --out reports/goog
    python -m experiments.backtest runs/ppo_agent buy_and_hold --data csv:prices.csv --start 2020-01-01
    python -m experiments.backtest sma_crossover --grid fast=5,10,20 --grid slow=30,50,100 \\
        --walk-forward 500:125 --monte-carlo 1000

Each POLICY is a registered name (see ``--list``) or the folder of a saved policy. Parameters come from
``--params FILE.yaml`` (``{policy: {param: value}}``) and ``--param [policy.]key=value`` (later wins).
The comparison table is printed, and the HTML report and PNG charts are written to ``--out``.

Options bots (``covered_calls``, ``weekly_puts``, ``iron_condors``, ``iv_timing``) run in
``AlpacaGym/Options-v0`` on one underlying and compare with stock bots on the same bars and start bar::

    python -m experiments.backtest covered_calls iv_timing buy_and_hold --data synthetic --symbols SYN0

The risk layer and the stock-only execution flags do not apply to them; the run says so under the table
(see :mod:`experiments.engine` for what each metric means for an options run).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from agents.params import declared_params
from agents.registry import (
    load_param_file,
    make_policy,
    params_for,
    parse_overrides,
    policy_class,
    policy_names,
)
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.data.splits import WalkForward
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import RiskConfig
from experiments.analysis import monte_carlo, parameter_grid, walk_forward
from experiments.engine import BacktestConfig, BacktestResult, run_backtest, start_bar
from experiments.report import (
    TABLE_FIELDS,
    format_value,
    plot_heatmap,
    readable,
    run_notes,
    short_env_id,
    write_report,
)

logger = logging.getLogger("experiments.backtest")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.backtest",
        description="Backtest policies through the same env, print a comparison, write an HTML report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("policies", nargs="*", metavar="POLICY", help="registered name or saved-policy folder")
    p.add_argument("--list", action="store_true", help="list the registered policies and their parameters")
    p.add_argument("--data", default="synthetic", help="data spec: synthetic, csv:PATH, sample:GOOG, ...")
    p.add_argument("--symbols", help="comma-separated symbols to trade (default: all in the data)")
    p.add_argument("--start", help="first decision date (inclusive); earlier bars only warm up indicators")
    p.add_argument("--end", help="last date (inclusive)")
    p.add_argument("--out", default="reports/backtest", help="output folder for report.html and PNGs")
    p.add_argument("--params", type=Path, help="YAML file {policy: {param: value}}")
    p.add_argument("--param", action="append", default=[], metavar="[POLICY.]KEY=VALUE",
                   help="set a parameter (repeatable); without POLICY it applies to every policy that has it")
    p.add_argument("--cash", type=float, default=100_000.0, help="initial cash")
    p.add_argument("--commission", type=float, default=0.001, help="commission, fraction of notional")
    p.add_argument("--slippage-bps", type=float, default=0.0, help="slippage per fill, basis points")
    p.add_argument("--spread-bps", type=float, default=0.0, help="full bid/ask spread, basis points")
    p.add_argument("--allow-short", action="store_true",
                   help="allow short positions (and let bots with an allow_short parameter use them)")
    p.add_argument("--whole-shares", action="store_true", help="trade whole shares only")
    p.add_argument("--contract-commission", type=float, default=0.65,
                   help="commission per option contract (options bots)")
    p.add_argument("--no-risk", action="store_true", help="switch the risk layer off")
    p.add_argument("--risk", type=Path, help="YAML file with RiskConfig fields (default: the seed's limits)")
    p.add_argument("--periods-per-year", type=int, default=252, help="bars per year for annualising")
    p.add_argument("--monte-carlo", type=int, default=0, metavar="N",
                   help="add bootstrap and trade-order Monte Carlo intervals with N samples")
    p.add_argument("--block", type=int, default=5, help="block length of the Monte Carlo bootstrap")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="parameter values for --walk-forward tuning and the stability heatmap (first policy)")
    p.add_argument("--walk-forward", metavar="TRAIN:TEST[:GAP]",
                   help="walk-forward evaluation of the first policy over --grid, window sizes in bars")
    p.add_argument("--anchored", action="store_true", help="anchored (growing) walk-forward train windows")
    p.add_argument("--metric", default="sharpe", help="metric to tune and to draw in the heatmap")
    p.add_argument("--seed", type=int, default=0, help="seed for env, policies and Monte Carlo")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    return p


def _load_data(args: argparse.Namespace) -> MarketData:
    data = load_data(args.data)
    if args.symbols:
        data = data.select([s.strip() for s in args.symbols.split(",")])
    if args.end:
        data = data.slice(None, args.end)
    return data


def _start_index(data: MarketData, start: str | None) -> int | None:
    """Bar index of the first decision at or after ``start``. Earlier bars stay in the data: features and
    indicators are causal, so they warm up on history before the start without seeing past it."""
    if not start:
        return None
    when = pd.Timestamp(start)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    index = int(data.index.searchsorted(when))
    if index >= data.n_bars - 1:
        raise SystemExit(f"error: --start {start} leaves no bars to trade (data ends {data.index[-1]:%Y-%m-%d})")
    return index


def _risk(args: argparse.Namespace) -> RiskConfig | None:
    if args.no_risk:
        return None
    if args.risk is None:
        return RiskConfig()
    values = yaml.safe_load(args.risk.read_text()) or {}
    known = [f.name for f in fields(RiskConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SystemExit(f"{args.risk}: unknown RiskConfig field(s) {unknown}; known: {known}")
    try:
        return RiskConfig(**values)
    except ValueError as err:
        raise SystemExit(f"{args.risk}: {err}") from None


def _build(name: str, args: argparse.Namespace, from_file: dict, overrides: list) -> Any:
    params: dict[str, Any] = dict(from_file.get(name, {}))
    if Path(name).is_dir():
        params.update({k: v for target, k, v in overrides if target == name})
        return make_policy(name, params)
    cls = policy_class(name)
    if args.allow_short and "allow_short" in declared_params(cls):
        params.setdefault("allow_short", True)
    params.update(params_for(name, cls, overrides))
    return make_policy(name, params)


def _grid(items: Sequence[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [v.strip() for v in values.split(",")]
    return grid


def _splitter(args: argparse.Namespace) -> WalkForward:
    try:
        sizes = [int(v) for v in args.walk_forward.split(":")]
        if len(sizes) not in (2, 3):
            raise ValueError
    except ValueError:
        build_parser().error(f"--walk-forward expects TRAIN:TEST[:GAP] in bars, got {args.walk_forward!r}")
    return WalkForward(sizes[0], sizes[1], anchored=args.anchored, gap=sizes[2] if len(sizes) == 3 else 0)


def print_table(results: Sequence[BacktestResult], console: Console) -> None:
    """The comparison table: one column per policy.

    :param results: backtest results.
    :param console: where to print.
    """
    table = Table(title="Backtest comparison", show_lines=False)
    table.add_column("metric")
    for r in results:
        table.add_column(r.name, justify="right", overflow="fold")
    table.add_row("env", *(short_env_id(r.env_id) for r in results))
    for field in TABLE_FIELDS:
        table.add_row(field, *(format_value(field, asdict(r.stats)[field]) for r in results))
    console.print(table)
    for note, names in run_notes(results).items():
        console.print(f"note ({', '.join(names)}): {note}")


def _list_policies(console: Console) -> None:
    table = Table(title="Registered policies")
    table.add_column("name")
    table.add_column("parameters (defaults)")
    for name in policy_names():
        cls = policy_class(name)
        defaults = ", ".join(f"{k}={getattr(cls, k, '?')!r}" for k in declared_params(cls))
        table.add_row(name, defaults)
    console.print(table)


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
    if not args.policies:
        build_parser().error("give at least one POLICY (or --list)")

    data = _load_data(args)
    from_file = load_param_file(args.params) if args.params else {}
    overrides = parse_overrides(args.param)
    policies = [_build(name, args, from_file, overrides) for name in args.policies]
    execution = ExecutionConfig(
        commission=args.commission, slippage_bps=args.slippage_bps, spread_bps=args.spread_bps,
        fractional=not args.whole_shares, allow_short=args.allow_short,
    )
    config = BacktestConfig(
        initial_cash=args.cash, execution=execution, risk=_risk(args),
        periods_per_year=args.periods_per_year, seed=args.seed,
        commission_per_contract=args.contract_commission, start=_start_index(data, args.start),
    )
    try:
        start = start_bar(policies, data, config)
    except ValueError as err:  # e.g. an options bot on several symbols, or too few bars for its env
        raise SystemExit(f"error: {err}") from None
    long_run = data.n_bars * len(policies) > 50_000
    results = [
        run_backtest(p, data, config, start=start, progress=long_run)
        for p in tqdm(policies, desc="policies", unit="policy", disable=len(policies) < 2)
    ]
    print_table(results, console)

    extras: list = []
    if args.monte_carlo:
        for r in results:
            mc = monte_carlo(r, args.monte_carlo, args.block, args.seed, args.periods_per_year)
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
        splitter = _splitter(args)
        wf = walk_forward(factory, grid, data, splitter, config, args.metric, progress=True)
        console.print(f"walk-forward out-of-sample: total return {wf.stats.total_return:.2%}, "
                      f"sharpe {wf.stats.sharpe:.3f}, max drawdown {wf.stats.max_drawdown:.2%}")
        extras.append((f"{name}: walk-forward folds", readable(wf.folds.set_index("fold"))))
    settings: dict[str, object] = {
        "data": args.data, "bars": data.n_bars, "start bar": start, "initial cash": args.cash,
        "execution": execution, "risk": config.risk or "off",
    }
    if any(r.env_id == OPTIONS_ENV_ID for r in results):
        settings["option costs"] = config.option_costs()
    path = write_report(results, data, args.out, settings=settings, extras=extras)
    console.print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
