"""Backtest reports: one self-contained, interactive HTML page and the run's machine-readable results.

The page draws its charts with Bokeh, whose JavaScript is inlined in the page (no CDN, no font, no request
of any kind), so it opens offline and can be mailed as a single file. Every chart zooms (box and wheel),
pans, resets and shows values on hover; legends sit beside the plot and hide a line on click.

Sections, in order: settings (one row per setting, dataclasses expanded to their fields), the summary table
(percentages, thousands separators, units), equity curves with the buy-and-hold benchmark (log scale when
the curves differ by an order of magnitude or more), drawdowns, rolling Sharpe, volatility and beta, the
distribution of bar returns, worst drawdowns, yearly returns, statistics against the benchmark, then per
policy: its trades on the price, monthly returns, P/L attribution (by symbol, side and what closed the
trade), each position's contribution to volatility, risk interventions and its last trades. Optional extras
(Monte Carlo intervals, walk-forward folds, a parameter-stability heatmap) come last.

:func:`write_report` also writes ``stats.json``, ``trades.csv`` and ``equity.csv`` (:mod:`experiments.results`).
:func:`write_lob_report` is the page of runs on the simulated microstructure envs (market making, execution):
the same settings and summary table, then P/L and inventory paths (or the schedule and shortfall) over the
episode's time and per-episode distributions, with ``stats.json``, ``paths.csv`` and ``episodes.csv``.
The page is assembled from sections (:data:`SECTIONS`: functions of a :class:`ReportContext` returning HTML),
so a new panel is one function added to that list.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bokeh.embed import components  # noqa: E402
from bokeh.models import ColumnDataSource, HoverTool, Legend, NumeralTickFormatter, Span  # noqa: E402
from bokeh.palettes import Category10_10  # noqa: E402
from bokeh.plotting import figure  # noqa: E402
from bokeh.resources import Resources  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from envs.data.market_data import MarketData  # noqa: E402
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID  # noqa: E402
from envs.sim.metrics import PERIODS_PER_YEAR, drawdown  # noqa: E402
from experiments.engine import BacktestResult  # noqa: E402
from experiments.microstructure import ENV_ID as MARKET_MAKING_ENV_ID  # noqa: E402
from experiments.microstructure import EXECUTION_ENV_ID, LobResult  # noqa: E402
from experiments.microstructure import table_rows as lob_table_rows  # noqa: E402
from experiments.results import write_lob_results, write_results  # noqa: E402
from experiments.tearsheet import (  # noqa: E402
    attribution,
    benchmark_stats,
    returns_of,
    risk_contributions,
    rolling_beta,
    rolling_volatility,
    worst_drawdowns,
    yearly_returns,
)

# Fractions shown as percentages in the table; everything else as plain numbers.
PERCENT_FIELDS = {
    "total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "avg_trade_return",
    "exposure", "var_95", "cvar_95", "alpha",
}
# Units of the metrics that are counts of something other than money.
UNITS = {"max_drawdown_duration": "bars", "max_drawdown_days": "days"}
TABLE_FIELDS = (
    "final_equity", "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_duration", "max_drawdown_days", "n_trades", "win_rate", "profit_factor", "avg_trade",
    "avg_trade_return", "exposure", "turnover", "var_95", "cvar_95", "alpha", "beta", "total_costs",
)
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
WIDTH = 1050
# Equity curves whose ranges differ by this factor or more are drawn on a log scale.
LOG_SCALE_RATIO = 10.0


def short_env_id(env_id: str) -> str:
    """``"AlpacaGym/Options-v0"`` -> ``"Options-v0"``.

    :param env_id: a registered env id.
    """
    return env_id.rpartition("/")[2]


def clock_label(stats: Any) -> str:
    """How a run was annualised, e.g. ``"24/7, 1h bars, 8,766/year"``.

    :param stats: a :class:`~envs.sim.metrics.Stats`.
    """
    return f"{stats.calendar}, {stats.bar} bars, {stats.periods_per_year:,.6g}/year"


def stats_table(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """Metrics as a frame: the env each policy ran in, then one row per metric of
    :data:`TABLE_FIELDS`; one column per policy.

    :param results: backtest results.
    """
    return pd.DataFrame(
        {
            r.name: [short_env_id(r.env_id), clock_label(r.stats)] + [asdict(r.stats)[f] for f in TABLE_FIELDS]
            for r in results
        },
        index=["env", "annualised", *TABLE_FIELDS],
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
    """A metric value as text: percentages for fractions, thousands separators for money, units for counts.

    :param field: the metric name.
    :param value: its value.
    """
    unit = f" {UNITS[field]}" if field in UNITS else ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    if not isinstance(value, (float, np.floating)):
        return str(value)
    if not np.isfinite(value):
        return "-" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if field in PERCENT_FIELDS:
        return f"{value:.2%}"
    if unit:
        return f"{value:,.0f}{unit}"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3f}"


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as short strings: dates without a midnight time, whole numbers without decimals,
    other numbers to four significant digits, parameter dicts as ``key=value`` lists.

    :param frame: any table (walk-forward folds, Monte Carlo intervals).
    """
    return frame.map(_cell)


