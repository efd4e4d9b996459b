"""Pricing against QuantLib: European price and Greeks, implied vol, American options on a grid.

The grid covers short and long expiries, deep in/out of the money strikes, zero and non-zero rates and
dividends, low and high vol. QuantLib is set up as its users would (flat term structures, ACT/365, an
``AnalyticEuropeanEngine``), and our time to expiry is the same day count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from envs.options.pricing import (
    IVReason,
    american_price,
    bsm_greeks,
    bsm_price,
    early_exercise_premium,
    implied_vol,
    implied_vol_with_reason,
)

ql = pytest.importorskip("QuantLib")

SPOT = 100.0
STRIKES = (40.0, 80.0, 100.0, 120.0, 250.0)
DAYS = (1, 7, 30, 365, 3650)
RATES = (0.0, 0.05)
DIVIDENDS = (0.0, 0.03)
VOLS = (0.05, 0.3, 1.5)
TODAY = ql.Date(15, 3, 2024)


def _grid() -> dict[str, np.ndarray]:
    rows = list(itertools.product(STRIKES, DAYS, RATES, DIVIDENDS, VOLS, (True, False)))
    cols = list(zip(*rows))
    return {
        "strike": np.array(cols[0]),
        "days": np.array(cols[1]),
        "t": np.array(cols[1]) / 365.0,
        "rate": np.array(cols[2]),
        "div_yield": np.array(cols[3]),
        "vol": np.array(cols[4]),
        "is_call": np.array(cols[5]),
    }


def _process(rate: float, div: float, vol: float) -> "ql.BlackScholesMertonProcess":
    dc = ql.Actual365Fixed()
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(SPOT)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, div, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), vol, dc)),
    )


def _option(strike: float, days: int, is_call: bool, american: bool = False) -> "ql.VanillaOption":
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    exercise = (ql.AmericanExercise(TODAY, TODAY + days) if american else ql.EuropeanExercise(TODAY + days))
    return ql.VanillaOption(payoff, exercise)


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    ql.Settings.instance().evaluationDate = TODAY
    g = _grid()
    names = ("price", "delta", "gamma", "vega", "theta", "rho", "iv")
    ref = {name: np.empty(len(g["strike"])) for name in names}
    for i in range(len(g["strike"])):
        process = _process(g["rate"][i], g["div_yield"][i], g["vol"][i])
        option = _option(g["strike"][i], int(g["days"][i]), bool(g["is_call"][i]))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        for name, method in (("price", option.NPV), ("delta", option.delta), ("gamma", option.gamma),
                             ("vega", option.vega), ("theta", option.theta), ("rho", option.rho)):
            ref[name][i] = method()
        try:
            ref["iv"][i] = option.impliedVolatility(ref["price"][i], process, 1e-12, 1000, 1e-7, 10.0)
        except RuntimeError:  # QuantLib gives up where the price does not pin the vol down
            ref["iv"][i] = np.nan
    g["ref"] = ref
    return g


def _resolvable(g: dict) -> np.ndarray:
    """Prices that pin the vol down: a 1e-7 vol move changes the price by much more than round-off."""
    return g["ref"]["vega"] * 1e-7 > 1e-13 * np.maximum(g["ref"]["price"], 1.0)


def test_european_price_and_greeks_match_quantlib(grid: dict) -> None:
    ours = bsm_greeks(SPOT, grid["strike"], grid["t"], grid["rate"], grid["div_yield"], grid["vol"],
                      grid["is_call"])
    for name in ("price", "delta", "gamma", "vega", "theta", "rho"):
        np.testing.assert_allclose(getattr(ours, name), grid["ref"][name], rtol=0, atol=1e-8, err_msg=name)
    price_only = bsm_price(SPOT, grid["strike"], grid["t"], grid["rate"], grid["div_yield"], grid["vol"],
                           grid["is_call"])
    np.testing.assert_allclose(price_only, grid["ref"]["price"], rtol=0, atol=1e-8)


def test_implied_vol_matches_quantlib_and_truth(grid: dict) -> None:
    vol, reason = implied_vol_with_reason(grid["ref"]["price"], SPOT, grid["strike"], grid["t"], grid["rate"],
                                          grid["div_yield"], grid["is_call"])
    resolvable = _resolvable(grid)
    assert resolvable.sum() > 300  # the grid is mostly resolvable, the check is not vacuous
    assert np.all(reason[resolvable] == IVReason.OK)
    np.testing.assert_allclose(vol[resolvable], grid["vol"][resolvable], rtol=0, atol=1e-6)
    with_ql = resolvable & np.isfinite(grid["ref"]["iv"])
    np.testing.assert_allclose(vol[with_ql], grid["ref"]["iv"][with_ql], rtol=0, atol=1e-6)


def test_implied_vol_reprices_wherever_it_answers(grid: dict) -> None:
    """Where the price barely depends on vol, any answer must still reproduce the price."""
    price = grid["ref"]["price"]
    vol, reason = implied_vol_with_reason(price, SPOT, grid["strike"], grid["t"], grid["rate"],
                                          grid["div_yield"], grid["is_call"])
    ok = reason == IVReason.OK
    assert np.all(np.isfinite(vol[ok])) and np.all(np.isnan(vol[~ok]))
    assert set(np.unique(reason[~ok])) <= {IVReason.BELOW_INTRINSIC}
    repriced = bsm_price(SPOT, grid["strike"][ok], grid["t"][ok], grid["rate"][ok], grid["div_yield"][ok],
                         vol[ok], grid["is_call"][ok])
    np.testing.assert_allclose(repriced, price[ok], rtol=1e-10, atol=1e-12)


def test_implied_vol_wings_random() -> None:
    """Very short to long expiries, strikes far in the wings, tiny to huge vols: round trip to 1e-6."""
    rng = np.random.default_rng(7)
    n = 200_000
    t = np.exp(rng.uniform(np.log(1 / 365 / 24), np.log(10.0), n))
    vol = np.exp(rng.uniform(np.log(0.01), np.log(5.0), n))
    strike = SPOT * np.exp(rng.normal(0.0, 1.0, n) * vol * np.sqrt(t) * 3.0)
    rate, div = rng.uniform(-0.01, 0.1, n), rng.uniform(0.0, 0.08, n)
    is_call = rng.random(n) < 0.5
    g = bsm_greeks(SPOT, strike, t, rate, div, vol, is_call)
    iv, reason = implied_vol_with_reason(g.price, SPOT, strike, t, rate, div, is_call)
    resolvable = g.vega * 1e-7 > 1e-13 * np.maximum(g.price, 1.0)
    assert np.all(reason[resolvable] == IVReason.OK)
    assert np.max(np.abs(iv[resolvable] - vol[resolvable])) < 1e-6


def test_implied_vol_reasons_instead_of_exceptions() -> None:
    call = bsm_price(100.0, 100.0, 0.5, 0.02, 0.0, 0.2, True)
    prices = np.array([call, 0.5 * 1e-3, 60.0, 150.0, np.nan, call, call])
    strikes = np.array([100.0, 50.0, 40.0, 100.0, 100.0, -1.0, 100.0])
    ts = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
    vol, reason = implied_vol_with_reason(prices, 100.0, strikes, ts, 0.02, 0.0, True)
    assert vol[0] == pytest.approx(0.2, abs=1e-12)
    assert reason.tolist() == [IVReason.OK, IVReason.BELOW_INTRINSIC, IVReason.BELOW_INTRINSIC,
                               IVReason.ABOVE_UPPER_BOUND, IVReason.INVALID_INPUT, IVReason.INVALID_INPUT,
                               IVReason.INVALID_INPUT]
    assert np.all(np.isnan(vol[1:]))
    # A put priced exactly at its intrinsic value has no positive implied vol.
    put_vol, put_reason = implied_vol_with_reason(10.0, 90.0, 100.0, 0.25, 0.0, 0.0, False)
    assert np.isnan(put_vol) and put_reason == IVReason.BELOW_INTRINSIC
    assert np.isnan(implied_vol(0.0, 100.0, 100.0, 1.0, 0.0, 0.0, False))


def test_broadcasting_and_shapes() -> None:
    strikes = np.array([[90.0], [100.0], [110.0]])
    vols = np.array([0.1, 0.2, 0.3, 0.4])
    g = bsm_greeks(100.0, strikes, 0.5, 0.01, 0.0, vols, True)
    assert g.price.shape == (3, 4) and g.theta.shape == (3, 4)
    iv = implied_vol(g.price, 100.0, strikes, 0.5, 0.01, 0.0, True)
    np.testing.assert_allclose(iv, np.broadcast_to(vols, (3, 4)), atol=1e-12)
    assert bsm_price(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, True).shape == ()


def test_put_call_parity_and_expiry_limits() -> None:
    k = np.array([80.0, 100.0, 120.0])
    call = bsm_price(100.0, k, 0.75, 0.03, 0.01, 0.25, True)
    put = bsm_price(100.0, k, 0.75, 0.03, 0.01, 0.25, False)
    np.testing.assert_allclose(call - put, 100.0 * np.exp(-0.01 * 0.75) - k * np.exp(-0.03 * 0.75), atol=1e-12)
    expired = bsm_greeks(100.0, k, 0.0, 0.03, 0.01, 0.25, np.array([True, True, False]))
    np.testing.assert_allclose(expired.price, [20.0, 0.0, 20.0])
    np.testing.assert_allclose(expired.delta, [1.0, 0.0, -1.0])
    assert np.all(expired.gamma == 0) and np.all(expired.vega == 0) and np.all(expired.theta == 0)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="spot must be positive"):
        bsm_price(np.array([100.0, -1.0]), 100.0, 1.0, 0.0, 0.0, 0.2, True)
    with pytest.raises(ValueError, match="vol must be non-negative"):
        bsm_greeks(100.0, 100.0, 1.0, 0.0, 0.0, -0.2, True)
    with pytest.raises(ValueError, match="rate must be finite"):
        bsm_price(100.0, 100.0, 1.0, np.nan, 0.0, 0.2, True)
    with pytest.raises(TypeError, match="is_call must be boolean"):
        bsm_price(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "c")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        american_price(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, False, steps=0)


AMERICAN = list(itertools.product((80.0, 100.0, 130.0), (30, 365, 1095), (0.0, 0.06), (0.0, 0.04),
                                  (0.15, 0.6), (True, False)))


@pytest.fixture(scope="module")
def american_grid() -> dict[str, np.ndarray]:
    ql.Settings.instance().evaluationDate = TODAY
    cols = [np.array(c) for c in zip(*AMERICAN)]
    strike, days, rate, div, vol, is_call = cols
    same_tree, converged = np.empty(len(AMERICAN)), np.empty(len(AMERICAN))
    for i in range(len(AMERICAN)):
        process = _process(rate[i], div[i], vol[i])
        option = _option(strike[i], int(days[i]), bool(is_call[i]), american=True)
        option.setPricingEngine(ql.BinomialVanillaEngine(process, "lr", 401))
        same_tree[i] = option.NPV()
        option.setPricingEngine(ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme()))
        converged[i] = option.NPV()
    return {"strike": strike, "t": days / 365.0, "rate": rate, "div_yield": div, "vol": vol,
            "is_call": is_call.astype(bool), "same_tree": same_tree, "converged": converged}


def test_american_matches_quantlib(american_grid: dict) -> None:
    g = american_grid
    args = (SPOT, g["strike"], g["t"], g["rate"], g["div_yield"], g["vol"], g["is_call"])
    # One tree: the same Leisen-Reimer tree as QuantLib's "lr" engine (calls without dividends are priced
    # as the exact European, which the tree only approximates).
    single = american_price(*args, steps=401, extrapolate=False)
    no_early = g["is_call"] & (g["div_yield"] == 0)
    np.testing.assert_allclose(single[~no_early], g["same_tree"][~no_early], rtol=0, atol=1e-9)
    # The default (two trees, extrapolated): within 1e-3 of QuantLib's high-precision American engine.
    np.testing.assert_allclose(american_price(*args), g["converged"], rtol=0, atol=1e-3)


def test_early_exercise_premium() -> None:
    k = np.array([80.0, 100.0, 130.0])
    put_premium = early_exercise_premium(100.0, k, 1.0, 0.05, 0.0, 0.25, False, steps=401)
    assert np.all(put_premium > 0) and put_premium[2] > put_premium[0]
    call_premium = early_exercise_premium(100.0, k, 1.0, 0.05, 0.0, 0.25, True, steps=401)
    np.testing.assert_array_equal(call_premium, 0.0)  # never exercise a call early without dividends
    dividend_call = early_exercise_premium(100.0, 60.0, 1.0, 0.01, 0.08, 0.2, True, steps=401)
    assert dividend_call > 0


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_of_scalars_at_expiry_and_zero_vol(is_call: bool) -> None:
    # t=0 and vol=0 are documented limits: intrinsic value of the forward, delta a step, the rest zero.
    at_expiry = bsm_greeks(100.0, 90.0, 0.0, 0.01, 0.0, 0.2, is_call)
    assert float(at_expiry.price) == (10.0 if is_call else 0.0)
    assert float(at_expiry.delta) == (1.0 if is_call else 0.0) and float(at_expiry.gamma) == 0.0
    zero_vol = bsm_greeks(100.0, 90.0, 0.5, 0.0, 0.0, 0.0, is_call)
    assert float(zero_vol.price) == pytest.approx(10.0 if is_call else 0.0)
    assert np.ndim(zero_vol.price) == 0 and float(zero_vol.vega) == 0.0
