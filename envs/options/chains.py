"""Synthetic option chains on top of any underlying close series: expiries, strikes, a moving vol surface.

Everything at bar ``t`` is computed from closes up to ``t`` (and, when a synthetic market's hidden state
is given, its volatility and regime at ``t``): nothing looks ahead, so IV rank and the surface can be
traded on.

The implied volatility surface:

- **Level.** A fast and a slow EWMA of squared daily log returns give a short-term and a long-run
  volatility; both are scaled by a volatility risk premium (implied vols trade above realised ones). With
  the synthetic market's state, the short-term level also blends in the true instantaneous volatility.
- **Term structure.** ATM variance reverts from the short-term to the long-run level at rate ``kappa``, so
  the average variance to expiry is ``long^2 + (short^2 - long^2) (1 - e^{-kappa tau}) / (kappa tau)``:
  upward sloping (contango) in calm markets, inverted after a shock.
- **Smile.** ``vol(K) = atm * clip(1 + skew z + curvature z^2)`` in standardised moneyness
  ``z = ln(K/F) / (atm sqrt(tau))``; ``skew < 0`` makes puts dearer, as in equity markets. In a bear regime
  the skew steepens (``regime_skew``).

Quotes: the model price is the mid; the full spread is ``max(min_spread, rel_spread * mid)`` widened by
``1 + wing_spread * |z|`` in the wings, and bid/ask are rounded outwards to the tick. Listed expiries are
the next ``n_weeklies`` Fridays and the third Fridays of the next ``n_monthlies`` months; time to expiry is
calendar days / 365 from the bar's date to the expiry date (options expire at that day's close). Strikes
sit on a grid whose step depends on the spot level, ``n_strikes`` either side of the spot.

Volume and open interest: each bar's chain trades a seeded number of contracts (Poisson draws from
the generator seeded by ``(volume_seed, bar)``, so a chain is the same whenever it is asked for). The
expected total rises with the bar's absolute standardised return (``volume_sensitivity``); it spreads over
the contracts with weight ``exp(-z^2 / (2 moneyness_width^2)) / sqrt(1 + dte)`` (at the money and short
dated trade most); puts take the share ``sigmoid(logit(put_share) - fear * r_t / sigma_t)``, so a down day
(in units of the short-term volatility) raises the put/call volume ratio, as in equity markets whose
average ratio is near 0.7 (``put_share`` 0.42). Open interest is a Poisson draw around ``oi_days`` days of
the contract's expected volume. All of it uses bar ``t`` and earlier only.

Bars are assumed daily: volatilities are annualised with 252 bars a year and the EWMA half-lives and
IV-rank window are counted in bars. The smile is a parametric model, not fitted to be free of static
arbitrage, which is fine for a simulator but not for pricing exotics.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import pandas as pd

from envs.options.pricing import Greeks, bsm_greeks

TRADING_DAYS = 252


@dataclass(frozen=True)
class ChainConfig:
    """Parameters of the synthetic chains.

    :param rate: continuously compounded risk-free rate.
    :param div_yield: continuous dividend yield of the underlying.
    :param n_weeklies: number of weekly (Friday) expiries listed.
    :param n_monthlies: number of monthly (third Friday) expiries listed.
    :param n_strikes: strikes listed on each side of the spot.
    :param fast_halflife: half-life in bars of the EWMA giving the short-term volatility.
    :param slow_halflife: half-life in bars of the EWMA giving the long-run volatility.
    :param vol_premium: implied over realised volatility (volatility risk premium), a multiplier.
    :param true_vol_weight: weight of the synthetic market's true volatility in the short-term level
        (used only when a state is given).
    :param kappa: mean-reversion rate (per year) of ATM variance along the term structure.
    :param skew: slope of the smile in standardised moneyness (negative: puts dearer).
    :param curvature: curvature of the smile in standardised moneyness.
    :param regime_skew: skew multiplier in the bull, bear and sideways regimes of a synthetic market.
    :param min_vol: floor on any implied volatility.
    :param tick: price tick of option quotes.
    :param min_spread: smallest full bid/ask spread, in price units.
    :param rel_spread: full spread as a fraction of the mid, before widening in the wings.
    :param wing_spread: spread widening per unit of |standardised moneyness|.
    :param iv_rank_window: bars of ATM 30-day IV history behind IV rank and percentile.
    :param iv_rank_min_periods: bars needed before IV rank is defined.
    :param volume_seed: seed of the volume and open-interest draws.
    :param daily_volume: expected contracts traded per bar over the whole chain on a quiet bar.
    :param volume_sensitivity: extra volume per unit of absolute standardised return.
    :param put_share: puts' share of the volume on a flat bar (0.42: a put/call ratio of about 0.72).
    :param fear: how much a down move (in short-term volatility units) shifts volume to puts (logit scale).
    :param moneyness_width: width of the volume's bell over standardised moneyness.
    :param oi_days: open interest in days of expected volume.
    """

    rate: float = 0.03
    div_yield: float = 0.0
    n_weeklies: int = 6
    n_monthlies: int = 4
    n_strikes: int = 30
    fast_halflife: float = 10.0
    slow_halflife: float = 120.0
    vol_premium: float = 1.1
    true_vol_weight: float = 0.5
    kappa: float = 4.0
    skew: float = -0.12
    curvature: float = 0.03
    regime_skew: tuple[float, float, float] = (0.8, 1.6, 1.0)
    min_vol: float = 0.03
    tick: float = 0.01
    min_spread: float = 0.02
    rel_spread: float = 0.02
    wing_spread: float = 0.15
    iv_rank_window: int = 252
    iv_rank_min_periods: int = 60
    volume_seed: int = 0
    daily_volume: float = 20_000.0
    volume_sensitivity: float = 0.5
    put_share: float = 0.42
    fear: float = 0.4
    moneyness_width: float = 1.0
    oi_days: float = 8.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("rate", "div_yield", "skew", "regime_skew"):
                continue
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"ChainConfig.{f.name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.put_share < 1 or self.moneyness_width <= 0:
            raise ValueError(f"ChainConfig.put_share must be in (0, 1) and moneyness_width > 0, got "
                             f"{self.put_share!r} and {self.moneyness_width!r}")
        for name in ("n_weeklies", "n_monthlies", "n_strikes", "iv_rank_window", "iv_rank_min_periods",
                     "volume_seed"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"ChainConfig.{name} must be an integer, got {getattr(self, name)!r}")
        if self.n_weeklies + self.n_monthlies < 1 or self.n_strikes < 1:
            raise ValueError("ChainConfig needs at least one expiry and one strike each side")
        if self.vol_premium <= 0 or self.kappa <= 0 or self.tick <= 0:
            raise ValueError("ChainConfig.vol_premium, kappa and tick must be > 0")
        if self.iv_rank_min_periods < 2 or self.iv_rank_min_periods > self.iv_rank_window:
            raise ValueError("ChainConfig.iv_rank_min_periods must be in [2, iv_rank_window]")


@dataclass(frozen=True)
class Quotes:
    """Model quotes of a set of contracts (arrays of one shape).

    :param mid: model (mid) price per share.
    :param bid: bid, rounded down to the tick (>= 0).
    :param ask: ask, rounded up to the tick.
    :param iv: implied volatility of the mid.
    :param greeks: BSM Greeks at the mid's vol (per share; theta per year).
    :param t: years to expiry (ACT/365).
    """

    mid: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    iv: np.ndarray
    greeks: Greeks
    t: np.ndarray


@dataclass(frozen=True)
class OptionChain:
    """Every listed contract at one bar, sorted by expiry, right (puts first) and strike.

    :param timestamp: the bar.
    :param spot: underlying price the chain was quoted against.
    :param expiry: ``datetime64[D]`` expiry dates.
    :param dte: calendar days to expiry.
    :param strike: strikes.
    :param is_call: True for calls.
    :param quotes: the contracts' :class:`Quotes`.
    :param volume: contracts traded in the bar (``None`` when not modelled).
    :param open_interest: open contracts (``None`` when not modelled).
    """

    timestamp: pd.Timestamp
    spot: float
    expiry: np.ndarray
    dte: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    quotes: Quotes
    volume: np.ndarray | None = None
    open_interest: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per contract, in the column names of :mod:`envs.options.chain_store`."""
        q = self.quotes
        return pd.DataFrame({
            "timestamp": self.timestamp, "expiry": self.expiry, "dte": self.dte, "strike": self.strike,
            "right": np.where(self.is_call, "C", "P"), "bid": q.bid, "ask": q.ask, "mid": q.mid, "iv": q.iv,
            "delta": q.greeks.delta, "gamma": q.greeks.gamma, "vega": q.greeks.vega,
            "theta": q.greeks.theta, "underlying_price": self.spot,
            **({"volume": self.volume} if self.volume is not None else {}),
            **({"open_interest": self.open_interest} if self.open_interest is not None else {}),
        })


