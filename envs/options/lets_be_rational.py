"""Normalised implied volatility after Peter Jäckel's "Let's Be Rational" (Wilmott, 2015), vectorised.

The reference code is © 2013-2014 Peter Jäckel ("permission to use, copy, modify, and distribute this
software is freely granted, provided that this notice is preserved"); this is a numpy re-implementation
of its algorithm for whole arrays. :func:`envs.options.pricing.implied_vol_with_reason` is the public entry point;
this module works in normalised coordinates only:

- ``x = ln(F/K) <= 0``: every option is first mapped to the out-of-the-money call with the same time value,
- ``s = vol * sqrt(t)``,
- ``beta``: undiscounted time value divided by ``sqrt(F K)``, so that
  ``b(x, s) = Phi(x/s + s/2) e^{x/2} - Phi(x/s - s/2) e^{-x/2}`` and ``0 < beta < b_max = e^{x/2}``.

Two points ``s_c = sqrt(-2x)`` (the inflexion point of b in s) and one tangent step either side split beta
into four branches. The two middle ones are guessed by a rational cubic in (beta, s); the outer ones
interpolate a map that is nearly linear there and invert it. Two third-order Householder steps on the
branch's own objective (1/ln b, b, or ln(b_max - b)) then reach machine precision. Elements are sorted by
branch inside each chunk so every branch works on contiguous slices. Anything the fast path does not settle
(the last step still large, or a NaN) goes to a bracketed Newton/bisection solver.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))
_INV_SQRT_2PI = 1.0 / _SQRT_2PI
_SQRT_3 = float(np.sqrt(3.0))
_TWO_PI_OVER_SQRT_27 = 2.0 * np.pi / np.sqrt(27.0)
_DBL_EPS = float(np.finfo(float).eps)
_TINY = float(np.finfo(float).tiny)
_SQRT_DBL_MAX = float(np.sqrt(np.finfo(float).max))
_R_MIN = -(1.0 - np.sqrt(_DBL_EPS))  # smallest rational cubic control parameter (Delbourgo-Gregory)
_R_MAX = 2.0 / (_DBL_EPS * _DBL_EPS)  # control parameter that degenerates to linear interpolation
CHUNK = 65536  # large enough to amortise numpy call overhead, small enough to stay in L2/L3 cache
# After a third-order step of relative size e the error left is O(e^3): 1e-5 leaves ~1e-15.
_STEP_TOLERANCE = 1e-5
_MIDDLE_STEP_TOLERANCE = 5e-3  # the largest first step seen in the middle branches is 3.3e-3

_LOWEST, _LOWER_MID, _UPPER_MID, _HIGH_MID, _HIGHEST = 0, 1, 2, 3, 4  # branch order after sorting


def normalised_call(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Normalised Black call value ``b(x, s)`` for ``x <= 0``.

    :param x: log-moneyness ln(F/K), <= 0.
    :param s: total volatility vol * sqrt(t), > 0.
    :return: b(x, s), clipped at 0.
    """
    b_max = np.exp(0.5 * x)
    return _call(x, s, b_max, 1.0 / b_max)


def _call(x: np.ndarray, s: np.ndarray, b_max: np.ndarray, inv_b_max: np.ndarray) -> np.ndarray:
    h = x / s
    t = 0.5 * s
    b = ndtr(h + t)
    b *= b_max
    h -= t
    low = ndtr(h)
    low *= inv_b_max
    b -= low
    return np.maximum(b, 0.0, out=b)


