"""The risk layer: turns a policy's target weights into the weights it is allowed to hold.

It sits between every policy and execution, in the backtest, in training and in live trading: the
single envs and the live runner call :meth:`RiskManager.apply`, the vector env steps every copy through
the same compiled rules (:func:`apply_risk`), so there is one implementation of each rule. It only reads
the state up to the current bar, so it is causal by construction. Rules, each switched off by setting it to ``None``:

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

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numba
import numpy as np
import pandas as pd


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


# ---------------------------------------------------------------------------------------------- the rules
# One implementation of the rules above, compiled, over a batch of accounts: RiskManager.apply runs it on one
# account (the single envs, the backtest and the live runner), the vector env on all of its copies at once
# (inside its compiled step for one symbol). Nothing else implements a rule, so training meets exactly what
# is backtested and traded.

RULES: tuple[str, ...] = ("max_drawdown", "stop_loss", "max_position", "max_correlation", "max_positions", "max_heat")
"""The rules by code, the column order of the intervention counts (the vector env's ``risk_counts``)."""
DRAWDOWN, STOP, POSITION, CORRELATION, POSITIONS, HEAT = range(len(RULES))
PEAK, HALTED, HALTED_AT = range(3)
"""Rows of the per-account state block (``(3, N)`` float64): high-water mark, halted (0/1), bar of the halt."""
BLOCKED, BLOCKED_AT = range(2)
"""Rows of the per-symbol state block (``(2, N, S)`` int64): blocked direction (+1/-1/0), bar of the stop."""
LOG_ROW, LOG_SYMBOL, LOG_RULE, LOG_ALLOWED, LOG_FORCE, LOG_VALUE, LOG_OTHER = range(7)
"""Columns of the intervention log (``(E, 7)`` float64): account, symbol, rule code, allowed weight, forced
(0/1), the number the reason quotes (drawdown, adverse move, weight, correlation or heat) and, for the
correlation rule, the symbol it correlates with."""
(_MAX_POSITION, _MAX_POSITIONS, _STOP, _MAX_DRAWDOWN, _COOLOFF, _MAX_HEAT, _MAX_CORRELATION, _LOOKBACK,
 _STOP_COOLDOWN, _DRIFT) = range(10)


def risk_params(config: RiskConfig) -> np.ndarray:
    """The limits of ``config`` as the compiled rules read them (``NaN`` where a rule is off).

    :param config: the limits.
    """
    def value(x: float | None) -> float:
        return math.nan if x is None else float(x)

    c = config
    return np.array([
        value(c.max_position), value(c.max_positions), value(c.stop_loss), value(c.max_drawdown),
        value(c.drawdown_cooloff), value(c.max_heat), value(c.max_correlation), float(c.correlation_lookback),
        value(c.stop_cooldown), float(c.position_drift),
    ])


_jit = numba.njit(cache=True, error_model="numpy")


@_jit
def _sign(x: float) -> float:  # pragma: no cover - compiled
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


@_jit
def _record(log, n_log, counts, i, j, rule, allowed, force, value, other):  # pragma: no cover - compiled
    counts[i, rule] += 1
    if n_log < log.shape[0]:
        log[n_log, LOG_ROW] = i
        log[n_log, LOG_SYMBOL] = j
        log[n_log, LOG_RULE] = rule
        log[n_log, LOG_ALLOWED] = allowed
        log[n_log, LOG_FORCE] = 1.0 if force else 0.0
        log[n_log, LOG_VALUE] = value
        log[n_log, LOG_OTHER] = other
    return n_log + 1


@_jit
def _log_returns(closes, now, lookback):  # pragma: no cover - compiled
    """Log returns of the last ``lookback + 1`` closes up to row ``now``; none below three closes."""
    first = max(now - lookback, 0)
    n = now - first
    s = closes.shape[1]
    if n < 2:
        return np.empty((0, s))
    out = np.empty((n, s))
    for m in range(n):
        for j in range(s):
            out[m, j] = math.log(closes[first + m + 1, j]) - math.log(closes[first + m, j])
    return out


@_jit
def _correlation(returns):  # pragma: no cover - compiled
    """Pearson correlation of the columns (``np.corrcoef``); a flat column (no defined correlation) counts
    as uncorrelated rather than blocking."""
    n, s = returns.shape
    centred = returns - np.sum(returns, axis=0)[None, :] / n
    cov = np.empty((s, s))
    for a in range(s):
        for b in range(s):
            acc = 0.0
            for m in range(n):
                acc += centred[m, a] * centred[m, b]
            cov[a, b] = acc / (n - 1)
    corr = np.empty((s, s))
    for a in range(s):
        for b in range(s):
            c = cov[a, b] / math.sqrt(cov[a, a]) / math.sqrt(cov[b, b])
            corr[a, b] = 0.0 if math.isnan(c) else min(max(c, -1.0), 1.0)
    return corr


@_jit
def apply_risk_row(p, i, t, equity, weights, positions, entry, prices, closes, now, allowed, force,
                   acct, pos, counts, log, n_log):  # pragma: no cover - compiled
    """The rules on account ``i``: ``allowed`` comes in as the requested weights and leaves as the allowed
    ones; ``force`` marks symbols that must trade even with an unchanged target. Returns the log's new
    length. Arguments as :func:`apply_risk`'s, one account's row of each (the vector env's compiled step
    calls it per copy)."""
    s = allowed.shape[0]
    for j in range(s):
        force[j] = False
    blocked, blocked_at = pos[BLOCKED, i], pos[BLOCKED_AT, i]
    if acct[HALTED, i] != 0.0:
        cooloff = p[_COOLOFF]
        if math.isnan(cooloff) or t - acct[HALTED_AT, i] < cooloff:
            allowed[:] = 0.0
            return n_log
        # The cool-off is over: resume, measuring drawdowns from here.
        acct[HALTED, i] = 0.0
        acct[HALTED_AT, i] = -1.0
        acct[PEAK, i] = equity
    if equity > acct[PEAK, i]:
        acct[PEAK, i] = equity
    drawdown = 1.0 - equity / acct[PEAK, i]
    if drawdown >= p[_MAX_DRAWDOWN]:  # False when the rule is off (NaN)
        acct[HALTED, i] = 1.0
        acct[HALTED_AT, i] = t
        for j in range(s):
            if allowed[j] != 0.0 or positions[j] != 0.0:
                n_log = _record(log, n_log, counts, i, j, DRAWDOWN, 0.0, False, drawdown, -1)
        allowed[:] = 0.0
        return n_log

    stop = p[_STOP]
    if not math.isnan(stop):
        cooldown = p[_STOP_COOLDOWN]
        for j in range(s):
            # A block lifts once the policy stops asking for that direction, or after the cooldown.
            if _sign(allowed[j]) != blocked[j] or (not math.isnan(cooldown) and t - blocked_at[j] >= cooldown):
                blocked[j] = 0
        for j in range(s):
            side = _sign(positions[j])
            adverse = side * (entry[j] - prices[j]) / entry[j]
            # Only an intervention if the policy still wants the position it is losing on.
            if side != 0.0 and adverse >= stop and _sign(allowed[j]) == side:
                n_log = _record(log, n_log, counts, i, j, STOP, 0.0, False, adverse, -1)
                blocked[j] = int(side)
                blocked_at[j] = t
        for j in range(s):
            if blocked[j] != 0 and _sign(allowed[j]) == blocked[j]:
                allowed[j] = 0.0

    cap = p[_MAX_POSITION]
    if not math.isnan(cap):
        for j in range(s):
            if abs(allowed[j]) > cap:
                capped = _sign(allowed[j]) * cap
                n_log = _record(log, n_log, counts, i, j, POSITION, capped, False, abs(allowed[j]), -1)
                allowed[j] = capped
        # A held position that the market carried well above the cap is trimmed back to it.
        for j in range(s):
            if abs(weights[j]) > cap * (1.0 + p[_DRIFT]) and _sign(allowed[j]) == _sign(weights[j]):
                capped = _sign(allowed[j]) * min(abs(allowed[j]), cap)
                n_log = _record(log, n_log, counts, i, j, POSITION, capped, True, abs(weights[j]), -1)
                allowed[j] = capped
                force[j] = True

    max_positions, max_corr = p[_MAX_POSITIONS], p[_MAX_CORRELATION]
    n_wanted = 0
    for j in range(s):
        n_wanted += allowed[j] != 0.0
    # One position or none can neither exceed a slot limit (at least one) nor correlate with another.
    if n_wanted > 1 and not (math.isnan(max_positions) and math.isnan(max_corr)):
        order = np.empty(n_wanted, dtype=np.int64)
        m = 0
        for j in range(s):
            if allowed[j] != 0.0:
                order[m] = j
                m += 1
        # Held positions first (no churn), then by size of request (a stable insertion sort: ties keep
        # the symbol order).
        for a in range(1, order.size):
            j = order[a]
            held_j = _sign(positions[j]) == _sign(allowed[j])
            b = a
            while b > 0:
                k = order[b - 1]
                held_k = _sign(positions[k]) == _sign(allowed[k])
                if (held_j and not held_k) or (held_j == held_k and abs(allowed[j]) > abs(allowed[k])):
                    order[b] = k
                    b -= 1
                else:
                    break
            order[b] = j
        corr = np.empty((0, 0))
        use_corr = False
        if not math.isnan(max_corr) and order.size > 1:
            returns = _log_returns(closes, now, int(p[_LOOKBACK]))
            if returns.shape[0] > 0:
                corr = _correlation(returns)
                use_corr = True
        accepted = np.empty(order.size, dtype=np.int64)
        n_accepted = 0
        for j in order:
            if not math.isnan(max_positions) and n_accepted >= max_positions:
                n_log = _record(log, n_log, counts, i, j, POSITIONS, 0.0, False, max_positions, -1)
                allowed[j] = 0.0
                continue
            if use_corr and n_accepted > 0 and positions[j] == 0.0:
                best, k = -np.inf, -1
                for m in range(n_accepted):
                    same_way = corr[j, accepted[m]] * _sign(allowed[j]) * _sign(allowed[accepted[m]])
                    if same_way > best:
                        best, k = same_way, accepted[m]
                if best > max_corr:
                    n_log = _record(log, n_log, counts, i, j, CORRELATION, 0.0, False, corr[j, k], k)
                    allowed[j] = 0.0
                    continue
            accepted[n_accepted] = j
            n_accepted += 1

    max_heat = p[_MAX_HEAT]
    if not math.isnan(max_heat):
        # The stop distance, or with stops off one standard deviation of recent returns.
        distance = np.full(s, stop)
        if math.isnan(stop):
            distance[:] = 0.0
            returns = _log_returns(closes, now, int(p[_LOOKBACK]))
            n = returns.shape[0]
            if n > 0:
                for j in range(s):
                    mean = np.sum(returns[:, j]) / n
                    squares = 0.0
                    for m in range(n):
                        squares += (returns[m, j] - mean) ** 2
                    sd = math.sqrt(squares / (n - 1))
                    distance[j] = 0.0 if math.isnan(sd) else sd
        heat = 0.0
        for j in range(s):
            heat += abs(allowed[j]) * distance[j]
        if heat > max_heat:
            # What is already held (same direction, up to the new size) is kept; only increases shrink.
            kept = np.zeros(s)
            base_heat = 0.0
            for j in range(s):
                if _sign(allowed[j]) == _sign(weights[j]):
                    kept[j] = min(abs(allowed[j]), abs(weights[j]))
                base_heat += kept[j] * distance[j]
            for j in range(s):
                if base_heat >= max_heat:
                    new = allowed[j] * (max_heat / heat)
                else:
                    scale = (max_heat - base_heat) / (heat - base_heat)
                    new = _sign(allowed[j]) * (kept[j] + (abs(allowed[j]) - kept[j]) * scale)
                # np.isclose's tolerances: a change too small to notice is no intervention.
                if abs(new - allowed[j]) > 1e-8 + 1e-5 * abs(allowed[j]):
                    n_log = _record(log, n_log, counts, i, j, HEAT, new, False, heat, -1)
                allowed[j] = new
    return n_log


@_jit
def apply_risk(p, t, equity, weights, positions, entry, prices, closes, now, allowed, force,
               acct, pos, counts, log):  # pragma: no cover - compiled
    """The risk rules on ``N`` accounts at once, in place; returns the number of interventions logged.

    :param p: the limits (:func:`risk_params`).
    :param t: ``(N,)`` bar index of each account (the clock of cool-offs and stop blocks).
    :param equity: ``(N,)`` equity at the current close.
    :param weights: ``(N, S)`` weights held (position value over equity).
    :param positions: ``(N, S)`` shares (negative for shorts).
    :param entry: ``(N, S)`` average entry prices, NaN when flat.
    :param prices: ``(N, S)`` last closes.
    :param closes: ``(T, S)`` closes, read up to row ``now[i]`` for account ``i`` (correlation, volatility).
    :param now: ``(N,)`` each account's current row of ``closes``.
    :param allowed: ``(N, S)`` requested weights in, allowed weights out.
    :param force: ``(N, S)`` out: symbols to trade even with an unchanged target (a trim).
    :param acct: ``(3, N)`` per-account state (:data:`PEAK`, :data:`HALTED`, :data:`HALTED_AT`), updated.
    :param pos: ``(2, N, S)`` per-symbol state (:data:`BLOCKED`, :data:`BLOCKED_AT`), updated.
    :param counts: ``(N, len(RULES))`` interventions per rule, incremented.
    :param log: ``(E, 7)`` the interventions in order (see :data:`LOG_ROW`); those past ``E`` are counted only.
    """
    n_log = 0
    for i in range(allowed.shape[0]):
        n_log = apply_risk_row(p, i, t[i], equity[i], weights[i], positions[i], entry[i], prices[i], closes,
                               now[i], allowed[i], force[i], acct, pos, counts, log, n_log)
    return n_log


@dataclass
class RiskManager:
    """Applies a :class:`RiskConfig` bar by bar; keeps the high-water mark, the halt (and the bar it began)
    and the stop blocks. The rules themselves are :func:`apply_risk`'s, run here on one account.

    :param config: the limits.
    :param n_symbols: number of symbols traded.
    :param symbols: symbol names for the events; taken from ``state.history.symbols`` when omitted.
    """

    config: RiskConfig
    n_symbols: int
    symbols: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.symbols is not None and len(self.symbols) != self.n_symbols:
            raise ValueError(f"{len(self.symbols)} symbol names for n_symbols={self.n_symbols}")
        self._params = risk_params(self.config)
        # The state of one account in the compiled rules' layout (see apply_risk).
        self._acct = np.array([[math.nan], [0.0], [-1.0]])
        self._pos = np.zeros((2, 1, self.n_symbols), dtype=np.int64)
        self._counts = np.zeros((1, len(RULES)), dtype=np.int64)
        # At most one event per symbol and rule, the position cap twice (cap, then drift).
        self._log = np.zeros((len(RULES) * self.n_symbols, 7))

    @property
    def peak_equity(self) -> float:
        """The high-water mark the drawdown is measured from (NaN before :meth:`reset`)."""
        return float(self._acct[PEAK, 0])

    @peak_equity.setter
    def peak_equity(self, value: float) -> None:
        self._acct[PEAK, 0] = value

    @property
    def halted(self) -> bool:
        """Whether the drawdown breaker holds the account flat."""
        return bool(self._acct[HALTED, 0])

    @halted.setter
    def halted(self, value: bool) -> None:
        self._acct[HALTED, 0] = float(value)

    @property
    def halted_at(self) -> int:
        """Bar at which the drawdown breaker tripped (the cool-off counts from it); -1 when not halted."""
        return int(self._acct[HALTED_AT, 0])

    @halted_at.setter
    def halted_at(self, value: int) -> None:
        self._acct[HALTED_AT, 0] = value

    @property
    def blocked(self) -> np.ndarray:
        """Per symbol: +1 / -1 if a stop closed a long / short there and that direction stays blocked; 0 free."""
        return self._pos[BLOCKED, 0]

    @property
    def blocked_at(self) -> np.ndarray:
        """Per symbol: bar of the last stop (the stop cooldown counts from it)."""
        return self._pos[BLOCKED_AT, 0]

    def reset(self, initial_equity: float) -> None:
        """Start a new episode.

        :param initial_equity: starting equity, the first peak for the drawdown breaker.
        """
        self._acct[:, 0] = (float(initial_equity), 0.0, -1.0)
        self._pos[...] = 0

    def snapshot(self) -> dict[str, Any]:
        """Everything the layer remembers between bars, as JSON-able values (the live runner journals it
        with every decision, so a restarted run continues with the same state)."""
        return {
            "peak_equity": None if np.isnan(self.peak_equity) else self.peak_equity,
            "halted": self.halted,
            "halted_at": self.halted_at,
            "blocked": self.blocked.tolist(),
            "blocked_at": self.blocked_at.tolist(),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`.

        :param snapshot: the output of :meth:`snapshot` (``blocked_at`` and ``halted_at`` may be missing in
            journals written before they were recorded; they then count from bar 0).
        """
        blocked = np.asarray(snapshot.get("blocked") or np.zeros(self.n_symbols), dtype=np.int64)
        if blocked.shape != (self.n_symbols,):
            raise ValueError(f"risk snapshot has {blocked.size} symbols, the layer has {self.n_symbols}")
        peak = snapshot.get("peak_equity")
        self.peak_equity = math.nan if peak is None else float(peak)
        self.halted = bool(snapshot.get("halted", False))
        self.halted_at = int(snapshot.get("halted_at", 0 if self.halted else -1))
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
        allowed = requested.reshape(1, -1).copy()
        force = np.zeros(allowed.shape, dtype=bool)
        # Only the closes the correlation and volatility look at.
        closes = np.ascontiguousarray(state.history.close[-(self.config.correlation_lookback + 1):], dtype=np.float64)

        def row(values: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(values, dtype=np.float64).reshape(1, -1)

        n_log = apply_risk(
            self._params, np.array([state.t]), np.array([state.equity], dtype=np.float64), row(state.weights),
            row(state.positions), row(state.entry_prices), row(state.prices), closes, np.array([len(closes) - 1]),
            allowed, force, self._acct, self._pos, self._counts, self._log,
        )
        names = self._names(state)
        events = [
            RiskEvent(state.timestamp, names[int(j)], RULES[int(rule)],
                      self._reason(int(rule), int(j), value, int(other), bool(forced), state, names),
                      float(requested[int(j)]), float(allowed_j), bool(forced))
            for _, j, rule, allowed_j, forced, value, other in self._log[:n_log]
        ]
        return allowed[0], events

    def _reason(
        self, rule: int, j: int, value: float, other: int, forced: bool, state: RiskState, names: Sequence[str]
    ) -> str:
        """An intervention's explanation, with the numbers the rule compared."""
        cfg = self.config
        if rule == DRAWDOWN:
            pause = "for good" if cfg.drawdown_cooloff is None else f"for {cfg.drawdown_cooloff} bars"
            return f"drawdown {value:.2%} >= {cfg.max_drawdown:.2%}: flattened, trading stopped {pause}"
        if rule == STOP:
            return (f"close {state.prices[j]:.4f} is {value:.2%} against entry {state.entry_prices[j]:.4f} "
                    f"(stop {cfg.stop_loss:.2%}); re-entry blocked until the signal resets or "
                    f"{cfg.stop_cooldown} bars pass")
        if rule == POSITION and forced:
            return (f"held |weight| {value:.4f} drifted above {cfg.max_position} by more than "
                    f"{cfg.position_drift:.0%}: trimmed")
        if rule == POSITION:
            return f"|weight| {value:.4f} > {cfg.max_position}"
        if rule == POSITIONS:
            return f"already {cfg.max_positions} positions"
        if rule == CORRELATION:
            return f"correlation {value:.2f} with {names[other]} > {cfg.max_correlation}"
        return f"open risk {value:.4f} > {cfg.max_heat}"

    def _names(self, state: RiskState) -> Sequence[str]:
        names = self.symbols or getattr(state.history, "symbols", None)
        return names if names is not None else [str(j) for j in range(self.n_symbols)]
