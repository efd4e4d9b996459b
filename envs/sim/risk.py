"""The risk layer: turns a policy's target weights into the weights it is allowed to hold.

It sits between every policy and execution, in the backtest and in live trading (the env and the live
runner call the same :meth:`RiskManager.apply`). It only reads the state up to the current bar, so it is
causal by construction. Rules, each switched off by setting it to ``None``:

1. **max_drawdown** (circuit breaker): once equity falls this far below its high-water mark (the peak
   since ``reset`` or since the last resume), every position is flattened and trading stops. Resume rule:
   after ``drawdown_cooloff`` bars flat, trading resumes and the high-water mark restarts at the equity of
   that bar, so the next breach is measured from where the account stands, not from the old peak (which
   would trip the breaker again at once). ``drawdown_cooloff=None`` stops for the rest of the episode.
2. **stop_loss**: a position whose last close is this far beyond its average entry price (below for a
   long, above for a short) is closed. The exit fills with the next order (next bar's open), so gaps can
   lose more than the stop. Re-entry in the same direction is blocked until the policy asks for a flat
   or opposite position, or until ``stop_cooldown`` bars have passed, so a bot that keeps saying "long"
   does not buy straight back in, yet an always-invested policy (buy-and-hold) is not locked out for good.
3. **max_position**: absolute weight per symbol is capped; a held position the market carries more than
   ``position_drift`` above the cap is trimmed back to it (a forced trade, see :attr:`RiskEvent.force`).
4. **max_correlation**: a new position is refused if its return correlation with a position already
   accepted (same-direction exposure: correlation times the product of the signs) exceeds the limit,
   measured over the last ``correlation_lookback`` closes.
5. **max_positions**: at most this many open positions. Positions already held keep their slot first,
   then new ones by size of request.
6. **max_heat**: total open risk, the sum over positions of ``|weight| x stop distance``, is capped by
   scaling down increases in exposure (the whole book only if what is already held exceeds it). The stop
   distance is ``stop_loss``, or, with stops off, one standard deviation of the symbol's recent returns.

Every intervention returns a :class:`RiskEvent` with the rule, a reason and the requested and allowed
weight; the env puts them into ``info["risk_events"]`` and the trade log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

_Record = Callable[..., None]


@dataclass(frozen=True)
class RiskConfig:
    """Risk limits; defaults are the seed's trading config. ``None`` switches a rule off.

    :param max_position: largest absolute weight of one symbol (fraction of equity).
    :param max_positions: most symbols with an open position at once.
    :param stop_loss: adverse move from the average entry price that closes a position (fraction).
    :param max_drawdown: drawdown from the high-water mark that flattens everything and stops trading.
    :param drawdown_cooloff: bars the breaker keeps the account flat before trading resumes from a new
        high-water mark (the equity at that bar); ``None`` stops for the rest of the episode.
    :param max_heat: largest total open risk (sum of ``|weight| x stop distance``).
    :param max_correlation: largest same-direction return correlation between two open positions.
    :param correlation_lookback: closes used to measure correlation and, with stops off, volatility.
    :param position_drift: how far (relative) a held position may drift above ``max_position`` with the
        market before it is trimmed back to the cap.
    :param stop_cooldown: bars after a stop before the same direction may be re-entered even if the policy
        never asked to go flat; ``None`` keeps the block until the policy's signal resets.
    """

    max_position: float | None = 0.15
    max_positions: int | None = 5
    stop_loss: float | None = 0.02
    max_drawdown: float | None = 0.20
    drawdown_cooloff: int | None = 20
    max_heat: float | None = 0.06
    max_correlation: float | None = 0.8
    correlation_lookback: int = 60
    stop_cooldown: int | None = 5
    position_drift: float = 0.1

    def __post_init__(self) -> None:
        for name in ("max_position", "stop_loss", "max_drawdown", "max_heat"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"RiskConfig.{name} must be positive or None, got {value}")
        for name in ("stop_loss", "max_drawdown"):
            value = getattr(self, name)
            if value is not None and value >= 1:
                raise ValueError(f"RiskConfig.{name} is a fraction below 1, got {value}")
        if self.max_positions is not None and self.max_positions < 1:
            raise ValueError(f"RiskConfig.max_positions must be at least 1, got {self.max_positions}")
        if self.max_correlation is not None and not -1 <= self.max_correlation <= 1:
            raise ValueError(
                f"RiskConfig.max_correlation must be in [-1, 1], got {self.max_correlation}"
            )
        if self.position_drift < 0:
            raise ValueError(f"RiskConfig.position_drift must be >= 0, got {self.position_drift}")
        if self.drawdown_cooloff is not None and self.drawdown_cooloff < 1:
            raise ValueError(
                f"RiskConfig.drawdown_cooloff must be at least 1 bar or None, got {self.drawdown_cooloff}"
            )
        if self.stop_cooldown is not None and self.stop_cooldown < 1:
            raise ValueError(f"RiskConfig.stop_cooldown must be at least 1 bar or None, got {self.stop_cooldown}")
        if self.correlation_lookback < 3:
            raise ValueError(
                f"RiskConfig.correlation_lookback must be at least 3, got {self.correlation_lookback}"
            )


@dataclass(frozen=True)
class RiskEvent:
    """One intervention of the risk layer.

    :param timestamp: bar at which the decision was made.
    :param symbol: symbol whose weight was changed.
    :param rule: the rule that fired (a :class:`RiskConfig` field name, e.g. ``"stop_loss"``).
    :param reason: human readable explanation with the numbers.
    :param requested: weight the policy asked for.
    :param allowed: weight the risk layer allowed.
    :param force: trade to ``allowed`` even though the policy's target did not change (a held position
        breached a limit, e.g. drifted above ``max_position``); envs otherwise trade only on a new target.
    """

    timestamp: pd.Timestamp
    symbol: str
    rule: str
    reason: str
    requested: float
    allowed: float
    force: bool = False


@dataclass(frozen=True)
class RiskState:
    """What the risk layer sees at bar ``t`` (all arrays shape ``(S,)``, history ``(t+1, S)``).

    :param t: bar index.
    :param timestamp: time of bar ``t``.
    :param equity: account equity at bar ``t``'s close.
    :param weights: current weights (position value over equity).
    :param positions: current shares (negative for shorts).
    :param entry_prices: average entry price per symbol, NaN when flat.
    :param prices: last close per symbol.
    :param history: read-only history up to ``t`` with a ``.close`` array ``(t+1, S)``.
    """

    t: int
    timestamp: pd.Timestamp
    equity: float
    weights: np.ndarray
    positions: np.ndarray
    entry_prices: np.ndarray
    prices: np.ndarray
    history: Any

    @classmethod
    def of_account(
        cls, history: Any, equity: float, positions: np.ndarray, entry_prices: np.ndarray
    ) -> "RiskState":
        """The risk layer's view of an account at the last bar of ``history``: the one way the envs and
        the live runner build it, so both feed the risk layer the same numbers.

        :param history: read-only history up to now (``.t``, ``.timestamp``, ``.close``).
        :param equity: account equity at the last close.
        :param positions: shares per symbol (negative for shorts).
        :param entry_prices: average entry price per symbol, NaN when flat.
        """
        prices = np.array(history.close[-1], dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        weights = positions * prices / equity if equity > 0 else np.zeros_like(positions)
        return cls(
            t=int(history.t),
            timestamp=history.timestamp,
            equity=float(equity),
            weights=weights,
            positions=positions,
            entry_prices=np.asarray(entry_prices, dtype=np.float64),
            prices=prices,
            history=history,
        )


@dataclass
class RiskManager:
    """Applies a :class:`RiskConfig` bar by bar; keeps the high-water mark, the halt (and the bar it began)
    and the stop blocks.

    :param config: the limits.
    :param n_symbols: number of symbols traded.
    :param symbols: symbol names for the events; taken from ``state.history.symbols`` when omitted.
    """

    config: RiskConfig
    n_symbols: int
    symbols: Sequence[str] | None = None
    peak_equity: float = field(default=float("nan"), init=False)
    halted: bool = field(default=False, init=False)
    # Bar at which the drawdown breaker tripped (the cool-off counts from it); -1 when not halted.
    halted_at: int = field(default=-1, init=False)
    # +1 / -1: a stop closed a long / short here and that direction stays blocked; 0: free.
    blocked: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.symbols is not None and len(self.symbols) != self.n_symbols:
            raise ValueError(f"{len(self.symbols)} symbol names for n_symbols={self.n_symbols}")
        self.blocked = np.zeros(self.n_symbols, dtype=np.int8)
        self.blocked_at = np.zeros(self.n_symbols, dtype=np.int64)

    def reset(self, initial_equity: float) -> None:
        """Start a new episode.

        :param initial_equity: starting equity, the first peak for the drawdown breaker.
        """
        self.peak_equity = float(initial_equity)
        self.halted = False
        self.halted_at = -1
        self.blocked[:] = 0
        self.blocked_at[:] = 0

    def snapshot(self) -> dict[str, Any]:
        """Everything the layer remembers between bars, as JSON-able values (the live runner journals it
        with every decision, so a restarted run continues with the same state)."""
        return {
            "peak_equity": None if np.isnan(self.peak_equity) else float(self.peak_equity),
            "halted": bool(self.halted),
            "halted_at": int(self.halted_at),
            "blocked": self.blocked.tolist(),
            "blocked_at": self.blocked_at.tolist(),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`.

        :param snapshot: the output of :meth:`snapshot` (``blocked_at`` and ``halted_at`` may be missing in
            journals written before they were recorded; they then count from bar 0).
        """
        peak = snapshot.get("peak_equity")
        self.peak_equity = float("nan") if peak is None else float(peak)
        self.halted = bool(snapshot.get("halted", False))
        self.halted_at = int(snapshot.get("halted_at", 0 if self.halted else -1))
        blocked = np.asarray(snapshot.get("blocked") or np.zeros(self.n_symbols), dtype=np.int8)
        if blocked.shape != (self.n_symbols,):
            raise ValueError(f"risk snapshot has {blocked.size} symbols, the layer has {self.n_symbols}")
        self.blocked[:] = blocked
        self.blocked_at[:] = np.asarray(snapshot.get("blocked_at") or np.zeros(self.n_symbols), dtype=np.int64)

    def apply(
        self, target_weights: np.ndarray, state: RiskState
    ) -> tuple[np.ndarray, list[RiskEvent]]:
        """Allowed target weights for the next bar, and the interventions that produced them.

        :param target_weights: weights the policy asks for, shape ``(S,)``.
        :param state: portfolio and market state at the current bar.
        """
        requested = np.asarray(target_weights, dtype=np.float64)
        if requested.shape != (self.n_symbols,):
            raise ValueError(
                f"target_weights must have shape ({self.n_symbols},), got {requested.shape}"
            )
        if not np.isfinite(requested).all():
            raise ValueError(f"target_weights must be finite, got {requested.tolist()}")
        if np.isnan(self.peak_equity):
            raise RuntimeError("RiskManager.apply called before reset(initial_equity)")
        names = self._names(state)
        events: list[RiskEvent] = []

        def record(j: int, rule: str, reason: str, allowed: float, force: bool = False) -> None:
            events.append(
                RiskEvent(state.timestamp, names[j], rule, reason, float(requested[j]), allowed, force)
            )

        cfg = self.config
        if self.halted:
            if cfg.drawdown_cooloff is None or state.t - self.halted_at < cfg.drawdown_cooloff:
                return np.zeros(self.n_symbols), events
            # The cool-off is over: resume, measuring drawdowns from here.
            self.halted = False
            self.halted_at = -1
            self.peak_equity = state.equity
        weights = requested.copy()

        self.peak_equity = max(self.peak_equity, state.equity)
        drawdown = 1.0 - state.equity / self.peak_equity
        if cfg.max_drawdown is not None and drawdown >= cfg.max_drawdown:
            self.halted = True
            self.halted_at = state.t
            pause = "for good" if cfg.drawdown_cooloff is None else f"for {cfg.drawdown_cooloff} bars"
            for j in np.flatnonzero((weights != 0) | (state.positions != 0)):
                record(j, "max_drawdown", f"drawdown {drawdown:.2%} >= {cfg.max_drawdown:.2%}: "
                       f"flattened, trading stopped {pause}", 0.0)
            return np.zeros(self.n_symbols), events

        self._apply_stops(weights, state, record)
        if cfg.max_position is not None:
            over = np.abs(weights) > cfg.max_position
            for j in np.flatnonzero(over):
                capped = float(np.sign(weights[j]) * cfg.max_position)
                record(j, "max_position", f"|weight| {abs(weights[j]):.4f} > {cfg.max_position}",
                       capped)
                weights[j] = capped
            # A held position that the market carried well above the cap is trimmed back to it.
            drifted = (np.abs(state.weights) > cfg.max_position * (1.0 + cfg.position_drift)) & (
                np.sign(weights) == np.sign(state.weights)
            )
            for j in np.flatnonzero(drifted):
                capped = float(np.sign(weights[j]) * min(abs(weights[j]), cfg.max_position))
                record(j, "max_position", f"held |weight| {abs(state.weights[j]):.4f} drifted above "
                       f"{cfg.max_position} by more than {cfg.position_drift:.0%}: trimmed", capped, True)
                weights[j] = capped
        self._apply_slots(weights, state, names, record)
        if cfg.max_heat is not None:
            self._apply_heat(weights, state, record)
        return weights, events

    def _names(self, state: RiskState) -> Sequence[str]:
        names = self.symbols or getattr(state.history, "symbols", None)
        return names if names is not None else [str(j) for j in range(self.n_symbols)]

    def _apply_stops(self, weights: np.ndarray, state: RiskState, record: _Record) -> None:
        stop = self.config.stop_loss
        if stop is None:
            return
        # A block lifts once the policy stops asking for that direction, or after the cooldown.
        lift = np.sign(weights) != self.blocked
        if self.config.stop_cooldown is not None:
            lift |= state.t - self.blocked_at >= self.config.stop_cooldown
        self.blocked[lift] = 0
        side = np.sign(state.positions)
        with np.errstate(invalid="ignore"):
            adverse = side * (state.entry_prices - state.prices) / state.entry_prices
        # Only an intervention if the policy still wants the position it is losing on.
        hit = (side != 0) & (adverse >= stop) & (np.sign(weights) == side)
        for j in np.flatnonzero(hit):
            record(j, "stop_loss", f"close {state.prices[j]:.4f} is {adverse[j]:.2%} against entry "
                   f"{state.entry_prices[j]:.4f} (stop {stop:.2%}); re-entry blocked until the "
                   f"signal resets or {self.config.stop_cooldown} bars pass", 0.0)
            self.blocked[j] = side[j]
            self.blocked_at[j] = state.t
        weights[(self.blocked != 0) & (np.sign(weights) == self.blocked)] = 0.0

    def _apply_slots(
        self, weights: np.ndarray, state: RiskState, names: Sequence[str], record: _Record
    ) -> None:
        cfg = self.config
        if cfg.max_positions is None and cfg.max_correlation is None:
            return
        wanted = np.flatnonzero(weights)
        held = np.sign(state.positions[wanted]) == np.sign(weights[wanted])
        # Held positions first (no churn), then by size of request.
        order = wanted[np.lexsort((-np.abs(weights[wanted]), ~held))]
        corr = None
        if cfg.max_correlation is not None and len(order) > 1:
            corr = self._correlation(state.history.close)
        accepted: list[int] = []
        for j in order:
            if cfg.max_positions is not None and len(accepted) >= cfg.max_positions:
                record(j, "max_positions", f"already {cfg.max_positions} positions", 0.0)
                weights[j] = 0.0
                continue
            if corr is not None and accepted and state.positions[j] == 0:
                same_way = corr[j, accepted] * np.sign(weights[j]) * np.sign(weights[accepted])
                k = int(np.argmax(same_way))
                if same_way[k] > cfg.max_correlation:
                    record(j, "max_correlation", f"correlation {corr[j, accepted[k]]:.2f} with "
                           f"{names[accepted[k]]} > {cfg.max_correlation}", 0.0)
                    weights[j] = 0.0
                    continue
            accepted.append(int(j))

    def _apply_heat(self, weights: np.ndarray, state: RiskState, record: _Record) -> None:
        cfg = self.config
        if cfg.stop_loss is not None:
            distance = np.full(self.n_symbols, cfg.stop_loss)
        else:
            distance = np.nan_to_num(self._volatility(state.history.close), nan=0.0)
        heat = float(np.abs(weights) @ distance)
        if heat <= cfg.max_heat:
            return
        # What is already held (same direction, up to the new size) is kept; only increases shrink.
        same_side = np.sign(weights) == np.sign(state.weights)
        kept = np.where(same_side, np.minimum(np.abs(weights), np.abs(state.weights)), 0.0)
        base_heat = float(kept @ distance)
        if base_heat >= cfg.max_heat:
            new = weights * (cfg.max_heat / heat)
        else:
            scale = (cfg.max_heat - base_heat) / (heat - base_heat)
            new = np.sign(weights) * (kept + (np.abs(weights) - kept) * scale)
        for j in np.flatnonzero(~np.isclose(new, weights)):
            record(j, "max_heat", f"open risk {heat:.4f} > {cfg.max_heat}", float(new[j]))
        weights[:] = new

    def _returns(self, close: np.ndarray) -> np.ndarray | None:
        window = np.asarray(close[-(self.config.correlation_lookback + 1):], dtype=np.float64)
        if len(window) < 3:
            return None
        return np.diff(np.log(window), axis=0)

    def _correlation(self, close: np.ndarray) -> np.ndarray | None:
        returns = self._returns(close)
        if returns is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(returns, rowvar=False)
        # A flat price has no defined correlation; treat it as uncorrelated rather than blocking.
        return np.nan_to_num(np.atleast_2d(corr), nan=0.0)

    def _volatility(self, close: np.ndarray) -> np.ndarray:
        returns = self._returns(close)
        if returns is None:
            return np.zeros(self.n_symbols)
        return returns.std(axis=0, ddof=1)