def _cell(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}" if value == value.normalize() else f"{value:%Y-%m-%d %H:%M}"
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"
    return str(value)


# ---------------------------------------------------------------------------------------- cell formats
def money(value: object) -> str:
    """``12,345.68``; ``-`` for a missing value."""
    return "-" if _missing(value) else f"{float(value):,.2f}"


def signed_money(value: object) -> str:
    """``+12,345.68`` / ``-1,234.00``."""
    return "-" if _missing(value) else f"{float(value):+,.2f}"


def percent(value: object) -> str:
    """``12.34%``."""
    return "-" if _missing(value) else f"{float(value):.2%}"


def signed_percent(value: object) -> str:
    """``+12.34%``."""
    return "-" if _missing(value) else f"{float(value):+.2%}"


def count(value: object) -> str:
    """``1,234``."""
    return "-" if _missing(value) else f"{int(value):,}"


def ratio(value: object) -> str:
    """``1.234``."""
    return "-" if _missing(value) else f"{float(value):.3f}"


def _missing(value: object) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, (float, np.floating)) and not np.isfinite(value))


TRADE_FORMATS: dict[str, Callable[[object], str]] = {
    "size": lambda v: f"{float(v):,.2f}", "entry_time": _cell, "exit_time": _cell, "entry_price": money,
    "exit_price": money, "pnl": signed_money, "return": signed_percent, "costs": money,
}
BENCHMARK_FORMATS: dict[str, Callable[[object], str]] = {
    "correlation": ratio, "beta": ratio, "alpha": signed_percent, "tracking_error": percent,
    "information_ratio": ratio, "up_capture": percent, "down_capture": percent,
}


# ---------------------------------------------------------------------------------------- settings
def settings_rows(settings: dict[str, object]) -> list[tuple[str, str]]:
    """Settings as ``(name, text)`` rows: a dataclass value becomes one row per field (``execution.commission``),
    ``None`` reads ``off``, floats lose trailing zeros, tuples are comma lists.

    :param settings: setting name -> value.
    """
    rows: list[tuple[str, str]] = []
    for name, value in settings.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                rows.append((f"{name}.{f.name}", _setting(getattr(value, f.name))))
        else:
            rows.append((name, _setting(value)))
    return rows


def _setting(value: object) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_setting(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_setting(v)}" for k, v in value.items()) or "none"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ", ".join(f"{f.name}={_setting(getattr(value, f.name))}" for f in dataclasses.fields(value))
    return str(value)


# ---------------------------------------------------------------------------------------- analytics kept here
def rolling_sharpe(
    equity: pd.Series, window: int = 63, periods_per_year: float = PERIODS_PER_YEAR
) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of bar returns.

    :param equity: equity curve.
    :param window: bars per window.
    :param periods_per_year: bars per year.
    """
    returns = equity.pct_change()
    roll = returns.rolling(window, min_periods=window)
    return roll.mean() / roll.std() * np.sqrt(periods_per_year)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month: rows are years, columns months 1..12.

    :param equity: equity curve with a datetime index.
    """
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    first = equity.iloc[0]
    returns = month_end / month_end.shift(1, fill_value=first) - 1.0
    table = returns.unstack()
    return table.reindex(columns=range(1, 13))


def needs_log_scale(curves: Sequence[pd.Series]) -> bool:
    """True when the curves span an order of magnitude or more (a linear axis would flatten the small ones).

    :param curves: equity curves (positive).
    """
    values = np.concatenate([c.to_numpy(dtype=float) for c in curves])
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values)) and values.max() / values.min() >= LOG_SCALE_RATIO


# ---------------------------------------------------------------------------------------- charts (Bokeh)
def _x(index: pd.Index) -> np.ndarray:
    """Datetimes as Bokeh wants them: naive UTC ``datetime64``."""
    idx = pd.DatetimeIndex(index)
    return (idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx).to_numpy()


def _figure(title: str, y_label: str, y_format: str, height: int = 320, y_log: bool = False,
            x_datetime: bool = True) -> Any:
    fig = figure(
        title=title, width=WIDTH, height=height, tools=TOOLS, active_scroll="wheel_zoom",
        x_axis_type="datetime" if x_datetime else "linear", y_axis_type="log" if y_log else "linear",
        sizing_mode="stretch_width",
    )
    fig.yaxis.axis_label = y_label
    fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
    fig.toolbar.logo = None
    fig.add_layout(Legend(click_policy="hide", label_text_font_size="8pt"), "right")
    return fig