def strike_step(spot: float) -> float:
    """Listed strike increment for a spot level (a simplified version of US equity option listings).

    :param spot: underlying price.
    :return: the strike step.
    """
    for bound, step in ((25.0, 0.5), (100.0, 1.0), (250.0, 2.5), (1000.0, 5.0)):
        if spot < bound:
            return step
    return 10.0


def listed_expiries(date: np.datetime64, n_weeklies: int, n_monthlies: int) -> np.ndarray:
    """Expiry dates listed on ``date``: the next weekly Fridays and the next monthly third Fridays.

    :param date: the trading date (``datetime64[D]``); expiries are strictly after it.
    :param n_weeklies: number of weekly expiries.
    :param n_monthlies: number of monthly expiries.
    :return: sorted unique ``datetime64[D]`` dates.
    """
    day = np.datetime64(date, "D")
    # 1970-01-01 was a Thursday: weekday index 0 = Thursday, so Friday is 1.
    to_friday = (1 - (day.astype(np.int64) % 7)) % 7 or 7
    weeklies = day + to_friday + 7 * np.arange(n_weeklies)
    month = day.astype("datetime64[M]")
    firsts = (month + np.arange(n_monthlies + 1)).astype("datetime64[D]")
    first_friday = firsts + (1 - firsts.astype(np.int64) % 7) % 7
    third = first_friday + 14
    monthlies = third[third > day][:n_monthlies]
    return np.unique(np.concatenate([weeklies, monthlies]))


