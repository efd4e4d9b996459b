"""Machine-readable results of a run, next to its report: ``stats.json``, ``trades.csv`` and ``equity.csv``.

- ``stats.json``: ``{policy name: {metric: value}}`` with the console table's metric names (``sharpe``,
  ``total_return``, ``max_drawdown``, ``exposure``, ``n_trades``, ...; every field of
  :class:`envs.sim.metrics.Stats`) plus ``env``; fractions stay fractions, NaN and infinities are ``null``,
  dates are ISO 8601.
- ``trades.csv``: every closed round trip of every policy, one row each, sorted by exit time: ``policy``,
  ``symbol``, ``side``, ``size``, entry and exit time and price, ``pnl``, ``return`` (fraction), ``costs``.
- ``equity.csv``: ``timestamp`` then one column per policy and ``benchmark`` (equal-weight buy-and-hold).

``pd.read_json``/``json.load`` and ``pd.read_csv(..., parse_dates=[...])`` read them back.

Runs on the simulated microstructure envs (:mod:`experiments.microstructure`) have no bars and no round
trips; :func:`write_lob_results` writes:

- ``stats.json``: ``{policy name: {metric: value}}`` as above (``env`` first, then the keys of
  :data:`~experiments.microstructure.MARKET_MAKING_METRICS` or :data:`~experiments.microstructure.EXECUTION_METRICS`:
  ``mean_reward``, ``pnl``, ``fill_rate``, ``spread_captured``, ``adverse_selection``, ...).
- ``paths.csv``: ``policy``, ``time`` (episode time units) and the mean paths (``pnl_mean``, ``pnl_p05``,
  ``pnl_p95``, ``inventory_mean``, ``abs_inventory_mean``; or ``shares_left``, ``shortfall_bps``).
- ``episodes.csv``: ``policy``, ``episode`` and each episode's ``reward``, ``pnl``, ``terminal_inventory``
  (or ``shortfall_bps``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from experiments.engine import BacktestResult
from experiments.microstructure import LobResult

FILES = ("stats.json", "trades.csv", "equity.csv")
LOB_FILES = ("stats.json", "paths.csv", "episodes.csv")


def _plain(value: Any) -> Any:
    """A JSON-safe value: numpy scalars as Python numbers, NaN/inf as None, timestamps as ISO strings."""
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def stats_dict(results: Sequence[BacktestResult]) -> dict[str, dict[str, Any]]:
    """``{policy: {metric: value}}`` as written to ``stats.json``.

    :param results: backtest results.
    """
    return {
        r.name: {"env": r.env_id, **{k: _plain(v) for k, v in asdict(r.stats).items()}} for r in results
    }


def trades_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """Every policy's closed trades in one frame, ``policy`` first, sorted by exit time then policy.

    :param results: backtest results.
    """
    parts = [r.trades.assign(policy=r.name) for r in results if len(r.trades)]
    if not parts:
        return pd.DataFrame(columns=["policy"])
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[["policy", *[c for c in frame.columns if c != "policy"]]]
    return frame.sort_values(["exit_time", "policy"], kind="stable").reset_index(drop=True)


def equity_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """Equity of every policy and of the benchmark, one column each, indexed by ``timestamp``.

    :param results: backtest results over the same bars.
    """
    columns = {r.name: r.equity for r in results}
    columns["benchmark"] = results[0].benchmark
    frame = pd.DataFrame(columns)
    frame.index.name = "timestamp"
    return frame


def write_results(results: Sequence[BacktestResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``stats.json``, ``trades.csv`` and ``equity.csv`` into ``out_dir``; return their paths.

    :param results: backtest results over the same bars.
    :param out_dir: output folder (created if needed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    paths["stats.json"].write_text(json.dumps(stats_dict(results), indent=2))
    trades_frame(results).to_csv(paths["trades.csv"], index=False)
    equity_frame(results).to_csv(paths["equity.csv"])
    return paths


def write_lob_results(results: Sequence[LobResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``stats.json``, ``paths.csv`` and ``episodes.csv`` of microstructure runs into ``out_dir``; return
    their paths.

    :param results: runs on one microstructure env.
    :param out_dir: output folder (created if needed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in LOB_FILES}
    stats = {r.name: {"env": r.env_id, **{k: _plain(v) for k, v in r.metrics.items()}} for r in results}
    paths["stats.json"].write_text(json.dumps(stats, indent=2))
    pd.concat([r.paths.reset_index().assign(policy=r.name) for r in results], ignore_index=True).pipe(
        lambda f: f[["policy", *[c for c in f.columns if c != "policy"]]]
    ).to_csv(paths["paths.csv"], index=False)
    pd.concat([r.episodes.reset_index().assign(policy=r.name) for r in results], ignore_index=True).pipe(
        lambda f: f[["policy", *[c for c in f.columns if c != "policy"]]]
    ).to_csv(paths["episodes.csv"], index=False)
    return paths
