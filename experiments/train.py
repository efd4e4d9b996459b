"""Train any model from one command: ``python -m experiments.train MODEL [options]``.

A thin dispatcher. Each family lives in its own module exposing ``add_subcommands(subparsers)``, which adds
its model names as subcommands whose parsed arguments carry a ``handler(args) -> int``:

- ``experiments.train_rl``: ``ppo``, ``a2c``, ``sac`` (stable-baselines3 agents on the trading envs).
- ``experiments.train_predictor``: ``xgboost``, ``random_forest``, ``lightgbm``, ``lstm``, ``gru``,
  ``transformer``, ``ensemble`` (ML predictors trained walk-forward, then backtested as policies).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from experiments.cli import Parser, command

FAMILIES: tuple[str, ...] = ("experiments.train_rl", "experiments.train_predictor")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every family's subcommands."""
    parser = Parser(
        prog="python -m experiments.train", description="Train a model; see `MODEL --help` for its options."
    )
    subparsers = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for module in FAMILIES:
        importlib.import_module(module).add_subcommands(subparsers)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen model's trainer.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
