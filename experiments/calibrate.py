"""Calibrate the learners on markets whose best achievable result is known.

``python -m experiments.calibrate [--families momentum,hmm] [--learners ppo,xgboost] [--quick]
[--config PPO.yaml] [--gamma 0.9 ...]``

For each calibrated family (:mod:`envs.data.calibrated`) and each learner:

1. train on the **training seeds**: PPO with the default ``train ppo`` config
   (``experiments/configs/ppo.yaml``, or ``--config FILE``; the ``train ppo`` flags change single fields), xgboost with the default predictor config, one run per seed on
   ``synthetic:model=FAMILY,seed=S,n_symbols=N`` (the run's own validation period selects its model);
2. score every trained policy on the **held-out seeds**, markets generated from seeds no run saw, dated
   after every training bar, next to the family's oracle (:mod:`baselines.oracles`), buy-and-hold and the
   flat policy, all in the same env with the training costs and from the same bar (the end of the longest
   warm-up, a learner's features), so learner and oracle are compared on the same bars;
3. report per family the oracle's Sharpe, each learner's Sharpe (mean over training seeds and held-out
   markets), the captured fraction (learner over oracle) with a 95% bootstrap interval over held-out
   markets and training seeds, buy-and-hold's Sharpe, each learner's annual cost drag and the share of
   bars it held the oracle's side (long, flat or short): how much of the oracle's policy it learned, not
   just of its Sharpe. On the null market the oracle is flat: a learner there should score a Sharpe whose
   interval holds zero and pay almost no costs.

Writes ``OUT/calibration.json``, ``OUT/report.html``, TensorBoard scalars under ``OUT/tb`` and the training
runs under ``OUT/runs``.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from agents.policy import Policy
from agents.registry import make_policy
from baselines.oracles import Oracle
from envs.data.calibrated import FAMILIES
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from experiments.cli import Parser, command
from experiments.engine import BacktestConfig, run_backtest, start_bar
from experiments.predictor_config import load_config as load_predictor_config
from experiments.predictor_config import parse_sets
from experiments.rl_config import SPEC_OWNED, RLConfig, add_config_arguments, overrides_from_args, resolve
from experiments.rl_config import load_config as load_rl_config
from experiments.spec import ExperimentSpec

logger = logging.getLogger(__name__)

LEARNERS: tuple[str, ...] = ("ppo", "xgboost")
DEFAULT_FAMILIES: tuple[str, ...] = FAMILIES
"""Every family, the cointegrated pair (Portfolio-v0, shorting) included."""
HELDOUT_START = "2026-01-01"
"""Held-out markets start after the last bar of any training market (2520 days from 2015-01-02), so a
predictor's walk-forward schedule trades them with its final fit."""
BOOTSTRAP = 2000


