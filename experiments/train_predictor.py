"""Train an ML predictor walk-forward, save it as a policy, and backtest it out of sample.

``python -m experiments.train MODEL [--config FILE] [--set key=value ...]`` with MODEL one of xgboost,
random_forest, lightgbm, lstm, gru, transformer, ensemble (fields: :class:`~experiments.predictor_config.
PredictorConfig`). The steps:

1. load the data and compute the causal inputs once (features, regime detector inputs) and the labels;
2. walk forward over the train and validation periods (the test period stays sealed: no fold forecasts
   it, no printed score covers it): per fold, fit the regime detector and the model on the train window
   (labels purged at its end), forecast the test window; out-of-sample accuracy, log loss and information
   coefficient per horizon go to TensorBoard and ``metrics.json``;
3. save the policy (every fold's model with the bar it trades from, plus a final fit for after the data);
4. reload it from disk and backtest it from the first out-of-sample bar, next to buy-and-hold and the
   consensus bot in the same env, with ``experiments.backtest``'s comparison table and HTML/PNG report.
   The saved policy backtests again with ``python -m experiments.backtest runs/<model>/<run>/policy ...``.

A run is the folder ``runs/<model>/<run_name>/``::

    config.yaml     the full config (reload with --config)
    policy/         policy.yaml + predictor.joblib: agents.registry.load_policy(folder) gives the Policy
    tb/             TensorBoard: oos/<horizon>/<metric> per fold, oos_total/..., backtest/<policy>/...
    metrics.json    folds, out-of-sample metrics per horizon, timings, backtest stats per policy
    trials.json     trading rules (horizon x threshold) the kept one was chosen among, for the Deflated
                    Sharpe Ratio of its test score
    report/         report.html and the PNG charts of the backtest
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from torch.utils.tensorboard import SummaryWriter

from agents.predictors.inputs import Inputs
from agents.predictors.labels import Labels
from agents.predictors.models import MODELS, make_predictor
from agents.predictors.pipeline import PredictorPipeline
from agents.predictors.policy import PredictorPolicy
from agents.predictors.regime import RegimeConfig
from agents.predictors.scoring import THRESHOLDS, choose_rule
from agents.predictors.walk_forward import WalkForwardResult, walk_forward
from agents.registry import load_policy, make_policy, policy_class, save_policy
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.data.splits import WalkForward
from envs.sim.metrics import sharpe_ratio, simple_returns
from experiments.backtest import print_table
from experiments.engine import BacktestResult, run_backtest
from experiments.predictor_config import PredictorConfig, field_help, load_config, parse_sets
from experiments.sealed import write_trials
from experiments.spec import ExperimentSpec, add_spec_arguments, policy_defaults, save_spec, spec_from_args
from experiments.spec import backtest_config as spec_backtest_config
from experiments.report import write_report

logger = logging.getLogger(__name__)

BACKTEST_FIELDS = ("sharpe", "total_return", "cagr", "annual_volatility", "max_drawdown", "n_trades", "exposure")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    :param run_dir: the run folder.
    :param policy_dir: the saved policy's folder.
    :param metrics: the content of ``metrics.json``.
    :param backtests: the backtest of the policy and of each baseline (empty without ``backtest``).
    """

    run_dir: Path
    policy_dir: Path
    metrics: dict[str, Any]
    backtests: list[BacktestResult] = field(default_factory=list)


def load_market(config: PredictorConfig) -> MarketData:
    """The config's data, cut to its symbols if it lists any.

    :param config: the run config.
    """
    data = load_data(config.data)
    return data.select(list(config.symbols)) if config.symbols else data


def build_pipeline(config: PredictorConfig) -> PredictorPipeline:
    """The unfitted pipeline the config describes.

    :param config: the run config.
    """
    predictor = make_predictor(config.model, config.horizons, config.seed, config.params)
    regime = (
        RegimeConfig(config.regime_states, config.regime_method, config.regime_window, config.regime_iterations)
        if config.regime
        else None
    )
    return PredictorPipeline(predictor, regime, config.switch, config.min_regime_samples, config.seed)


