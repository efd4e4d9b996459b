"""The backtest engine of the simulated microstructure envs: market makers on ``MarketMaking-v0`` and
execution schedules on ``Execution-v0``, run by ``python -m experiments.backtest --env MarketMaking-v0
[POLICY ...]`` (or ``--env Execution-v0``) into the backtest's console table, HTML report and
machine-readable results. ``python -m experiments.microstructure`` is the same command with ``--env``
defaulting to ``MarketMaking-v0`` and its report in ``reports/microstructure``.

These envs simulate their own market, so there are no bars: every policy quotes (or trades) the same
simulated episodes (same seed) at once through the native vector env, and a :class:`LobResult` holds, per
policy:

- **market making**: the mean episode reward with its 95% confidence interval and its share of the
  closed-form optimum, the P/L (mean and spread), the inventory path (mean absolute inventory at quarters of
  the horizon and the spread of the terminal inventory), the fill rate (fills per market order reaching the
  quotes' side), the spread captured (distance of the fill from the mid, per unit filled) and the adverse
  selection (the mid's move against the maker over the ``ADVERSE_HORIZON`` steps after a fill, per unit
  filled; zero in the pure Avellaneda-Stoikov market, positive when order flow moves prices:
  ``--alpha-impact``); the paths (mean P/L and its 5%-95% band, mean and mean absolute inventory per
  step) and each episode's reward, P/L and terminal inventory.
- **execution**: the mean episode reward (minus implementation shortfall and risk penalty) against
  Almgren-Chriss's closed form, the shortfall in bps of the block's notional (mean and spread), the
  schedule (the share of the block traded in each quarter of the horizon); the paths (shares left and
  shortfall so far per step) and each episode's reward and shortfall.

A policy is any registered policy of the env (``avellaneda_stoikov``, ``glft``, ``fixed_spread``;
``almgren_chriss``, ``twap``) or a saved agent folder (``runs/ppo/<run>``) trained on it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from baselines.execution import almgren_chriss_trades, expected_reward
from baselines.market_making import optimal_value
from envs.environments.market_making import ENV_ID, MarketMakingVectorEnv
from envs.environments.optimal_execution import ENV_ID as EXECUTION_ENV_ID
from envs.environments.optimal_execution import ExecutionVectorEnv
from envs.sim import lob

LOB_ENV_IDS: tuple[str, ...] = (ENV_ID, EXECUTION_ENV_ID)
DEFAULT_POLICIES: dict[str, tuple[str, ...]] = {
    ENV_ID: ("avellaneda_stoikov", "glft", "fixed_spread"),
    EXECUTION_ENV_ID: ("almgren_chriss", "twap"),
}
ADVERSE_HORIZON = 10
"""Steps after a fill over which the mid's move against the maker counts as adverse selection."""

MARKET_MAKING_METRICS: dict[str, tuple[str, str]] = {
    "mean_reward": ("reward per episode", "{:,.3f}"),
    "ci95": ("reward ±95%", "{:,.3f}"),
    "share_of_optimum": ("share of closed-form optimum", "{:.1%}"),
    "optimum": ("closed-form optimum", "{:,.3f}"),
    "pnl": ("P/L per episode", "{:,.3f}"),
    "pnl_std": ("P/L sd", "{:,.3f}"),
    "abs_inventory_q1": ("|inventory| at T/4", "{:,.2f}"),
    "abs_inventory_q2": ("|inventory| at T/2", "{:,.2f}"),
    "abs_inventory_q3": ("|inventory| at 3T/4", "{:,.2f}"),
    "abs_inventory_end": ("|inventory| at T", "{:,.2f}"),
    "terminal_inventory_std": ("terminal inventory sd", "{:,.2f}"),
    "fills_per_episode": ("fills per episode", "{:,.1f}"),
    "fill_rate": ("fill rate", "{:.1%}"),
    "spread_captured": ("spread captured per unit", "{:,.4f}"),
    "adverse_selection": ("adverse selection per unit", "{:,.4f}"),
}
"""Market-making metrics in table order: key -> (label, format)."""