def _vega(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    h = x / s
    h *= h
    h += 0.25 * s * s
    h *= -0.5
    np.exp(h, out=h)
    h *= _INV_SQRT_2PI
    return h


def _rational_cubic(x, x_l, x_r, y_l, y_r, d_l, d_r, r):  # noqa: ANN001, ANN202 - array kernel
    """Delbourgo-Gregory rational cubic through (x_l, y_l), (x_r, y_r) with end slopes d_l, d_r."""
    h = x_r - x_l
    t = (x - x_l) / h
    omt = 1.0 - t
    cubic = (y_r * t * t * t + (r * y_r - h * d_r) * t * t * omt + (r * y_l + h * d_l) * t * omt * omt
             + y_l * omt * omt * omt) / (1.0 + (r - 3.0) * t * omt)
    return np.where(r >= _R_MAX, y_r * t + y_l * omt, cubic)


def _min_control(d_l, d_r, slope, prefer_shape: bool):  # noqa: ANN001, ANN202 - array kernel
    """Smallest control parameter keeping the cubic monotone and convex/concave (D-G eqs. 3.8, 3.18)."""
    fallback = _R_MAX if prefer_shape else -np.inf
    monotonic = (d_l * slope >= 0.0) & (d_r * slope >= 0.0)
    convex = (d_l <= slope) & (slope <= d_r)
    concave = (d_l >= slope) & (slope >= d_r)
    r1 = np.where(np.abs(slope) >= _TINY, (d_r + d_l) / slope, fallback)
    r1 = np.where(monotonic, r1, -np.inf)
    spread = d_r - d_l
    safe = (np.abs(slope - d_l) >= _TINY) & (np.abs(d_r - slope) >= _TINY)
    r2 = np.where(safe, np.maximum(np.abs(spread / (d_r - slope)), np.abs(spread / (slope - d_l))), fallback)
    r2 = np.where(convex | concave, r2, _R_MAX if prefer_shape else -np.inf)
    if prefer_shape:
        r2 = np.where(convex | concave | monotonic, r2, -np.inf)
    return np.maximum(_R_MIN, np.maximum(r1, r2))


def _control(num, den, d_l, d_r, slope, prefer_shape: bool):  # noqa: ANN001, ANN202 - array kernel
    """Control parameter matching a second derivative (num/den), clipped to preserve the shape."""
    r = np.where(np.abs(den) < _TINY, np.where(num > 0, _R_MAX, _R_MIN), num / den)
    r = np.where(np.abs(num) < _TINY, 0.0, r)
    return np.maximum(r, _min_control(d_l, d_r, slope, prefer_shape))


def _middle_guess(beta, b_l, b_r, s_l, s_r, d_l, d_r, fit_right: bool):  # noqa: ANN001, ANN202
    """Rational cubic s(beta) between two points with slopes 1/vega and zero curvature at the b_c end.

    b(s) is convex below s_c and concave above, so s(beta) is monotone and concave (lower segment) or
    convex (upper segment): the shape-preserving bounds (D-G eqs. 3.8, 3.18) need no case analysis.
    """
    slope = (s_r - s_l) / (b_r - b_l)
    spread = d_r - d_l  # the numerator 0.5 h s'' + (d_r - d_l) with s'' = 0 at the matched end
    right = d_r - slope
    left = slope - d_l
    fitted = spread / (right if fit_right else left)
    # fmax: a 0/0 from round-off drops out instead of turning the guess into NaN.
    r = np.fmax(np.fmax(fitted, (d_r + d_l) / slope), np.fmax(np.abs(spread / right), np.abs(spread / left)))
    return _rational_cubic(beta, b_l, b_r, s_l, s_r, d_l, d_r, np.fmax(r, _R_MIN))


def _lowest_guess(beta, x, s_l, b_l):  # noqa: ANN001, ANN202
    """Below b_l: interpolate f(beta) ~ (2pi/sqrt27)|x| Phi(-|x|/(sqrt3 s))^3 from 0 and invert it."""
    ax = -x
    z = ax / (_SQRT_3 * s_l)
    y = z * z
    s2 = s_l * s_l
    big_phi = ndtr(-z)
    phi = np.exp(-0.5 * y) * _INV_SQRT_2PI
    fpp = (np.pi / 6.0 * y / (s2 * s_l) * big_phi
           * (8.0 * _SQRT_3 * s_l * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * big_phi / phi)
           * np.exp(2.0 * y + 0.25 * s2))
    fp = 2.0 * np.pi * y * big_phi * big_phi * np.exp(y + 0.125 * s2)
    f_l = _TWO_PI_OVER_SQRT_27 * ax * big_phi * big_phi * big_phi
    slope = f_l / b_l
    r = _control(0.5 * b_l * fpp + (fp - 1.0), fp - slope, 1.0, fp, slope, True)
    f = _rational_cubic(beta, 0.0, b_l, 0.0, f_l, 1.0, fp, r)
    f = np.where(np.abs(fpp) < _SQRT_DBL_MAX, f, np.nan)
    t = beta / b_l
    f = np.where(f > 0.0, f, (f_l * t + b_l * (1.0 - t)) * t)  # quadratic if round-off broke the cubic
    return np.abs(x / (_SQRT_3 * ndtri(np.cbrt(f / (_TWO_PI_OVER_SQRT_27 * ax)))))


def _highest_guess(beta, x, s_h, b_h, b_max):  # noqa: ANN001, ANN202
    """Above b_h: interpolate f(beta) = Phi(-s/2), which falls to 0 at b_max, and invert it."""
    f_h = ndtr(-0.5 * s_h)
    w = (x / s_h) ** 2
    fp = -0.5 * np.exp(0.5 * w)
    fpp = np.sqrt(np.pi / 2.0) * np.exp(w + 0.125 * s_h * s_h) * w / s_h
    h = b_max - b_h
    slope = -f_h / h
    r = _control(0.5 * h * fpp + (-0.5 - fp), slope - fp, fp, -0.5, slope, True)
    f = _rational_cubic(beta, b_h, b_max, f_h, 0.0, fp, -0.5, r)
    f = np.where(fpp > -_SQRT_DBL_MAX, f, np.nan)
    t = (beta - b_h) / h
    f = np.where(f > 0.0, f, (f_h * (1.0 - t) + 0.5 * h * t) * (1.0 - t))
    return -2.0 * ndtri(f)


def _householder(x, s, beta, b_max, inv_b_max, n_low, n_high, ln_beta_low):  # noqa: ANN001, ANN202
    """One Householder(3) step for elements sorted as [low objective | b objective | high objective]."""
    b = _call(x, s, b_max, inv_b_max)
    bp = _vega(x, s)
    h_over_s = x / (s * s)
    b_halley = x * h_over_s / s - 0.25 * s  # b''/b' = x^2/s^3 - s/4
    b_hh3 = b_halley * b_halley - 3.0 * h_over_s * h_over_s - 0.25  # b'''/b'
    newton = (beta - b) / bp
    halley, hh3 = b_halley, b_hh3  # updated in place below: each slice reads b_halley before writing it
    if n_low:
        # g(s) = 1/ln b(s) - 1/ln beta is nearly linear where b is exponentially small.
        lo = slice(0, n_low)
        ln_b = np.log(b[lo])
        bpob = bp[lo] / b[lo]
        two = 1.0 + 2.0 / ln_b
        newton[lo] = (ln_beta_low - ln_b) * ln_b / ln_beta_low / bpob
        hh3[lo] += 2.0 * bpob * bpob * (1.0 + 3.0 / ln_b * (1.0 + 1.0 / ln_b)) - 3.0 * b_halley[lo] * bpob * two
        halley[lo] -= bpob * two
    if n_high:
        # g(s) = ln(b_max - beta) - ln(b_max - b(s)) keeps precision as b approaches b_max.
        hi = slice(len(x) - n_high, len(x))
        gap = b_max[hi] - b[hi]
        gp = bp[hi] / gap
        newton[hi] = -np.log((b_max[hi] - beta[hi]) / gap) / gp
        hh3[hi] += gp * (2.0 * gp + 3.0 * b_halley[hi])
        halley[hi] += gp
    ds = newton * (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + hh3 * newton / 6.0))
    return np.maximum(ds, -0.5 * s)


