"""Data sources: CSV and Parquet files, sample data sets, and the ``load_data(spec)`` entry point.

A file holds either one symbol (OHLCV columns; the symbol is the file stem unless given) or many in
long format (a ``symbol`` or ``ticker`` column). A folder holds one such file per symbol, or long files.
Column names may be in any case; the time column may be called ``timestamp``, ``date``,
``datetime`` or ``time``, or be the frame's index. Naive timestamps are read in the ``tz`` time zone (UTC by
default). Files are read strictly: rows out of time order (``unsorted_timestamp``) and a missing ``volume``
column (``missing_column``) are refused unless ``sort=True`` or ``volume="zero"`` asks for the repair (in a
spec: ``csv:prices.csv?sort=true&volume=zero``); a repeated timestamp is always refused. Every error names
the file, the line (CSV, header on line 1) or row (Parquet, from 0) and the value as written (``'n/a'``, not
NaN).

``load_data`` picks a source by scheme: ``"synthetic"`` or ``"synthetic:seed=3,n_symbols=2"`` (a
calibrated market: ``"synthetic:model=momentum,snr=0.2,seed=3"``, see :mod:`envs.data.calibrated`),
``"synthetic_ticks:n_days=5"`` (1-minute bars with quotes-and-trades microstructure fields, see
:mod:`envs.data.synthetic_ticks`),
``"csv:PATH"``, ``"parquet:PATH"``, ``"file:PATH"`` and ``"sample:NAME"``. Other modules add schemes
with :func:`register_source`.
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import pandas as pd

from envs.data.calibrated import FAMILIES, CalibratedConfig, generate_calibrated
from envs.data.market_data import FIELDS, DataValidationError, MarketData
from envs.data.synthetic import SyntheticConfig, generate_market, generate_market_with_state

FileKind = Literal["csv", "parquet"]
VolumePolicy = Literal["require", "zero"]
# Cells that mean "no value" in a CSV (what pandas writes for NaN, and an empty cell); any other text in a
# number column is an error quoting it.
MISSING_TEXT = frozenset({"", "nan", "NaN"})
SUFFIXES: dict[str, FileKind] = {
    ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet",
}
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "date", "datetime", "time")
SYMBOL_COLUMNS: tuple[str, ...] = ("symbol", "ticker")

Loader = Callable[..., MarketData]
"""A source: ``loader(argument, **kwargs) -> MarketData``, ``argument`` being the text after
``scheme:`` in the spec."""


# ---------------------------------------------------------------------- files
def load_csv(
    path: str | Path,
    *,
    symbol: str | None = None,
    fill_gaps: bool = False,
    tz: str = "UTC",
    sort: bool = False,
    volume: VolumePolicy = "require",
) -> MarketData:
    """Load a CSV file (``.csv`` or ``.csv.gz``) or a folder of them.

    :param path: the file or folder.
    :param symbol: name of a single-symbol file (default: its stem); for long-format files or
        folders, keep only this symbol.
    :param fill_gaps: forward-fill missing bars instead of raising (see :func:`MarketData.from_long`).
    :param tz: time zone of naive timestamps.
    :param sort: sort rows by time instead of refusing a file whose rows are out of order.
    :param volume: ``"require"`` a volume column, or read a missing one as ``"zero"``.
    :return: validated :class:`MarketData`.
    """
    return _load(Path(path), ("csv",), symbol, fill_gaps, tz, sort, volume)


def load_parquet(
    path: str | Path,
    *,
    symbol: str | None = None,
    fill_gaps: bool = False,
    tz: str = "UTC",
    sort: bool = False,
    volume: VolumePolicy = "require",
) -> MarketData:
    """Load a Parquet file (``.parquet`` or ``.pq``) or a folder of them.

    :param path: the file or folder.
    :param symbol: name of a single-symbol file (default: its stem); for long-format files or
        folders, keep only this symbol.
    :param fill_gaps: forward-fill missing bars instead of raising.
    :param tz: time zone of naive timestamps.
    :param sort: sort rows by time instead of refusing a file whose rows are out of order.
    :param volume: ``"require"`` a volume column, or read a missing one as ``"zero"``.
    :return: validated :class:`MarketData`.
    """
    return _load(Path(path), ("parquet",), symbol, fill_gaps, tz, sort, volume)


def load_path(
    path: str | Path,
    *,
    symbol: str | None = None,
    fill_gaps: bool = False,
    tz: str = "UTC",
    sort: bool = False,
    volume: VolumePolicy = "require",
) -> MarketData:
    """Load a CSV or Parquet file, or a folder holding either (mixed formats allowed).

    :param path: the file or folder.
    :param symbol: name of a single-symbol file (default: its stem); for long-format files or
        folders, keep only this symbol.
    :param fill_gaps: forward-fill missing bars instead of raising.
    :param tz: time zone of naive timestamps.
    :param sort: sort rows by time instead of refusing a file whose rows are out of order.
    :param volume: ``"require"`` a volume column, or read a missing one as ``"zero"``.
    :return: validated :class:`MarketData`.
    """
    return _load(Path(path), ("csv", "parquet"), symbol, fill_gaps, tz, sort, volume)


def write_parquet(
    data: MarketData, path: str | Path, layout: Literal["long", "per_symbol"] = "long"
) -> None:
    """Write bars that :func:`load_parquet` reads back unchanged.

    :param data: the bars.
    :param path: the file (``layout="long"``) or the folder to create (``"per_symbol"``).
    :param layout: one long-format file, or one ``SYMBOL.parquet`` file per symbol.
    """
    _write(data, Path(path), layout, ".parquet", lambda frame, out: frame.to_parquet(out, index=False))


def write_csv(
    data: MarketData, path: str | Path, layout: Literal["long", "per_symbol"] = "long"
) -> None:
    """Write bars that :func:`load_csv` reads back (prices round-trip to full precision).

    :param data: the bars.
    :param path: the file (``layout="long"``) or the folder to create (``"per_symbol"``).
    :param layout: one long-format file, or one ``SYMBOL.csv`` file per symbol.
    """
    _write(data, Path(path), layout, ".csv", lambda frame, out: frame.to_csv(out, index=False))


def _write(
    data: MarketData,
    path: Path,
    layout: str,
    suffix: str,
    writer: Callable[[pd.DataFrame, Path], None],
) -> None:
    if layout == "long":
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(data.to_long(), path)
        return
    if layout != "per_symbol":
        raise ValueError(f"layout must be 'long' or 'per_symbol', got {layout!r}")
    for symbol in data.symbols:
        if symbol in ("", ".", "..") or "/" in symbol or "\\" in symbol:
            raise ValueError(f"symbol {symbol!r} cannot be a file name; use layout='long'")
    path.mkdir(parents=True, exist_ok=True)
    for symbol in data.symbols:
        frame = data.to_frame(symbol).rename(columns=str.lower).rename_axis("timestamp")
        writer(frame.reset_index(), path / f"{symbol}{suffix}")


def _kind(path: Path) -> FileKind | None:
    name = path.name.lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load(
    path: Path,
    kinds: tuple[FileKind, ...],
    symbol: str | None,
    fill_gaps: bool,
    tz: str,
    sort: bool = False,
    volume: VolumePolicy = "require",
) -> MarketData:
    if volume not in ("require", "zero"):
        raise ValueError(f"volume must be 'require' or 'zero', got {volume!r}")
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    wanted = ", ".join(s for s, k in SUFFIXES.items() if k in kinds)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) in kinds)
        if not files:
            raise FileNotFoundError(f"folder {path} holds no {wanted} files")
        frames = [_read_long(f, _stem(f), tz, sort, volume) for f in files]
    else:
        if _kind(path) not in kinds:
            raise ValueError(f"{path}: unsupported file type; expected {wanted}")
        files = [path]
        frames = [_read_long(path, symbol or _stem(path), tz, sort, volume)]
    owner = _symbol_files(files, frames)
    long = pd.concat(frames, ignore_index=True)
    if symbol is not None:
        long = long[long["symbol"] == symbol]
        if long.empty:
            raise KeyError(f"{path}: no bars for symbol {symbol!r}; symbols: {sorted(owner)}")
    try:
        return MarketData.from_long(long, fill_gaps=fill_gaps)
    except DataValidationError as err:
        source = owner.get(err.symbol, path) if err.symbol is not None else path
        message = err.message
        if err.symbol is not None and err.timestamp is not None:
            # Name the line of the file and the row as written, not the parsed floats.
            hit = long[(long["symbol"] == err.symbol) & (long["timestamp"] == err.timestamp)]
            if len(hit):
                message = f"{message.split(' (bar ')[0]}; {_written_at(source, int(hit['line'].iloc[0]))}"
        raise DataValidationError(err.rule, f"{source}: {message}", err.symbol, err.timestamp) from err


def _symbol_files(files: list[Path], frames: list[pd.DataFrame]) -> dict[str, Path]:
    """Map each symbol to its file; a symbol in two files is an error naming both."""
    owner: dict[str, Path] = {}
    for file, frame in zip(files, frames):
        for symbol in frame["symbol"].unique():
            if symbol in owner:
                raise DataValidationError(
                    "duplicate_symbol", f"symbol appears in both {owner[symbol]} and {file}",
                    symbol=symbol,
                )
            owner[symbol] = file
    return owner


def _read_long(
    path: Path, default_symbol: str, tz: str, sort: bool = False, volume: VolumePolicy = "require"
) -> pd.DataFrame:
    """Read one file into a long frame: ``timestamp, symbol``, the OHLCV columns and ``line`` (the CSV
    line or Parquet row each bar came from, for error messages)."""
    kind = _kind(path)
    try:
        # CSV cells stay text so that an error can quote what the file says ('n/a', not NaN).
        raw = pd.read_csv(path, dtype=str, keep_default_na=False) if kind == "csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataValidationError("unreadable_file", f"{path}: cannot read as {kind}: {err}") from err
    first_line = 2 if kind == "csv" else None
    if not isinstance(raw.index, pd.RangeIndex):
        raw = raw.reset_index()
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    columns = list(raw.columns)
    time_col = _time_column(columns)
    if time_col is None:
        raise DataValidationError(
            "missing_column",
            f"{path}: no time column (one of {TIME_COLUMNS} or the index); columns: {columns}",
        )
    missing = [f for f in FIELDS if f not in columns and (f != "volume" or volume == "require")]
    if missing:
        hint = (
            "; pass volume='zero' to read volume as 0 (in a spec: csv:PATH?volume=zero)"
            if missing == ["volume"] else ""
        )
        raise DataValidationError("missing_column", f"{path}: no {missing} column(s); columns: {columns}{hint}")
    symbol_col = next((c for c in SYMBOL_COLUMNS if c in columns), None)
    long = pd.DataFrame({
        "timestamp": _parse_times(raw[time_col], path, time_col, first_line, tz),
        "symbol": raw[symbol_col].astype(str) if symbol_col else default_symbol,
    })
    for field in FIELDS:
        if field in columns:
            long[field] = _parse_numbers(raw[field], path, field, first_line)
        else:
            long[field] = 0.0
    long["line"] = np.arange(len(long)) + (first_line or 0)
    _check_order(long, path, raw[time_col], first_line, sort)
    return long.sort_values(["symbol", "timestamp"], kind="stable") if sort else long


def _check_order(
    long: pd.DataFrame, path: Path, written: pd.Series, first_line: int | None, sort: bool
) -> None:
    """Refuse a repeated (timestamp, symbol) and, unless ``sort``, a bar earlier than the one before it."""
    repeated = long.duplicated(["symbol", "timestamp"], keep="first").to_numpy()
    if repeated.any():
        row = int(repeated.argmax())
        key = (long["symbol"].iloc[row], long["timestamp"].iloc[row])
        first = int(((long["symbol"] == key[0]) & (long["timestamp"] == key[1])).to_numpy().argmax())
        raise DataValidationError(
            "duplicate_timestamp",
            f"{_where(path, written.name, row, first_line)}: {written.iloc[row]!r} repeats "
            f"{_at(first, first_line)}",
            symbol=str(key[0]), timestamp=key[1],
        )
    if sort:
        return
    backwards = (long.groupby("symbol", sort=False)["timestamp"].diff() < pd.Timedelta(0)).to_numpy()
    if backwards.any():
        row = int(backwards.argmax())
        symbol = long["symbol"].iloc[row]
        before = long.index[(long["symbol"] == symbol).to_numpy() & (np.arange(len(long)) < row)][-1]
        raise DataValidationError(
            "unsorted_timestamp",
            f"{_where(path, written.name, row, first_line)}: {written.iloc[row]!r} comes before "
            f"{written.iloc[before]!r} on {_at(int(before), first_line)} above it; rows must be in time "
            "order (pass sort=True to sort them; in a spec: csv:PATH?sort=true)",
            symbol=str(symbol), timestamp=long["timestamp"].iloc[row],
        )


def _at(row: int, first_line: int | None) -> str:
    return f"line {first_line + row}" if first_line is not None else f"row {row}"


def _written_at(path: Path, line: int) -> str:
    """``line N: <the line as written>`` for a CSV file, ``row N`` for Parquet."""
    if _kind(path) != "csv":
        return f"row {line}"
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        text = next(itertools.islice(handle, line - 1, None), "").rstrip("\r\n")
    return f"line {line}: {text!r}"


def _time_column(columns: list[str]) -> str | None:
    for name in TIME_COLUMNS:
        if name in columns:
            return name
    # An index written without a name comes back as "unnamed: 0" (CSV) or "index" (Parquet).
    first = columns[0] if columns else None
    if first is not None and (first.startswith("unnamed: 0") or first in ("", "index")):
        return first
    return None


def _where(path: Path, column: object, row: int, first_line: int | None) -> str:
    return f"{path}, column {column!r}, {_at(row, first_line)}"


def _parse_times(
    values: pd.Series, path: Path, column: str, first_line: int | None, tz: str
) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        try:
            parsed = pd.to_datetime(values, errors="coerce")
        except (ValueError, TypeError):
            # Mixed UTC offsets (local times across a DST change) only parse as UTC.
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataValidationError(
            "bad_timestamp",
            f"{_where(path, column, row, first_line)}: cannot read {values.iloc[row]!r} as a time",
        )
    index = pd.DatetimeIndex(parsed)
    if index.tz is None:
        try:
            index = index.tz_localize(tz)
        except (ValueError, TypeError) as err:
            raise DataValidationError(
                "bad_timestamp", f"{path}, column {column!r}: cannot place times in {tz!r}: {err}"
            ) from err
    return index.tz_convert("UTC")


def _parse_numbers(
    values: pd.Series, path: Path, column: str, first_line: int | None
) -> pd.Series:
    if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        # An empty cell is a missing value (validation's ``nan`` rule, or fill_gaps); other text is an error.
        values = values.where(~values.astype(str).str.strip().isin(MISSING_TEXT))
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataValidationError(
            "bad_value",
            f"{_where(path, column, row, first_line)}: {values.iloc[row]!r} is not a number",
        )
    return numbers.astype("float64")


# ---------------------------------------------------------------------- registry
_SOURCES: dict[str, Loader] = {}


def register_source(scheme: str, loader: Loader, *, replace: bool = False) -> None:
    """Make ``load_data(f"{scheme}:ARGUMENT", **kwargs)`` call ``loader(ARGUMENT, **kwargs)``.

    :param scheme: the name before the colon, e.g. ``"yfinance"``.
    :param loader: callable returning :class:`MarketData`.
    :param replace: allow replacing an existing scheme.
    """
    if not scheme.isidentifier():
        raise ValueError(f"source scheme must be an identifier, got {scheme!r}")
    if scheme in _SOURCES and not replace:
        raise ValueError(f"source scheme {scheme!r} is already registered (pass replace=True)")
    _SOURCES[scheme] = loader


def known_sources() -> tuple[str, ...]:
    """The registered schemes, sorted."""
    return tuple(sorted(_SOURCES))


def load_data(spec: str, **kwargs: Any) -> MarketData:
    """Load market data from a spec such as ``"synthetic:seed=3"`` or ``"csv:data/spy.csv"``.

    :param spec: ``scheme`` or ``scheme:argument``; see :func:`known_sources`.
    :param kwargs: passed to the source's loader (e.g. ``fill_gaps=True`` for files, config
        fields for ``synthetic``).
    :return: validated :class:`MarketData`.
    """
    scheme, _, argument = spec.partition(":")
    loader = _SOURCES.get(scheme.strip())
    if loader is None:
        raise ValueError(
            f"unknown data source {scheme!r} in spec {spec!r}; known: {list(known_sources())} "
            "(a file path needs a scheme, e.g. 'file:PATH')"
        )
    return loader(argument.strip(), **kwargs)


def _load_synthetic(argument: str, **kwargs: Any) -> MarketData:
    """``synthetic:key=value,key=value`` with :class:`SyntheticConfig` fields; tuples use ``/``.

    A calibrated family as the model (``synthetic:model=momentum,snr=0.2``) takes
    :class:`~envs.data.calibrated.CalibratedConfig` fields instead.
    """
    argument, vix = _take_flag(argument, "vix", ",")
    vix = bool(kwargs.pop("vix", vix))
    model = kwargs.get("model", _option_value(argument, "model"))
    if model in FAMILIES:
        if vix:
            raise ValueError(f"option 'vix': the calibrated family {model!r} has no VIX; use the default model")
        return generate_calibrated(**{**_parse_options(argument, CalibratedConfig), **kwargs})
    options = {**_parse_options(argument, SyntheticConfig), **kwargs}
    if not vix:
        return generate_market(**options)
    from envs.data.vix import synthetic_vix, with_vix

    data, state = generate_market_with_state(**options)
    return with_vix(data, synthetic_vix(data, state))


def _take_flag(argument: str, key: str, separator: str) -> tuple[str, bool]:
    """``argument`` without its boolean option ``key=...``, and that option's value (False when absent)."""
    kept, value = [], False
    for item in filter(None, argument.split(separator)):
        name, sep, raw = (part.strip() for part in item.partition("="))
        if sep and name == key:
            value = _convert(raw, bool, key)
        else:
            kept.append(item)
    return separator.join(kept), bool(value)