@dataclass(frozen=True)
class CalibrateConfig:
    """What one calibration runs.

    :param families: calibrated families to measure (see envs.data.calibrated.FAMILIES).
    :param learners: ppo and/or xgboost.
    :param train_seeds: market (and learner) seeds to train on, one run each.
    :param heldout_seeds: market seeds to score on; never used for training or model selection.
    :param n_symbols: independent symbols in each training market (more data per run).
    :param n_days: daily bars per market.
    :param snr: signal-to-noise of every family but null (default: each family's default difficulty).
    :param timesteps: PPO environment steps per run (default: the default config's).
    :param ppo_config: YAML file of PPO config fields, calibrated instead of ``experiments/configs/ppo.yaml``.
    :param ppo_overrides: PPO config fields applied over it (the ``train ppo`` flags).
    :param predictor_overrides: predictor config fields over the default xgboost config (``--set``).
    :param out: output folder.
    :param progress: show a progress bar.
    """

    families: tuple[str, ...] = DEFAULT_FAMILIES
    learners: tuple[str, ...] = LEARNERS
    train_seeds: tuple[int, ...] = (1, 2, 3)
    heldout_seeds: tuple[int, ...] = tuple(range(101, 111))
    n_symbols: int = 5
    n_days: int = 2520
    snr: float | None = None
    timesteps: int | None = None
    ppo_config: str | None = None
    ppo_overrides: Mapping[str, Any] = field(default_factory=dict)
    predictor_overrides: Mapping[str, Any] = field(default_factory=dict)
    out: str = "reports/calibrate"
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {list(FAMILIES)}")
        unknown = sorted(set(self.learners) - set(LEARNERS))
        if unknown:
            raise ValueError(f"unknown learners {unknown}; known: {list(LEARNERS)}")
        if not self.train_seeds or not self.heldout_seeds:
            raise ValueError("train_seeds and heldout_seeds must not be empty")
        shared = sorted(set(self.train_seeds) & set(self.heldout_seeds))
        if shared:
            raise ValueError(f"seeds {shared} are both training and held-out seeds")
        if self.n_symbols < 1 or self.n_days < 400:
            raise ValueError(f"n_symbols must be >= 1 and n_days >= 400, got {self.n_symbols} and {self.n_days}")
        if self.snr is not None and self.snr < 0:
            raise ValueError(f"snr must be >= 0, got {self.snr}")
        if self.timesteps is not None and self.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {self.timesteps}")
        # A bad PPO or predictor field fails here, naming it, not after the first hour of training.
        load_rl_config(self.ppo_config, dict(self.ppo_overrides), algo="ppo")
        load_predictor_config(None, dict(self.predictor_overrides), model="xgboost")


QUICK = {"train_seeds": (1,), "heldout_seeds": (101, 102, 103), "timesteps": 20_000}
"""``--quick``: one training seed, three held-out markets and a short PPO run: a smoke test of the pipeline,
not a measurement."""


# ---------------------------------------------------------------------------------------------- markets
def market_spec(family: str, seed: int, config: CalibrateConfig, n_symbols: int | None = None,
                start: str | None = None) -> str:
    """The data spec of one calibrated market.

    :param family: the family.
    :param seed: the market seed.
    :param config: the calibration (days, symbols, snr).
    :param n_symbols: independent symbols (default: the config's; a pair always has two).
    :param start: first date (default: the generator's).
    """
    spec = f"synthetic:model={family},seed={seed},n_days={config.n_days}"
    if family != "pair":
        spec += f",n_symbols={n_symbols or config.n_symbols}"
    return spec + _snr(family, config) + (f",start={start}" if start else "")


def _snr(family: str, config: CalibrateConfig) -> str:
    return f",snr={config.snr}" if config.snr is not None and family != "null" else ""


# Whether a learner finds a known signal is measured without the risk layer, at full position size: the
# PPO run trains under this spec and every policy is scored with its costs.
SPEC = ExperimentSpec(risk=None).replace(fraction=1.0)


def ppo_config(family: str, seed: int, config: CalibrateConfig) -> RLConfig:
    """The default ``train ppo`` config pointed at one training market (a pair trades both legs, short).

    :param family: the family.
    :param seed: the training seed (market and PPO).
    :param config: the calibration.
    """
    changes: dict[str, Any] = {
        **config.ppo_overrides,
        "data": market_spec(family, seed, config),
        "seed": seed, "runs_dir": str(Path(config.out) / "runs"), "run_name": f"{family}-seed{seed}",
        "progress": False, "baselines": (),
    }
    if config.timesteps is not None:
        changes["total_timesteps"] = config.timesteps
    if family == "pair":
        changes.update(env="Portfolio-v0", allow_short=True, train_symbols=())
    # Completed from SPEC, so its costs and shorting are set (fields the spec owns default to None).
    return resolve(load_rl_config(config.ppo_config, changes, algo="ppo"), SPEC)[0]


def backtest_config(rl: RLConfig) -> BacktestConfig:
    """Every policy is scored with the PPO run's costs and no risk layer (:data:`SPEC`, which it trains under).

    :param rl: the PPO config.
    """
    return BacktestConfig(execution=resolve(rl, SPEC)[1].execution, risk=None)


