"""Market data: :class:`MarketData` and its validation, the sources behind ``load_data`` (CSV/Parquet,
bundled samples, the synthetic markets, Alpaca, yfinance, the MinIO/S3 store, fallback across sources),
the causal history view rule bots read, and train/validation/test and walk-forward splits.

Importing this package registers the ``alpaca:``, ``yfinance:`` and ``minio:`` schemes of
:func:`load_data`; each loads its client library only when used.
"""

from envs.data import alpaca, store, yahoo  # noqa: E402,F401  (register their load_data schemes)
from envs.data.history import History
from envs.data.market_data import FIELDS, DataValidationError, MarketData, validate
from envs.data.sources import known_sources, load_data, register_source
from envs.data.synthetic import SyntheticConfig, generate_market

__all__ = [
    "FIELDS",
    "DataValidationError",
    "History",
    "MarketData",
    "SyntheticConfig",
    "generate_market",
    "known_sources",
    "load_data",
    "register_source",
    "validate",
]
