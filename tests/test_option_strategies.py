"""Strategies as data: payoffs, max profit/loss, breakevens, Greeks, templates and the spread finder."""

from __future__ import annotations

import numpy as np
import pytest

from envs.data.synthetic import generate_market_with_state
from envs.options.chains import SyntheticChains
from envs.options.pricing import bsm_greeks, bsm_price
from envs.options.strategies import (
    MULTIPLIER,
    TEMPLATES,
    Leg,
    Strategy,
    best_vertical,
    breakevens,
    build_strategy,
    expiry_value,
    position_greeks,
    profit_range,
    rank_verticals,
)

E = np.datetime64("2024-06-21")
BACK = np.datetime64("2024-07-19")


def _s(name: str, *legs: Leg) -> Strategy:
    return Strategy(name, legs)


# (strategy, premium paid per unit, max profit, max loss, breakevens)
CASES = [
    (_s("bull_put", Leg("put", -1, 100.0, E), Leg("put", 1, 95.0, E)), -150.0, 150.0, 350.0, [98.5]),
    (_s("bear_call", Leg("call", -1, 105.0, E), Leg("call", 1, 110.0, E)), -150.0, 150.0, 350.0, [106.5]),
    (_s("bull_call", Leg("call", 1, 100.0, E), Leg("call", -1, 110.0, E)), 400.0, 600.0, 400.0, [104.0]),
    (_s("bear_put", Leg("put", 1, 100.0, E), Leg("put", -1, 90.0, E)), 300.0, 700.0, 300.0, [97.0]),
    (_s("iron_condor", Leg("put", 1, 90.0, E), Leg("put", -1, 95.0, E), Leg("call", -1, 105.0, E),
        Leg("call", 1, 110.0, E)), -200.0, 200.0, 300.0, [93.0, 107.0]),
    (_s("covered_call", Leg("stock", MULTIPLIER), Leg("call", -1, 105.0, E)), 9800.0, 700.0, 9800.0, [98.0]),
    (_s("cash_secured_put", Leg("put", -1, 100.0, E)), -300.0, 300.0, 9700.0, [97.0]),
    (_s("long_straddle", Leg("put", 1, 100.0, E), Leg("call", 1, 100.0, E)), 800.0, np.inf, 800.0, [92.0, 108.0]),
    (_s("long_strangle", Leg("put", 1, 95.0, E), Leg("call", 1, 105.0, E)), 300.0, np.inf, 300.0, [92.0, 108.0]),
    (_s("short_call", Leg("call", -1, 100.0, E)), -250.0, 250.0, np.inf, [102.5]),
]


@pytest.mark.parametrize("strategy, premium, max_profit, max_loss, even", CASES, ids=[c[0].name for c in CASES])
def test_max_profit_loss_and_breakevens(strategy: Strategy, premium: float, max_profit: float, max_loss: float,
                                        even: list[float]) -> None:
    best, worst = profit_range(strategy, premium)
    assert best == pytest.approx(max_profit) and worst == pytest.approx(max_loss)
    np.testing.assert_allclose(breakevens(strategy, premium), even)
    # Brute force on a fine grid agrees wherever the answer is finite.
    grid = np.linspace(0.0, 400.0, 400_001)
    pnl = expiry_value(strategy, grid) - premium
    if np.isfinite(max_profit):
        assert pnl.max() == pytest.approx(max_profit)
    if np.isfinite(max_loss):
        assert -pnl.min() == pytest.approx(max_loss)


def test_expiry_value_is_intrinsic_per_contract() -> None:
    condor = CASES[4][0]
    np.testing.assert_allclose(expiry_value(condor, [80.0, 92.0, 100.0, 108.0, 120.0]),
                               [-500.0, -300.0, 0.0, -300.0, -500.0])


def test_calendar_needs_a_vol_and_peaks_at_the_strike() -> None:
    calendar = _s("calendar", Leg("call", -1, 100.0, E), Leg("call", 1, 100.0, BACK))
    with pytest.raises(ValueError, match="pass vol"):
        expiry_value(calendar, 100.0)
    debit = 150.0
    best, worst = profit_range(calendar, debit, vol=0.25)
    at_strike = bsm_price(100.0, 100.0, 28 / 365.0, 0.0, 0.0, 0.25, True) * MULTIPLIER - debit
    assert best == pytest.approx(at_strike, rel=1e-3)
    assert worst == pytest.approx(debit, rel=1e-3)
    lo, hi = breakevens(calendar, debit, vol=0.25)
    assert lo < 100.0 < hi


