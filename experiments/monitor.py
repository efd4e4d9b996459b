"""Serve the monitoring dashboard of a journal: ``python -m experiments.monitor runs/paper/RUN/journal.sqlite``.

    python -m experiments.monitor runs/paper/sma_crossover-SPY-alpaca-paper/journal.sqlite
    python -m experiments.monitor journal.sqlite --listen 127.0.0.1:8800 --run-id my-run
    python -m experiments.monitor journal.sqlite --summary

The page (equity against the backtest over the same bars, positions against targets, orders, fills,
decisions with their signals, risk interventions, alerts, broker health) works for a finished journal and
for one a runner is still writing: it polls the journal and updates without a reload. It binds to
127.0.0.1 unless told otherwise, loads nothing from the internet, never shows credentials and cannot
change anything. ``--summary`` prints the end-of-run summary instead of serving.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Sequence

from brokers.dashboard import DashboardServer, open_read_only, parse_listen
from brokers.summary import format_summary, summarize
from experiments.cli import Parser, command

log = logging.getLogger("experiments.monitor")


def _parser() -> Parser:
    p = Parser(prog="python -m experiments.monitor", description=__doc__.split("\n")[0])
    p.add_argument("journal", help="the run's SQLite journal (runs/paper/RUN_ID/journal.sqlite)")
    p.add_argument("--run-id", default=None, help="the run to show (default: the journal's last run)")
    p.add_argument(
        "--listen", default="127.0.0.1:8765", metavar="[HOST:]PORT", help="where to serve (default 127.0.0.1:8765)"
    )
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between the page's polls (default 2)")
    p.add_argument("--summary", action="store_true", help="print the end-of-run summary and exit")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        journal = open_read_only(args.journal)
        runs = journal.runs()
        run = args.run_id or (runs[-1] if runs else None)
        if run is None or (args.run_id and args.run_id not in runs):
            raise ValueError(f"{args.journal} has no run {args.run_id!r}; runs: {runs}" if args.run_id
                             else f"{args.journal} holds no run yet")
        if args.summary:
            print("\n".join(format_summary(run, summarize(journal, run))))
            return 0
        journal.close()
        if args.refresh <= 0:
            raise ValueError(f"--refresh must be > 0 seconds, got {args.refresh}")
        host, port = parse_listen(args.listen)
        server = DashboardServer(args.journal, run, host, port, args.refresh)
    except sqlite3.Error as err:
        raise ValueError(f"{args.journal} is not a readable journal: {err}") from err
    print(f"dashboard of run {run} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
