"""Reports: one self-contained interactive page (checked in a real browser), machine-readable results, the
tear-sheet numbers against direct computations and quantstats/empyrical, table formatting."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from experiments.engine import BacktestConfig, run_backtest, start_bar
from experiments.report import (
    format_value,
    monthly_returns,
    needs_log_scale,
    plot_heatmap,
    rolling_sharpe,
    settings_rows,
    stats_table,
    write_report,
)
from experiments.tearsheet import (
    attribution,
    benchmark_stats,
    risk_contributions,
    rolling_beta,
    rolling_volatility,
    worst_drawdowns,
    yearly_returns,
)


@pytest.fixture(scope="module")
def runs():
    data = generate_market(n_symbols=2, n_days=300, seed=8)
    config = BacktestConfig(risk=None)
    results = [run_backtest(make_policy(n), data, config) for n in ("sma_crossover", "rsi_reversion")]
    return data, results


def test_report_is_self_contained_and_writes_results(tmp_path, runs):
    data, results = runs
    grid = pd.DataFrame([[0.1, 0.2], [0.3, np.nan]], index=pd.Index([5, 10], name="fast"),
                        columns=pd.Index([20, 30], name="slow"))
    extras = [("heatmap", plot_heatmap(grid, "sharpe", "stability")), ("a table", grid)]
    path = write_report(results, data, tmp_path, title="Test <report>", settings={"data": "synthetic"},
                        extras=extras)
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Test &lt;report&gt;" in page
    # Nothing fetched: no script or stylesheet by URL, every image a data URI.
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r"src='([^']*)'", page))
    assert "Bokeh" in page and page.count("data-chart=") >= 8
    for heading in ("Worst drawdowns", "Yearly returns", "Benchmark statistics", "P/L attribution",
                    "Risk decomposition", "Distribution of bar returns", "Rolling volatility", "Rolling beta"):
        assert heading in page, heading
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert list(stats) == ["sma_crossover", "rsi_reversion"]
    assert stats["sma_crossover"]["n_trades"] == results[0].stats.n_trades
    assert stats["sma_crossover"]["sharpe"] == pytest.approx(results[0].stats.sharpe)
    equity = pd.read_csv(tmp_path / "equity.csv", index_col="timestamp")
    assert list(equity.columns) == ["sma_crossover", "rsi_reversion", "benchmark"] and len(equity) == len(results[0].equity)
    trades = pd.read_csv(tmp_path / "trades.csv")
    assert len(trades) == sum(r.stats.n_trades for r in results) and trades.columns[0] == "policy"


def test_tables_are_formatted(tmp_path, runs):
    data, results = runs
    settings = {"data": "synthetic", "execution": ExecutionConfig(commission=0.002), "risk": None}
    page = write_report(results, data, tmp_path, settings=settings).read_text()
    assert "ExecutionConfig(" not in page and "execution.commission" in page and "<td>0.002</td>" in page
    assert re.search(r"<th>risk</th><td>off</td>", page)
    text = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<td>[^<]*\de[+-]\d", text)  # no scientific notation in any table
    assert "bars traded" in page and f"of {data.n_bars:,} bars loaded" in page
    # Trades: no stray index column, sorted by exit time, signed money and percentages.
    section = page[page.index("closed trades (by exit time)"):]
    table = section[section.index("<table>"):section.index("</table>")]
    assert table.startswith("<table><thead><tr><th>symbol</th>")
    exits = re.findall(r"<td>(\d{4}-\d\d-\d\d)</td><td>[\d,.]+</td><td>[\d,.]+</td><td>[+-]", table)
    assert exits and exits == sorted(exits)
    assert re.search(r"<td>[+-][\d,]+\.\d\d</td><td>[+-]\d+\.\d\d%</td>", table)


def test_settings_rows_expand_dataclasses():
    rows = dict(settings_rows({"cash": 100_000.0, "execution": ExecutionConfig(), "risk": None, "n": 2520}))
    assert rows["cash"] == "100,000.00" and rows["risk"] == "off" and rows["n"] == "2,520"
    assert rows["execution.commission"] == "0.001" and rows["execution.fractional"] == "yes"


def test_stats_table_and_formatting(runs):
    _, results = runs
    table = stats_table(results)
    assert list(table.columns) == ["sma_crossover", "rsi_reversion"]
    assert table.loc["n_trades", "sma_crossover"] == results[0].stats.n_trades
    assert format_value("n_trades", 12) == "12"
    assert format_value("total_return", 0.1234) == "12.34%"
    assert format_value("final_equity", 123456.789) == "123,456.79"
    assert format_value("max_drawdown_duration", 1234) == "1,234 bars"
    assert format_value("sharpe", float("nan")) == "-"
    assert format_value("profit_factor", float("inf")) == "inf"


def test_log_scale_when_curves_differ_by_an_order_of_magnitude(tmp_path, runs):
    index = pd.date_range("2020-01-01", periods=3, tz="UTC")
    assert needs_log_scale([pd.Series([1e5, 2e5, 1.5e6], index=index)])
    assert not needs_log_scale([pd.Series([1e5, 2e5, 3e5], index=index)])
    data, results = runs
    assert "Equity (log scale)" in write_report(results, data, tmp_path, log_scale=True).read_text()


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


def test_rolling_volatility_and_beta_match_direct_computations():
    rng = np.random.default_rng(2)
    b = rng.normal(0.0005, 0.01, 300)
    r = 0.5 * b + rng.normal(0, 0.005, 300)
    index = pd.date_range("2020-01-01", periods=301, tz="UTC")
    equity = pd.Series(np.r_[100.0, 100 * np.cumprod(1 + r)], index=index)
    bench = pd.Series(np.r_[100.0, 100 * np.cumprod(1 + b)], index=index)
    vol = rolling_volatility(equity, 60)
    assert vol.iloc[-1] == pytest.approx(np.std(r[-60:], ddof=1) * np.sqrt(252))
    beta = rolling_beta(equity, bench, 60)
    assert beta.iloc[-1] == pytest.approx(np.cov(r[-60:], b[-60:])[0, 1] / np.var(b[-60:], ddof=1))


def test_worst_drawdowns_and_yearly_returns_agree_with_quantstats():
    qs_stats = pytest.importorskip("quantstats.stats")
    rng = np.random.default_rng(3)
    index = pd.bdate_range("2019-01-01", periods=700, tz=None)
    equity = pd.Series(100 * np.cumprod(1 + rng.normal(0.0003, 0.012, 700)), index=index)
    ours = worst_drawdowns(equity, top=3)
    theirs = qs_stats.drawdown_details(qs_stats.to_drawdown_series(equity.pct_change().fillna(0)))
    theirs = theirs.sort_values("max drawdown").head(3)
    np.testing.assert_allclose(ours["depth"].to_numpy(), theirs["max drawdown"].to_numpy() / 100, rtol=1e-9)
    assert ours["depth"].is_monotonic_increasing
    yearly = yearly_returns({"x": equity})["x"]
    for year, value in yearly.items():
        part = equity[equity.index.year == year]
        before = equity[equity.index.year < year]
        start = before.iloc[-1] if len(before) else equity.iloc[0]
        assert value == pytest.approx(part.iloc[-1] / start - 1)


def test_benchmark_stats_against_empyrical(runs):
    empyrical = pytest.importorskip("empyrical")
    _, results = runs
    r = results[0]
    stats = benchmark_stats(r)
    ret, bench = r.equity.pct_change().iloc[1:], r.benchmark.pct_change().iloc[1:]
    assert stats["beta"] == pytest.approx(empyrical.beta(ret, bench), rel=1e-9)
    assert stats["up_capture"] == pytest.approx(
        ret[bench > 0].mean() / bench[bench > 0].mean(), rel=1e-9)
    assert stats["correlation"] == pytest.approx(np.corrcoef(ret, bench)[0, 1])


def test_attribution_adds_up_and_risk_contributions_sum_to_volatility(runs):
    data, results = runs
    r = results[0]
    split = attribution(r)
    for table in split.values():
        assert table["total P/L"].sum() == pytest.approx(r.trades["pnl"].sum())
        assert table["trades"].sum() == len(r.trades)
    assert set(split["closed by"].index) <= set(r.fills["reason"])
    window = data.slice(r.equity.index[0], r.equity.index[-1])
    risk = risk_contributions(r, window.close, list(window.symbols))
    assert set(risk.index) == set(data.symbols)
    total = r.equity.pct_change().iloc[1:]
    vol = total.std() * np.sqrt(252)
    # Euler: contributions add up to the portfolio's volatility, up to costs (small here).
    assert risk["contribution to volatility"].sum() == pytest.approx(vol, rel=0.05)


def test_empty_results_are_refused(tmp_path, runs):
    with pytest.raises(ValueError, match="at least one result"):
        write_report([], runs[0], tmp_path)


DEEP_QUERY = """
(selector) => {
  const out = [];
  const walk = (root) => {
    root.querySelectorAll(selector).forEach(e => out.push(e));
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); });
  };
  walk(document);
  return out;
}
"""

CHARTS_DRAWN = """
() => {
  const deep = (root, selector, out) => {
    root.querySelectorAll(selector).forEach(e => out.push(e));
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, selector, out); });
    return out;
  };
  return Array.from(document.querySelectorAll('div.chart')).map(chart => {
    const canvases = deep(chart, 'canvas', []);
    return canvases.some(c => {
      if (!c.width || !c.height) return false;
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
      return painted > 1000;
    });
  });
}
"""


def test_report_renders_offline_in_a_real_browser(tmp_path, runs, chromium):
    """Headless Chromium: no console or page error, no request leaving the file, every chart drawn on its
    canvas, and hovering the equity chart shows a tooltip with the equity value."""
    data, results = runs
    path = write_report(results, data, tmp_path, title="browser check", settings={"data": "synthetic"})
    with chromium.open(path.resolve().as_uri()) as loaded:
        page = loaded.page
        page.wait_for_function("document.querySelectorAll('div.chart').length > 0")
        page.wait_for_timeout(1000)
        drawn = page.evaluate(CHARTS_DRAWN)
        assert drawn and all(drawn), drawn
        images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert all(images)
        equity = page.locator("div.chart").first
        equity.scroll_into_view_if_needed()
        box = equity.bounding_box()
        for share in (0.3, 0.4, 0.5):  # enter the plot, then move inside it
            page.mouse.move(box["x"] + box["width"] * share, box["y"] + box["height"] * 0.5)
            page.wait_for_timeout(300)
        tooltip = page.evaluate(
            f"() => ({DEEP_QUERY})('.bk-tooltip-content').map(t => t.innerText).join('\\n')"
        )
        assert "equity" in tooltip and re.search(r"\d{1,3}(,\d{3})+\.\d\d", tooltip), tooltip
        assert loaded.problems() == []
        assert "browser check" in page.title()


def test_options_and_stock_report_renders_in_a_real_browser(tmp_path, chromium):
    """An options bot next to a stock bot: option legs drawn at their strikes, every chart painted, no error."""
    data = generate_market(n_symbols=1, n_days=320, seed=3)
    config = BacktestConfig()
    policies = [make_policy("covered_calls"), make_policy("buy_and_hold")]
    start = start_bar(policies, data, config)
    results = [run_backtest(p, data, config, start=start) for p in policies]
    path = write_report(results, data, tmp_path, title="options check")
    page_text = path.read_text()
    assert "premium paid or received" in page_text and "(Options-v0)" in page_text
    with chromium.open(path.resolve().as_uri()) as loaded:
        loaded.page.wait_for_function("document.querySelectorAll('div.chart').length > 0")
        loaded.page.wait_for_timeout(1000)
        drawn = loaded.page.evaluate(CHARTS_DRAWN)
        assert drawn and all(drawn), drawn
        assert loaded.problems() == []