def calibrated_config(spec: str) -> CalibratedConfig:
    """The parameters of a calibrated market from its data spec, e.g. ``synthetic:model=hmm,snr=0.2``.

    :param spec: ``synthetic:...`` (or just the ``key=value,...`` part) naming a calibrated ``model``.
    :return: the :class:`~envs.data.calibrated.CalibratedConfig` the spec generates.
    """
    scheme, sep, argument = spec.partition(":")
    if not sep:
        scheme, argument = "synthetic", spec
    if scheme.strip() != "synthetic" or _option_value(argument, "model") not in FAMILIES:
        raise ValueError(f"{spec!r} is not a calibrated market; expected synthetic:model=FAMILY,... with "
                         f"FAMILY one of {list(FAMILIES)}")
    return CalibratedConfig(**_parse_options(argument, CalibratedConfig))


def _option_value(text: str, key: str) -> str | None:
    """The raw value of ``key`` in a ``key=value,...`` spec argument, or ``None``."""
    for item in text.split(","):
        name, sep, value = (s.strip() for s in item.partition("="))
        if sep and name == key:
            return value
    return None


def _parse_options(text: str, config_type: type) -> dict[str, object]:
    """Parse ``key=value,...`` into typed keyword arguments for the dataclass ``config_type``."""
    hints = get_type_hints(config_type)
    options: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ValueError(f"option {item!r} is not key=value")
        if key not in hints:
            raise ValueError(
                f"unknown {config_type.__name__} option {key!r}; known: {sorted(hints)}"
            )
        options[key] = _convert(value, hints[key], key)
    return options


