"""Shared fixtures: loopback servers that stand in for Alpaca and for an S3/MinIO store.

Both servers listen on 127.0.0.1 at a free port; no test touches the internet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alpaca_server import FakeAlpaca

S3_KEY = "testing-access-key"
S3_SECRET = "testing-secret-key"


@pytest.fixture
def alpaca_server() -> Iterator[FakeAlpaca]:
    """A fresh fake Alpaca (SPY at 500, AAPL at 200; the clock inside a regular session)."""
    with FakeAlpaca(prices={"SPY": 500.0, "AAPL": 200.0}) as server:
        yield server


@pytest.fixture
def alpaca_env(alpaca_server: FakeAlpaca, monkeypatch: pytest.MonkeyPatch) -> FakeAlpaca:
    """Alpaca's environment variables pointing at :func:`alpaca_server`."""
    monkeypatch.setenv("APCA_API_KEY_ID", alpaca_server.api_key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", alpaca_server.secret_key)
    monkeypatch.setenv("APCA_API_BASE_URL", alpaca_server.url)
    monkeypatch.setenv("APCA_API_DATA_URL", alpaca_server.url)
    monkeypatch.delenv("ALPACA_GYM_LIVE_CONFIRM", raising=False)
    return alpaca_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 in server mode on loopback, shared by the session: ``host:port``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """S3 environment variables for the moto server; returns a fresh bucket name (not yet created)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    return f"bars-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium for the whole session (see tests/browser.py)."""
    from browser import Chromium

    browser = Chromium()
    yield browser
    browser.close()