EXECUTION_METRICS: dict[str, tuple[str, str]] = {
    "mean_reward": ("reward per episode", "{:,.3f}"),
    "ci95": ("reward ±95%", "{:,.3f}"),
    "share_of_optimum": ("share of closed-form optimum", "{:.1%}"),
    "optimum": ("closed-form optimum", "{:,.3f}"),
    "shortfall_bps": ("implementation shortfall (bps)", "{:,.2f}"),
    "shortfall_sd_bps": ("shortfall sd (bps)", "{:,.2f}"),
    "traded_q1": ("traded in Q1", "{:.1%}"),
    "traded_q2": ("traded in Q2", "{:.1%}"),
    "traded_q3": ("traded in Q3", "{:.1%}"),
    "traded_q4": ("traded in Q4", "{:.1%}"),
}
"""Execution metrics in table order: key -> (label, format)."""


@dataclass(frozen=True)
class LobResult:
    """One policy's run on a simulated microstructure env.

    :param name: the policy's name.
    :param env_id: ``AlpacaGym/MarketMaking-v0`` or ``AlpacaGym/Execution-v0``.
    :param metrics: the headline metrics, keys of :data:`MARKET_MAKING_METRICS` or :data:`EXECUTION_METRICS`.
    :param paths: per step (index ``time``, in the env's time units, at the end of each step): market making
        ``pnl_mean``, ``pnl_p05``, ``pnl_p95``, ``inventory_mean``, ``abs_inventory_mean``; execution
        ``shares_left`` (fraction of the block) and ``shortfall_bps`` so far (mean over episodes).
    :param episodes: one row per episode: ``reward`` and ``pnl``, ``terminal_inventory`` (market making) or
        ``shortfall_bps`` (execution).
    :param settings: the env's arguments and the episodes' seed.
    """

    name: str
    env_id: str
    metrics: dict[str, float]
    paths: pd.DataFrame
    episodes: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_formats(self) -> dict[str, tuple[str, str]]:
        """Labels and formats of :attr:`metrics`, in table order."""
        return MARKET_MAKING_METRICS if self.env_id == ENV_ID else EXECUTION_METRICS


def batch_actor(policy: Any) -> Callable[[np.ndarray, dict[str, Any]], np.ndarray]:
    """``act(obs, info)`` on a batch: closed-form policies take the vector env's info as it is; a saved agent
    acts on the whole batch of observations at once (``act_vector``).

    :param policy: a policy of a microstructure env.
    """
    if hasattr(policy, "quotes") or hasattr(policy, "fractions"):
        return policy.act
    if hasattr(policy, "act_vector"):
        return lambda obs, info: policy.act_vector(obs)
    return lambda obs, info: np.stack([policy.act(row, {}) for row in obs])


def _confidence(total: np.ndarray) -> float:
    return float(1.96 * total.std(ddof=1) / math.sqrt(total.size))