# ---------------------------------------------------------------------------------------------- training
def train_ppo(family: str, seed: int, config: CalibrateConfig) -> tuple[Policy, float]:
    """Train PPO on one training market and reload the selected model as a policy.

    :return: the policy and the training time in seconds.
    """
    from agents.ppo import load_agent
    from experiments.train_rl import train

    result = train(ppo_config(family, seed, config), spec=SPEC)
    return load_agent(result.run_dir), float(result.metrics["train_seconds"])


def train_xgboost(family: str, seed: int, config: CalibrateConfig) -> tuple[Policy, float]:
    """Train the default xgboost predictor walk-forward on one training market and reload its policy.

    :return: the policy and the training time in seconds.
    """
    from agents.registry import load_policy
    from experiments.train_predictor import train

    overrides = {
        **config.predictor_overrides,
        "data": market_spec(family, seed, config), "seed": seed, "backtest": False,
        "progress": False, "runs_dir": str(Path(config.out) / "runs"), "run_name": f"{family}-seed{seed}",
    }
    if family == "pair":
        overrides["allow_short"] = True
    # The whole training market (sealed=False): calibration tests on other, held-out markets.
    result = train(load_predictor_config(None, overrides, model="xgboost"), sealed=False)
    return load_policy(result.policy_dir), float(result.metrics["train_seconds"])


TRAINERS = {"ppo": train_ppo, "xgboost": train_xgboost}


# ---------------------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Score:
    """One policy on one held-out market.

    :param sharpe: annualised Sharpe ratio (0 for a policy that never trades).
    :param cost_drag: costs paid per year over average equity.
    :param total_return: return over the period.
    :param agreement: share of bars (and symbols) on which its position had the reference policy's side
        (long, flat or short); NaN without a reference.
    """

    sharpe: float
    cost_drag: float
    total_return: float
    agreement: float = math.nan


def score_policies(
    policies: dict[str, Policy], data: MarketData, backtest: BacktestConfig, reference: str = "oracle"
) -> dict[str, Score]:
    """Backtest every policy on ``data`` from their common first bar.

    :param policies: name -> policy.
    :param data: one held-out market.
    :param backtest: costs and settings.
    :param reference: the policy whose side each one's :attr:`Score.agreement` is measured against (none
        when it is not among ``policies``).
    """
    start = start_bar(list(policies.values()), data, backtest)
    results = {name: run_backtest(policy, data, backtest, start=start) for name, policy in policies.items()}
    scores = {}
    for name, result in results.items():
        stats = result.stats
        years = (len(result.equity) - 1) / stats.periods_per_year
        drag = stats.total_costs / float(result.equity.mean()) / years
        sharpe = stats.sharpe if math.isfinite(stats.sharpe) else 0.0
        agreement = math.nan
        if reference in results:
            agreement = side_agreement(result.positions, results[reference].positions)
        scores[name] = Score(float(sharpe), float(drag), float(stats.total_return), agreement)
    return scores


def side_agreement(positions: np.ndarray, reference: np.ndarray) -> float:
    """Share of bars (and symbols) on which ``positions`` have the sign of ``reference`` (long, flat, short).

    Both start at the same bar. Row 0 is the account before the first decision, flat for everyone, and is
    left out; a run whose account was wiped out ends early (its env terminates), so only the bars both
    traded count.

    :param positions: ``(bars, symbols)`` holdings of a run.
    :param reference: the reference run's holdings.
    """
    n = min(len(positions), len(reference))
    return float(np.mean(np.sign(positions[1:n]) == np.sign(reference[1:n])))


