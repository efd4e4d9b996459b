"""Reports: self-contained HTML with embedded charts, every PNG written, table formatting, helpers."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from envs.data.synthetic import generate_market
from experiments.engine import BacktestConfig, run_backtest
from experiments.report import (
    format_value,
    monthly_returns,
    plot_heatmap,
    rolling_sharpe,
    stats_table,
    write_report,
)


@pytest.fixture(scope="module")
def runs():
    data = generate_market(n_symbols=2, n_days=300, seed=8)
    config = BacktestConfig(risk=None)
    results = [run_backtest(make_policy(n), data, config) for n in ("sma_crossover", "rsi_reversion")]
    return data, results


def test_report_is_self_contained(tmp_path, runs):
    data, results = runs
    grid = pd.DataFrame([[0.1, 0.2], [0.3, np.nan]], index=pd.Index([5, 10], name="fast"),
                        columns=pd.Index([20, 30], name="slow"))
    extras = [("heatmap", plot_heatmap(grid, "sharpe", "stability")), ("a table", grid)]
    path = write_report(results, data, tmp_path, title="Test <report>", settings={"data": "synthetic"},
                        extras=extras)
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Test &lt;report&gt;" in page
    # No external resource of any kind: every src is an inline data URI, no scripts, no links.
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    for uri in sources:
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # One image per chart: equity, drawdown, rolling Sharpe, two per policy, one extra figure.
    assert len(sources) == 3 + 2 * len(results) + 1
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert {"equity.png", "drawdown.png", "rolling_sharpe.png", "trades_sma_crossover.png",
            "monthly_rsi_reversion.png", "extra_0.png"} <= set(written)
    assert "sma_crossover" in page and "rsi_reversion" in page and "closed trades" in page


def test_stats_table_and_formatting(runs):
    _, results = runs
    table = stats_table(results)
    assert list(table.columns) == ["sma_crossover", "rsi_reversion"]
    assert table.loc["n_trades", "sma_crossover"] == results[0].stats.n_trades
    assert format_value("n_trades", 12) == "12"
    assert format_value("total_return", 0.1234) == "12.34%"
    assert format_value("final_equity", 123456.789) == "123,456.79"
    assert format_value("sharpe", float("nan")) == "-"
    assert format_value("profit_factor", float("inf")) == "inf"


def test_monthly_returns_compound_within_each_month():
    index = pd.date_range("2023-01-30", periods=6, freq="D", tz="UTC")
    equity = pd.Series([100.0, 110.0, 121.0, 121.0, 108.9, 130.68], index=index)
    table = monthly_returns(equity)
    assert table.loc[2023, 1] == pytest.approx(0.10)
    assert table.loc[2023, 2] == pytest.approx(130.68 / 110.0 - 1)
    assert list(table.columns) == list(range(1, 13)) and np.isnan(table.loc[2023, 3])


def test_rolling_sharpe_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    equity = pd.Series(100 * np.cumprod(1 + rng.normal(0.001, 0.01, 200)))
    roll = rolling_sharpe(equity, window=50)
    window = equity.pct_change().iloc[-50:]
    assert roll.iloc[-1] == pytest.approx(window.mean() / window.std() * np.sqrt(252))
    assert roll.iloc[:50].isna().all()


def test_empty_results_are_refused(tmp_path, runs):
    with pytest.raises(ValueError, match="at least one result"):
        write_report([], runs[0], tmp_path)


def test_report_renders_offline_in_a_real_browser(tmp_path, runs, chromium):
    """Headless Chromium: no console or page error, no request leaving the file, every image decoded."""
    data, results = runs
    path = write_report(results, data, tmp_path, title="browser check", settings={"data": "synthetic"})
    with chromium.open(path.resolve().as_uri()) as loaded:
        drawn = loaded.page.evaluate(
            "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)"
        )
        assert loaded.problems() == []
        assert drawn and all(drawn)
        assert "browser check" in loaded.page.title()