def run_market_making(
    policy: Any, episodes: int = 2048, seed: int = 0, progress: bool = False, **env_kwargs: Any
) -> LobResult:
    """Run ``episodes`` episodes of ``policy`` at once on ``MarketMaking-v0`` and measure them.

    :param policy: a policy of ``MarketMaking-v0`` (``act(obs, info)``).
    :param episodes: number of episodes.
    :param seed: seed of the episodes (the same for every policy compared).
    :param progress: show a progress bar over the steps.
    :param env_kwargs: :class:`~envs.environments.market_making.MarketMakingVectorEnv` arguments.
    """
    env = MarketMakingVectorEnv(episodes, **env_kwargs)
    act = batch_actor(policy)
    book = env.book
    n = book.n_steps
    obs, info = env.reset(seed=seed)
    total = np.zeros(episodes)
    pnl_path = np.zeros((n, episodes))
    inventory_path = np.zeros((n, episodes))
    filled = orders = captured = 0.0
    signed = np.zeros((n, episodes))  # units bought (+) or sold (-) in each step
    mids = np.zeros((n, episodes))  # the mid when the step's quotes were set
    for k in tqdm(range(n), desc=_name(policy), unit="step", disable=not progress, leave=False):
        obs, reward, _, truncated, info = env.step(act(obs, info))
        ev = env.sim.events
        total += reward
        bought = ev[lob.BID_FILL] * book.lot
        sold = ev[lob.ASK_FILL] * book.lot
        filled += float(bought.sum() + sold.sum())
        orders += float(ev[lob.N_BUY].sum() + ev[lob.N_SELL].sum())
        with np.errstate(invalid="ignore"):
            captured += float(np.nansum(bought * (ev[lob.MID_BEFORE] - ev[lob.BID_PX]))
                              + np.nansum(sold * (ev[lob.ASK_PX] - ev[lob.MID_BEFORE])))
        signed[k] = bought - sold
        mids[k] = ev[lob.MID_BEFORE]
        state = info["final_info"] if truncated.any() else info
        pnl_path[k] = state["pnl"]
        inventory_path[k] = state["inventory"] * book.lot
    # Adverse selection: how far the mid moves against the maker over ADVERSE_HORIZON steps after a fill
    # (fills too close to the end to have that future are left out).
    h = min(ADVERSE_HORIZON, n - 1)
    late = signed[: n - h]
    adverse = -float((late * (mids[h:] - mids[: n - h])).sum())
    adverse_units = float(np.abs(late).sum())
    terminal = inventory_path[-1]
    pnl = pnl_path[-1]
    optimum = optimal_value(book, env.spec_.running_penalty, env.spec_.terminal_penalty)
    abs_inventory = np.abs(inventory_path).mean(axis=1)
    quarters = [abs_inventory[max(int(n * f) - 1, 0)] for f in (0.25, 0.5, 0.75, 1.0)]
    metrics = {
        "mean_reward": float(total.mean()),
        "ci95": _confidence(total),
        "share_of_optimum": float(total.mean() / optimum),
        "optimum": optimum,
        "pnl": float(pnl.mean()),
        "pnl_std": float(pnl.std(ddof=1)),
        "abs_inventory_q1": quarters[0],
        "abs_inventory_q2": quarters[1],
        "abs_inventory_q3": quarters[2],
        "abs_inventory_end": quarters[3],
        "terminal_inventory_std": float(terminal.std(ddof=1)),
        "fills_per_episode": filled / book.lot / episodes,
        "fill_rate": filled / book.lot / orders if orders else math.nan,
        "spread_captured": captured / filled if filled else math.nan,
        "adverse_selection": adverse / adverse_units if adverse_units else math.nan,
    }
    time = pd.Index(book.dt * np.arange(1, n + 1), name="time")
    paths = pd.DataFrame({
        "pnl_mean": pnl_path.mean(axis=1),
        "pnl_p05": np.percentile(pnl_path, 5, axis=1),
        "pnl_p95": np.percentile(pnl_path, 95, axis=1),
        "inventory_mean": inventory_path.mean(axis=1),
        "abs_inventory_mean": abs_inventory,
    }, index=time)
    frame = pd.DataFrame({"reward": total, "pnl": pnl, "terminal_inventory": terminal},
                         index=pd.RangeIndex(episodes, name="episode"))
    settings = {"episodes": episodes, "seed": seed, "book": book,
                "running_penalty": env.spec_.running_penalty, "terminal_penalty": env.spec_.terminal_penalty}
    return LobResult(_name(policy), ENV_ID, metrics, paths, frame, settings)


def run_execution(
    policy: Any, episodes: int = 2048, seed: int = 0, progress: bool = False, impact: Any = None
) -> LobResult:
    """Run ``episodes`` executions of ``policy`` at once on ``Execution-v0`` and measure them.

    :param policy: a policy of ``Execution-v0``.
    :param episodes: number of episodes.
    :param seed: seed of the episodes (the same for every policy compared).
    :param progress: show a progress bar over the steps.
    :param impact: the problem (:class:`~envs.sim.impact.ImpactConfig` or its fields; default the env's).
    """
    env = ExecutionVectorEnv(episodes, impact=impact)
    impact = env.impact
    act = batch_actor(policy)
    obs, info = env.reset(seed=seed)
    total = np.zeros(episodes)
    n = impact.n_steps
    left = np.zeros((n, episodes))
    shortfall = np.zeros((n, episodes))
    for k in tqdm(range(n), desc=_name(policy), unit="step", disable=not progress, leave=False):
        obs, reward, _, truncated, info = env.step(act(obs, info))
        total += reward
        # The last step resets the copies: their final state is in final_info (all shares gone).
        state = info["final_info"] if truncated.any() else info
        left[k] = np.where(truncated, 0.0, env.sim.left)
        shortfall[k] = state["shortfall"]
    notional_bps = 1e4 / impact.notional
    final = notional_bps * shortfall[-1]
    closed = expected_reward(impact, almgren_chriss_trades(impact))
    traded = -np.diff(np.concatenate([np.full((1, episodes), impact.shares), left]), axis=0).mean(axis=1)
    quarters = np.array_split(traded / impact.shares, 4)
    metrics = {
        "mean_reward": float(total.mean()),
        "ci95": _confidence(total),
        # A cost: the closed form is matched from below, so the share is optimum / mean.
        "share_of_optimum": float(closed / total.mean()),
        "optimum": closed,
        "shortfall_bps": float(final.mean()),
        "shortfall_sd_bps": float(final.std(ddof=1)),
        **{f"traded_q{j + 1}": float(q.sum()) for j, q in enumerate(quarters)},
    }
    time = pd.Index(impact.horizon / n * np.arange(1, n + 1), name="time")
    paths = pd.DataFrame({"shares_left": left.mean(axis=1) / impact.shares,
                          "shortfall_bps": notional_bps * shortfall.mean(axis=1)}, index=time)
    frame = pd.DataFrame({"reward": total, "shortfall_bps": final}, index=pd.RangeIndex(episodes, name="episode"))
    return LobResult(_name(policy), EXECUTION_ENV_ID, metrics, paths, frame,
                     {"episodes": episodes, "seed": seed, "impact": impact})


