"""``python -m experiments.evaluate RUN``: the one place a run's test score comes from.

    python -m experiments.evaluate runs/ppo/<run>                       # the test period, counted
    python -m experiments.evaluate runs/ppo/<run> sma_crossover consensus   # next to rule bots
    python -m experiments.evaluate runs/ppo/<run> --period validation   # not counted

The run's stored experiment spec (``spec.yaml``: data, splits, costs, risk rules, sizing, cash, seed)
decides everything; spec flags (``--spread-bps 5``, ...) override it and every field they change is
printed. The run trades its test period next to buy-and-hold under the same rules, "buy & hold, no
rules" and any POLICY given, through ``experiments.backtest`` (same table, same report). Each test
evaluation increments the run folder's ``test_evaluations.json``; the count is printed with the scores.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from experiments import backtest


def _given(argv: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``experiments.backtest RUN [POLICY ...] --period test --out reports/evaluate [options]``.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m experiments.evaluate RUN [POLICY ...] [--period {train,validation,test}] "
              "[experiments.backtest options]\n" + (__doc__ or ""))
        return 0 if argv else 2
    if not _given(argv, "--period"):
        argv += ["--period", "test"]
    if not _given(argv, "--out"):
        argv += ["--out", "reports/evaluate"]
    return backtest.main(argv)


if __name__ == "__main__":
    sys.exit(main())
