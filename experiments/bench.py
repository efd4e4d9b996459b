"""Side-by-side benchmarks: our code and the peers on the same work, in one run, printing ratios.

Usage: ``python -m experiments.bench {env,backtest,pricing,ppo,lob,all} [--quick]``. Each target lives in
``experiments/benchmarks/<target>.py`` as ``run(quick: bool) -> list[str]`` returning its ratio lines,
which are printed last so they are easy to find.
"""

from __future__ import annotations

import importlib
import logging
import sys

from experiments.cli import Parser, command

TARGETS = ("env", "backtest", "pricing", "ppo", "lob")


@command
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m experiments.bench",
        description="Run our code and the peers on the same work and print speed ratios.",
    )
    parser.add_argument("target", choices=(*TARGETS, "all"), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    targets = TARGETS if args.target == "all" else (args.target,)
    summary: list[str] = []
    for target in targets:
        module = importlib.import_module(f"experiments.benchmarks.{target}")
        summary.extend(module.run(quick=args.quick))
    print("\n== ratios ==")
    for line in summary:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
