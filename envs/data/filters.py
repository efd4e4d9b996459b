"""``lfilter``: scipy's linear recursive filter, imported on first use.

Importing ``scipy.signal`` takes seconds (it pulls in ``scipy.stats``), and the modules that run recursions
with it (indicators, the synthetic and calibrated markets) are imported by every command, including the
ones that never compute a bar (``--help``, ``backtest --list``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def lfilter(
    b: Any, a: Any, x: np.ndarray, axis: int = -1, zi: Any = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`scipy.signal.lfilter` with the same arguments and return value.

    :param b: numerator coefficients.
    :param a: denominator coefficients.
    :param x: input array.
    :param axis: axis along which to filter.
    :param zi: initial conditions (then the final conditions are returned too).
    """
    from scipy.signal import lfilter as scipy_lfilter

    return scipy_lfilter(b, a, x, axis=axis, zi=zi)
