"""Score market makers on ``MarketMaking-v0`` (``python -m experiments.microstructure [POLICY ...]``) and
execution schedules on ``Execution-v0`` (``... --env Execution-v0 [POLICY ...]``).

Every policy quotes the same simulated episodes (same seed) through the native vector env, and the report
gives, per policy: the mean episode reward with its 95% confidence interval and its share of the
closed-form optimum, the P/L, the inventory path (mean absolute inventory at quarters of the horizon and
the spread of the terminal inventory), the fill rate (fills per market order reaching the quotes' side),
the spread captured (distance of the fill from the mid, per unit filled) and the adverse selection (the
mid's move against the maker over the 10 steps after a fill, per unit filled; zero in the pure
Avellaneda-Stoikov market, positive when order flow moves prices: ``--alpha-impact``).

For execution: the mean episode reward (minus implementation shortfall and risk penalty, bps of the
block's notional) against Almgren-Chriss's closed form, the shortfall's mean and spread, and the schedule
(the share of the block traded in each quarter of the horizon).

A policy is any registered name (``avellaneda_stoikov``, ``glft``, ``fixed_spread``, ``almgren_chriss``,
``twap``) or a saved agent folder (``runs/ppo/<run>``) trained on the env.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.registry import load_policy, make_policy
from baselines.execution import almgren_chriss_trades, expected_reward
from baselines.market_making import optimal_value
from envs.environments.market_making import ENV_ID, MarketMakingVectorEnv
from envs.environments.optimal_execution import ENV_ID as EXECUTION_ENV_ID
from envs.environments.optimal_execution import ExecutionVectorEnv
from envs.sim import lob
from experiments.cli import Parser, UserError, command

logger = logging.getLogger(__name__)

DEFAULT_POLICIES = ("avellaneda_stoikov", "glft", "fixed_spread")
EXECUTION_POLICIES = ("almgren_chriss", "twap")
ADVERSE_HORIZON = 10
"""Steps after a fill over which the mid's move against the maker counts as adverse selection."""


def _batch_actor(policy: Any) -> Any:
    """``act(obs, info)`` on a batch: closed-form policies take the vector env's info as it is; a saved agent
    (one observation at a time) acts row by row."""
    if hasattr(policy, "quotes") or hasattr(policy, "fractions"):
        return policy.act
    return lambda obs, info: np.stack([policy.act(row, {}) for row in obs])


def market_making_report(
    policy: Any, episodes: int = 2048, seed: int = 0, **env_kwargs: Any
) -> dict[str, float]:
    """Run ``episodes`` episodes of ``policy`` at once and measure them.

    :param policy: a policy of ``MarketMaking-v0`` (``act(obs, info)``).
    :param episodes: number of episodes.
    :param seed: seed of the episodes (the same for every policy compared).
    :param env_kwargs: :class:`~envs.environments.market_making.MarketMakingVectorEnv` arguments.
    """
    env = MarketMakingVectorEnv(episodes, **env_kwargs)
    act = _batch_actor(policy)
    book = env.book
    n = book.n_steps
    obs, info = env.reset(seed=seed)
    total = np.zeros(episodes)
    abs_inventory = np.zeros(n)
    filled = orders = captured = 0.0
    signed = np.zeros((n, episodes))  # units bought (+) or sold (-) in each step
    mids = np.zeros((n, episodes))  # the mid when the step's quotes were set
    for k in range(n):
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
        inventory = info["final_info"]["inventory"] if truncated.any() else info["inventory"]
        abs_inventory[k] = np.abs(inventory).mean() * book.lot
    # Adverse selection: how far the mid moves against the maker over ADVERSE_HORIZON steps after a fill
    # (fills too close to the end to have that future are left out).
    h = min(ADVERSE_HORIZON, n - 1)
    late = signed[: n - h]
    adverse = -float((late * (mids[h:] - mids[: n - h])).sum())
    adverse_units = float(np.abs(late).sum())
    terminal = info["final_info"]["inventory"] * book.lot
    pnl = info["final_info"]["pnl"]
    optimum = optimal_value(book, env.spec_.running_penalty, env.spec_.terminal_penalty)
    quarters = [abs_inventory[max(int(n * f) - 1, 0)] for f in (0.25, 0.5, 0.75, 1.0)]
    return {
        "mean_reward": float(total.mean()),
        "ci95": float(1.96 * total.std(ddof=1) / math.sqrt(episodes)),
        "share_of_optimum": float(total.mean() / optimum),
        "optimum": optimum,
        "pnl": float(pnl.mean()),
        "pnl_std": float(pnl.std(ddof=1)),
        "abs_inventory_q1": quarters[0],
        "abs_inventory_q2": quarters[1],
        "abs_inventory_q3": quarters[2],
        "abs_inventory_end": quarters[3],
        "terminal_inventory_std": float(terminal.std(ddof=1)),
        "fill_rate": filled / orders if orders else math.nan,
        "spread_captured": captured / filled if filled else math.nan,
        "adverse_selection": adverse / adverse_units if adverse_units else math.nan,
    }


