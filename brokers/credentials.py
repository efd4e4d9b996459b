"""Alpaca credentials from the environment, and the gate in front of live trading.

Keys come only from Alpaca's own variable names (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``,
``APCA_API_BASE_URL``, ``APCA_API_DATA_URL``). The repr masks them, so logging a config never leaks a
secret. Trading against the live endpoint needs two separate yeses: ``live=True`` (the ``--live`` flag)
and ``ALPACA_GYM_LIVE_CONFIRM=yes`` in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
LIVE_CONFIRM_ENV = "ALPACA_GYM_LIVE_CONFIRM"
KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
BASE_URL_ENV = "APCA_API_BASE_URL"
DATA_URL_ENV = "APCA_API_DATA_URL"
_LIVE_HOST = "api.alpaca.markets"
_PAPER_HOST = "paper-api.alpaca.markets"


class LiveTradingNotConfirmed(RuntimeError):
    """Raised when a configuration would trade real money without both confirmations."""


def normalise_url(url: str) -> str:
    """Strip a trailing slash and ``/v2``: alpaca-py appends the API version itself.

    :param url: a base URL as users write it (``https://paper-api.alpaca.markets/v2`` is common).
    """
    url = url.strip().rstrip("/")
    return url[: -len("/v2")] if url.endswith("/v2") else url


def _host(url: str) -> str:
    """The URL's host as DNS compares it: lower case, without a trailing dot."""
    return (urlparse(url).hostname or "").rstrip(".")


def _checked_url(name: str, url: str) -> str:
    """``url`` normalised, or a ValueError naming the variable when it is not ``http(s)://host[:port]``.

    The live gate compares hosts, so a URL without a scheme (``api.alpaca.markets``, which ``urlparse``
    reads as a path with no host) must be refused here rather than slip past it.
    """
    clean = normalise_url(url)
    parsed = urlparse(clean)
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parsed = parsed._replace(netloc="")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{name} must be an http(s) URL such as {PAPER_URL}, got {url!r}")
    return clean


def mask(secret: str) -> str:
    """Show at most the first 4 characters of a credential.

    :param secret: the value to hide.
    """
    return f"{secret[:4]}****" if len(secret) > 8 else "****"


@dataclass(frozen=True, repr=False)
class AlpacaConfig:
    """Where and as whom to trade.

    :param key_id: API key id.
    :param secret_key: API secret key.
    :param base_url: trading endpoint (paper by default; any Alpaca-compatible server works).
    :param data_url: market data endpoint, or ``None`` for alpaca-py's default.
    :param live: True only when live trading was confirmed (see :meth:`from_env`).
    """

    key_id: str
    secret_key: str
    base_url: str = PAPER_URL
    data_url: str | None = None
    live: bool = False

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError(f"Alpaca key id is empty (set {KEY_ENV})")
        if not self.secret_key:
            raise ValueError(f"Alpaca secret key is empty (set {SECRET_ENV})")
        object.__setattr__(self, "base_url", _checked_url(BASE_URL_ENV, self.base_url))
        if self.data_url is not None:
            object.__setattr__(self, "data_url", _checked_url(DATA_URL_ENV, self.data_url))
        host = _host(self.base_url)
        if host == _LIVE_HOST and not self.live:
            raise LiveTradingNotConfirmed(
                f"{self.base_url} is Alpaca's live endpoint; live trading needs --live "
                f"and {LIVE_CONFIRM_ENV}=yes"
            )
        if host == _PAPER_HOST and self.live:
            raise ValueError(
                f"live trading was requested but the trading endpoint is paper ({self.base_url})"
            )

    @property
    def paper(self) -> bool:
        """True unless this config trades real money."""
        return not self.live

    @classmethod
    def from_env(cls, live: bool = False, environ: Mapping[str, str] | None = None) -> AlpacaConfig:
        """Read the configuration from Alpaca's environment variables.

        :param live: the ``--live`` flag; live trading also needs ``ALPACA_GYM_LIVE_CONFIRM=yes``.
        :param environ: the environment to read (``os.environ`` by default).
        :raises LiveTradingNotConfirmed: live requested without the environment confirmation, or a live
            endpoint configured without ``live``.
        :raises ValueError: a key is missing.
        """
        env = os.environ if environ is None else environ
        if live and env.get(LIVE_CONFIRM_ENV, "").strip().lower() != "yes":
            raise LiveTradingNotConfirmed(
                f"--live needs {LIVE_CONFIRM_ENV}=yes in the environment as a second confirmation"
            )
        missing = [name for name in (KEY_ENV, SECRET_ENV) if not env.get(name)]
        if missing:
            raise ValueError(f"missing Alpaca credentials: set {' and '.join(missing)}")
        return cls(
            key_id=env[KEY_ENV],
            secret_key=env[SECRET_ENV],
            base_url=env.get(BASE_URL_ENV) or (LIVE_URL if live else PAPER_URL),
            data_url=env.get(DATA_URL_ENV) or None,
            live=live,
        )

    def __repr__(self) -> str:
        return (
            f"AlpacaConfig(key_id={mask(self.key_id)!r}, secret_key='****', base_url={self.base_url!r}, "
            f"data_url={self.data_url!r}, live={self.live})"
        )
