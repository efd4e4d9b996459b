"""Compiled loops of the batched vector env: the one-symbol step, observation rows and episode resets.

At the batch sizes training uses (64-256 envs) a numpy step is about forty array calls of a microsecond
or more each, whatever the batch size, so fixed cost rather than arithmetic sets the speed. These loops
make one call per step instead. They are compiled with numba and fill through the env's own
:func:`envs.sim.execution.fill_one` and :func:`envs.sim.execution.update_cost_basis_one`, compiled here rather
than copied, so ``StocksEnv.step`` and the batch share one implementation of the fill and cost-basis
arithmetic. Several symbols (``Portfolio-v0``) fill with :func:`envs.sim.execution.rebalance` in numpy, whose
sells-before-buys budget is shared across symbols; the observation and reset loops serve both kinds.

Observation rows are copied straight from the clipped feature matrix: the window of bars
``t - window + 1 .. t`` is one contiguous run of ``window * features`` floats there, in the same order as
the single env's window table, and the matrix is ``window`` times smaller than the table, so it stays in
cache.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from envs.data.market_data import CLOSE, HIGH, LOW
from envs.features import OBS_BOUND
from envs.sim.compiled import fill_one as _fill_one
from envs.sim.compiled import should_trade as _should_trade
from envs.sim.compiled import update_cost_basis_one as _update_cost_basis_one
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import apply_risk_row

DISCRETE, WEIGHTS, CONTINUOUS, TARGETS = range(4)
"""How :func:`step_stocks` reads its actions: a choice index, a weight, a weight plus a cash weight
(each as :class:`~envs.sim.actions.ActionAdapter` converts them), or target weights already converted."""

ACTION_TOLERANCE = 1e-6
"""How far outside ``[low, 1]`` a weight may be and still be clipped in, as the action adapter allows."""

WIPED_OUT_REWARD = -20.0
"""Reward of the step that wipes the account out (the single envs' ``safe_log_ratio``)."""


# error_model="numpy": a division by a zero equity gives inf/nan as in numpy, not an exception.
_jit = numba.njit(cache=True, error_model="numpy")
_inline = numba.njit(cache=True, error_model="numpy", inline="always")


@_inline
def _clip(x: float) -> float:  # pragma: no cover - compiled
    # comparisons keep a NaN as NaN, like np.clip
    if x > OBS_BOUND:
        return OBS_BOUND
    if x < -OBS_BOUND:
        return -OBS_BOUND
    return x


@_inline
def _in_range(x: float, low: float) -> bool:  # pragma: no cover - compiled
    # False for NaN and infinities too
    return low - ACTION_TOLERANCE <= x <= 1.0 + ACTION_TOLERANCE


@_inline
def _target_weight(actions, i, mode, choices, low, max_leverage):  # pragma: no cover - compiled
    """Row ``i``'s target weight, or NaN if the action is outside the space. The arithmetic and order of
    ``ActionAdapter.to_weights_batch`` for one symbol."""
    a = float(actions[i, 0])
    if mode == TARGETS:
        return a
    if mode == DISCRETE:
        return choices[int(a)] if 0.0 <= a < choices.size else math.nan
    if not _in_range(a, low):
        return math.nan
    a = min(max(a, low), 1.0)
    if mode == WEIGHTS:
        gross = abs(a)
        return a * (max_leverage / max(gross, 1e-12)) if gross > max_leverage else a
    cash_weight = float(actions[i, 1])
    if not _in_range(cash_weight, low):
        return math.nan
    total = abs(a) + abs(min(max(cash_weight, low), 1.0))
    return (a / total if total > 1e-12 else 0.0) * max_leverage


@_inline
def _write_window(obs, i, t, feat, window_size):  # pragma: no cover - compiled
    n_feat = feat.shape[1]
    first = t - window_size + 1
    for r in range(window_size):
        for j in range(n_feat):
            obs[i, r * n_feat + j] = feat[first + r, j]


@_inline
def _write_stock_state(obs, i, held, avg_cost, price, equity, peak):  # pragma: no cover - compiled
    # Scalars rather than the state arrays: passing arrays to a call costs reference counting per row.
    unrealised = 0.0
    if held > 0.0:
        unrealised = price / avg_cost - 1.0
    elif held < 0.0:
        unrealised = 1.0 - price / avg_cost
    n = obs.shape[1] - 3
    obs[i, n] = _clip(held * price / equity)
    obs[i, n + 1] = _clip(unrealised)
    obs[i, n + 2] = _clip(1.0 - equity / peak)


@_inline
def _observe(obs, i, t, shares, avg_cost, equity, peak, feat, window_size, bars, stocks):  # pragma: no cover
    """Write row ``i`` of ``obs``: the feature window ending at bar ``t``, then the account state.

    State, clipped to the observation bound: for one symbol (``stocks``) its weight, its unrealised return
    against average cost and the drawdown; for a portfolio every symbol's weight, the cash weight and the
    drawdown.
    """
    _write_window(obs, i, t, feat, window_size)
    if stocks:
        _write_stock_state(obs, i, shares[i, 0], avg_cost[i, 0], bars[t, 0, CLOSE], equity[i], peak[i])
        return
    n_symbols = shares.shape[1]
    n = window_size * feat.shape[1]
    invested = 0.0
    for j in range(n_symbols):
        weight = shares[i, j] * bars[t, j, CLOSE] / equity[i]
        invested += weight
        obs[i, n + j] = _clip(weight)
    obs[i, n + n_symbols] = _clip(1.0 - invested)
    obs[i, n + n_symbols + 1] = _clip(1.0 - equity[i] / peak[i])


@_jit
def observe_all(obs, t, shares, avg_cost, equity, peak, feat, window_size, bars, stocks):  # pragma: no cover
    """Write every observation row, row ``i`` at bar ``t[i]`` (see :func:`_observe`).

    :param obs: the ``(N, D)`` float32 observations to write.
    :param t: bar per row.
    :param shares: ``(N, S)`` shares.
    :param avg_cost: ``(N, S)`` average cost.
    :param equity: equity per row.
    :param peak: peak equity per row.
    :param feat: the clipped ``(T, S * features)`` feature matrix.
    :param window_size: bars per observation window.
    :param bars: the data's ``(T, S, 5)`` OHLCV values.
    :param stocks: one-symbol state (weight, unrealised return, drawdown) instead of the portfolio's.
    """
    for i in range(obs.shape[0]):
        _observe(obs, i, t[i], shares, avg_cost, equity, peak, feat, window_size, bars, stocks)


@_jit
def reset_rows(
    rows, starts, ends, initial_cash, cash, shares, avg_cost, target, equity, peak, t, end,
    obs, feat, window_size, bars, stocks,
):  # pragma: no cover - compiled
    """Start new episodes in ``rows``, all cash, and write their first observations.

    :param rows: indices of the rows to reset.
    :param starts: first bar of each new episode.
    :param ends: last bar of each new episode.
    :param initial_cash: starting cash.
    :param cash: cash per row.
    :param shares: ``(N, S)`` shares.
    :param avg_cost: ``(N, S)`` average cost (NaN when flat).
    :param target: ``(N, S)`` last traded target weights.
    :param equity: equity per row.
    :param peak: peak equity per row.
    :param t: current bar per row.
    :param end: last bar of each row's episode.
    :param obs: the ``(N, D)`` float32 observations to write the rows of.
    :param feat: the clipped ``(T, S * features)`` feature matrix.
    :param window_size: bars per observation window.
    :param bars: the data's ``(T, S, 5)`` OHLCV values.
    :param stocks: one-symbol state instead of the portfolio's (see :func:`observe_all`).
    """
    for r in range(rows.size):
        i = rows[r]
        t[i] = starts[r]
        end[i] = ends[r]
        cash[i] = equity[i] = peak[i] = initial_cash
        shares[i, :] = 0.0
        avg_cost[i, :] = np.nan
        target[i, :] = 0.0
        _observe(obs, i, t[i], shares, avg_cost, equity, peak, feat, window_size, bars, stocks)


CASH, EQUITY, PEAK = range(3)
"""Rows of the per-copy account block ``acct`` (``(3, N)``)."""
SHARES, AVG_COST, TARGET = range(3)
"""Rows of the per-symbol account block ``pos`` (``(3, N, S)``); ``avg_cost`` is NaN when flat."""
T, END = range(2)
"""Rows of the ``clock`` block (``(2, N)`` int64): current bar and last bar of each copy's episode."""
MODE, FILL_FIELD, WINDOW = range(3)
"""Entries of :func:`step_stocks`' ``layout``."""
LOW_WEIGHT, MAX_LEVERAGE, COMMISSION, PER_SHARE, IMPACT, WHOLE, BAND, BORROW, MIN_QTY, CHOICES = range(10)
"""Entries of :func:`step_stocks`' ``params``; the discrete modes' weight per choice index start at
``CHOICES``."""


def stock_step_settings(
    mode: int, choices: np.ndarray, execution: ExecutionConfig, window_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`step_stocks`' ``layout`` and ``params``: the action reading and the costs, packed into two
    arrays because the compiled call's fixed cost grows with its number of arguments.

    :param mode: how actions are read (:data:`DISCRETE`, :data:`WEIGHTS`, :data:`CONTINUOUS`).
    :param choices: weight per discrete choice index (empty for the other modes).
    :param execution: the env's :class:`~envs.sim.execution.ExecutionConfig`, as its one symbol pays it
        (:meth:`~envs.sim.execution.ExecutionConfig.for_symbol`).
    :param window_size: bars per observation window.
    """
    ex = execution
    layout = np.array([mode, ex.fill_field, window_size], dtype=np.int64)
    params = np.array(
        [
            -1.0 if ex.allow_short else 0.0,
            ex.max_leverage,
            ex.commission,
            ex.commission_per_share,
            ex.price_impact,
            0.0 if ex.fractional else 1.0,
            ex.min_weight_change,
            ex.borrow_per_bar if ex.borrow_rate else 0.0,
            ex.min_order_qty,
            *np.asarray(choices, dtype=np.float64),
        ],
        dtype=np.float64,
    )
    return layout, params


@_jit
def step_stocks(
    actions, layout, params, bars, feat, acct, pos, clock, risk_params, risk_acct, risk_pos, risk_counts,
    obs, rewards, terminated, truncated, equity_out, cash_out, t_out,
):  # pragma: no cover - compiled; parity with StocksEnv.step is tested through the vector env
    """One ``StocksEnv.step`` for every row, in place, without the autoreset.

    Converts and checks every action first and returns ``-1 - row`` for the first one outside the action
    space, having changed nothing. Otherwise passes each target through the risk layer (when
    ``risk_params`` is not empty: :func:`envs.sim.risk.apply_risk`'s rules, the very code the single env
    runs), trades where the target changed (by more than the band, or to flat) or the risk layer forces
    it, fills through ``fill_one``, charges the borrow fee, marks equity at the close, writes the
    observation at the new bar and the outputs, and returns the number of finished rows.

    :param actions: ``N`` actions of ``A`` values each, C-contiguous.
    :param layout: how to read the actions (:data:`DISCRETE`, :data:`WEIGHTS`, :data:`CONTINUOUS`,
        :data:`TARGETS`), the OHLCV field fills happen at, and the observation window (see
        :func:`stock_step_settings`).
    :param params: the weight range, leverage, costs and discrete choices (see :func:`stock_step_settings`).
    :param bars: the data's ``(T, 1, 5)`` OHLCV values.
    :param feat: the clipped ``(T, features)`` feature matrix.
    :param acct: ``(3, N)`` cash, equity and peak equity, updated.
    :param pos: ``(3, N, 1)`` shares, average cost and last traded target weight, updated.
    :param clock: ``(2, N)`` current bar (advanced by one) and last bar of each episode.
    :param risk_params: the risk limits (:func:`envs.sim.risk.risk_params`), empty for no risk layer.
    :param risk_acct: ``(3, N)`` the risk layer's per-account state, updated (see :func:`~envs.sim.risk.apply_risk`).
    :param risk_pos: ``(2, N, 1)`` the risk layer's per-symbol state, updated.
    :param risk_counts: ``(N, len(RULES))`` the risk layer's interventions per rule, incremented.
    :param obs: the ``(N, D)`` float32 observations to write.
    :param rewards: out: the log return (``WIPED_OUT_REWARD`` on a wipe-out).
    :param terminated: out: wiped out.
    :param truncated: out: at the episode's last bar and not wiped out.
    :param equity_out: out: equity after the step.
    :param cash_out: out: cash after the step.
    :param t_out: out: the new bar.
    """
    mode, fill_field, window_size = layout[MODE], layout[FILL_FIELD], layout[WINDOW]
    low, max_leverage, c = params[LOW_WEIGHT], params[MAX_LEVERAGE], params[COMMISSION]
    per_share, k, whole = params[PER_SHARE], params[IMPACT], params[WHOLE] != 0.0
    band, fee_rate, choices = params[BAND], params[BORROW], params[CHOICES:]
    min_qty = params[MIN_QTY]
    cash, equity, peak = acct[CASH], acct[EQUITY], acct[PEAK]
    shares, avg_cost, target = pos[SHARES], pos[AVG_COST], pos[TARGET]
    t, end = clock[T], clock[END]
    n = actions.shape[0]
    actions = actions.reshape(n, -1)
    wants = np.empty(n)
    for i in range(n):
        wants[i] = _target_weight(actions, i, mode, choices, low, max_leverage)
        if math.isnan(wants[i]):
            return -1 - i
    risk = risk_params.size > 0
    closes = bars[:, :, CLOSE]
    weight, allowed, force = np.empty(1), np.empty(1), np.zeros(1, dtype=np.bool_)
    no_log = np.empty((0, 7))
    n_done = 0
    for i in range(n):
        want = wants[i]
        held = shares[i, 0]
        money = cash[i]
        t0 = t[i]
        t1 = t0 + 1
        old = target[i, 0]
        if risk:
            # The single env's RiskState: the account at bar t0's close.
            weight[0] = held * bars[t0, 0, CLOSE] / equity[i] if equity[i] > 0.0 else 0.0
            allowed[0] = want
            apply_risk_row(risk_params, i, t0, equity[i], weight, shares[i], avg_cost[i], closes[t0], closes, t0,
                      allowed, force, risk_acct, risk_pos, risk_counts, no_log, 0)
            want = allowed[0]
        # One symbol's data has one calendar, so each of its bars is open (MarketData.tradable is None).
        if _should_trade(want, old, band, True, force[0]):
            filled_cash, filled, traded, price, _, _ = _fill_one(
                money, held, want, bars[t1, 0, fill_field], bars[t1, 0, LOW], bars[t1, 0, HIGH], c,
                per_share, k, whole, max_leverage, min_qty,
            )
            target[i, 0] = want
            if traded != 0.0:
                avg_cost[i, 0] = _update_cost_basis_one(held, avg_cost[i, 0], traded, price)[0]
                money = filled_cash
                shares[i, 0] = held = filled
        close = bars[t1, 0, CLOSE]
        if held < 0.0 and fee_rate != 0.0:
            money -= fee_rate * -held * close
        prev = equity[i]
        eq = money + held * close
        cash[i] = cash_out[i] = money
        equity[i] = equity_out[i] = eq
        if eq > peak[i]:
            peak[i] = eq
        t[i] = t_out[i] = t1
        wiped = eq <= 0.0
        ended = t1 >= end[i]
        terminated[i] = wiped
        truncated[i] = ended and not wiped
        rewards[i] = WIPED_OUT_REWARD if wiped else math.log(eq / prev)
        if wiped or ended:
            n_done += 1
        _write_window(obs, i, t1, feat, window_size)
        _write_stock_state(obs, i, held, avg_cost[i, 0], close, eq, peak[i])
    return n_done
