"""The execution rules of :mod:`envs.sim.execution`, compiled with numba for the compiled loops.

The vector env's step (:mod:`envs.sim.vector_kernel`) and the backtest's replay (:mod:`envs.sim.replay`)
call these: the very functions the single env calls in Python, compiled once here rather than copied,
so every path trades by the same rule and fills by the same arithmetic.
"""

from __future__ import annotations

import numba

from envs.sim import execution

fill_one = numba.njit(cache=True)(execution.fill_one)
update_cost_basis_one = numba.njit(cache=True)(execution.update_cost_basis_one)
should_trade = numba.njit(cache=True)(execution.should_trade)