def run_folder(config: PredictorConfig) -> Path:
    """``runs_dir/model/run_name``, the name defaulting to the date, time and seed.

    :param config: the run config.
    """
    name = config.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-seed{config.seed}"
    return Path(config.runs_dir) / config.model / name


def predictor_spec(config: PredictorConfig, spec: ExperimentSpec | None = None) -> ExperimentSpec:
    """The experiment spec of a predictor run: ``spec`` (costs, risk limits, splits, cash) with the
    config's own data, symbols, seed, sizing rule and shorting, and no risk layer when ``risk`` is false.

    :param config: the run config.
    :param spec: the experiment spec (default: the defaults).
    """
    spec = (spec or ExperimentSpec()).replace(
        data=config.data, symbols=config.symbols, seeds=(config.seed,), sizing=config.sizing,
        fraction=config.fraction, allow_short=config.allow_short,
    )
    return spec if config.risk else spec.replace(risk=None)


def train(
    config: PredictorConfig, run_dir: str | Path | None = None, spec: ExperimentSpec | None = None,
    data: MarketData | None = None, sealed: bool = True,
) -> TrainResult:
    """Walk forward, save the policy, backtest it on the validation period, and write the run folder.

    :param config: the run config.
    :param run_dir: the run folder (default: :func:`run_folder`).
    :param spec: the experiment spec (costs, risk limits, splits; see :func:`predictor_spec`); the
        backtest runs from the first out-of-sample bar to the end of the validation period, so training
        prints no test score (``python -m experiments.evaluate RUN`` does).
    :param data: the bars (default: the config's data).
    :param sealed: walk forward over the bars up to the end of the spec's validation period only, so no
        model is fitted on, no trading rule chosen on and no printed score computed from a test-period bar
        (the policy's final refit on train and validation trades the test period); False walks over every
        bar (a calibration trains on whole training markets and tests on other markets).
    """
    spec = predictor_spec(config, spec)
    run_dir = Path(run_dir) if run_dir is not None else run_folder(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config.to_yaml())
    save_spec(spec, run_dir)
    data = data if data is not None else load_market(config)
    _, val, _ = spec.splits.periods(data.index)
    if sealed:
        data = data.iloc(slice(0, val.stop))
    started = time.perf_counter()
    inputs = Inputs.build(data, config.feature_names, config.regime_window)
    labels = Labels.from_opens(data.open, config.horizons)
    splits = WalkForward(config.train_size, config.test_size, config.step, config.anchored, config.gap)

    with SummaryWriter(str(run_dir / "tb")) as writer:
        clock = [time.perf_counter()]

        def log_fold(fold: int, metrics: dict[str, dict[str, float]]) -> None:
            now = time.perf_counter()
            writer.add_scalar("time/fold_seconds", now - clock[0], fold)
            clock[0] = now
            _log_metrics(writer, "oos", metrics, fold)

        result = walk_forward(
            build_pipeline(config), inputs, labels, splits, config.refit_final, config.progress, log_fold
        )
        seconds = time.perf_counter() - started
        _log_metrics(writer, "oos_total", result.metrics, 0)
        config, rule_sharpe, candidates = choose_trading_rule(config, result, data, spec.execution.commission)
        # The rule kept is the best of the candidates: each was a configuration tried (Deflated Sharpe Ratio).
        write_trials(run_dir, candidates, trading_rules=candidates)
        writer.add_scalar("rule/horizon", config.horizon, 0)
        writer.add_scalar("rule/threshold", config.threshold, 0)
        policy = PredictorPolicy.from_schedule(
            config.model, result.schedule, config.feature_names, config.regime_window,
            horizon=config.horizon, threshold=config.threshold, allow_short=config.allow_short,
            sizing=config.sizing, fraction=config.fraction,
        )
        policy_dir = save_policy(policy, run_dir / "policy")
        metrics: dict[str, Any] = {
            "model": config.model,
            "data": config.data,
            "symbols": list(data.symbols),
            "features": len(inputs.names) + (config.regime_states if config.regime else 0),
            "train_seconds": seconds,
            "folds": _fold_records(result, data),
            "oos": result.metrics,
            "rule": {"horizon": config.horizon, "threshold": config.threshold, "oos_sharpe_per_bar": rule_sharpe,
                     "candidates": candidates},
        }
        backtests = []
        if config.backtest:
            seen = data.iloc(slice(0, val.stop))
            if result.first_test_bar >= val.stop - 1:
                raise ValueError(
                    f"the first out-of-sample bar {data.index[result.first_test_bar]:%Y-%m-%d} is after the "
                    f"validation period (ends {data.index[val.stop - 1]:%Y-%m-%d}): shorten train_size or move the splits"
                )
            backtests = backtest(policy_dir, seen, config, result.first_test_bar, run_dir / "report", spec)
            metrics["backtest"] = _backtest_record(backtests, seen, config, result.first_test_bar, run_dir / "report")
            for name, stats in metrics["backtest"]["policies"].items():
                for key in ("sharpe", "total_return", "max_drawdown"):
                    writer.add_scalar(f"backtest/{name}/{key}", stats[key], 0)
    (run_dir / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2))
    logger.info("run written to %s", run_dir)
    return TrainResult(run_dir, policy_dir, metrics, backtests)