def _convert(value: str, hint: Any, key: str) -> object:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value.lower() == "none" and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        items = value.split("/")
        kinds = [args[0]] * len(items) if args[-1] is Ellipsis else list(args)
        if any(get_origin(k) is not None for k in kinds):
            raise ValueError(f"option {key!r} cannot be set in a spec; pass it as a keyword")
        if len(kinds) != len(items):
            raise ValueError(f"option {key!r} needs {len(kinds)} values separated by '/'")
        return tuple(_convert(item, kind, key) for item, kind in zip(items, kinds))
    if origin is Literal:
        return value
    if hint is bool:
        flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if value.lower() not in flags:
            raise ValueError(f"option {key!r}: {value!r} is not a boolean (true/false)")
        return flags[value.lower()]
    try:
        return hint(value)
    except ValueError:
        raise ValueError(f"option {key!r}: {value!r} is not a valid {hint.__name__}") from None


# Real bars that ship as data files inside optional packages: (module, pip name, file in package).
# The files are read directly so that using them never imports those packages' code. GOOG, GOOGL, SPX
# and NDX are daily equity bars (NYSE sessions); EURUSD is hourly FX (2017-04-19 to 2018-02-07, weekend
# gaps); BTCUSD is monthly bitcoin (2012-01 to 2024-12, crypto's 24/7 calendar), all three from
# backtesting.py's test data.
SAMPLES: dict[str, tuple[str, str, str]] = {
    "GOOG": ("backtesting", "backtesting", "test/GOOG.csv"),
    "EURUSD": ("backtesting", "backtesting", "test/EURUSD.csv"),
    "BTCUSD": ("backtesting", "backtesting", "test/BTCUSD.csv"),
    "GOOGL": ("gym_anytrading", "gym-anytrading", "datasets/data/STOCKS_GOOGL.csv"),
    "SPX": ("arch", "arch", "data/sp500/sp500.csv.gz"),
    "NDX": ("arch", "arch", "data/nasdaq/nasdaq.csv.gz"),
}


