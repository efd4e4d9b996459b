"""``python -m experiments.leaderboard``: every stock policy, one spec, one ranked table.

    python -m experiments.leaderboard --quick                 # CI: a few minutes on 2 cores
    python -m experiments.leaderboard                         # the full board
    python -m experiments.leaderboard --address ray://head:10001   # the same jobs on a Ray cluster

Every registered stock rule bot, the ML predictors and PPO with its default config are trained where
needed and evaluated under one experiment spec (costs, risk rules, sizing: ``--spec FILE`` and the spec
flags) on the held-out test period of each market: the synthetic market (``synthetic:seed=K``, trading
``SYN0``) for each of K seeds, and every bundled real sample (``sample:GOOG``, ...) with date splits.
Training and selection use the train and validation periods only.

The jobs (policy x market x seed) run on Ray: a local Ray on this machine's cores by default, or the
cluster given by ``--address``. Every job is seeded and independent, and results are collected in job
order, so the table is identical either way.

The table ranks policies by their mean test Sharpe ratio across jobs, with a 95% interval of that mean
(a bootstrap over jobs), the mean volatility-matched return (each job's returns scaled to buy-and-hold's
volatility under the same rules), the mean Probabilistic Sharpe Ratio against buy-and-hold and the jobs in
which it exceeds 0.95, and the Deflated Sharpe Ratio of the best job given every configuration on the
board (each job counts what was tried inside it: PPO's validation checks, a predictor's candidate trading
rules). Written to ``--out``: ``leaderboard.html``, ``leaderboard.csv`` (the table), ``jobs.csv`` and
``leaderboard.json`` (every job's numbers).
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from agents.registry import load_policy, make_policy, policy_class
from envs.sim.metrics import simple_returns
from experiments.cli import Parser, UserError, command
from experiments.compare import vol_matched_return
from experiments.engine import run_backtest, start_bar
from experiments.rl_config import STOCK_BASELINES
from experiments.sealed import period_window, trials_of
from experiments.significance import deflated_sharpe_ratio, psr_of_returns, sharpe_per_bar
from experiments.spec import ExperimentSpec, add_spec_arguments, backtest_config, build_spec, policy_defaults, spec_from_args

logger = logging.getLogger("experiments.leaderboard")

PREDICTORS: tuple[str, ...] = ("xgboost", "random_forest", "lightgbm", "lstm", "gru", "transformer", "ensemble")
# The bundled real samples and their date splits: train to the first date, validate to the second, test after.
SAMPLES: dict[str, tuple[str, str]] = {
    "sample:GOOG": ("2009-12-31", "2011-06-30"),
    "sample:GOOGL": ("2014-12-31", "2016-12-31"),
    "sample:NDX": ("2010-12-31", "2014-12-31"),
    "sample:SPX": ("2010-12-31", "2014-12-31"),
}
SYNTHETIC_SYMBOL = "SYN0"


@dataclass(frozen=True)
class Job:
    """One policy on one market with one seed.

    :param policy: a registered bot, a predictor model name, or ``ppo``.
    :param kind: ``bot``, ``predictor`` or ``rl``.
    :param market: the data spec.
    :param seed: the seed of training and evaluation.
    """

    policy: str
    kind: str
    market: str
    seed: int


@dataclass(frozen=True)
class Plan:
    """What a board runs.

    :param bots: registered stock bots.
    :param predictors: predictor models.
    :param rl: RL algorithms (``ppo``).
    :param synthetic_seeds: seeds of the synthetic markets (one market and one training seed each).
    :param samples: bundled real samples with date splits.
    :param ppo_timesteps: PPO training steps (``None``: the default config's).
    :param predictor_params: model parameters for the predictors (smaller models in quick mode).
    """

    bots: tuple[str, ...]
    predictors: tuple[str, ...]
    rl: tuple[str, ...]
    synthetic_seeds: tuple[int, ...]
    samples: tuple[str, ...]
    ppo_timesteps: int | None
    predictor_params: dict[str, Any]

    def jobs(self) -> list[Job]:
        """Every job, in a fixed order (the order results are collected in)."""
        markets = [(f"synthetic:seed={k}", k) for k in self.synthetic_seeds] + [(s, 0) for s in self.samples]
        kinds = ([(b, "bot") for b in self.bots] + [(p, "predictor") for p in self.predictors]
                 + [(r, "rl") for r in self.rl])
        return [Job(name, kind, market, seed) for market, seed in markets for name, kind in kinds]


QUICK = Plan(STOCK_BASELINES, ("xgboost",), ("ppo",), (0,), ("sample:GOOG",), 20_000,
             {"n_estimators": 50, "max_depth": 3})
FULL = Plan(STOCK_BASELINES, PREDICTORS, ("ppo",), (0, 1, 2), tuple(SAMPLES), None, {})


def market_spec(spec: ExperimentSpec, job: Job) -> ExperimentSpec:
    """The spec of one job: the board's spec on the job's market, splits and seed.

    :param spec: the board's spec.
    :param job: the job.
    """
    if job.market in SAMPLES:
        train_end, val_end = SAMPLES[job.market]
        return spec.replace(data=job.market, symbols=(), train_end=train_end, val_end=val_end, seeds=(job.seed,))
    return spec.replace(data=job.market, symbols=(SYNTHETIC_SYMBOL,), seeds=(job.seed,))


def _trained_policy(job: Job, spec: ExperimentSpec, plan: Plan, folder: Path) -> tuple[Any, int]:
    """Build (and train, for predictors and RL, on the train and validation periods only) the job's policy.

    :return: the policy and how many configurations were tried to pick it (a bot's one; a predictor's
        candidate trading rules; PPO's validation checks, the best of which it keeps).
    """
    if job.kind == "bot":
        return make_policy(job.policy, policy_defaults(policy_class(job.policy), spec)), 1
    data = spec.data.load()
    _, val, _ = spec.splits.periods(data.index)
    if job.kind == "predictor":
        from experiments.predictor_config import PredictorConfig
        from experiments.train_predictor import train as train_predictor

        # Walk-forward over the bars up to the end of validation (train's sealed default): no model sees a
        # test-period label.
        config = PredictorConfig(
            model=job.policy, data=spec.data.data, symbols=spec.data.symbols, seed=job.seed,
            params=plan.predictor_params if job.policy in ("xgboost", "random_forest", "lightgbm") else {},
            backtest=False, progress=False, sizing=spec.sizing.sizing, fraction=spec.sizing.fraction,
            train_size=min(756, val.stop // 2), test_size=min(252, val.stop // 6),
        )
        run = train_predictor(config, folder / job.policy, spec=spec, data=data)
        return load_policy(run.policy_dir), trials_of(run.run_dir)
    from experiments.rl_config import load_config
    from experiments.train_rl import train as train_rl

    overrides: dict[str, Any] = {"progress": False, "runs_dir": str(folder), "run_name": "run", "checkpoint_freq": 10**9}
    if plan.ppo_timesteps is not None:
        overrides.update(total_timesteps=plan.ppo_timesteps, eval_freq=max(plan.ppo_timesteps // 4, 1))
    config = load_config(None, overrides, algo=job.policy)
    run_dir = train_rl(config, spec=spec).run_dir
    return load_policy(run_dir), trials_of(run_dir)


def run_job(job: Job, spec_values: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """Train where needed, then score the policy and buy-and-hold (same rules) on the test period.

    :param job: the job.
    :param spec_values: the board's spec as plain values (what Ray ships to a worker).
    :param plan: the board's plan.
    :return: the job's numbers and its test-period returns.
    """
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    spec = market_spec(build_spec(spec_values), job)
    with tempfile.TemporaryDirectory() as tmp:
        policy, trials = _trained_policy(job, spec, plan, Path(tmp))
        data = spec.data.load()
        traded = (getattr(policy, "env_kwargs", None) or {}).get("symbol")
        if traded and data.n_symbols > 1:
            data = data.select([traded])
        window, start = period_window(spec, data, "test")
        config = backtest_config(spec, start=start)
        bench_policy = make_policy("buy_and_hold", policy_defaults(policy_class("buy_and_hold"), spec))
        first = start_bar([policy, bench_policy], window, config)
        bench = run_backtest(bench_policy, window, config, start=first)
        result = run_backtest(policy, window, config, start=first, benchmark=bench.equity)
    returns = simple_returns(result.equity.to_numpy())
    bench_returns = simple_returns(bench.equity.to_numpy())
    s = result.stats
    return {
        "policy": job.policy, "kind": job.kind, "market": job.market, "seed": job.seed,
        "test_start": str(result.equity.index[0].date()), "test_end": str(result.equity.index[-1].date()),
        "calendar": s.calendar, "bar": s.bar, "periods_per_year": s.periods_per_year,
        "sharpe": s.sharpe, "total_return": s.total_return, "max_drawdown": s.max_drawdown,
        "exposure": s.exposure, "n_trades": s.n_trades,
        "vol_matched_return": vol_matched_return(returns, bench_returns, s.periods_per_year),
        "psr_vs_buy_and_hold": psr_of_returns(returns, sharpe_per_bar(bench_returns)),
        "risk_events": len(result.risk_events), "trials": trials,
        "seconds": time.perf_counter() - started,
        "returns": returns.tolist(),
    }


# Wall seconds of one job per policy on the longest market (sample:SPX, 5,031 daily bars), on one core of the
# shared 2-core box under load (python -m experiments.leaderboard's run_job timed job by job, nice'd); bots
# take about a second. Only the order jobs start in depends on these: the longest first, so that no long
# job starts last and runs alone while the other core idles.
JOB_SECONDS: dict[str, float] = {
    "ensemble": 271.0, "ppo": 134.0, "random_forest": 70.0, "transformer": 33.0, "xgboost": 30.0,
    "lightgbm": 25.0, "lstm": 20.0, "gru": 19.0,
}
REFERENCE_BARS = 5031


def longest_first(jobs: Sequence[Job], bars: dict[str, int]) -> list[int]:
    """Indices of ``jobs`` by expected duration, longest first (ties keep the job order).

    :param jobs: the jobs.
    :param bars: bars of each job's market.
    """
    def seconds(job: Job) -> float:
        return JOB_SECONDS.get(job.policy, 1.0) * bars[job.market] / REFERENCE_BARS

    return sorted(range(len(jobs)), key=lambda i: -seconds(jobs[i]))


def run_jobs(jobs: Sequence[Job], spec: ExperimentSpec, plan: Plan, address: str | None, cpus: int | None) -> list[dict]:
    """Run every job on Ray, the longest first (:func:`longest_first`), and return their results in job order.

    :param jobs: the jobs.
    :param spec: the board's spec.
    :param plan: the plan.
    :param address: a Ray cluster to join, or ``None`` for a local Ray.
    :param cpus: CPUs of the local Ray (default: all).
    """
    import ray
    from tqdm.auto import tqdm

    if address is None:
        ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    else:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    try:
        remote = ray.remote(num_cpus=1)(run_job)
        values = spec.to_dict()
        bars = {job.market: market_spec(spec, job).data.load().n_bars for job in jobs}
        refs: list[Any] = [None] * len(jobs)
        for i in longest_first(jobs, bars):
            refs[i] = remote.remote(jobs[i], values, plan)
        pending = set(refs)
        with tqdm(total=len(refs), desc="leaderboard jobs", unit="job") as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                pending -= set(done)
                bar.update(len(done))
        return ray.get(refs)
    finally:
        ray.shutdown()


def board_trials(rows: Sequence[dict[str, Any]]) -> int:
    """The configurations tried on a board, for the Deflated Sharpe Ratio: every job's own count.

    :param rows: the jobs' results.
    """
    return int(sum(r.get("trials", 1) for r in rows))


def rank(rows: Sequence[dict[str, Any]], seed: int = 0) -> pd.DataFrame:
    """The ranked table: one row per policy, from every job's numbers.

    :param rows: the jobs' results.
    :param seed: seed of the bootstrap over jobs.
    """
    jobs = pd.DataFrame([{k: v for k, v in r.items() if k != "returns"} for r in rows])
    rng = np.random.default_rng(seed)
    sharpes = np.array([sharpe_per_bar(np.asarray(r["returns"])) for r in rows])
    finite = sharpes[np.isfinite(sharpes)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    # Every configuration compared on the board: each job, times what was tried inside it (PPO's validation
    # checks, a predictor's candidate trading rules).
    n_trials = board_trials(rows)
    table = []
    for policy, group in jobs.groupby("policy", sort=False):
        sharpe = group["sharpe"].to_numpy(float)
        valid = sharpe[np.isfinite(sharpe)]
        if len(valid) > 1:
            means = rng.choice(valid, size=(2000, len(valid))).mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5])
        else:
            low = high = float(valid[0]) if len(valid) else float("nan")
        best = max((r for r in rows if r["policy"] == policy), key=lambda r: r["sharpe"] if np.isfinite(r["sharpe"]) else -np.inf)
        best_r = np.asarray(best["returns"])
        dsr = deflated_sharpe_ratio(
            sharpe_per_bar(best_r), len(best_r), n_trials, variance, float(st.skew(best_r)),
            float(st.kurtosis(best_r, fisher=False)),
        ) if len(best_r) > 3 and best_r.std() > 0 else float("nan")
        table.append({
            "policy": policy, "kind": group["kind"].iloc[0], "jobs": len(group),
            "sharpe": float(np.nanmean(sharpe)), "sharpe_ci_low": float(low), "sharpe_ci_high": float(high),
            "total_return": float(group["total_return"].mean()), "max_drawdown": float(group["max_drawdown"].mean()),
            "vol_matched_return": float(group["vol_matched_return"].mean()),
            "psr_vs_buy_and_hold": float(group["psr_vs_buy_and_hold"].mean()),
            "significant_jobs": int((group["psr_vs_buy_and_hold"] > 0.95).sum()),
            "dsr_best_job": dsr, "configs_tried": int(group["trials"].sum()) if "trials" in group else len(group),
            "exposure": float(group["exposure"].mean()),
        })
    out = pd.DataFrame(table).sort_values("sharpe", ascending=False, kind="stable").reset_index(drop=True)
    out.index = out.index + 1
    return out


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ranked table as text cells for the console and the HTML page.

    :param table: the output of :func:`rank`.
    """
    def pct(v: float) -> str:
        return "n/a" if not np.isfinite(v) else f"{v:.1%}"

    def num(v: float) -> str:
        return "n/a" if not np.isfinite(v) else f"{v:.2f}"

    return pd.DataFrame({
        "policy": table["policy"], "kind": table["kind"], "jobs": table["jobs"],
        "sharpe (mean)": table["sharpe"].map(num),
        "95% CI": [f"[{num(a)}, {num(b)}]" for a, b in zip(table["sharpe_ci_low"], table["sharpe_ci_high"])],
        "return": table["total_return"].map(pct), "max DD": table["max_drawdown"].map(pct),
        "return @ B&H vol": table["vol_matched_return"].map(pct),
        "PSR vs B&H": table["psr_vs_buy_and_hold"].map(num),
        "PSR>0.95 jobs": [f"{s}/{j}" for s, j in zip(table["significant_jobs"], table["jobs"])],
        "DSR (best job)": table["dsr_best_job"].map(num), "configs tried": table["configs_tried"],
        "exposure": table["exposure"].map(pct),
    }, index=table.index)


def market_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per market: its calendar, bar, annualisation and test period (from the jobs that ran on it).

    :param rows: every job's numbers.
    """
    columns = ["market", "calendar", "bar", "periods_per_year", "test_start", "test_end"]
    frame = pd.DataFrame([{k: r[k] for k in columns} for r in rows], columns=columns)
    return frame.drop_duplicates("market").reset_index(drop=True)


def write_outputs(table: pd.DataFrame, rows: Sequence[dict[str, Any]], spec: ExperimentSpec, out: Path, title: str) -> Path:
    """Write ``leaderboard.html``, ``leaderboard.csv``, ``jobs.csv`` and ``leaderboard.json``.

    :param table: the ranked table.
    :param rows: every job's numbers.
    :param spec: the board's spec.
    :param out: the folder.
    :param title: the page title.
    """
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "leaderboard.csv", index_label="rank")
    jobs = pd.DataFrame([{k: v for k, v in r.items() if k != "returns"} for r in rows])
    jobs.to_csv(out / "jobs.csv", index=False)
    markets = market_table(rows)
    (out / "leaderboard.json").write_text(json.dumps(
        {"spec": spec.to_dict(), "table": json.loads(table.to_json(orient="records")),
         "markets": json.loads(markets.to_json(orient="records")),
         "jobs": json.loads(jobs.to_json(orient="records"))}, indent=2))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>Test-period scores under one spec (every policy: the same sizing, costs and risk rules); ranked by mean
Sharpe across jobs (policy x market x seed). Spec:</p><pre>{html.escape(spec.to_yaml())}</pre>
{format_table(table).to_html(index_names=False)}
<h2>Markets</h2><p>Each market's calendar, bar and the bars per year its statistics annualise with.</p>
{markets.to_html(index=False)}
<h2>Jobs</h2>{jobs.to_html(index=False, float_format=lambda v: f"{v:.4f}")}
</body></html>"""
    path = out / "leaderboard.html"
    path.write_text(page)
    return path


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m experiments.leaderboard``.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = Parser(prog="python -m experiments.leaderboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="CI board: the bots, xgboost and a short PPO on one synthetic market and GOOG")
    parser.add_argument("--address", help="Ray cluster address to join (default: a local Ray)")
    parser.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--synthetic-seeds", help="comma-separated synthetic market seeds (default: 0,1,2; quick 0)")
    parser.add_argument("--policies", help="comma-separated subset of the board's policies")
    parser.add_argument("--out", default="reports/leaderboard", help="output folder")
    add_spec_arguments(parser, skip=("data", "symbols", "train_end", "val_end", "test_end", "seeds"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    spec, changes = spec_from_args(args)
    for line in changes:
        print(f"spec: {line}")
    plan = QUICK if args.quick else FULL
    if args.synthetic_seeds:
        plan = _replace(plan, synthetic_seeds=tuple(int(s) for s in args.synthetic_seeds.split(",")))
    jobs = plan.jobs()
    if args.policies:
        wanted = {p.strip() for p in args.policies.split(",")}
        unknown = wanted - {j.policy for j in jobs}
        if unknown:
            raise UserError(f"--policies {sorted(unknown)} are not on this board; it has {sorted({j.policy for j in jobs})}")
        jobs = [j for j in jobs if j.policy in wanted]
    started = time.perf_counter()
    rows = run_jobs(jobs, spec, plan, args.address, args.cpus)
    table = rank(rows, spec.seed)
    title = f"Leaderboard ({'quick' if args.quick else 'full'}): {len(jobs)} jobs"
    path = write_outputs(table, rows, spec, Path(args.out), title)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(f"\n{title}, {time.perf_counter() - started:.0f} s\n")
        print(format_table(table).to_string())
        print("\nmarkets (statistics annualised on each market's calendar):")
        print(market_table(rows).to_string(index=False))
    print(f"\nDeflated Sharpe Ratio over {board_trials(rows)} configurations tried (the {len(rows)} jobs, "
          "PPO's validation checks, the predictors' candidate trading rules)")
    print(f"\nreport: {path}")
    return 0


def _replace(plan: Plan, **changes: Any) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)


if __name__ == "__main__":
    sys.exit(main())