def choose_trading_rule(
    config: PredictorConfig, result: WalkForwardResult, data: MarketData, commission: float
) -> tuple[PredictorConfig, float, int]:
    """The config with its empty horizon and/or threshold filled in from the walk-forward's test windows.

    Every forecast scored there came from a model fitted before its window, so choosing on them uses the
    training data only.

    :param config: the run config.
    :param result: the walk-forward result.
    :param data: the bars.
    :param commission: the run's commission, a fraction of traded notional.
    :return: the completed config, the chosen rule's out-of-sample Sharpe ratio per bar, and the number of
        (horizon, threshold) pairs it was chosen among.
    """
    horizons = config.horizons if config.horizon is None else (config.horizon,)
    columns = [config.horizons.index(h) for h in horizons]
    thresholds = THRESHOLDS if config.threshold is None else (config.threshold,)
    next_returns = Labels.from_opens(data.open, (1,)).returns[..., 0]
    horizon, threshold, sharpe = choose_rule(
        result.probabilities[..., columns], next_returns, horizons, config.allow_short,
        commission, thresholds,
    )
    if (config.horizon, config.threshold) != (horizon, threshold):
        logger.info("trading rule chosen out of sample: horizon %d, threshold %.2f", horizon, threshold)
    return replace(config, horizon=horizon, threshold=threshold), sharpe, len(horizons) * len(thresholds)


def _log_metrics(writer: Any, prefix: str, metrics: dict[str, dict[str, float]], step: int) -> None:
    for horizon, values in metrics.items():
        for name in ("accuracy", "log_loss", "ic"):
            if math.isfinite(values[name]):
                writer.add_scalar(f"{prefix}/{horizon}/{name}", values[name], step)


def _fold_records(result: WalkForwardResult, data: MarketData) -> list[dict[str, Any]]:
    def dates(window: slice) -> list[str]:
        return [str(data.index[window.start].date()), str(data.index[window.stop - 1].date())]

    return [
        {"fold": s.fold, "train": dates(s.train), "test": dates(s.test), "metrics": m}
        for s, m in zip(result.splits, result.fold_metrics)
    ]


def backtest(
    policy_dir: Path, data: MarketData, config: PredictorConfig, start: int, report_dir: Path,
    spec: ExperimentSpec | None = None,
) -> list[BacktestResult]:
    """Backtest the saved policy (reloaded from disk) and the baselines from bar ``start``; write the report.

    :param policy_dir: the saved policy's folder.
    :param data: the bars.
    :param config: the run config (baselines, risk layer, seed).
    :param start: first out-of-sample bar.
    :param report_dir: folder of the HTML report and PNGs.
    :param spec: the experiment spec: costs, risk and the sizing the baselines trade with.
    """
    spec = predictor_spec(config, spec)
    backtest_config = spec_backtest_config(spec, start=start)
    policies = [load_policy(policy_dir),
                *(make_policy(name, policy_defaults(policy_class(name), spec)) for name in config.baselines)]
    results = [run_backtest(p, data, backtest_config, start=start, progress=config.progress) for p in policies]
    write_report(
        results, data, report_dir, title=f"{config.model}: out-of-sample backtest",
        settings={"data": config.data, "first out-of-sample bar": str(data.index[start].date()),
                  "horizon": config.horizon, "threshold": config.threshold, "sizing": config.sizing,
                  "risk": backtest_config.risk or "off"},
    )
    return results


