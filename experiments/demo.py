"""The main job on the embedded synthetic market, end to end (what ``make demo`` runs).

1. Train PPO on ``Stocks-v0`` with the default config under the experiment spec (``--spec FILE``, else
   the defaults: train / validation / test split in time, the seed's costs, the risk layer on, 10% of
   equity per full-conviction position), selecting on validation only.
2. Evaluate the trained agent on its sealed test period (``experiments.evaluate``: counted in the run
   folder) next to the rule bots, every policy with the same sizing rule, costs and risk rules from the
   run's stored spec, plus buy-and-hold under those rules and "buy & hold, no rules"; write the report.

Everything is seeded: the same command gives the same numbers.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from experiments import evaluate, train
from experiments.cli import Parser, command
from experiments.rl_config import load_config

BOTS = ("buy_and_hold", "sma_crossover", "rsi_reversion", "macd_momentum", "breakout", "consensus")


@command
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m experiments.demo",
        description="Train PPO on the synthetic market, then backtest it against the rule bots on the "
        "held-out test period and write a report.",
    )
    parser.add_argument("--timesteps", type=int, help="PPO training steps (default: the default config's, "
                        "experiments/configs/ppo.yaml)")
    parser.add_argument("--runs-dir", default="runs", help="where the PPO run folder goes")
    parser.add_argument("--out", default="reports/demo", help="report folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and backtest")
    parser.add_argument("--spec", help="experiment spec YAML (default: the defaults)")
    args = parser.parse_args(argv)
    spec = ["--spec", args.spec] if args.spec else []
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    run_name = f"demo-seed{args.seed}"
    timesteps = args.timesteps or load_config(algo="ppo").total_timesteps
    print(f"== 1/2 training PPO ({timesteps:,} steps) on the synthetic market", flush=True)
    code = train.main([
        "ppo", "--timesteps", str(timesteps), "--seeds", str(args.seed),
        "--runs-dir", args.runs_dir, "--run-name", run_name, *spec,
    ])
    if code:
        return code
    run = Path(args.runs_dir) / "ppo" / run_name
    test = json.loads((run / "metrics.json").read_text())["periods"]["test"]
    print(f"\n== 2/2 evaluation on the sealed test period {test['start'][:10]} .. {test['end'][:10]}: every "
          "policy with the run's spec (same sizing, costs and risk rules)", flush=True)
    return evaluate.main([str(run), *BOTS, "--out", args.out])


if __name__ == "__main__":
    sys.exit(main())
