"""Small causal building blocks for rule signals over ``(T, S)`` arrays.

Each function's row ``t`` depends only on rows ``<= t`` of its inputs, so a signal built from them is the
same whether computed on the history up to ``t`` (a bot's ``act``) or on the whole series (``act_batch``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True where ``a`` moved from strictly below ``b`` on the previous bar to strictly above it now.

    The same test as ``backtesting.lib.crossover``; NaN (warm-up) compares False.

    :param a: ``(T, S)`` series.
    :param b: ``(T, S)`` series (or broadcastable).
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.zeros(a.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out


def hold_last(events: np.ndarray) -> np.ndarray:
    """Forward-fill event values (NaN = no event) down the time axis; 0 before the first event.

    Turns "enter long here, go short there" events into the position held in between.

    :param events: ``(T,)`` or ``(T, S)`` float array, NaN where nothing happens.
    """
    events = np.asarray(events, dtype=np.float64)
    filled = pd.DataFrame(events.reshape(len(events), -1), copy=False).ffill()
    return filled.fillna(0.0).to_numpy().reshape(events.shape)


def latch(enter: np.ndarray, exit: np.ndarray) -> np.ndarray:
    """True from a bar where ``enter`` holds until the next bar where ``exit`` holds (that bar is out).

    If both hold on the same bar, ``enter`` wins.

    :param enter: ``(T, S)`` boolean entry condition.
    :param exit: ``(T, S)`` boolean exit condition.
    """
    return hold_last(np.where(enter, 1.0, np.where(exit, 0.0, np.nan))) > 0
