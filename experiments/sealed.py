"""The sealed test period: which bars a period covers, and how often a run's test period was looked at.

Training and tuning select on the validation period only and never print a test score. Test scores come
from one place, ``python -m experiments.evaluate RUN`` (or ``python -m experiments.backtest RUN --period
test``), and every such look is counted in the run folder's ``test_evaluations.json``, shown next to every
test score: a test score after ten looks is a validation score in disguise.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from envs.data.market_data import MarketData
from experiments.spec import ExperimentSpec

PeriodName = Literal["train", "validation", "test"]
PERIODS: tuple[str, ...] = ("train", "validation", "test")
COUNTER_FILE = "test_evaluations.json"
# In every run folder: how many configurations were tried to pick what the folder holds (validation
# checks a PPO run kept its best model from, times seeds and tuning trials; the trading rules a predictor
# chose among), so the Deflated Sharpe Ratio of its test score counts them.
TRIALS_FILE = "trials.json"


def period_window(spec: ExperimentSpec, data: MarketData, period: str) -> tuple[MarketData, int]:
    """The bars a backtest of ``period`` sees, and its first decision bar.

    The data is cut at the period's last bar (nothing later exists for the policy); earlier bars stay, so
    causal features warm up on them.

    :param spec: the spec whose splits define the period.
    :param data: the full data.
    :param period: ``train``, ``validation`` or ``test``.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, got {period!r}")
    chosen = dict(zip(PERIODS, spec.splits.periods(data.index)))[period]
    return data.iloc(slice(0, chosen.stop)), chosen.start


def run_folder(policy: str) -> Path | None:
    """The run folder a saved policy belongs to (the one holding ``spec.yaml`` or ``metrics.json``), or
    ``None`` for a registered name.

    :param policy: a policy name or folder.
    """
    folder = Path(policy)
    if not folder.is_dir():
        return None
    for candidate in (folder, folder.parent):
        if (candidate / "spec.yaml").is_file() or (candidate / "metrics.json").is_file():
            return candidate
    return folder


def trials_of(run: str | Path) -> int:
    """How many configurations were tried to pick this run (1 for a folder that records none).

    :param run: the run folder.
    """
    path = Path(run) / TRIALS_FILE
    return int(json.loads(path.read_text())["n_trials"]) if path.is_file() else 1


def write_trials(run: str | Path, n_trials: int, **detail: int) -> Path:
    """Record in a run folder how many configurations were tried to pick it, and what they were.

    :param run: the run folder.
    :param n_trials: every configuration compared on validation (or out of sample) before this one was kept.
    :param detail: the factors, e.g. ``validation_checks=21, seeds=3, tune_trials=8``.
    """
    path = Path(run) / TRIALS_FILE
    path.write_text(json.dumps({"n_trials": max(int(n_trials), 1), **detail}))
    return path


def evaluation_count(run: str | Path) -> int:
    """How many times the run's test period has been evaluated.

    :param run: the run folder.
    """
    path = Path(run) / COUNTER_FILE
    return int(json.loads(path.read_text())["count"]) if path.is_file() else 0


def count_test_evaluation(run: str | Path, note: str = "") -> int:
    """Record one more look at the run's test period and return the new count.

    :param run: the run folder.
    :param note: what was evaluated (e.g. the spec changes), kept in the history.
    """
    path = Path(run) / COUNTER_FILE
    record = json.loads(path.read_text()) if path.is_file() else {"count": 0, "history": []}
    record["count"] += 1
    record["history"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": note})
    path.write_text(json.dumps(record, indent=2))
    return int(record["count"])