def bootstrap_interval(
    values: np.ndarray, reference: np.ndarray | None, rng: np.random.Generator, n: int = BOOTSTRAP
) -> tuple[float, float]:
    """95% percentile interval of ``mean(values) / mean(reference)`` (or of ``mean(values)``).

    Resamples the held-out markets (columns) and the training seeds (rows of ``values``) independently;
    ``reference`` has one value per held-out market.

    :param values: ``(seeds, markets)`` learner scores.
    :param reference: ``(markets,)`` oracle scores, or ``None`` for the plain mean.
    :param rng: the generator.
    :param n: bootstrap replicates.
    """
    seeds, markets = values.shape
    stats = np.empty(n)
    for k in range(n):
        rows = rng.integers(seeds, size=seeds)
        cols = rng.integers(markets, size=markets)
        mean = values[np.ix_(rows, cols)].mean()
        stats[k] = mean / reference[cols].mean() if reference is not None else mean
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def summarise(
    family: str, scores: dict[str, np.ndarray], drags: dict[str, np.ndarray], seconds: dict[str, list[float]],
    rng: np.random.Generator, agreements: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """One family's row: the references' Sharpe and each learner's Sharpe, captured fraction and cost drag.

    :param family: the family.
    :param scores: name -> ``(seeds, markets)`` Sharpe ratios (references have one row).
    :param drags: name -> ``(seeds, markets)`` annual cost drags.
    :param seconds: learner -> training seconds per seed.
    :param rng: bootstrap generator.
    :param agreements: learner -> ``(seeds, markets)`` shares of bars on the oracle's side (optional).
    """
    oracle = scores["oracle"][0]
    row: dict[str, Any] = {
        "family": family,
        "oracle_sharpe": float(oracle.mean()),
        "buy_and_hold_sharpe": float(scores["buy_and_hold"][0].mean()),
        "flat_sharpe": float(scores["flat"][0].mean()),
        "learners": {},
    }
    for name in seconds:
        values = scores[name]
        entry: dict[str, Any] = {
            "sharpe": float(values.mean()),
            "sharpe_ci": bootstrap_interval(values, None, rng),
            "sharpe_per_seed": [float(v) for v in values.mean(axis=1)],
            "cost_drag": float(drags[name].mean()),
            "train_seconds": float(np.mean(seconds[name])),
        }
        if agreements is not None and name in agreements:
            entry["oracle_agreement"] = float(agreements[name].mean())
        # A flat oracle (the null market) has nothing to capture.
        if abs(oracle.mean()) > 1e-9:
            entry["captured"] = float(values.mean() / oracle.mean())
            entry["captured_ci"] = bootstrap_interval(values, oracle, rng)
        row["learners"][name] = entry
    return row


def calibrate(config: CalibrateConfig) -> dict[str, Any]:
    """Train, score on held-out seeds and summarise every family; writes the JSON, HTML and TensorBoard files.

    :param config: what to run.
    :return: the content of ``calibration.json``.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    jobs = len(config.families) * (len(config.learners) * len(config.train_seeds) + 1)
    started = time.perf_counter()
    with SummaryWriter(str(out / "tb")) as writer, tqdm(
        total=jobs, desc="calibrate", disable=not config.progress
    ) as bar:
        for family in config.families:
            rl = ppo_config(family, config.train_seeds[0], config)
            backtest = backtest_config(rl)
            heldout = [load_data(market_spec(family, s, config, 1, HELDOUT_START))
                       for s in config.heldout_seeds]
            references: dict[str, Policy] = {
                "oracle": Oracle(market=f"synthetic:model={family}{_snr(family, config)}",
                                 allow_short=rl.allow_short),
                "buy_and_hold": make_policy("buy_and_hold"),
                "flat": Oracle(market="synthetic:model=null"),
            }
            trained: dict[str, list[Policy]] = {}
            seconds: dict[str, list[float]] = {}
            for learner in config.learners:
                for seed in config.train_seeds:
                    bar.set_postfix_str(f"{family}: {learner} seed {seed}")
                    policy, took = TRAINERS[learner](family, seed, config)
                    trained.setdefault(learner, []).append(policy)
                    seconds.setdefault(learner, []).append(took)
                    bar.update(1)
            bar.set_postfix_str(f"{family}: scoring {len(heldout)} held-out markets")
            # Every policy in one backtest call per market, so all start at the same bar (the latest warm-up,
            # a learner's features): a captured fraction compares the learner and the oracle on the same bars.
            runs = {f"{learner}#{k}": p for learner, ps in trained.items() for k, p in enumerate(ps)}
            market_scores = [score_policies({**references, **runs}, data, backtest) for data in heldout]
            bar.update(1)
            scores = {n: np.array([[s[n].sharpe for s in market_scores]]) for n in references}
            drags = {n: np.array([[s[n].cost_drag for s in market_scores]]) for n in references}
            agreements = {}
            for learner, policies in trained.items():
                names = [f"{learner}#{k}" for k in range(len(policies))]
                scores[learner] = np.array([[s[n].sharpe for s in market_scores] for n in names])
                drags[learner] = np.array([[s[n].cost_drag for s in market_scores] for n in names])
                agreements[learner] = np.array([[s[n].agreement for s in market_scores] for n in names])
            row = summarise(family, scores, drags, seconds, rng, agreements)
            rows.append(row)
            _log_row(writer, row)
    result = {
        "config": asdict(config),
        "seconds": time.perf_counter() - started,
        "families": rows,
    }
    (out / "calibration.json").write_text(json.dumps(_finite(result), indent=2))
    (out / "report.html").write_text(render_html(result))
    return result


def _log_row(writer: Any, row: dict[str, Any]) -> None:
    family = row["family"]
    for key in ("oracle_sharpe", "buy_and_hold_sharpe"):
        writer.add_scalar(f"calibrate/{family}/{key}", row[key], 0)
    for name, entry in row["learners"].items():
        writer.add_scalar(f"calibrate/{family}/{name}/sharpe", entry["sharpe"], 0)
        writer.add_scalar(f"calibrate/{family}/{name}/cost_drag", entry["cost_drag"], 0)
        if "oracle_agreement" in entry:
            writer.add_scalar(f"calibrate/{family}/{name}/oracle_agreement", entry["oracle_agreement"], 0)
        if "captured" in entry:
            writer.add_scalar(f"calibrate/{family}/{name}/captured", entry["captured"], 0)


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` so the JSON is strict."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# ---------------------------------------------------------------------------------------------- output
def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per family and learner: family, learner, oracle, learner, captured [CI], buy-and-hold,
    learner's Sharpe CI, cost drag, share of bars on the oracle's side, train seconds.

    :param result: the content of ``calibration.json``.
    """
    rows = []
    for row in result["families"]:
        for name, entry in row["learners"].items():
            captured = "n/a (flat oracle)"
            if "captured" in entry:
                low, high = entry["captured_ci"]
                captured = f"{100 * entry['captured']:.0f}% [{100 * low:.0f}%, {100 * high:.0f}%]"
            low, high = entry["sharpe_ci"]
            rows.append([
                row["family"], name, f"{row['oracle_sharpe']:.2f}", f"{entry['sharpe']:.2f}", captured,
                f"{row['buy_and_hold_sharpe']:.2f}", f"[{low:.2f}, {high:.2f}]",
                f"{100 * entry['cost_drag']:.2f}%",
                f"{100 * entry['oracle_agreement']:.0f}%" if "oracle_agreement" in entry else "n/a",
                f"{entry['train_seconds']:.0f}",
            ])
    return rows


HEADER = ["family", "learner", "oracle sharpe", "learner sharpe", "captured [95% CI]", "buy&hold sharpe",
          "learner sharpe 95% CI", "cost drag/yr", "oracle's side", "train s"]


def render_text(result: dict[str, Any]) -> str:
    """The summary table as aligned text.

    :param result: the content of ``calibration.json``.
    """
    rows = [HEADER, *table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows)


def render_html(result: dict[str, Any]) -> str:
    """A self-contained HTML page with the summary table and the settings.

    :param result: the content of ``calibration.json``.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(result)
    )
    settings = html.escape(json.dumps(result["config"], indent=2))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Calibration</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,td:nth-child(2)"
        "{text-align:left}</style></head><body><h1>Calibration on markets with a known optimum</h1>"
        "<p>Sharpe ratios on held-out seeds, mean over training seeds and held-out markets; captured = learner "
        "over oracle, with a 95% bootstrap interval over both; oracle's side = share of bars on which the learner's "
        "position had the oracle's side (long, flat or short).</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<h2>Settings</h2><pre>{settings}</pre></body></html>"
    )


# ---------------------------------------------------------------------------------------------- command line
def _items(text: str, kind: type = str) -> tuple[Any, ...]:
    return tuple(kind(item.strip()) for item in text.split(",") if item.strip())


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    p = Parser(
        prog="python -m experiments.calibrate",
        description="Train PPO and xgboost on calibrated markets (training seeds) and measure the share of "
        "the oracle's Sharpe they capture on held-out seeds.",
    )
    p.add_argument("--families", default=",".join(DEFAULT_FAMILIES),
                   help=f"comma-separated families of {list(FAMILIES)} (default: %(default)s)")
    p.add_argument("--learners", default=",".join(LEARNERS), help="comma-separated: ppo, xgboost (default: both)")
    p.add_argument("--train-seeds", default="1,2,3", help="training market seeds (default: %(default)s)")
    p.add_argument("--heldout-seeds", default="101-110",
                   help="held-out market seeds, comma-separated or a range A-B (default: %(default)s)")
    p.add_argument("--n-symbols", type=int, default=5, help="symbols per training market (default: 5)")
    p.add_argument("--snr", type=float, help="signal-to-noise of every family but null (default: each one's)")
    p.add_argument("--timesteps", type=int, help="PPO steps per run (default: the default config's)")
    p.add_argument("--quick", action="store_true",
                   help="one training seed, three held-out markets, 20,000 PPO steps: a smoke run")
    p.add_argument("--out", default="reports/calibrate", help="output folder (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--set", dest="predictor_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the xgboost predictor's config (repeatable), e.g. --set anchored=false")
    # The PPO config calibrated: --config FILE and the train ppo flags, over experiments/configs/ppo.yaml.
    add_config_arguments(p, skip=PPO_FIXED, algos=("ppo",))
    return p


PPO_FIXED: tuple[str, ...] = ("algo", "env", *SPEC_OWNED, "seed", "symbol", "train_symbols", "total_timesteps",
                              "runs_dir", "run_name", "progress", "baselines")
"""PPO config fields calibrate sets itself (the market, seeds, run folders; ``--timesteps`` is its own flag)."""


def _seeds(text: str) -> tuple[int, ...]:
    if "-" in text and "," not in text:
        low, high = (int(x) for x in text.split("-"))
        return tuple(range(low, high + 1))
    return _items(text, int)


def config_from_args(args: argparse.Namespace) -> CalibrateConfig:
    """The calibration the parsed command line asks for.

    :param args: arguments parsed by :func:`build_parser`.
    """
    values: dict[str, Any] = {
        "families": _items(args.families), "learners": _items(args.learners),
        "train_seeds": _seeds(args.train_seeds), "heldout_seeds": _seeds(args.heldout_seeds),
        "n_symbols": args.n_symbols, "snr": args.snr, "timesteps": args.timesteps, "out": args.out,
        "progress": not args.no_progress,
        "ppo_config": str(args.config) if args.config else None, "ppo_overrides": overrides_from_args(args),
        "predictor_overrides": parse_sets(args.predictor_set),
    }
    if args.quick:
        values.update(QUICK)
        values["timesteps"] = args.timesteps or QUICK["timesteps"]
    return CalibrateConfig(**values)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command (bad input: one ``error:`` line, exit 2; ``--debug`` for the traceback).

    :param argv: arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    config = config_from_args(args)
    result = calibrate(config)
    print(render_text(result))
    print(f"\nreport: {Path(config.out) / 'report.html'}\njson: {Path(config.out) / 'calibration.json'}"
          f"\ntensorboard --logdir {Path(config.out) / 'tb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
