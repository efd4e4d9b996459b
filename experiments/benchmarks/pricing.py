"""Pricing benchmark: our vectorised BSM price + analytic Greeks and implied vol against the peers.

Same 1,000,000 European options for everyone (quick mode: 100,000): spot 100, log-moneyness ~ N(0, 0.25),
expiry 1 day to 2 years in whole days (ACT/365), rate 0-6%, dividend yield 0-3%, vol 8-90%, half calls.

- ours: :func:`envs.options.pricing.bsm_greeks` (price, delta, gamma, vega, theta, rho) and
  :func:`envs.options.pricing.implied_vol_with_reason`;
- py_vollib_vectorized 0.1.1 (numba; its Greeks are finite differences): ``vectorized_black_scholes_merton``
  plus ``get_all_greeks``, and ``vectorized_implied_volatility``; its JIT is warmed up first;
- QuantLib, one option at a time in a Python loop (``AnalyticEuropeanEngine``, ``impliedVolatility``) on a
  random subsample, its time extrapolated to the full size.

Timings are wall clock, best of a few repetitions (the machine is shared). Accuracy is reported as max
absolute differences (py_vollib's vega converted from per 1%; its theta is a one-day decay and its rho
bumps rate and dividend yield together, so those two are not compared).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import numpy as np

from envs.options.pricing import bsm_greeks, bsm_price, implied_vol_with_reason

log = logging.getLogger(__name__)

GREEK_NAMES = ("price", "delta", "gamma", "vega", "theta", "rho")


def _options(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = rng.integers(1, 731, n)
    return {
        "spot": np.full(n, 100.0),
        "strike": 100.0 * np.exp(rng.normal(0.0, 0.25, n)),
        "days": days,
        "t": days / 365.0,
        "rate": rng.uniform(0.0, 0.06, n),
        "div_yield": rng.uniform(0.0, 0.03, n),
        "vol": rng.uniform(0.08, 0.9, n),
        "is_call": rng.random(n) < 0.5,
    }


def _best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _quantlib(opts: dict[str, np.ndarray], prices: np.ndarray, sample: np.ndarray) -> tuple[float, float,
                                                                                                dict, np.ndarray]:
    """Price, Greeks and implied vol one option at a time; returns per-option seconds and the results."""
    import QuantLib as ql

    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot, rate, div, vol = (ql.SimpleQuote(0.0) for _ in range(4))
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(div), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rate), dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)),
    )
    engine = ql.AnalyticEuropeanEngine(process)
    greeks = {name: np.empty(sample.size) for name in GREEK_NAMES}
    ivs = np.empty(sample.size)

    def option(i: int) -> "ql.VanillaOption":
        kind = ql.Option.Call if opts["is_call"][i] else ql.Option.Put
        expiry = ql.EuropeanExercise(today + int(opts["days"][i]))
        spot.setValue(float(opts["spot"][i]))
        rate.setValue(float(opts["rate"][i]))
        div.setValue(float(opts["div_yield"][i]))
        vol.setValue(float(opts["vol"][i]))
        contract = ql.VanillaOption(ql.PlainVanillaPayoff(kind, float(opts["strike"][i])), expiry)
        contract.setPricingEngine(engine)
        return contract

    start = time.perf_counter()
    for k, i in enumerate(sample):
        contract = option(i)
        greeks["price"][k] = contract.NPV()
        greeks["delta"][k] = contract.delta()
        greeks["gamma"][k] = contract.gamma()
        greeks["vega"][k] = contract.vega()
        greeks["theta"][k] = contract.theta()
        greeks["rho"][k] = contract.rho()
    greeks_seconds = (time.perf_counter() - start) / sample.size

    start = time.perf_counter()
    for k, i in enumerate(sample):
        contract = option(i)
        try:
            ivs[k] = contract.impliedVolatility(float(prices[i]), process, 1e-12, 1000, 1e-8, 10.0)
        except RuntimeError:
            ivs[k] = np.nan
    iv_seconds = (time.perf_counter() - start) / sample.size
    return greeks_seconds, iv_seconds, greeks, ivs


def run(quick: bool) -> list[str]:
    """Run ours and the peers on the same options; return the ratio lines.

    :param quick: 100,000 options and a 200-option QuantLib sample instead of 1,000,000 and 2,000.
    :return: summary lines with times, ratios against the goals and max differences.
    """
    warnings.filterwarnings("ignore", module="py_vollib_vectorized")
    import py_vollib_vectorized as pvv

    n = 100_000 if quick else 1_000_000
    n_ql = 200 if quick else 2_000
    repeats = 2 if quick else 3
    o = _options(n)
    args = (o["spot"], o["strike"], o["t"], o["rate"], o["div_yield"])
    flag = np.where(o["is_call"], "c", "p")
    prices = bsm_price(*args, o["vol"], o["is_call"])

    def pvv_greeks() -> dict[str, np.ndarray]:
        price = pvv.vectorized_black_scholes_merton(flag, o["spot"], o["strike"], o["t"], o["rate"], o["vol"],
                                                    o["div_yield"], return_as="numpy")
        out = pvv.get_all_greeks(flag, o["spot"], o["strike"], o["t"], o["rate"], o["vol"], o["div_yield"],
                                 model="black_scholes_merton", return_as="dict")
        return {"price": np.asarray(price), **{k: np.asarray(v) for k, v in out.items()}}

    def pvv_iv() -> np.ndarray:
        return np.asarray(pvv.vectorized_implied_volatility(
            prices, o["spot"], o["strike"], o["t"], o["rate"], flag, q=o["div_yield"],
            model="black_scholes_merton", return_as="numpy", on_error="ignore"))

    log.info("pricing: warming up py_vollib_vectorized's JIT")
    small = _options(100, seed=1)
    pvv.get_all_greeks(np.where(small["is_call"], "c", "p"), small["spot"], small["strike"], small["t"],
                       small["rate"], small["vol"], small["div_yield"], model="black_scholes_merton",
                       return_as="dict")
    pvv_iv()

    # Alternate ours and the peer so both see the same machine load.
    ours_g, peer_g, ours_iv, peer_iv = np.inf, np.inf, np.inf, np.inf
    for _ in range(repeats):
        t, ours = _best_time(lambda: bsm_greeks(*args, o["vol"], o["is_call"]), 1)
        ours_g = min(ours_g, t)
        t, peer = _best_time(pvv_greeks, 1)
        peer_g = min(peer_g, t)
        t, (iv, reason) = _best_time(lambda: implied_vol_with_reason(prices, *args, o["is_call"]), 1)
        ours_iv = min(ours_iv, t)
        t, peer_vol = _best_time(pvv_iv, 1)
        peer_iv = min(peer_iv, t)
        log.info("pricing: greeks ours %.3f s / peer %.3f s, iv ours %.3f s / peer %.3f s",
                 ours_g, peer_g, ours_iv, peer_iv)

    sample = np.random.default_rng(2).choice(n, n_ql, replace=False)
    ql_g_each, ql_iv_each, ql_greeks, ql_ivs = _quantlib(o, prices, sample)
    ql_g, ql_iv = ql_g_each * n, ql_iv_each * n

    # py_vollib's vega is per 1% of vol. Its theta (a one-day decay) and rho (which bumps the rate and the
    # dividend yield together) are different quantities, so they are not compared.
    scale = {"price": 1.0, "delta": 1.0, "gamma": 1.0, "vega": 0.01}
    ours_greeks = {name: getattr(ours, name) for name in GREEK_NAMES}
    diff_pvv = {k: float(np.nanmax(np.abs(ours_greeks[k] * s - peer[k]))) for k, s in scale.items()}
    diff_ql = {k: float(np.max(np.abs(ours_greeks[k][sample] - ql_greeks[k]))) for k in GREEK_NAMES}
    ok = reason == 0
    # Only where the price pins the vol down: a 1e-8 vol move must change the price by more than round-off.
    resolvable = ok & (ours.vega * 1e-8 > 1e-14 * np.maximum(prices, 1.0))
    iv_true = float(np.max(np.abs(iv[resolvable] - o["vol"][resolvable])))
    both = resolvable & np.isfinite(peer_vol)
    iv_pvv = float(np.max(np.abs(iv[both] - peer_vol[both])))
    ql_ok = resolvable[sample] & np.isfinite(ql_ivs)
    iv_ql = float(np.max(np.abs(iv[sample][ql_ok] - ql_ivs[ql_ok])))
    log.info("pricing: IV reasons %s; %d of %d resolvable", np.bincount(reason, minlength=5).tolist(),
             int(resolvable.sum()), n)

    def fmt(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.1e}" for k, v in d.items())

    return [
        f"pricing: price+5 greeks {n:,} options: ours {ours_g:.3f} s, py_vollib_vectorized {peer_g:.3f} s, "
        f"ratio {peer_g / ours_g:.1f}x (goal >= 10x); QuantLib loop ~{ql_g:.1f} s "
        f"(extrapolated from {n_ql:,}), ratio {ql_g / ours_g:.0f}x",
        f"pricing: implied vol {n:,} prices: ours {ours_iv:.3f} s, py_vollib_vectorized {peer_iv:.3f} s, "
        f"ratio {peer_iv / ours_iv:.1f}x (goal >= 3x); QuantLib loop ~{ql_iv:.1f} s "
        f"(extrapolated from {n_ql:,}), ratio {ql_iv / ours_iv:.0f}x",
        f"pricing: max abs diff vs py_vollib_vectorized (finite-difference Greeks; vega per 1%): {fmt(diff_pvv)}",
        f"pricing: max abs diff vs QuantLib AnalyticEuropeanEngine ({n_ql:,} options): {fmt(diff_ql)}",
        f"pricing: implied vol max abs error: vs true vol {iv_true:.1e}, vs py_vollib_vectorized {iv_pvv:.1e}, "
        f"vs QuantLib {iv_ql:.1e} (resolvable prices only)",
    ]