def execution_report(policy: Any, episodes: int = 2048, seed: int = 0) -> dict[str, float]:
    """Run ``episodes`` executions of ``policy`` at once and measure them.

    :param policy: a policy of ``Execution-v0``.
    :param episodes: number of episodes.
    :param seed: seed of the episodes (the same for every policy compared).
    """
    env = ExecutionVectorEnv(episodes)
    impact = env.impact
    act = _batch_actor(policy)
    obs, info = env.reset(seed=seed)
    total = np.zeros(episodes)
    traded = np.zeros(impact.n_steps)
    for k in range(impact.n_steps):
        before = env.sim.left.copy()
        obs, reward, _, truncated, info = env.step(act(obs, info))
        total += reward
        traded[k] = (before - np.where(truncated, 0.0, env.sim.left)).mean()
    shortfall = 1e4 * info["final_info"]["shortfall"] / impact.notional
    closed = expected_reward(impact, almgren_chriss_trades(impact))
    quarters = np.array_split(traded / impact.shares, 4)
    return {
        "mean_reward": float(total.mean()),
        "ci95": float(1.96 * total.std(ddof=1) / math.sqrt(episodes)),
        "share_of_optimum": float(closed / total.mean()),
        "optimum": closed,
        "shortfall_bps": float(shortfall.mean()),
        "shortfall_sd_bps": float(shortfall.std(ddof=1)),
        **{f"traded_q{j + 1}": float(q.sum()) for j, q in enumerate(quarters)},
    }


EXECUTION_COLUMNS = (
    ("mean_reward", "reward", "{:.2f}"), ("ci95", "±95%", "{:.2f}"), ("share_of_optimum", "of opt", "{:.1%}"),
    ("shortfall_bps", "IS bps", "{:.1f}"), ("shortfall_sd_bps", "IS sd", "{:.1f}"),
    ("traded_q1", "Q1", "{:.1%}"), ("traded_q2", "Q2", "{:.1%}"), ("traded_q3", "Q3", "{:.1%}"),
    ("traded_q4", "Q4", "{:.1%}"),
)

COLUMNS = (
    ("mean_reward", "reward", "{:.2f}"), ("ci95", "±95%", "{:.2f}"), ("share_of_optimum", "of opt", "{:.1%}"),
    ("pnl", "P/L", "{:.2f}"), ("pnl_std", "P/L sd", "{:.2f}"), ("abs_inventory_q2", "|q| T/2", "{:.2f}"),
    ("abs_inventory_end", "|q| T", "{:.2f}"), ("fill_rate", "fill rate", "{:.1%}"),
    ("spread_captured", "spread", "{:.3f}"), ("adverse_selection", "adverse", "{:.4f}"),
)


def format_table(reports: dict[str, dict[str, float]], columns: tuple = COLUMNS) -> str:
    """The reports side by side as text, one row per policy.

    :param reports: policy name -> :func:`market_making_report` (or :func:`execution_report`) output.
    :param columns: ``(key, title, format)`` of each column.
    """
    lines = [f"{'policy':<22}" + "".join(f"{title:>11}" for _, title, _ in columns)]
    for name, report in reports.items():
        lines.append(f"{name:<22}" + "".join(f"{fmt.format(report[key]):>11}" for key, _, fmt in columns))
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> int:
    """Entry point.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = Parser(
        prog="python -m experiments.microstructure",
        description="Score market makers on the same simulated MarketMaking-v0 episodes (reward against the "
        "closed-form optimum, P/L, inventory path, fill rate, spread captured, adverse selection), or execution "
        "schedules on Execution-v0 (reward against Almgren-Chriss, implementation shortfall, schedule).",
    )
    parser.add_argument("policies", nargs="*",
                        help="registered names or saved agent folders (default: "
                        f"{' '.join(DEFAULT_POLICIES)}; for Execution-v0 {' '.join(EXECUTION_POLICIES)})")
    parser.add_argument("--env", choices=("MarketMaking-v0", "Execution-v0"), default="MarketMaking-v0",
                        help="the env (default: MarketMaking-v0)")
    parser.add_argument("--episodes", type=int, default=2048, help="episodes per policy (default: 2048)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: 0)")
    parser.add_argument("--running-penalty", type=float, default=0.1, help="phi (default: 0.1)")
    parser.add_argument("--terminal-penalty", type=float, default=0.1, help="alpha (default: 0.1)")
    parser.add_argument("--alpha-impact", type=float, default=0.0,
                        help="short-term alpha kick per net market order, the source of adverse selection "
                        "(default: 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.episodes < 2:
        raise UserError(f"--episodes must be at least 2, got {args.episodes}")
    kwargs = {"running_penalty": args.running_penalty, "terminal_penalty": args.terminal_penalty,
              "book": {"alpha_impact": args.alpha_impact}}
    execution = args.env == "Execution-v0"
    env_id = EXECUTION_ENV_ID if execution else ENV_ID
    reports = {}
    for name in args.policies or (EXECUTION_POLICIES if execution else DEFAULT_POLICIES):
        policy = load_policy(name) if Path(name).is_dir() else make_policy(name)
        if getattr(policy, "env_id", None) != env_id:
            raise UserError(f"{name} is not a {env_id} policy (it trades {getattr(policy, 'env_id', None) or 'stocks'})")
        if execution:
            reports[name] = execution_report(policy, args.episodes, args.seed)
        else:
            reports[name] = market_making_report(policy, args.episodes, args.seed, **kwargs)
    optimum = next(iter(reports.values()))["optimum"]
    print(f"closed-form optimum (expected reward per episode): {optimum:.3f}")
    print(format_table(reports, EXECUTION_COLUMNS if execution else COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
