"""Market data on the command line: sync a source into the MinIO/S3 store, or load with fallback.

    python -m experiments.data sync --source yfinance --symbols SPY,AAPL --start 2020-01-01 \\
        --end 2024-12-31 --store minio://bars/daily
    python -m experiments.data load --sources minio://bars/daily,yfinance,alpaca --symbols SPY,AAPL \\
        --start 2020-01-01 --end 2024-12-31 --out spy_aapl.parquet

Credentials come from the environment: ``APCA_API_KEY_ID``/``APCA_API_SECRET_KEY``/``APCA_API_DATA_URL``
for Alpaca, ``AWS_ENDPOINT_URL``/``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` for the store.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from envs.data.alpaca import AlpacaSource
from envs.data.fallback import BarSource, FallbackSource, parse_timeframe, split_symbols
from envs.data.market_data import MarketData
from envs.data.sources import write_parquet
from envs.data.store import ParquetStore
from envs.data.yahoo import YFinanceSource
from experiments.cli import Parser, command

log = logging.getLogger("experiments.data")


def build_source(name: str, cache_dir: str | Path | None = None) -> BarSource:
    """A source by name: ``alpaca``, ``yfinance``, or a store URL ``minio://bucket/prefix``.

    :param name: the source.
    :param cache_dir: cache folder for yfinance and the store (default ``$ALPACA_GYM_CACHE``).
    """
    if name == "alpaca":
        return AlpacaSource()
    if name == "yfinance":
        return YFinanceSource(cache_dir=None if cache_dir is None else Path(cache_dir) / "yfinance")
    if name.startswith(("minio://", "s3://")):
        return ParquetStore(name, cache_dir=None if cache_dir is None else Path(cache_dir) / "minio")
    raise ValueError(f"unknown source {name!r}; use alpaca, yfinance or minio://bucket/prefix")


class UnavailableSource:
    """A listed source that could not be set up (e.g. Alpaca without credentials): fetching raises why, so a
    fallback list tries the next source and reports this one's reason at the end.

    :param name: the source's name as listed.
    :param reason: the set-up error.
    """

    def __init__(self, name: str, reason: Exception) -> None:
        self.name = name
        self.reason = reason

    def fetch(self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day") -> MarketData:
        """Raise the set-up error."""
        raise self.reason


def _deferred(name: str, cache_dir: str | Path | None) -> BarSource:
    """:func:`build_source`, with a set-up failure (missing credentials, no such package) turned into an
    :class:`UnavailableSource`; an unknown source name is still an immediate error."""
    if name not in ("alpaca", "yfinance") and not name.startswith(("minio://", "s3://")):
        return build_source(name, cache_dir)
    try:
        return build_source(name, cache_dir)
    except (ValueError, RuntimeError, ImportError, OSError) as err:
        return UnavailableSource(name, err)


def sync(
    source: BarSource,
    store: ParquetStore,
    symbols: Sequence[str],
    start: str,
    end: str | None,
    timeframe: str = "1Day",
) -> dict[str, MarketData]:
    """Download each symbol from ``source`` and upload it to ``store``.

    :param source: where bars come from.
    :param store: where they go.
    :param symbols: symbols to sync.
    :param start: first date.
    :param end: last date (inclusive); None for now.
    :param timeframe: bar size.
    :return: the synced bars per symbol.
    """
    done = {}
    for symbol in tqdm(symbols, desc=f"sync {source.name} -> {store.url}", unit="symbol"):
        data = source.fetch([symbol], start, end, timeframe)
        store.write(data, timeframe)
        done[symbol] = data
    return done


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m experiments.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. SPY,AAPL")
        p.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
        p.add_argument("--end", default=None, help="last date (inclusive), YYYY-MM-DD; default now")
        p.add_argument("--timeframe", default="1Day", help="bar size: 1Day, 1Hour, 15Min, ... (default 1Day)")
        p.add_argument(
            "--cache-dir",
            default=None,
            help="cache folder (default $ALPACA_GYM_CACHE or ~/.cache/alpaca-gym)",
        )
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    s = sub.add_parser("sync", help="download from a source and upload to the MinIO/S3 store")
    s.add_argument("--source", required=True, choices=("yfinance", "alpaca"), help="where to download from")
    s.add_argument("--store", required=True, help="store URL, minio://bucket/prefix")
    common(s)
    ld = sub.add_parser("load", help="load through sources in order with fallback; report which served")
    ld.add_argument(
        "--sources",
        default="yfinance",
        help="comma-separated, in order: minio://bucket/prefix,yfinance,alpaca",
    )
    ld.add_argument("--out", default=None, help="write the bars to this Parquet file (long format)")
    common(ld)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        symbols = split_symbols(args.symbols)
        parse_timeframe(args.timeframe)
        if args.command == "sync":
            store = build_source(args.store, args.cache_dir)
            if not isinstance(store, ParquetStore):
                raise ValueError(f"--store must be minio://bucket/prefix, got {args.store!r}")
            done = sync(
                build_source(args.source, args.cache_dir),
                store,
                symbols,
                args.start,
                args.end,
                args.timeframe,
            )
            print(f"{'symbol':<8} {'bars':>6}  first       last")
            for symbol, data in done.items():
                print(f"{symbol:<8} {data.n_bars:>6}  {data.index[0]:%Y-%m-%d}  {data.index[-1]:%Y-%m-%d}")
            print(f"synced {len(done)} symbol(s) from {args.source} to {store.url}")
            return 0
        names = [n.strip() for n in args.sources.split(",") if n.strip()]
        loader = FallbackSource([_deferred(n, args.cache_dir) for n in names])
        data = loader.fetch(symbols, args.start, args.end, args.timeframe)
        print(f"served by {loader.last_served}: {data!r}")
        if args.out:
            write_parquet(data, args.out)
            print(f"wrote {args.out}")
        return 0
    except (ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