def _line_hover(fig: Any, value_label: str, value_format: str, x_label: str | None = None) -> None:
    if x_label is None:
        tooltips = [("", "$name"), ("date", "@x{%F}"), (value_label, f"@y{{{value_format}}}")]
        fig.add_tools(HoverTool(tooltips=tooltips, formatters={"@x": "datetime"}, mode="vline"))
    else:
        tooltips = [("", "$name"), (x_label, "@x{0.000}"), (value_label, f"@y{{{value_format}}}")]
        fig.add_tools(HoverTool(tooltips=tooltips, mode="vline"))


def _colors(n: int) -> list[str]:
    return [Category10_10[i % len(Category10_10)] for i in range(n)]


def chart_lines(
    curves: dict[str, pd.Series], title: str, y_label: str, y_format: str, hover_format: str,
    y_log: bool = False, dashed: Sequence[str] = (), zero_line: bool = False, height: int = 300,
    x_label: str | None = None,
) -> Any:
    """One line per curve on a shared time axis, with hover values, zoom and a clickable legend.

    :param curves: legend label -> series with a datetime index.
    :param title: chart title.
    :param y_label: axis label.
    :param y_format: Numbro format of the y ticks (``"0,0"``, ``"0.0%"``).
    :param hover_format: Numbro format of the hovered value.
    :param y_log: log-scale y axis.
    :param dashed: labels drawn dashed and grey (benchmarks).
    :param zero_line: draw a horizontal line at 0.
    :param height: pixels.
    :param x_label: the x axis of curves indexed by numbers (e.g. time in a simulated episode) rather
        than dates.
    """
    fig = _figure(title, y_label, y_format, height=height, y_log=y_log, x_datetime=x_label is None)
    if x_label is not None:
        fig.xaxis.axis_label = x_label
    # Policies keep the same colour in every chart: benchmarks (dashed, grey) take none.
    colors = iter(_colors(len(curves)))
    for label, series in curves.items():
        color = "#888888" if label in dashed else next(colors)
        clean = series.dropna()
        x = _x(clean.index) if x_label is None else clean.index.to_numpy(dtype=float)
        source = ColumnDataSource({"x": x, "y": clean.to_numpy(dtype=float)})
        style = {"line_dash": "dashed", "color": color} if label in dashed else {"color": color}
        fig.line("x", "y", source=source, legend_label=label, name=label, line_width=1.4, **style)
    if zero_line:
        fig.add_layout(Span(location=0.0, dimension="width", line_color="#444444", line_width=1))
    _line_hover(fig, y_label, hover_format, x_label)
    return fig


def chart_equity(results: Sequence[BacktestResult], log_scale: bool | None = None) -> Any:
    """Equity of every policy and the buy-and-hold benchmark.

    :param results: backtest results over the same bars.
    :param log_scale: log y axis; ``None``: when the curves span an order of magnitude (:func:`needs_log_scale`).
    """
    curves = {"buy & hold (equal weight)": results[0].benchmark, **{r.name: r.equity for r in results}}
    y_log = needs_log_scale(list(curves.values())) if log_scale is None else log_scale
    title = "Equity" + (" (log scale)" if y_log else "")
    return chart_lines(curves, title, "equity", "0,0", "0,0.00", y_log=y_log,
                       dashed=("buy & hold (equal weight)",), height=380)


def chart_drawdown(results: Sequence[BacktestResult]) -> Any:
    """Drawdown from the running peak, per policy.

    :param results: backtest results.
    """
    curves = {r.name: pd.Series(drawdown(r.equity.to_numpy()), index=r.equity.index) for r in results}
    return chart_lines(curves, "Drawdown", "drawdown", "0%", "0.00%")


def chart_returns_distribution(results: Sequence[BacktestResult], bins: int = 50) -> Any:
    """Histogram of bar returns per policy and the benchmark (share of bars per bin), on shared bins.

    :param results: backtest results.
    :param bins: number of bins.
    """
    series = {"buy & hold": returns_of(results[0].benchmark), **{r.name: returns_of(r.equity) for r in results}}
    values = np.concatenate([s.to_numpy(dtype=float) for s in series.values()])
    values = values[np.isfinite(values)]
    lo, hi = (np.quantile(values, [0.001, 0.999]) if len(values) else (-0.01, 0.01))
    if hi <= lo:
        lo, hi = lo - 0.01, hi + 0.01
    edges = np.linspace(lo, hi, bins + 1)
    fig = _figure("Distribution of bar returns", "share of bars", "0.0%", height=300, x_datetime=False)
    fig.xaxis.formatter = NumeralTickFormatter(format="0.0%")
    fig.xaxis.axis_label = "bar return"
    for (label, s), color in zip(series.items(), ["#888888", *_colors(len(series))]):
        r = s.to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        counts, _ = np.histogram(np.clip(r, lo, hi), bins=edges)
        share = counts / max(len(r), 1)
        source = ColumnDataSource({"left": edges[:-1], "right": edges[1:], "top": share,
                                   "bars": counts, "policy": [label] * len(counts)})
        fig.quad(left="left", right="right", top="top", bottom=0, source=source, legend_label=label,
                 fill_color=color, fill_alpha=0.25, line_color=color, name=label)
    fig.add_tools(HoverTool(tooltips=[("", "@policy"), ("return", "@left{0.00%} to @right{0.00%}"),
                                      ("bars", "@bars"), ("share", "@top{0.0%}")]))
    return fig