def _ewma_variance(log_returns: np.ndarray, halflife: float) -> np.ndarray:
    """Causal EWMA of squared returns, seeded with the mean of the first 20 (so it starts sensibly)."""
    seed = float(np.mean(log_returns[1:21] ** 2)) if log_returns.size > 1 else 0.0
    series = pd.Series(np.r_[seed, log_returns[1:] ** 2])
    return series.ewm(halflife=halflife, adjust=False).mean().to_numpy()


class SyntheticChains:
    """Causal option chains for one underlying.

    :param close: ``(T,)`` closes of the underlying.
    :param index: the bars' timestamps.
    :param config: surface, listing and quoting parameters.
    :param true_vol: optional ``(T,)`` true annualised volatility at each bar (a synthetic market's state).
    :param regimes: optional ``(T,)`` regime labels 0 = bull, 1 = bear, 2 = sideways.
    """

    def __init__(self, close: np.ndarray, index: pd.DatetimeIndex, config: ChainConfig | None = None,
                 true_vol: np.ndarray | None = None, regimes: np.ndarray | None = None) -> None:
        self.config = cfg = config or ChainConfig()
        close = np.asarray(close, dtype=np.float64)
        if close.ndim != 1 or close.size != len(index):
            raise ValueError(f"close must be 1-D with one value per bar of index; got shape {close.shape} "
                             f"for {len(index)} bars")
        if not np.all(np.isfinite(close) & (close > 0)):
            bad = int(np.flatnonzero(~(np.isfinite(close) & (close > 0)))[0])
            raise ValueError(f"close must be positive and finite; bar {bad} ({index[bad]}) is {close[bad]!r}")
        self.close = close
        self.index = pd.DatetimeIndex(index)
        naive = self.index.tz_localize(None) if self.index.tz is not None else self.index
        self.dates = naive.normalize().to_numpy().astype("datetime64[D]")
        log_ret = np.r_[0.0, np.diff(np.log(close))]
        self.log_returns = log_ret
        fast = _ewma_variance(log_ret, cfg.fast_halflife) * TRADING_DAYS
        slow = _ewma_variance(log_ret, cfg.slow_halflife) * TRADING_DAYS
        if true_vol is not None:
            true_vol = np.asarray(true_vol, dtype=np.float64)
            if true_vol.shape != close.shape:
                raise ValueError(f"true_vol must have shape {close.shape}, got {true_vol.shape}")
            fast = (1 - cfg.true_vol_weight) * fast + cfg.true_vol_weight * true_vol**2
        self.short_vol = np.maximum(cfg.vol_premium * np.sqrt(fast), cfg.min_vol)
        self.long_vol = np.maximum(cfg.vol_premium * np.sqrt(slow), cfg.min_vol)
        self.skew = np.full(close.shape, cfg.skew)
        if regimes is not None:
            regimes = np.asarray(regimes)
            if regimes.shape != close.shape:
                raise ValueError(f"regimes must have shape {close.shape}, got {regimes.shape}")
            self.skew = cfg.skew * np.asarray(cfg.regime_skew)[regimes]
        # Summary series: 30-day ATM IV, its rank and percentile, 30/90-day slope and 30-day skew.
        all_bars = np.arange(close.size)
        self.atm_iv30 = self.atm_vol(all_bars, 30.0 / 365.0)
        self.term_slope = self.atm_vol(all_bars, 90.0 / 365.0) - self.atm_iv30
        self.skew_30d = -2.0 * self.skew * self.atm_iv30  # vol(z = -1) - vol(z = +1)
        iv = pd.Series(self.atm_iv30)
        rolling = iv.rolling(cfg.iv_rank_window, min_periods=cfg.iv_rank_min_periods)
        low, high = rolling.min(), rolling.max()
        self.iv_rank = ((iv - low) / (high - low).where(high > low)).fillna(0.5).where(low.notna()).to_numpy()
        self.iv_percentile = rolling.rank(pct=True).to_numpy()
        self.warmup = cfg.iv_rank_min_periods - 1

    @classmethod
    def from_market(cls, data, symbol: str | None = None, config: ChainConfig | None = None,  # noqa: ANN001
                    state=None) -> "SyntheticChains":  # noqa: ANN001
        """Chains for one symbol of a :class:`~envs.data.market_data.MarketData`.

        :param data: the market.
        :param symbol: which symbol (default: the first).
        :param config: chain parameters.
        :param state: the :class:`~envs.data.synthetic.SyntheticState` of a synthetic market, to let the surface
            follow its true volatility and regimes.
        :return: the chains.
        """
        symbol = data.symbols[0] if symbol is None else symbol
        if symbol not in data.symbols:
            raise ValueError(f"symbol {symbol!r} not in data; available: {list(data.symbols)}")
        j = data.symbols.index(symbol)
        true_vol = regimes = None
        if state is not None:
            true_vol = state.volatility[:, j]
            if tuple(state.regime_names) == ("bull", "bear", "sideways"):
                regimes = state.regimes
        return cls(data.close[:, j], data.index, config, true_vol=true_vol, regimes=regimes)

    # ------------------------------------------------------------------ surface
    def atm_vol(self, t: np.ndarray | int, tau: np.ndarray | float) -> np.ndarray:
        """ATM implied vol at bar(s) ``t`` for years to expiry ``tau`` (broadcast).

        :param t: bar index or indices.
        :param tau: years to expiry.
        :return: ATM vols.
        """
        short, long_ = self.short_vol[t], self.long_vol[t]
        x = self.config.kappa * np.maximum(np.asarray(tau, dtype=np.float64), 1e-8)
        weight = -np.expm1(-x) / x
        return np.sqrt(long_**2 + (short**2 - long_**2) * weight)

    def implied_vol(self, t: np.ndarray | int, spot: np.ndarray | float, strike: np.ndarray,
                    tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Implied vol of strikes at bar ``t`` and the standardised moneyness behind the smile.

        :param t: bar index (or indices, broadcast).
        :param spot: underlying price.
        :param strike: strikes.
        :param tau: years to expiry.
        :return: ``(vol, z)``.
        """
        cfg = self.config
        tau = np.maximum(np.asarray(tau, dtype=np.float64), 1.0 / 365.0 / 24.0)
        atm = self.atm_vol(t, tau)
        forward = spot * np.exp((cfg.rate - cfg.div_yield) * tau)
        z = np.clip(np.log(strike / forward) / (atm * np.sqrt(tau)), -5.0, 5.0)
        smile = np.clip(1.0 + self.skew[t] * z + cfg.curvature * z * z, 0.5, 3.0)
        return np.maximum(atm * smile, cfg.min_vol), z

    # ------------------------------------------------------------------ quotes
    def quote(self, t: int, spot: float, date: np.datetime64, expiry: np.ndarray, strike: np.ndarray,
              is_call: np.ndarray) -> Quotes:
        """Quote any contracts with the surface known at bar ``t`` against ``spot`` on ``date``.

        A fill at bar ``t+1``'s open quotes with ``t`` (the last close the surface knows), the open price
        and bar ``t+1``'s date; marking at a close uses that bar for all three.

        :param t: bar whose surface to use.
        :param spot: underlying price.
        :param date: valuation date (``datetime64[D]``).
        :param expiry: ``datetime64[D]`` expiry dates.
        :param strike: strikes.
        :param is_call: True for calls.
        :return: :class:`Quotes`; expired contracts are worth their intrinsic value.
        """
        cfg = self.config
        expiry = np.asarray(expiry, dtype="datetime64[D]")
        days = np.maximum((expiry - np.datetime64(date, "D")).astype(np.int64), 0)
        tau = days / 365.0
        vol, z = self.implied_vol(t, spot, strike, tau)
        greeks = bsm_greeks(spot, strike, tau, cfg.rate, cfg.div_yield, vol, is_call)
        mid = greeks.price
        spread = np.maximum(cfg.min_spread, cfg.rel_spread * mid) * (1.0 + cfg.wing_spread * np.abs(z))
        half = 0.5 * spread
        bid = np.maximum(np.floor((mid - half) / cfg.tick + 1e-9) * cfg.tick, 0.0)
        ask = np.ceil((mid + half) / cfg.tick - 1e-9) * cfg.tick
        expired = days == 0
        if np.any(expired):  # at expiry the contract is its intrinsic value, no spread
            bid = np.where(expired, mid, bid)
            ask = np.where(expired, mid, ask)
        return Quotes(mid=mid, bid=bid, ask=ask, iv=vol, greeks=greeks, t=tau)

    def chain(self, t: int) -> OptionChain:
        """Every listed contract at the close of bar ``t``.

        :param t: bar index.
        :return: the :class:`OptionChain`.
        """
        spot, date, expiry, strike, is_call = self._listed(t)
        quotes = self.quote(t, spot, date, expiry, strike, is_call)
        dte = (expiry - date).astype(np.int64)
        volume, open_interest = self._traded(t, spot, strike, dte, is_call)
        return OptionChain(timestamp=self.index[t], spot=spot, expiry=expiry, dte=dte, strike=strike,
                           is_call=is_call, quotes=quotes, volume=volume, open_interest=open_interest)

    def _listed(self, t: int) -> tuple[float, np.datetime64, np.ndarray, np.ndarray, np.ndarray]:
        """The contracts listed at bar ``t``: spot, date, and each contract's expiry, strike and right."""
        if not 0 <= t < self.close.size:
            raise IndexError(f"bar {t} is outside the chains' {self.close.size} bars")
        cfg = self.config
        spot, date = float(self.close[t]), self.dates[t]
        expiries = listed_expiries(date, cfg.n_weeklies, cfg.n_monthlies)
        step = strike_step(spot)
        strikes = step * (np.round(spot / step) + np.arange(-cfg.n_strikes, cfg.n_strikes + 1))
        strikes = strikes[strikes > 0]
        expiry = np.repeat(expiries, 2 * strikes.size)
        is_call = np.tile(np.repeat([False, True], strikes.size), expiries.size)
        strike = np.tile(strikes, 2 * expiries.size)
        return spot, date, expiry, strike, is_call

    def _traded(self, t: int, spot: float, strike: np.ndarray, dte: np.ndarray,
                is_call: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each listed contract's volume and open interest at bar ``t`` (seeded by the bar)."""
        cfg = self.config
        z = self.implied_vol(t, spot, strike, np.maximum(dte, 0) / 365.0)[1]
        expected = self.expected_volume(t, z, dte, is_call)
        rng = np.random.default_rng([cfg.volume_seed, t])
        return rng.poisson(expected), rng.poisson(cfg.oi_days * expected)

    @cached_property
    def put_call_ratio(self) -> np.ndarray:
        """``(T,)`` the put/call volume ratio of every bar's chain: put contracts traded over call contracts
        (the same draws as :meth:`chain`'s ``volume``; NaN on a bar without call volume). A bar's ratio
        uses its own return and earlier bars only."""
        out = np.full(self.close.size, np.nan)
        for t in range(self.close.size):
            spot, date, expiry, strike, is_call = self._listed(t)
            volume, _ = self._traded(t, spot, strike, (expiry - date).astype(np.int64), is_call)
            calls = volume[is_call].sum()
            if calls > 0:
                out[t] = volume[~is_call].sum() / calls
        return out

    def put_share(self, t: np.ndarray | int) -> np.ndarray:
        """The puts' expected share of the volume at bar(s) ``t``: ``sigmoid(logit(put_share) - fear r_t /
        sigma_t)``, ``r_t`` the bar's log return and ``sigma_t`` the short-term volatility per bar.

        :param t: bar index or indices.
        """
        cfg = self.config
        shock = self.log_returns[t] / (self.short_vol[t] / np.sqrt(TRADING_DAYS))
        logit = np.log(cfg.put_share / (1 - cfg.put_share)) - cfg.fear * shock
        return 1.0 / (1.0 + np.exp(-logit))

    def expected_volume(self, t: int, z: np.ndarray, dte: np.ndarray, is_call: np.ndarray) -> np.ndarray:
        """Expected contracts traded at bar ``t`` for each contract (see the module's volume model).

        :param t: bar index.
        :param z: standardised moneyness of each contract.
        :param dte: calendar days to expiry.
        :param is_call: True for calls.
        """
        cfg = self.config
        shock = abs(self.log_returns[t]) / (self.short_vol[t] / np.sqrt(TRADING_DAYS))
        total = cfg.daily_volume * (1.0 + cfg.volume_sensitivity * shock)
        weight = np.exp(-0.5 * (np.asarray(z) / cfg.moneyness_width) ** 2) / np.sqrt(1.0 + np.asarray(dte))
        puts = float(self.put_share(t))
        side = np.where(is_call, 1.0 - puts, puts)
        calls = weight[is_call].sum()
        put_weight = weight[~is_call].sum()
        norm = np.where(is_call, calls, put_weight)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(norm > 0, total * side * weight / norm, 0.0)

    def summary(self, t: int) -> dict[str, float]:
        """The volatility state at bar ``t``: ATM 30-day IV, IV rank and percentile, term slope, skew.

        :param t: bar index.
        :return: a dict of floats (IV rank and percentile are NaN before the warm-up).
        """
        return {"iv": float(self.atm_iv30[t]), "iv_rank": float(self.iv_rank[t]),
                "iv_percentile": float(self.iv_percentile[t]), "term_slope": float(self.term_slope[t]),
                "skew": float(self.skew_30d[t])}