def _backtest_record(
    results: list[BacktestResult], data: MarketData, config: PredictorConfig, start: int, report_dir: Path
) -> dict[str, Any]:
    benchmark = results[0].benchmark.to_numpy()
    return {
        "start": str(data.index[start].date()),
        "end": str(data.index[-1].date()),
        "risk": config.risk,
        "policies": {r.name: {k: asdict(r.stats)[k] for k in BACKTEST_FIELDS} for r in results},
        "equal_weight_buy_and_hold_sharpe": sharpe_ratio(simple_returns(benchmark)),
        "report": str(report_dir / "report.html"),
    }


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` (strict JSON), numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def summary(metrics: dict[str, Any]) -> str:
    """Out-of-sample forecast metrics per horizon as a text table, and the backtest's period and benchmark.

    :param metrics: the content of ``metrics.json``.
    """
    lines = [f"out-of-sample forecasts ({len(metrics['folds'])} folds)",
             f"{'horizon':<9}{'n':>7}{'accuracy':>10}{'base rate':>10}{'log loss':>10}{'IC':>8}"]
    for horizon, m in metrics["oos"].items():
        lines.append(
            f"{horizon:<9}{_fmt(m['n'], '{:.0f}'):>7}{_fmt(m['accuracy']):>10}{_fmt(m['base_rate']):>10}"
            f"{_fmt(m['log_loss']):>10}{_fmt(m['ic']):>8}"
        )
    if "backtest" in metrics:
        bt = metrics["backtest"]
        lines += [
            f"backtest out of sample, {bt['start']} to {bt['end']}, risk layer {'on' if bt['risk'] else 'off'}; "
            f"equal-weight buy-and-hold without risk layer: sharpe {_fmt(bt['equal_weight_buy_and_hold_sharpe'])}",
            f"report: {bt['report']}",
        ]
    return "\n".join(lines)


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return pattern.format(value)


# ---------------------------------------------------------------------------------------------- command line
def add_subcommands(subparsers: Any) -> None:
    """Add one subcommand per predictor model to a subparsers action (used by ``experiments.train``).

    :param subparsers: the result of ``ArgumentParser.add_subparsers``.
    """
    fields_text = "\n".join(f"  {name:<20} {text}" for name, text in field_help().items())
    for model in MODELS:
        sub = subparsers.add_parser(
            model, help=f"train the {model} predictor walk-forward and backtest it",
            description=f"Train the {model} predictor walk-forward, save it as a policy and backtest it out of "
            f"sample. Precedence: defaults < --config YAML (default experiments/configs/{model}.yaml if "
            "present) < --set.",
            epilog=f"config fields (--set name=value; params.name=value for a model parameter):\n{fields_text}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--config", type=Path, help="YAML file of config fields")
        sub.add_argument(
            "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
            help="override a config field (repeatable), e.g. --set train_size=504 --set params.n_estimators=50",
        )
        # The config owns data, symbols, seed, sizing and shorting; the spec brings costs, risk and splits.
        add_spec_arguments(sub, skip=("data", "symbols", "seeds", "sizing", "fraction", "allow_short"))
        sub.set_defaults(handler=run_command, model=model)


def run_command(args: argparse.Namespace) -> int:
    """Handle a parsed predictor command: train, backtest and print the summary.

    :param args: the parsed arguments.
    """
    config = load_config(args.config, parse_sets(args.sets), model=args.model)
    spec, _ = spec_from_args(args)
    result = train(config, spec=spec)
    if result.backtests:
        print_table(result.backtests, Console())
    print(summary(result.metrics))
    print(f"\nrun folder: {result.run_dir}\ntensorboard --logdir {result.run_dir.parent}")
    return 0