def run_lob(
    policy: Any, env_id: str, episodes: int = 2048, seed: int = 0, progress: bool = False, **env_kwargs: Any
) -> LobResult:
    """Run ``policy`` on the microstructure env ``env_id`` (:func:`run_market_making` or
    :func:`run_execution`).

    :param policy: a policy of that env.
    :param env_id: ``AlpacaGym/MarketMaking-v0`` or ``AlpacaGym/Execution-v0``.
    :param episodes: number of episodes.
    :param seed: seed of the episodes.
    :param progress: show a progress bar over the steps.
    :param env_kwargs: the env's arguments (``book``, penalties; or ``impact``).
    """
    if getattr(policy, "env_id", None) != env_id:
        raise ValueError(f"{_name(policy)} is not a {env_id} policy (it trades "
                         f"{getattr(policy, 'env_id', None) or 'stocks'})")
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 (for the confidence interval), got {episodes}")
    if env_id == ENV_ID:
        return run_market_making(policy, episodes, seed, progress, **env_kwargs)
    return run_execution(policy, episodes, seed, progress, **env_kwargs)


def market_making_report(policy: Any, episodes: int = 2048, seed: int = 0, **env_kwargs: Any) -> dict[str, float]:
    """The metrics of :func:`run_market_making`.

    :param policy: a policy of ``MarketMaking-v0``.
    :param episodes: number of episodes.
    :param seed: seed of the episodes.
    :param env_kwargs: the env's arguments.
    """
    return run_market_making(policy, episodes, seed, **env_kwargs).metrics


def execution_report(policy: Any, episodes: int = 2048, seed: int = 0, **env_kwargs: Any) -> dict[str, float]:
    """The metrics of :func:`run_execution`.

    :param policy: a policy of ``Execution-v0``.
    :param episodes: number of episodes.
    :param seed: seed of the episodes.
    :param env_kwargs: the env's arguments (``impact``).
    """
    return run_execution(policy, episodes, seed, **env_kwargs).metrics


def format_metric(result: LobResult, key: str) -> str:
    """One metric of ``result`` as the table shows it (``-`` when undefined).

    :param result: the run.
    :param key: the metric.
    """
    value = result.metrics.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return result.metric_formats[key][1].format(value)


def table_rows(results: Sequence[LobResult]) -> list[tuple[str, list[str]]]:
    """The comparison table's rows: ``(label, one cell per policy)``, metrics in :attr:`LobResult.metric_formats`
    order.

    :param results: runs on the same env.
    """
    formats = results[0].metric_formats
    return [(label, [format_metric(r, key) for r in results]) for key, (label, _) in formats.items()]


def _name(policy: Any) -> str:
    return getattr(policy, "name", "") or type(policy).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m experiments.microstructure``: ``python -m experiments.backtest`` with
    ``--env MarketMaking-v0`` unless another env is given, its report in ``reports/microstructure``.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    from experiments.backtest import main as backtest

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print("python -m experiments.microstructure [POLICY ...] [--env MarketMaking-v0|Execution-v0] "
              "[--episodes N] [options of python -m experiments.backtest]\n\n"
              "Score market makers (or execution schedules) on the same simulated episodes: the "
              "backtest command with --env MarketMaking-v0 by default. Its options:\n")
    if not any(a == "--env" or a.startswith("--env=") for a in argv):
        argv = ["--env", "MarketMaking-v0", *argv]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv = ["--out", "reports/microstructure", *argv]
    return backtest(argv)


if __name__ == "__main__":
    sys.exit(main())
