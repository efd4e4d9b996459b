"""Backtest reports: PNG charts and one self-contained HTML page.

The HTML embeds every chart as a base64 ``data:`` URI and its styles inline; it loads no script, font or
image from anywhere, so it opens offline and can be mailed as a single file. Charts: equity curves
(with the buy-and-hold benchmark), drawdowns, rolling Sharpe, and per policy the trades marked on the
price and a monthly returns heatmap; optional extras (Monte Carlo intervals, walk-forward folds, a
parameter-stability heatmap) are added when given. Stock and options policies share every chart; an
options policy's trades are drawn on its underlying, each option leg at its strike.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from envs.data.market_data import MarketData  # noqa: E402
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID  # noqa: E402
from envs.sim.metrics import PERIODS_PER_YEAR, drawdown  # noqa: E402
from experiments.engine import BacktestResult  # noqa: E402

# Fractions shown as percentages in the table; everything else as plain numbers.
PERCENT_FIELDS = {
    "total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "avg_trade_return",
    "exposure", "var_95", "cvar_95", "alpha",
}
TABLE_FIELDS = (
    "final_equity", "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_duration", "n_trades", "win_rate", "profit_factor", "avg_trade",
    "avg_trade_return", "exposure", "turnover", "var_95", "cvar_95", "alpha", "beta", "total_costs",
)


def short_env_id(env_id: str) -> str:
    """``"AlpacaGym/Options-v0"`` -> ``"Options-v0"``.

    :param env_id: a registered env id.
    """
    return env_id.rpartition("/")[2]


def stats_table(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """Metrics as a frame: the env each policy ran in, then one row per metric of
    :data:`TABLE_FIELDS`; one column per policy.

    :param results: backtest results.
    """
    return pd.DataFrame(
        {r.name: [short_env_id(r.env_id)] + [asdict(r.stats)[f] for f in TABLE_FIELDS] for r in results},
        index=["env", *TABLE_FIELDS],
        dtype=object,
    )


def run_notes(results: Sequence[BacktestResult]) -> dict[str, list[str]]:
    """Each distinct note of the results (settings that did not apply) with the policies it concerns.

    :param results: backtest results.
    """
    notes: dict[str, list[str]] = {}
    for r in results:
        for note in r.notes:
            notes.setdefault(note, []).append(r.name)
    return notes


def format_value(field: str, value: object) -> str:
    """A metric value as text: percentages for fractions, thousands separators for money.

    :param field: the metric name.
    :param value: its value.
    """
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if not isinstance(value, (float, np.floating)):
        return str(value)
    if not np.isfinite(value):
        return "-" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if field in PERCENT_FIELDS:
        return f"{value:.2%}"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3f}"


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as short strings: dates without a midnight time, whole numbers without decimals,
    other numbers to four significant digits, parameter dicts as ``key=value`` lists.

    :param frame: any table (trades, walk-forward folds).
    """

    def cell(value: object) -> str:
        if isinstance(value, pd.Timestamp):
            return f"{value:%Y-%m-%d}" if value == value.normalize() else f"{value:%Y-%m-%d %H:%M}"
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, (float, np.floating)):
            return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"
        return str(value)

    return frame.map(cell)


