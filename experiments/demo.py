"""The main job on the embedded synthetic market, end to end (what ``make demo`` runs).

1. Train PPO on ``Stocks-v0`` with the default config (train / validation / test split in time).
2. Backtest the trained agent next to the rule bots on the agent's held-out test period, through the
   same env and costs, and write the HTML/PNG report. The risk layer is off here so the agent's numbers
   are the ones its training run reported; ``python -m experiments.backtest`` applies it by default.

Everything is seeded: the same command gives the same numbers.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import yaml

from experiments import backtest, train
from experiments.cli import Parser, command

BOTS = ("buy_and_hold", "sma_crossover", "rsi_reversion", "macd_momentum", "breakout", "consensus")


@command
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m experiments.demo",
        description="Train PPO on the synthetic market, then backtest it against the rule bots on the "
        "held-out test period and write a report.",
    )
    parser.add_argument("--timesteps", type=int, default=200_000, help="PPO training steps")
    parser.add_argument("--runs-dir", default="runs", help="where the PPO run folder goes")
    parser.add_argument("--out", default="reports/demo", help="report folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and backtest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    run_name = f"demo-seed{args.seed}"
    print(f"== 1/2 training PPO ({args.timesteps:,} steps) on the synthetic market", flush=True)
    code = train.main([
        "ppo", "--timesteps", str(args.timesteps), "--seed", str(args.seed),
        "--runs-dir", args.runs_dir, "--run-name", run_name,
    ])
    if code:
        return code
    run = Path(args.runs_dir) / "ppo" / run_name
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["periods"]["test"]
    symbol = yaml.safe_load((run / "policy.yaml").read_text())["env_kwargs"]["symbol"]

    print(f"\n== 2/2 backtest on the held-out test period {test['start'][:10]} .. {test['end'][:10]}", flush=True)
    return backtest.main([
        str(run), *BOTS, "--data", "synthetic", "--symbols", symbol, "--start", test["start"][:10],
        "--end", test["end"][:10], "--seeds", str(args.seed), "--out", args.out, "--no-risk",
    ])


if __name__ == "__main__":
    sys.exit(main())