def fast_normalised_iv(beta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rational guess and two Householder steps for one chunk (call under ``np.errstate(all="ignore")``).

    :param beta: normalised out-of-the-money time value, 0 < beta < e^{x/2} (NaN passes through).
    :param x: log-moneyness of the out-of-the-money call, <= 0.
    :return: ``(s, converged)``; elements not converged should go to :func:`safe_normalised_iv`.
    """
    b_max = np.exp(0.5 * x)
    inv_b_max = 1.0 / b_max
    s_c = np.sqrt(-2.0 * x)
    b_c = 0.5 * b_max - ndtr(-s_c) * inv_b_max  # x/s_c + s_c/2 = 0, so the first cdf is exactly 1/2
    v_c = b_max * _INV_SQRT_2PI
    lower = beta < b_c
    s_o = s_c + np.where(lower, -b_c, b_max - b_c) / v_c  # the tangent at s_c hits 0 or b_max
    b_o = _call(x, s_o, b_max, inv_b_max)

    # Sort by branch (radix sort on int8) so that every branch below works on a contiguous slice.
    above_o = beta > b_o
    branch = np.where(lower, np.where(above_o, _LOWER_MID, _LOWEST),
                      np.where(above_o, np.where(beta > 0.5 * b_max, _HIGHEST, _HIGH_MID), _UPPER_MID))
    branch = branch.astype(np.int8)
    order = np.argsort(branch, kind="stable")
    ends = np.cumsum(np.bincount(branch, minlength=5))
    beta, x, b_max, inv_b_max, s_c, b_c, v_c, s_o, b_o = (
        a[order] for a in (beta, x, b_max, inv_b_max, s_c, b_c, v_c, s_o, b_o))

    s = np.empty_like(beta)
    lowest, lower_mid, upper_mid = slice(0, ends[0]), slice(ends[0], ends[1]), slice(ends[1], ends[2])
    highest = slice(ends[2], ends[4])
    if ends[0]:
        s[lowest] = _lowest_guess(beta[lowest], x[lowest], s_o[lowest], b_o[lowest])
    for part, fit_right in ((lower_mid, True), (upper_mid, False)):
        if part.stop > part.start:
            d_c, d_o = 1.0 / v_c[part], 1.0 / _vega(x[part], s_o[part])
            ends_ = (b_o[part], b_c[part], s_o[part], s_c[part], d_o, d_c) if fit_right else (
                b_c[part], b_o[part], s_c[part], s_o[part], d_c, d_o)
            b_l, b_r, s_l, s_r, d_l, d_r = ends_
            s[part] = _middle_guess(beta[part], b_l, b_r, s_l, s_r, d_l, d_r, fit_right)
    if highest.stop > highest.start:
        s[highest] = _highest_guess(beta[highest], x[highest], s_o[highest], b_o[highest], b_max[highest])

    n_low, n_high = int(ends[0]), int(ends[4] - ends[3])
    ln_beta_low = np.log(beta[lowest])
    ds = _householder(x, s, beta, b_max, inv_b_max, n_low, n_high, ln_beta_low)
    s += ds
    # The rational cubic of the middle branches is within ~0.3% and one step leaves a relative error
    # below 1e-10 there (2e-11 measured); the mapped guesses of the outer branches take a second step.
    converged = (np.abs(ds) <= _MIDDLE_STEP_TOLERANCE * s) & (s > 0.0)
    for part, low, high in ((lowest, n_low, 0), (highest, 0, n_high)):
        if part.stop > part.start:
            step = _householder(x[part], s[part], beta[part], b_max[part], inv_b_max[part], low, high,
                                ln_beta_low)
            s[part] += step
            converged[part] = (np.abs(step) <= _STEP_TOLERANCE * s[part]) & (s[part] > 0.0)
    out_s, out_ok = np.empty_like(s), np.empty_like(converged)
    out_s[order] = s
    out_ok[order] = converged
    return out_s, out_ok


def safe_normalised_iv(beta: np.ndarray, x: np.ndarray, iterations: int = 200) -> tuple[np.ndarray,
                                                                                      np.ndarray]:
    """Bracketed Newton on ln b(s) = ln beta, bisecting whenever Newton would leave the bracket.

    :param beta: normalised out-of-the-money time value, 0 < beta < e^{x/2}.
    :param x: log-moneyness of the out-of-the-money call, <= 0.
    :param iterations: maximum Newton/bisection iterations.
    :return: ``(s, converged)``.
    """
    b_max = np.exp(0.5 * x)
    inv_b_max = 1.0 / b_max
    lo = np.zeros_like(beta)
    hi = np.maximum(2.0 * np.sqrt(-2.0 * x), 1.0)
    for _ in range(64):  # b(x, s) rises to b_max as s grows, so doubling finds an upper bracket
        short = _call(x, hi, b_max, inv_b_max) < beta
        if not np.any(short):
            break
        hi = np.where(short, 2.0 * hi, hi)
    s = 0.5 * (lo + hi)
    ln_beta = np.log(beta)
    done = np.zeros(beta.shape, dtype=bool)
    for _ in range(iterations):
        b = _call(x, s, b_max, inv_b_max)
        above = b > beta
        hi = np.where(above, s, hi)
        lo = np.where(above, lo, s)
        candidate = s + (ln_beta - np.log(b)) * b / _vega(x, s)
        inside = np.isfinite(candidate) & (candidate > lo) & (candidate < hi)
        new_s = np.where(inside, candidate, 0.5 * (lo + hi))
        done = (np.abs(new_s - s) <= 4.0 * _DBL_EPS * new_s) | (b == beta)
        s = new_s
        if np.all(done):
            break
    return s, done & np.isfinite(s) & (s > 0.0)


def normalised_implied_vol(beta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total implied volatility ``s`` with ``b(x, s) = beta``, for 1-D arrays with ``x <= 0``.

    Elements with NaN inputs come back NaN and not converged; nothing raises.

    :param beta: normalised out-of-the-money time value, 0 < beta < e^{x/2}.
    :param x: log-moneyness of the out-of-the-money call, <= 0.
    :return: ``(s, converged)``: total volatility and a boolean mask of the elements that converged.
    """
    s = np.empty_like(beta)
    ok = np.empty(beta.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for start in range(0, beta.size, CHUNK):
            part = slice(start, start + CHUNK)
            s[part], ok[part] = fast_normalised_iv(beta[part], x[part])
        retry = ~ok & (beta > 0.0) & (beta < np.exp(0.5 * x))
        if np.any(retry):
            s[retry], ok[retry] = safe_normalised_iv(beta[retry], x[retry])
    s[~ok] = np.nan
    return s, ok
