"""stable-baselines3 callbacks for trading: validation-period evaluation, best model by Sharpe, speed.

SB3 already logs its training curves (losses, entropy, explained variance, ``time/fps``); these add what a
trader looks at. :class:`TradingEvalCallback` runs the current policy deterministically over the held-out
validation period every ``eval_freq`` steps, logs Sharpe, return, max drawdown, turnover and win rate
under ``validation/`` plus an equity-curve figure, and keeps the model with the best validation Sharpe
(with its ``VecNormalize`` statistics, so a reload acts exactly like the evaluated model). Given the
other symbols the agent trained on, it ranks models by the mean Sharpe over every symbol's validation
period: one symbol's 2 years hold too few independent bets to tell a model that learned from one that
got lucky.
:class:`StepsPerSecondCallback` logs the speed of the latest rollout, which unlike SB3's cumulative
``time/fps`` shows slowdowns as they happen.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure

from agents.ppo import MODEL_FILE, VECNORMALIZE_FILE, SB3Agent
from agents.rl_eval import EnvFactory, Evaluation, Period, evaluate
from envs.data.market_data import CLOSE, MarketData

logger = logging.getLogger(__name__)

EvaluationHook = Callable[[int, Evaluation, float], None]
"""Called with the timesteps, the traded symbol's evaluation and the selection score (see
:class:`TradingEvalCallback`)."""
TENSORBOARD_ONLY = ("stdout", "log", "json", "csv")


def selection_sharpe(evaluation: Evaluation) -> float:
    """The Sharpe ratio models are ranked by: an agent that never trades has no volatility and counts as 0.

    :param evaluation: an evaluation.
    """
    sharpe = evaluation.stats.sharpe
    return float(sharpe) if math.isfinite(sharpe) else 0.0


class TradingEvalCallback(BaseCallback):
    """Evaluate on a held-out period, log trading metrics, save the best model by validation Sharpe.

    :param data: the full data set (the env is cut at the period's end, so nothing later is visible).
    :param period: the validation period.
    :param make_env: builds the single evaluation env (``weights`` action mode) on given data.
    :param env_kwargs: the training env's observation settings, passed to :class:`SB3Agent`.
    :param eval_freq: evaluate every this many environment steps (and once more at the end).
    :param best_dir: folder for the best model (``model.zip``, ``vecnormalize.pkl``); ``None`` saves nothing.
    :param on_evaluation: called with ``(timesteps, evaluation, score)`` after each evaluation (e.g. Ray
        Tune); ``score`` is what models are ranked by.
    :param verbose: 1 logs each evaluation.
    :param also_select_on: more data sets (e.g. the other training symbols, same dates) whose same period
        also ranks the models: the kept model has the best mean :func:`selection_sharpe` over ``data`` and
        these. Only ``data``'s evaluation is logged in full and passed to ``on_evaluation``.
    """

    def __init__(
        self,
        data: MarketData,
        period: Period,
        make_env: EnvFactory,
        env_kwargs: Mapping[str, Any],
        eval_freq: int,
        best_dir: str | Path | None = None,
        on_evaluation: EvaluationHook | None = None,
        verbose: int = 0,
        also_select_on: Sequence[MarketData] = (),
    ) -> None:
        super().__init__(verbose)
        if eval_freq < 1:
            raise ValueError(f"eval_freq must be >= 1, got {eval_freq}")
        self.data = data
        self.period = period
        self.make_env = make_env
        self.env_kwargs = dict(env_kwargs)
        self.eval_freq = int(eval_freq)
        self.best_dir = Path(best_dir) if best_dir is not None else None
        self.on_evaluation = on_evaluation
        self.also_select_on = tuple(also_select_on)
        self.best_sharpe = -math.inf
        self.best_timesteps: int | None = None
        self.best: Evaluation | None = None
        self.history: list[tuple[int, dict[str, float]]] = []
        self._next_eval = self.eval_freq
        self._last_eval_at = -1

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_eval:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
            self.evaluate_now()
        return True

    def _on_training_end(self) -> None:
        if self._last_eval_at != self.num_timesteps:
            self.evaluate_now()

    def evaluate_now(self) -> Evaluation:
        """Evaluate the current policy on the period, log it, and keep it if it is the best so far."""
        normalizer = self.model.get_vec_normalize_env()
        agent = SB3Agent(self.model, self.env_kwargs, normalizer, name="current")
        evaluation = evaluate(agent, self.data, self.period, self.make_env)
        others = [evaluate(agent, data, self.period, self.make_env) for data in self.also_select_on]
        score = float(np.mean([selection_sharpe(e) for e in (evaluation, *others)]))
        self._last_eval_at = self.num_timesteps
        scalars = {**evaluation.scalars(), "selection_sharpe": score}
        self.history.append((self.num_timesteps, scalars))
        for key, value in scalars.items():
            if np.isfinite(value):
                self.logger.record(f"{self.period.name}/{key}", value)
        self.logger.record(
            f"{self.period.name}/equity_curve", Figure(self._figure(evaluation), close=True), exclude=TENSORBOARD_ONLY
        )
        if self.best is None or score > self.best_sharpe:
            self.best_sharpe, self.best_timesteps, self.best = score, self.num_timesteps, evaluation
            if self.best_dir is not None:
                self._save_best(normalizer)
        self.logger.record(f"{self.period.name}/best_sharpe", self.best_sharpe)
        # Dumped now so the figure and scalars land at this step even between SB3's own dumps.
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            logger.info(
                "step %d: %s sharpe %.3f return %.2f%% max drawdown %.2f%%, selection sharpe %.3f over %d "
                "symbols (best %.3f at %s)",
                self.num_timesteps, self.period.name, scalars["sharpe"], 100 * scalars["total_return"],
                100 * scalars["max_drawdown"], score, 1 + len(others), self.best_sharpe, self.best_timesteps,
            )
        if self.on_evaluation is not None:
            self.on_evaluation(self.num_timesteps, evaluation, score)
        return evaluation

    def _save_best(self, normalizer: Any) -> None:
        assert self.best_dir is not None
        self.best_dir.mkdir(parents=True, exist_ok=True)
        self.model.save(self.best_dir / MODEL_FILE)
        if normalizer is not None:
            normalizer.save(str(self.best_dir / VECNORMALIZE_FILE))

    def _figure(self, evaluation: Evaluation) -> Any:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        equity = evaluation.equity
        closes = self.data.values[self.period.start : self.period.start + len(equity), :, CLOSE]
        # Equal-weight buy-and-hold of the traded symbols, before costs, as the yardstick.
        symbols = self.env_kwargs.get("symbols") or [self.env_kwargs.get("symbol") or self.data.symbols[0]]
        cols = [self.data.symbols.index(s) for s in symbols]
        hold = equity.iloc[0] * (closes[:, cols] / closes[0, cols]).mean(axis=1)
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=80)
        ax.plot(equity.index, equity.to_numpy(), label="agent", lw=1.2)
        ax.plot(equity.index, hold, label="buy and hold", lw=1.0, alpha=0.7)
        ax.set_title(f"{self.period.name} equity at step {self.num_timesteps:,}")
        ax.legend(loc="upper left")
        fig.tight_layout()
        return fig


class StepsPerSecondCallback(BaseCallback):
    """Log ``time/sps_recent``: environment steps per second over the latest rollout (training included).

    :param verbose: unused, kept for the SB3 callback signature.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._t0 = 0.0
        self._steps0 = 0

    def _on_training_start(self) -> None:
        self._t0, self._steps0 = time.perf_counter(), self.num_timesteps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        if now > self._t0 and self.num_timesteps > self._steps0:
            self.logger.record("time/sps_recent", (self.num_timesteps - self._steps0) / (now - self._t0))
        self._t0, self._steps0 = now, self.num_timesteps