def test_position_greeks_sum_the_legs() -> None:
    condor = CASES[4][0]
    vols = np.array([0.3, 0.28, 0.24, 0.25])
    date = np.datetime64("2024-05-22")
    g = position_greeks(condor, 101.0, date, vols, units=3, rate=0.02)
    strike, expiry, is_call, contracts = condor.arrays()
    legs = bsm_greeks(101.0, strike, 30 / 365.0, 0.02, 0.0, vols, is_call)
    for name in ("delta", "gamma", "vega", "theta", "rho"):
        assert g[name] == pytest.approx(3 * MULTIPLIER * float(np.dot(contracts, getattr(legs, name))))
    covered = CASES[5][0]
    cc = position_greeks(covered, 101.0, date, np.array([0.25]))
    call_delta = bsm_greeks(101.0, 105.0, 30 / 365.0, 0.0, 0.0, 0.25, True).delta
    assert cc["delta"] == pytest.approx(MULTIPLIER * (1.0 - call_delta))


@pytest.fixture(scope="module")
def chain():
    data, state = generate_market_with_state(n_symbols=1, n_days=400, seed=5)
    return SyntheticChains.from_market(data, state=state).chain(300)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_pick_strikes_by_delta_and_expiry_by_dte(chain, name: str) -> None:
    strategy = build_strategy(name, chain, 0.30, 30)
    assert strategy.name == name and strategy.options
    dtes = np.unique(chain.dte)
    front_dte = int(chain.dte[chain.expiry == strategy.first_expiry][0])
    assert abs(front_dte - 30) == np.min(np.abs(dtes - 30))
    for leg in strategy.options:
        listed = (chain.expiry == leg.expiry) & (chain.is_call == (leg.kind == "call"))
        assert leg.strike in chain.strike[listed]


def test_short_legs_sit_nearest_the_target_delta(chain) -> None:
    condor = build_strategy("iron_condor", chain, 0.15, 45)
    long_put, short_put, short_call, long_call = (leg.strike for leg in condor.legs)
    assert long_put < short_put < chain.spot < short_call < long_call
    expiry = condor.first_expiry
    for leg in condor.legs[1:3]:
        listed = (chain.expiry == expiry) & (chain.is_call == (leg.kind == "call"))
        deltas = np.abs(chain.quotes.greeks.delta[listed])
        chosen = deltas[chain.strike[listed] == leg.strike][0]
        assert abs(chosen - 0.15) == pytest.approx(np.min(np.abs(deltas - 0.15)))


def test_template_errors(chain) -> None:
    with pytest.raises(ValueError, match="unknown strategy template 'butterfly'"):
        build_strategy("butterfly", chain, 0.3, 30)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        build_strategy("bull_put", chain, 1.5, 30)
    with pytest.raises(ValueError, match="needs a positive strike and an expiry"):
        Leg("call", 1, -5.0, E)


def test_vertical_finder_scores_match_a_monte_carlo(chain) -> None:
    table = rank_verticals(chain, "bullish", delta_band=(0.2, 0.4), dte_band=(20, 60), drift=0.2, vol=0.3)
    assert set(table["strategy"]) == {"bull_put", "bull_call"}
    assert table["near_delta"].abs().between(0.2, 0.4).all() and table["dte"].between(20, 60).all()
    assert table["return_on_risk"].is_monotonic_decreasing
    strategy, row = best_vertical(chain, "bullish", delta_band=(0.2, 0.4), dte_band=(20, 60), drift=0.2, vol=0.3)
    tau = row["dte"] / 365.0
    z = np.random.default_rng(0).standard_normal(400_000)
    terminal = chain.spot * np.exp(0.2 * tau + 0.3 * np.sqrt(tau) * z - 0.5 * 0.09 * tau)
    simulated = float(np.mean(expiry_value(strategy, terminal))) - row["premium"]
    assert simulated == pytest.approx(row["expected_value"], abs=3 * float(np.std(expiry_value(strategy, terminal)))
                                      / np.sqrt(z.size) + 1e-6)
    best, worst = profit_range(strategy, row["premium"])
    assert best == pytest.approx(row["max_profit"]) and worst == pytest.approx(row["max_loss"])
    bear, _ = best_vertical(chain, "bearish")
    assert bear.name in ("bear_call", "bear_put")
    with pytest.raises(ValueError, match="view must be"):
        rank_verticals(chain, "sideways")  # type: ignore[arg-type]