def chart_trades(result: BacktestResult, data: MarketData, max_symbols: int = 4) -> list[Any]:
    """Close prices with every fill marked (green triangles up: buys; red down: sells), one chart per symbol
    (the most traded first); hover shows the fill. An options run draws its underlying, stock fills at their
    price and option legs at their strike (circles calls, squares puts), settlements at expiry as crosses.

    :param result: one policy's result.
    :param data: the bars it ran on.
    :param max_symbols: how many symbols to draw.
    """
    fills = result.fills
    window = data.slice(result.equity.index[0], result.equity.index[-1])
    options = result.env_id == OPTIONS_ENV_ID
    counts = fills["symbol"].value_counts() if len(fills) and not options else pd.Series(dtype=int)
    symbols = list(counts.index[:max_symbols]) or list(data.symbols[:1])
    figs = []
    for symbol in symbols:
        j = window.symbols.index(symbol) if symbol in window.symbols else 0
        mine = fills if options else fills[fills["symbol"] == symbol]
        fig = _figure(f"{result.name}: {window.symbols[j]} ({len(mine):,} fills)", "price", "0,0.00", height=260)
        price = ColumnDataSource({"x": _x(window.index), "y": window.close[:, j]})
        fig.line("x", "y", source=price, color="#555555", line_width=1, legend_label="close", name="close")
        level = mine["price"].to_numpy(float)
        marker = np.where(np.sign(mine["quantity"].to_numpy(float)) > 0, "triangle", "inverted_triangle")
        what = np.array(["shares"] * len(mine), dtype=object)
        if options and len(mine):
            kind = mine["kind"].to_numpy()
            level = np.where(kind == "stock", level, mine["strike"].to_numpy(float))
            marker = np.where(kind == "call", "circle", np.where(kind == "put", "square", marker))
            settled = mine["reason"].isin(_SETTLED).to_numpy() & (kind != "stock")
            marker = np.where(settled, "x", marker)
            what = np.where(kind == "stock", "shares", mine.get("occ_symbol", mine["symbol"]).astype(str).to_numpy())
        side = np.where(mine["quantity"].to_numpy(float) > 0, "buy", "sell")
        colour = np.where(side == "buy", "#2ca02c", "#d62728")
        source = ColumnDataSource({
            "x": _x(mine["timestamp"]), "y": level, "marker": marker, "color": colour, "side": side,
            "qty": np.abs(mine["quantity"].to_numpy(float)), "fill": mine["price"].to_numpy(float),
            "reason": mine["reason"].astype(str).to_numpy(), "what": what,
        })
        fig.scatter("x", "y", source=source, marker="marker", color="color", size=8, alpha=0.8,
                    legend_label="fills", name="fills")
        fig.add_tools(HoverTool(
            tooltips=[("date", "@x{%F}"), ("", "@side @qty{0,0.[00]} @what @ @fill{0,0.00}"), ("reason", "@reason")],
            formatters={"@x": "datetime"}, renderers=[fig.renderers[-1]],
        ))
        figs.append(fig)
    return figs


# Option fills that are settlements at expiry rather than trades (see envs.options.account.OptionFill).
_SETTLED = ("expired", "exercised", "assigned", "cash_settled")


