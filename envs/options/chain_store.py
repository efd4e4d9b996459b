"""Option chains from a Parquet store: the schema, a validating loader and a writer.

Schema (one row per contract and snapshot; extra columns are kept):

============== ===================== ==========================================================
column         type                  meaning
============== ===================== ==========================================================
timestamp      timestamp (UTC)       snapshot time (naive times are read as UTC)
underlying     string                underlying symbol
expiry         date                  expiry date (the contract expires at that day's close)
strike         float64               strike, > 0
right          string                ``"C"`` or ``"P"`` (``"call"``/``"put"`` in any case accepted)
bid            float64               bid, >= 0
ask            float64               ask, >= bid
iv             float64, optional     implied volatility; NaN where the source had none
underlying_price float64, optional   underlying price at the snapshot
volume         int64, optional       contracts traded
open_interest  int64, optional       open contracts
delta, gamma, vega, theta  optional  the source's Greeks
============== ===================== ==========================================================

:func:`load_option_chains` reads a file, a folder of files (a Parquet dataset) or any binary file-like
object; :func:`load_option_chains_from_store` reads one object through an S3/MinIO client (anything with
``get_object(bucket, key)`` returning a readable response, as ``minio.Minio`` does). Errors name the
column and the first offending row. :func:`with_implied_vols` fills missing ``iv`` from the mid with
:func:`envs.options.pricing.implied_vol_with_reason`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from envs.options.pricing import implied_vol_with_reason

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "underlying", "expiry", "strike", "right", "bid", "ask")
OPTIONAL_COLUMNS: tuple[str, ...] = ("iv", "underlying_price", "volume", "open_interest",
                                     "delta", "gamma", "vega", "theta")
SCHEMA = pa.schema([
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("underlying", pa.string()),
    ("expiry", pa.date32()),
    ("strike", pa.float64()),
    ("right", pa.string()),
    ("bid", pa.float64()),
    ("ask", pa.float64()),
    ("iv", pa.float64()),
    ("underlying_price", pa.float64()),
])
_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


class ChainDataError(ValueError):
    """A chain file breaks the schema; the message names the source, the column and the row."""


def _fail(source: str, column: str, rows: np.ndarray, rule: str, frame: pd.DataFrame) -> None:
    row = int(np.flatnonzero(rows)[0])
    raise ChainDataError(f"{source}: column {column!r} row {row}: {rule} (got {frame[column].iloc[row]!r})")


def validate_chains(frame: pd.DataFrame, source: str = "chains") -> pd.DataFrame:
    """Check and normalise a chain frame to the schema; returns a new frame sorted by snapshot and contract.

    :param frame: raw rows.
    :param source: name used in error messages (a path or object key).
    :return: the normalised frame.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ChainDataError(f"{source}: missing required column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    out = frame.copy()
    for column in ("timestamp", "expiry"):
        parsed = pd.to_datetime(out[column], errors="coerce", utc=column == "timestamp")
        if parsed.isna().any():
            _fail(source, column, parsed.isna().to_numpy(), "not a date/time", out)
        out[column] = parsed
    out["expiry"] = out["expiry"].dt.tz_localize(None).dt.normalize() if out["expiry"].dt.tz is not None \
        else out["expiry"].dt.normalize()
    rights = out["right"].astype(str).str.strip().str.upper().map(_RIGHTS)
    if rights.isna().any():
        _fail(source, "right", rights.isna().to_numpy(), "must be C/P (or call/put)", out)
    out["right"] = rights
    for column in ("strike", "bid", "ask", *[c for c in OPTIONAL_COLUMNS if c in out.columns]):
        values = pd.to_numeric(out[column], errors="coerce")
        if column in REQUIRED_COLUMNS and values.isna().any():
            _fail(source, column, values.isna().to_numpy(), "not a number", out)
        out[column] = values.astype(np.float64)
    checks = (
        ("strike", ~(out["strike"] > 0), "strike must be > 0"),
        ("bid", ~(out["bid"] >= 0), "bid must be >= 0"),
        ("ask", ~(out["ask"] >= out["bid"]), "ask must be >= bid"),
        ("expiry", out["expiry"] < out["timestamp"].dt.tz_localize(None).dt.normalize(),
         "expiry is before the snapshot date"),
    )
    for column, bad, rule in checks:
        if bad.any():
            _fail(source, column, bad.to_numpy(), rule, out)
    if "iv" not in out.columns:
        out["iv"] = np.nan
    out["underlying"] = out["underlying"].astype(str)
    keys = ["timestamp", "underlying", "expiry", "right", "strike"]
    duplicated = out.duplicated(keys)
    if duplicated.any():
        _fail(source, "strike", duplicated.to_numpy(), "duplicate contract in one snapshot", out)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def load_option_chains(source: str | Path | BinaryIO, underlying: str | None = None) -> pd.DataFrame:
    """Read chains from a Parquet file, a folder of Parquet files, or a binary file-like object.

    :param source: path or file-like object.
    :param underlying: keep only this underlying.
    :return: the validated frame (see the module docstring for the columns).
    """
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<file-like>")
    try:
        table = pq.read_table(source)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ChainDataError(f"{name}: cannot read as Parquet: {exc}") from exc
    frame = table.to_pandas()
    if underlying is not None:
        if "underlying" not in frame.columns:
            raise ChainDataError(f"{name}: missing required column(s) ['underlying']")
        frame = frame[frame["underlying"].astype(str) == underlying]
        if frame.empty:
            raise ChainDataError(f"{name}: no rows for underlying {underlying!r}")
    return validate_chains(frame, name)


def load_option_chains_from_store(client: Any, bucket: str, key: str, underlying: str | None = None) -> pd.DataFrame:
    """Read one Parquet object of chains through an object-store client (``minio.Minio`` or alike).

    :param client: object with ``get_object(bucket, key)`` returning a response with ``read()``.
    :param bucket: bucket name.
    :param key: object key.
    :param underlying: keep only this underlying.
    :return: the validated frame.
    """
    response = client.get_object(bucket, key)
    try:
        payload = io.BytesIO(response.read())
    finally:
        for method in ("close", "release_conn"):
            if hasattr(response, method):
                getattr(response, method)()
    payload.name = f"{bucket}/{key}"
    return load_option_chains(payload, underlying)


def write_option_chains(frame: pd.DataFrame, destination: str | Path | BinaryIO) -> None:
    """Validate and write chains as Parquet in the store's schema.

    :param frame: chain rows.
    :param destination: path or binary file-like object.
    """
    clean = validate_chains(frame, str(destination))
    clean["expiry"] = clean["expiry"].dt.date
    table = pa.Table.from_pandas(clean, preserve_index=False)
    for field in SCHEMA:
        if field.name in table.column_names:
            i = table.schema.get_field_index(field.name)
            table = table.set_column(i, field, table.column(i).cast(field.type))
    pq.write_table(table, destination)


def with_implied_vols(frame: pd.DataFrame, rate: float, div_yield: float = 0.0) -> pd.DataFrame:
    """Fill missing ``iv`` from the bid/ask mid (needs ``underlying_price``); adds ``iv_reason``.

    :param frame: validated chains.
    :param rate: continuously compounded risk-free rate.
    :param div_yield: continuous dividend yield.
    :return: a copy with ``iv`` filled where it can be and the :class:`~envs.options.pricing.IVReason` codes.
    """
    if "underlying_price" not in frame.columns:
        raise ChainDataError("with_implied_vols needs an 'underlying_price' column")
    out = frame.copy()
    days = (out["expiry"] - out["timestamp"].dt.tz_localize(None).dt.normalize()).dt.days.to_numpy()
    vol, reason = implied_vol_with_reason(
        0.5 * (out["bid"].to_numpy() + out["ask"].to_numpy()), out["underlying_price"].to_numpy(),
        out["strike"].to_numpy(), days / 365.0, rate, div_yield, (out["right"] == "C").to_numpy(),
    )
    missing = out["iv"].isna().to_numpy()
    out["iv"] = np.where(missing, vol, out["iv"].to_numpy())
    out["iv_reason"] = reason
    return out