# ---------------------------------------------------------------------------------------- charts
def plot_equity(results: Sequence[BacktestResult]) -> Figure:
    """Equity curves of every policy and the buy-and-hold benchmark.

    :param results: backtest results over the same bars.
    """
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(results[0].benchmark, color="0.6", lw=1, ls="--", label="buy & hold (equal weight)")
    for r in results:
        ax.plot(r.equity, lw=1.2, label=r.name)
    ax.set_ylabel("equity")
    ax.set_title("Equity")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_drawdown(results: Sequence[BacktestResult]) -> Figure:
    """Drawdown from the running peak, per policy.

    :param results: backtest results.
    """
    fig, ax = plt.subplots(figsize=(10, 3.5), dpi=100)
    for r in results:
        ax.plot(r.equity.index, 100 * drawdown(r.equity.to_numpy()), lw=1, label=r.name)
    ax.set_ylabel("drawdown (%)")
    ax.set_title("Drawdown")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def rolling_sharpe(
    equity: pd.Series, window: int = 63, periods_per_year: int = PERIODS_PER_YEAR
) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of bar returns.

    :param equity: equity curve.
    :param window: bars per window.
    :param periods_per_year: bars per year.
    """
    returns = equity.pct_change()
    roll = returns.rolling(window, min_periods=window)
    return roll.mean() / roll.std() * np.sqrt(periods_per_year)


def plot_rolling_sharpe(
    results: Sequence[BacktestResult], window: int = 63, periods_per_year: int = PERIODS_PER_YEAR
) -> Figure:
    """Rolling Sharpe ratio per policy.

    :param results: backtest results.
    :param window: bars per window.
    :param periods_per_year: bars per year.
    """
    fig, ax = plt.subplots(figsize=(10, 3.5), dpi=100)
    for r in results:
        ax.plot(rolling_sharpe(r.equity, window, periods_per_year), lw=1, label=r.name)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_title(f"Rolling Sharpe ({window} bars)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_trades(result: BacktestResult, data: MarketData, max_symbols: int = 4) -> Figure:
    """Close prices with every fill marked: green triangles up for buys, red down for sells.

    :param result: one policy's result.
    :param data: the bars it ran on.
    :param max_symbols: how many symbols to draw (the most traded first).
    """
    if result.env_id == OPTIONS_ENV_ID:
        return plot_option_trades(result, data)
    fills = result.fills
    counts = fills["symbol"].value_counts() if len(fills) else pd.Series(dtype=int)
    symbols = list(counts.index[:max_symbols]) or list(data.symbols[:1])
    fig, axes = plt.subplots(len(symbols), 1, figsize=(10, 2.8 * len(symbols)), dpi=100, squeeze=False)
    window = data.slice(result.equity.index[0], result.equity.index[-1])
    for ax, symbol in zip(axes[:, 0], symbols):
        ax.plot(window.index, window.close[:, window.symbols.index(symbol)], color="0.3", lw=0.8)
        mine = fills[fills["symbol"] == symbol]
        for side, marker, color in ((1, "^", "tab:green"), (-1, "v", "tab:red")):
            part = mine[np.sign(mine["quantity"]) == side]
            ax.scatter(part["timestamp"], part["price"], marker=marker, color=color, s=18, zorder=3)
        ax.set_title(f"{result.name}: {symbol} ({len(mine)} fills)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# Option fills that are settlements at expiry rather than trades (see envs.options.account.OptionFill).
_SETTLED = ("expired", "exercised", "assigned", "cash_settled")


def plot_option_trades(result: BacktestResult, data: MarketData) -> Figure:
    """An options run's fills on its underlying: stock fills as triangles at their price, option trades
    at their strike (circles calls, squares puts; green buys, red sells), and legs settled at expiry
    (expired, exercised, assigned) as black crosses at their strike.

    A leg's premium is a few dollars against an underlying in the hundreds, so drawing it at its
    strike is what shows where the position sat against the price.

    :param result: one options policy's result.
    :param data: the bars it ran on (one symbol).
    """
    fills = result.fills
    symbol = data.symbols[0]
    window = data.slice(result.equity.index[0], result.equity.index[-1])
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    ax.plot(window.index, window.close[:, 0], color="0.3", lw=0.8, label=symbol)
    kind = fills["kind"].to_numpy()
    side = np.sign(fills["quantity"].to_numpy(float))
    level = np.where(kind == "stock", fills["price"].to_numpy(float), fills["strike"].to_numpy(float))
    settled = fills["reason"].isin(_SETTLED).to_numpy() & (kind != "stock")
    times = fills["timestamp"]
    for name, marker, label in (("stock", None, "shares"), ("call", "o", "call"), ("put", "s", "put")):
        for sign, color, verb in ((1, "tab:green", "bought"), (-1, "tab:red", "sold")):
            mask = (kind == name) & (side == sign) & ~settled
            if mask.any():
                shape = marker or ("^" if sign > 0 else "v")
                ax.scatter(times[mask], level[mask], marker=shape, color=color, s=14, alpha=0.7, zorder=3,
                           label=f"{label} {verb}")
    if settled.any():
        ax.scatter(times[settled], level[settled], marker="x", color="k", s=12, lw=0.8, zorder=4,
                   label="settled at expiry")
    ax.set_title(f"{result.name}: {symbol} and its options ({len(fills)} fills)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month: rows are years, columns months 1..12.

    :param equity: equity curve with a datetime index.
    """
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    first = equity.iloc[0]
    returns = month_end / month_end.shift(1, fill_value=first) - 1.0
    table = returns.unstack()
    return table.reindex(columns=range(1, 13))