def plot_heatmap(grid: pd.DataFrame, metric: str, title: str) -> Figure:
    """A metric over a two-parameter grid (rows: one parameter, columns: the other), as a static image.

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


# ---------------------------------------------------------------------------------------- HTML tables
def table_html(
    frame: pd.DataFrame,
    formats: dict[str, Callable[[object], str]] | Callable[[object], str] | None = None,
    index: bool = True,
    row_formats: dict[str, Callable[[object], str]] | None = None,
) -> str:
    """An HTML table: numbers right-aligned, each column (or row) through its formatter.

    :param frame: the table.
    :param formats: column name -> formatter, or one formatter for every cell (default :func:`_cell`).
    :param index: show the index as the first column (headed by its name).
    :param row_formats: index label -> formatter, for tables with one metric per row.
    """
    def fmt(label: object, column: object) -> Callable[[object], str]:
        if row_formats and str(label) in row_formats:
            return row_formats[str(label)]
        if callable(formats):
            return formats
        return (formats or {}).get(str(column), _cell)

    names = [str(frame.index.name or "")] if index else []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [*names, *frame.columns])
    rows = []
    for label, row in frame.iterrows():
        first = f"<th>{html.escape(_cell(label))}</th>" if index else ""
        cells = "".join(f"<td>{html.escape(fmt(label, c)(v))}</td>" for c, v in row.items())
        rows.append(f"<tr>{first}{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def monthly_html(result: BacktestResult) -> str:
    """Monthly returns as a heat-coloured table (years x months) with the year's compounded total.

    :param result: one policy's result.
    """
    table = monthly_returns(result.equity)
    years = yearly_returns({"year": result.equity})["year"]
    values = table.to_numpy(dtype=float)
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    head = "".join(f"<th>{pd.Timestamp(2000, m, 1):%b}</th>" for m in range(1, 13))
    rows = []
    for year, row in zip(table.index, values):
        cells = []
        for v in row:
            if np.isfinite(v):
                share = min(abs(v) / limit, 1.0) if limit > 0 else 0.0
                colour = f"rgba({'46,160,67' if v >= 0 else '214,39,40'},{0.15 + 0.6 * share:.2f})"
                cells.append(f"<td style='background:{colour}'>{v:+.1%}</td>")
            else:
                cells.append("<td></td>")
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}<td><b>{years.loc[year]:+.1%}</b></td></tr>")
    return f"<table class='heat'><thead><tr><th>year</th>{head}<th>year</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"


# ---------------------------------------------------------------------------------------- the page
@dataclass
class ReportContext:
    """What a section reads: the results, the bars, options, and the charts it registers.

    :param results: one result per policy, over the same bars.
    :param data: the bars.
    :param out: the output folder.
    :param settings: run settings shown at the top.
    :param extras: further sections (heading, figure or table).
    :param log_scale: log-scale equity axis (None: automatic).
    :param periods_per_year: bars per year for rolling and annualised figures (default: the calendar the
        stats were annualised with).
    :param charts: Bokeh figures by id, filled as sections call :meth:`chart`.
    """

    results: Sequence[BacktestResult]
    data: MarketData
    out: Path
    settings: dict[str, object] | None = None
    extras: Sequence[tuple[str, Figure | pd.DataFrame]] = ()
    log_scale: bool | None = None
    periods_per_year: float | None = None
    charts: dict[str, Any] = field(default_factory=dict)

    def chart(self, fig: Any) -> str:
        """A placeholder for ``fig``, replaced by its Bokeh div when the page is assembled.

        :param fig: a Bokeh figure.
        """
        key = f"chart{len(self.charts)}"
        self.charts[key] = fig
        return f"<div class='chart' data-chart='{key}'>@@{key}@@</div>"


def section_header(ctx: ReportContext) -> str:
    """Title line: traded bars and dates, symbols."""
    equity = ctx.results[0].equity
    first, last = equity.index[0], equity.index[-1]
    n_loaded = ctx.data.n_bars
    return (
        f"<p class='note'>{len(equity):,} bars traded, {first:%Y-%m-%d} to {last:%Y-%m-%d} "
        f"(of {n_loaded:,} bars loaded; earlier bars only warm up indicators); symbols: "
        f"{html.escape(', '.join(ctx.data.symbols))}</p>"
    )


def section_settings(ctx: ReportContext) -> str:
    """The settings, one row each."""
    if not ctx.settings:
        return ""
    rows = settings_rows(ctx.settings)
    frame = pd.DataFrame({"value": [v for _, v in rows]}, index=pd.Index([k for k, _ in rows], name="setting"))
    return "<h2>Settings</h2>" + table_html(frame, formats=lambda v: str(v))


def section_summary(ctx: ReportContext) -> str:
    """The metrics table, as in the console."""
    table = stats_table(ctx.results)
    table.index.name = "metric"
    formats = {f: (lambda v, f=f: format_value(f, v)) for f in TABLE_FIELDS}
    notes = "".join(
        f"<p class='note'>Note ({html.escape(', '.join(names))}): {html.escape(note)}</p>"
        for note, names in run_notes(ctx.results).items()
    )
    return "<h2>Summary</h2>" + table_html(table, row_formats=formats) + notes


def section_curves(ctx: ReportContext) -> str:
    """Equity, drawdown, rolling Sharpe, volatility and beta, distribution of returns."""
    rs = ctx.results
    ppy = ctx.periods_per_year or rs[0].stats.periods_per_year
    # A quarter of a year on the data's calendar: 63 daily NYSE bars, 2,192 hourly crypto bars.
    quarter = max(int(round(ppy / 4)), 5)
    window = quarter if len(rs[0].equity) > 2 * quarter else max(len(rs[0].equity) // 4, 5)
    parts = ["<h2>Equity</h2>", ctx.chart(chart_equity(rs, ctx.log_scale)), ctx.chart(chart_drawdown(rs))]
    parts.append(f"<h2>Rolling statistics ({window} bars)</h2>")
    sharpe = {r.name: rolling_sharpe(r.equity, window, ppy) for r in rs}
    parts.append(ctx.chart(chart_lines(sharpe, "Rolling Sharpe", "Sharpe", "0.0", "0.00", zero_line=True)))
    vol = {"buy & hold": rolling_volatility(rs[0].benchmark, window, ppy),
           **{r.name: rolling_volatility(r.equity, window, ppy) for r in rs}}
    parts.append(ctx.chart(chart_lines(vol, "Rolling volatility (annualised)", "volatility", "0%", "0.0%",
                                       dashed=("buy & hold",))))
    beta = {r.name: rolling_beta(r.equity, r.benchmark, window) for r in rs}
    parts.append(ctx.chart(chart_lines(beta, "Rolling beta to buy & hold", "beta", "0.00", "0.00", zero_line=True)))
    parts.append("<h2>Returns</h2>" + ctx.chart(chart_returns_distribution(rs)))
    return "".join(parts)


def section_tables(ctx: ReportContext) -> str:
    """Worst drawdowns, yearly returns and statistics against the benchmark."""
    rs = ctx.results
    parts = ["<h2>Worst drawdowns</h2>"]
    dd_formats = {"depth": percent, "bars to trough": count, "bars to recover": count}
    for r in rs:
        worst = worst_drawdowns(r.equity)
        worst.index = pd.RangeIndex(1, len(worst) + 1, name="#")
        body = table_html(worst, dd_formats) if len(worst) else "<p class='note'>no drawdown</p>"
        parts.append(f"<h3>{html.escape(r.name)}</h3>{body}")
    yearly = yearly_returns({"buy & hold": rs[0].benchmark, **{r.name: r.equity for r in rs}})
    parts.append("<h2>Yearly returns</h2>" + table_html(yearly, signed_percent))
    bench = pd.DataFrame(
        {r.name: benchmark_stats(r, ctx.periods_per_year or r.stats.periods_per_year) for r in rs}
    )
    bench.index.name = "against buy & hold"
    parts.append("<h2>Benchmark statistics</h2>" + table_html(bench, row_formats=BENCHMARK_FORMATS))
    return "".join(parts)


def section_policies(ctx: ReportContext) -> str:
    """Per policy: trades on the price, monthly returns, attribution, risk decomposition, interventions,
    last trades."""
    parts = []
    for r in ctx.results:
        out = [f"<h2>{html.escape(r.name)} <span class='note'>({short_env_id(r.env_id)})</span></h2>"]
        out += [f"<p class='note'>Note: {html.escape(note)}</p>" for note in r.notes]
        if r.env_id == OPTIONS_ENV_ID:
            out.append(
                "<p class='note'>Options trades are round trips per contract: <i>return</i> is P/L over the "
                "premium paid or received when the leg opened, so a short call bought back at three times "
                "its premium returns -200% while many small winners keep the win rate high; read P/L in "
                "money for the size of each outcome.</p>"
            )
        out += [ctx.chart(fig) for fig in chart_trades(r, ctx.data)]
        out.append("<h3>Monthly returns</h3>" + monthly_html(r))
        split = attribution(r)
        if split:
            out.append("<h3>P/L attribution (closed trades)</h3><div class='row'>")
            fmt = {"trades": count, "total P/L": signed_money, "mean P/L": signed_money, "win rate": percent}
            out += [f"<div>{table_html(t, fmt)}</div>" for t in split.values()]
            out.append("</div>")
        if r.env_id != OPTIONS_ENV_ID:
            window = ctx.data.slice(r.equity.index[0], r.equity.index[-1])
            ppy = ctx.periods_per_year or r.stats.periods_per_year
            risk = risk_contributions(r, window.close, list(window.symbols), ppy)
            if len(risk):
                out.append("<h3>Risk decomposition (contribution to annualised volatility)</h3>"
                           + table_html(risk, percent))
        if len(r.risk_events):
            counts_ = r.risk_events.groupby("rule").size().rename("interventions").to_frame()
            out.append("<h3>Risk interventions</h3>" + table_html(counts_, count))
        if len(r.trades):
            recent = r.trades.sort_values("exit_time", kind="stable").tail(20)
            out.append(f"<h3>Last {len(recent)} of {len(r.trades):,} closed trades (by exit time)</h3>")
            out.append(table_html(recent, TRADE_FORMATS, index=False))
        parts.append("".join(out))
    return "".join(parts)


def section_extras(ctx: ReportContext) -> str:
    """Extras given by the caller: static figures (PNG) and tables."""
    parts = []
    for k, (heading, item) in enumerate(ctx.extras):
        if isinstance(item, Figure):
            body = f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{_png(item, ctx.out / f'extra_{k}.png')}'>"
        else:
            body = table_html(readable(item))
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    return "".join(parts)


SECTIONS: list[Callable[[ReportContext], str]] = [
    section_header, section_settings, section_summary, section_curves, section_tables, section_policies,
    section_extras,
]
"""The page, top to bottom; each section returns HTML (charts through :meth:`ReportContext.chart`)."""


def _png(fig: Figure, path: Path) -> str:
    """Save ``fig`` to ``path`` and return it base64-encoded for embedding."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = buffer.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; background: #f6f6f6; font-weight: normal; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.85em; }