def _load_sample(argument: str, **kwargs: Any) -> MarketData:
    """``sample:NAME``: a real series bundled with an installed package (see :data:`SAMPLES`);
    ``sample:SPX?vix=true`` joins the real VIX to it (:mod:`envs.data.vix`)."""
    argument, _, query = argument.partition("?")
    query, vix = _take_flag(query, "vix", "&")
    if query:
        raise ValueError(f"sample option {query!r}: the one option of a sample is vix=true, e.g. sample:SPX?vix=true")
    name = argument.upper()
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {argument!r}; available: {sorted(SAMPLES)}")
    module, package, relative = SAMPLES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"sample:{name} needs the {package!r} package: pip install {package}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    data = load_csv(path, **{"symbol": name, **kwargs})
    if not vix:
        return data
    from envs.data.vix import real_vix, with_vix

    return with_vix(data, real_vix())


FILE_OPTIONS: dict[str, type] = {"sort": bool, "volume": str, "fill_gaps": bool, "tz": str, "symbol": str}
"""Options a file spec may carry after ``?``: ``csv:prices.csv?sort=true&volume=zero``."""


def _needs_path(load: Callable[..., MarketData]) -> Loader:
    """Wrap a file loader so an empty spec argument is an error, not the current folder, and options after
    ``?`` (``&``-separated ``key=value``, see :data:`FILE_OPTIONS`) become keyword arguments."""

    def loader(argument: str, **kwargs: Any) -> MarketData:
        path, _, query = argument.partition("?")
        if not path:
            raise ValueError(f"{load.__name__} needs a path, e.g. 'csv:data/spy.csv'")
        options: dict[str, Any] = {}
        for item in filter(None, query.split("&")):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or key not in FILE_OPTIONS:
                raise ValueError(
                    f"file option {item!r} in {argument!r}: expected key=value with key one of "
                    f"{sorted(FILE_OPTIONS)}, e.g. csv:prices.csv?sort=true&volume=zero"
                )
            options[key] = _convert(value, FILE_OPTIONS[key], key)
        return load(path, **{**options, **kwargs})

    return loader


def _load_synthetic_ticks(argument: str, **kwargs: Any) -> MarketData:
    """``synthetic_ticks:key=value,...`` with :class:`~envs.data.synthetic_ticks.TickConfig` fields: 1-minute
    bars with their quotes-and-trades microstructure fields."""
    from envs.data.synthetic_ticks import TickConfig, generate_ticks

    return generate_ticks(TickConfig(**{**_parse_options(argument, TickConfig), **kwargs})).data


def _load_synthetic_crypto(argument: str, **kwargs: Any) -> MarketData:
    """``synthetic_crypto:key=value,...`` with :class:`~envs.data.crypto.CryptoConfig` fields."""
    from envs.data.crypto import CryptoConfig, generate_crypto_market

    return generate_crypto_market(**{**_parse_options(argument, CryptoConfig), **kwargs})


register_source("synthetic", _load_synthetic)
register_source("synthetic_crypto", _load_synthetic_crypto)
register_source("synthetic_ticks", _load_synthetic_ticks)
register_source("csv", _needs_path(load_csv))
register_source("parquet", _needs_path(load_parquet))
register_source("file", _needs_path(load_path))
register_source("sample", _load_sample)