def plot_monthly_returns(result: BacktestResult) -> Figure:
    """Heatmap of monthly returns (year x month), annotated in percent.

    :param result: one policy's result.
    """
    table = monthly_returns(result.equity)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(table) + 1.5), dpi=100)
    values = 100 * table.to_numpy(dtype=float)
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(12), [f"{pd.Timestamp(2000, m, 1):%b}" for m in range(1, 13)])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="%")
    ax.set_title(f"{result.name}: monthly returns (%)")
    fig.tight_layout()
    return fig


def plot_heatmap(grid: pd.DataFrame, metric: str, title: str) -> Figure:
    """A metric over a two-parameter grid (rows: one parameter, columns: the other).

    :param grid: values indexed by the first parameter, columns the second.
    :param metric: the metric's name, for the colour bar.
    :param title: chart title.
    """
    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
    ax.set_xlabel(str(grid.columns.name))
    ax.set_ylabel(str(grid.index.name))
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------- output
def _png(fig: Figure, path: Path) -> str:
    """Save ``fig`` to ``path`` and return it base64-encoded for embedding."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = buffer.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for label, row in frame.iterrows():
        cells = "".join(f"<td>{html.escape(format_value(str(label), v))}</td>" for v in row)
        rows.append(f"<tr><th>{html.escape(str(label))}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
tr th:first-child { text-align: left; background: #f6f6f6; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.85em; }
"""


def write_report(
    results: Sequence[BacktestResult],
    data: MarketData,
    out_dir: str | Path,
    title: str = "Backtest report",
    settings: dict[str, object] | None = None,
    extras: Sequence[tuple[str, Figure | pd.DataFrame]] = (),
) -> Path:
    """Write the PNG charts and ``report.html`` into ``out_dir``; return the HTML's path.

    :param results: one result per policy, over the same bars.
    :param data: the bars.
    :param out_dir: output folder (created if needed).
    :param title: page title.
    :param settings: run settings shown at the top (data, costs, risk limits).
    :param extras: further sections, each a heading and a figure or a table (Monte Carlo intervals,
        walk-forward folds, parameter heatmaps).
    """
    if not results:
        raise ValueError("write_report needs at least one result")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"<h1>{html.escape(title)}</h1>"]
    first, last = results[0].equity.index[0], results[0].equity.index[-1]
    sections.append(
        f"<p class='note'>{len(results[0].equity):,} bars, {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
        f"symbols: {html.escape(', '.join(data.symbols))}</p>"
    )
    if settings:
        frame = pd.DataFrame({"value": [str(v) for v in settings.values()]}, index=list(settings))
        sections.append("<h2>Settings</h2>" + _table_html(frame))
    sections.append("<h2>Summary</h2>" + _table_html(stats_table(results)))

    def image(fig: Figure, name: str, alt: str) -> str:
        return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{_png(fig, out / name)}'>"

    sections.append("<h2>Equity</h2>" + image(plot_equity(results), "equity.png", "equity curves"))
    sections.append(image(plot_drawdown(results), "drawdown.png", "drawdowns"))
    sections.append(image(plot_rolling_sharpe(results), "rolling_sharpe.png", "rolling Sharpe"))
    for r in results:
        slug = "".join(ch if ch.isalnum() else "_" for ch in r.name)
        parts = [f"<h2>{html.escape(r.name)} <span class='note'>({short_env_id(r.env_id)})</span></h2>"]
        parts += [f"<p class='note'>Note: {html.escape(note)}</p>" for note in r.notes]
        parts.append(image(plot_trades(r, data), f"trades_{slug}.png", f"{r.name} trades"))
        parts.append(image(plot_monthly_returns(r), f"monthly_{slug}.png", f"{r.name} monthly returns"))
        if len(r.risk_events):
            counts = r.risk_events.groupby("rule").size().rename("interventions").to_frame()
            parts.append("<h3>Risk interventions</h3>" + _table_html(counts))
        if len(r.trades):
            recent = r.trades.tail(20)
            parts.append(f"<h3>Last {len(recent)} of {len(r.trades)} closed trades</h3>")
            parts.append(_table_html(readable(recent)))
        sections.append("".join(parts))
    for k, (heading, item) in enumerate(extras):
        body = (
            image(item, f"extra_{k}.png", heading) if isinstance(item, Figure) else _table_html(item)
        )
        sections.append(f"<h2>{html.escape(heading)}</h2>{body}")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