.chart { margin: 0.6em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
"""


def write_report(
    results: Sequence[BacktestResult],
    data: MarketData,
    out_dir: str | Path,
    title: str = "Backtest report",
    settings: dict[str, object] | None = None,
    extras: Sequence[tuple[str, Figure | pd.DataFrame]] = (),
    log_scale: bool | None = None,
    periods_per_year: float | None = None,
) -> Path:
    """Write ``report.html`` (and ``stats.json``, ``trades.csv``, ``equity.csv``) into ``out_dir``; return
    the HTML's path.

    :param results: one result per policy, over the same bars.
    :param data: the bars.
    :param out_dir: output folder (created if needed).
    :param title: page title.
    :param settings: run settings shown at the top (data, costs, risk limits); dataclasses are expanded.
    :param extras: further sections, each a heading and a figure or a table (Monte Carlo intervals,
        walk-forward folds, parameter heatmaps).
    :param log_scale: log-scale equity axis; ``None`` picks it when the curves span an order of magnitude.
    :param periods_per_year: bars per year for rolling and annualised figures (default: the calendar the
        stats were annualised with).
    """
    if not results:
        raise ValueError("write_report needs at least one result")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_results(results, out)
    ctx = ReportContext(results, data, out, settings, extras, log_scale, periods_per_year)
    body = "\n".join(section(ctx) for section in SECTIONS)
    return _write_page(out, title, body, ctx.charts)


def _write_page(out: Path, title: str, body: str, charts: dict[str, Any]) -> Path:
    """``report.html`` in ``out``: the body with its charts' placeholders filled and Bokeh's JavaScript
    inlined (no request of any kind)."""
    script = ""
    if charts:
        script, divs = components(charts)
        for key, div in divs.items():
            body = body.replace(f"@@{key}@@", div)
    bokeh_js = Resources(mode="inline", components=["bokeh"]).render_js()
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{bokeh_js}</head><body>"
        f"<h1>{html.escape(title)}</h1>{body}{script}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- microstructure envs
def _episode_histogram(results: Sequence[LobResult], column: str, title: str, x_label: str, bins: int = 50) -> Any:
    """Overlaid histograms of one per-episode column of each run."""
    values = [r.episodes[column].to_numpy(dtype=float) for r in results]
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    edges = np.histogram_bin_edges(finite, bins=bins) if finite.size else np.linspace(-1, 1, bins + 1)
    fig = _figure(title, "share of episodes", "0%", height=280, x_datetime=False)
    fig.xaxis.axis_label = x_label
    for r, v, color in zip(results, values, _colors(len(results))):
        counts, _ = np.histogram(v[np.isfinite(v)], bins=edges)
        share = counts / max(v.size, 1)
        source = ColumnDataSource({"left": edges[:-1], "right": edges[1:], "top": share})
        fig.quad(top="top", bottom=0, left="left", right="right", source=source, fill_alpha=0.35,
                 line_alpha=0.6, color=color, legend_label=r.name, name=r.name)
    fig.add_tools(HoverTool(tooltips=[("", "$name"), (x_label, "@left{0.000} to @right{0.000}"),
                                      ("share", "@top{0.0%}")]))
    return fig


def write_lob_report(
    results: Sequence[LobResult], out_dir: str | Path, title: str | None = None,
    settings: dict[str, object] | None = None,
) -> Path:
    """Write the report of runs on a simulated microstructure env (``MarketMaking-v0`` or ``Execution-v0``):
    ``report.html`` (settings, the metrics table as in the console, the P/L and inventory paths or the
    execution schedule and shortfall, per-episode distributions), and ``stats.json``, ``paths.csv`` and
    ``episodes.csv`` (:func:`experiments.results.write_lob_results`); return the HTML's path.

    :param results: one run per policy, same env and episodes.
    :param out_dir: output folder (created if needed).
    :param title: page title (default: names the env).
    :param settings: settings shown at the top (the env's market, episodes, seed).
    """
    if not results:
        raise ValueError("write_lob_report needs at least one result")
    envs = {r.env_id for r in results}
    if len(envs) != 1:
        raise ValueError(f"write_lob_report compares runs on one env, got {sorted(envs)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_lob_results(results, out)
    env = short_env_id(results[0].env_id)
    title = title or f"Backtest report: {env}"
    charts: dict[str, Any] = {}

    def chart(fig: Any) -> str:
        key = f"chart{len(charts)}"
        charts[key] = fig
        return f"<div class='chart' data-chart='{key}'>@@{key}@@</div>"

    first = results[0].settings
    parts = [f"<p class='note'>{first.get('episodes', len(results[0].episodes)):,} simulated episodes per "
             f"policy (seed {first.get('seed')}), the same for every policy, stepped at once in the native "
             "vector env.</p>"]
    if settings:
        rows = settings_rows(settings)
        frame = pd.DataFrame({"value": [v for _, v in rows]}, index=pd.Index([k for k, _ in rows], name="setting"))
        parts.append("<h2>Settings</h2>" + table_html(frame, formats=lambda v: str(v)))
    rows = lob_table_rows(results)
    table = pd.DataFrame({r.name: [cells[i] for _, cells in rows] for i, r in enumerate(results)},
                         index=pd.Index([label for label, _ in rows], name="metric"))
    parts.append("<h2>Summary</h2>" + table_html(table, formats=lambda v: str(v)))
    time_label = "time (episode time units)"
    if results[0].env_id == MARKET_MAKING_ENV_ID:
        parts.append("<h2>P/L and inventory paths</h2>")
        parts.append(chart(chart_lines({r.name: r.paths["pnl_mean"] for r in results}, "Mean P/L",
                                       "P/L", "0,0.00", "0,0.000", zero_line=True, x_label=time_label)))
        band = {}
        for r in results:
            band[f"{r.name} 5%"] = r.paths["pnl_p05"]
            band[f"{r.name} 95%"] = r.paths["pnl_p95"]
        parts.append(chart(chart_lines(band, "P/L, 5th and 95th percentiles over episodes", "P/L", "0,0.00",
                                       "0,0.000", zero_line=True, x_label=time_label)))
        parts.append(chart(chart_lines({r.name: r.paths["abs_inventory_mean"] for r in results},
                                       "Mean absolute inventory", "|inventory|", "0.00", "0.000",
                                       x_label=time_label)))
        parts.append(chart(chart_lines({r.name: r.paths["inventory_mean"] for r in results}, "Mean inventory",
                                       "inventory", "0.00", "0.000", zero_line=True, x_label=time_label)))
        parts.append("<h2>Episodes</h2>")
        parts.append(chart(_episode_histogram(results, "pnl", "P/L per episode", "P/L")))
        parts.append(chart(_episode_histogram(results, "terminal_inventory", "Terminal inventory", "inventory")))
    else:
        parts.append("<h2>Schedule and shortfall</h2>")
        parts.append(chart(chart_lines({r.name: r.paths["shares_left"] for r in results},
                                       "Share of the block left", "left", "0%", "0.0%", x_label=time_label)))
        parts.append(chart(chart_lines({r.name: r.paths["shortfall_bps"] for r in results},
                                       "Mean implementation shortfall so far (bps)", "bps", "0.0", "0.00",
                                       zero_line=True, x_label=time_label)))
        parts.append("<h2>Episodes</h2>")
        parts.append(chart(_episode_histogram(results, "shortfall_bps", "Implementation shortfall per episode",
                                              "bps")))
    parts.append(f"<p class='note'>{html.escape(LOB_NOTES[results[0].env_id])}</p>")
    return _write_page(out, title, "".join(parts), charts)


LOB_NOTES = {
    MARKET_MAKING_ENV_ID: (
        "Reward = change in mark-to-market P/L less the running and terminal inventory penalties; the "
        "closed-form optimum is the optimal policy's expected reward. Fill rate: fills per market order "
        "reaching the quotes' side. Spread captured: the fill's distance from the mid, per unit filled. "
        "Adverse selection: the mid's move against the maker over the 10 steps after a fill, per unit filled."
    ),
    EXECUTION_ENV_ID: (
        "Reward = minus the implementation shortfall and the risk penalty; the closed-form optimum is "
        "Almgren-Chriss's minus E[cost] + lambda Var, and the share of it is optimum / mean (a cost). "
        "Shortfall in bps of the block's notional at the arrival price."
    ),
}
