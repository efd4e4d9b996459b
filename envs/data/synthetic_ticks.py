"""A synthetic intraday market with quotes and trades: a small limit-order book whose events (limit orders,
cancellations, market orders) are simulated one by one, recorded as Alpaca-style quotes and trades, and
aggregated into 1-minute (or longer) bars with their microstructure fields (:mod:`envs.data.ticks`).

``load_data("synthetic_ticks")`` (or ``"synthetic_ticks:seed=3,n_days=10,n_symbols=2"``, fields of
:class:`TickConfig`) returns the bars with the extra fields, so ``Stocks-v0`` can observe the microstructure
features (``ofi_5``, ``trade_imb_5``, ``sign_ac``, ...) offline; :func:`generate_ticks` also returns the
quotes and trades themselves.

The book, per symbol, in ticks: a best bid and ask with the lots queued at each; a new best level (after
one is emptied) holds a geometric number of lots with mean ``depth``. Book events arrive as a Poisson
process of ``event_rate`` per second during US market hours (9:30-16:00 New York, business days):

- a **market order** (share ``market_share``) of geometric size (mean ``order_size`` lots) keeps the
  previous market order's side with probability ``persistence`` (order splitting: autocorrelated trade
  signs), else buys with probability ``1 / (1 + exp(-informed (value - mid) / tick))``: informed flow
  towards a latent efficient price ``value`` (a random walk of ``value_vol`` ticks per square-root second),
  which is what gives trades price impact and makes liquidity providers face adverse selection. An order
  larger than the best level walks the book: one trade per level it takes, a sweep when it takes several;
- a **cancellation** (share ``cancel_share``) removes lots from one side's best level; an emptied level
  moves the quote one tick away;
- otherwise a **limit order**: into a spread wider than one tick with probability ``improve_share`` (a new
  best level on a tick inside the spread), else joining the best level's queue.

Each event that changes the best quotes records a quote (bid and ask prices and sizes in shares) at the
event's time; each level taken records a trade. Bars hold the trades' open, high, low, close and volume
(a bar without trades repeats the last close with zero volume). Seeded: the same config gives the same
ticks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from envs.data.market_data import MarketData, validate
from envs.data.synthetic import EXCHANGE_TZ, SESSION_MINUTES, SESSION_OPEN
from envs.data.ticks import with_microstructure


@dataclass(frozen=True)
class TickConfig:
    """Parameters of the synthetic tick market.

    :param n_symbols: number of symbols (ignored when ``symbols`` is given).
    :param symbols: explicit symbol names; default ``SYN0, SYN1, ...``.
    :param n_days: trading sessions (business days).
    :param start: first session date.
    :param bar: bar length (``"1min"``, ``"5min"``, ...).
    :param seed: seed of everything.
    :param initial_price: starting best ask.
    :param tick: price tick.
    :param lot: shares per lot.
    :param event_rate: book events per second.
    :param market_share: share of events that are market orders.
    :param cancel_share: share of events that are cancellations.
    :param depth: mean lots at a new best level.
    :param order_size: mean market-order size in lots.
    :param persistence: probability that a market order keeps the previous one's side.
    :param informed: slope of the buy probability in ``(value - mid) / tick``.
    :param value_vol: volatility of the latent efficient price, ticks per square-root second.
    :param improve_share: share of limit orders that improve a spread wider than one tick.
    :param horizon: trades after which realised spread and impact are measured (bar fields).
    :param window: trades in the sign autocorrelation's window (bar fields).
    """

    n_symbols: int = 1
    symbols: tuple[str, ...] | None = None
    n_days: int = 5
    start: str = "2024-01-02"
    bar: str = "1min"
    seed: int = 0
    initial_price: float = 100.0
    tick: float = 0.01
    lot: int = 100
    event_rate: float = 0.5
    market_share: float = 0.25
    cancel_share: float = 0.25
    depth: float = 4.0
    order_size: float = 2.0
    persistence: float = 0.5
    informed: float = 0.5
    value_vol: float = 0.4
    improve_share: float = 0.8
    horizon: int = 5
    window: int = 50
    symbol_names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(self.symbols) if self.symbols else tuple(f"SYN{i}" for i in range(self.n_symbols))
        if not names:
            raise ValueError("TickConfig.n_symbols must be at least 1")
        object.__setattr__(self, "symbol_names", names)
        for name in ("n_days", "event_rate", "depth", "order_size", "lot", "tick", "initial_price"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TickConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("market_share", "cancel_share", "persistence", "improve_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"TickConfig.{name} is a probability in [0, 1], got {getattr(self, name)!r}")
        if self.market_share + self.cancel_share > 1:
            raise ValueError("TickConfig.market_share + cancel_share must be at most 1, got "
                             f"{self.market_share + self.cancel_share}")
        minutes = pd.Timedelta(self.bar) / pd.Timedelta("1min")
        if minutes != int(minutes) or not 1 <= minutes <= SESSION_MINUTES:
            raise ValueError(f"TickConfig.bar must be whole minutes within a session, got {self.bar!r}")


@dataclass(frozen=True)
class TickMarket:
    """The bars (with their microstructure fields) and the quotes and trades they were made from.

    :param data: bars with the :data:`~envs.data.ticks.BAR_FIELDS` as extra fields.
    :param quotes: symbol -> quotes (``bid_price``, ``bid_size``, ``ask_price``, ``ask_size``).
    :param trades: symbol -> trades (``price``, ``size``).
    """

    data: MarketData
    quotes: dict[str, pd.DataFrame]
    trades: dict[str, pd.DataFrame]


def _bar_index(cfg: TickConfig) -> pd.DatetimeIndex:
    days = pd.bdate_range(pd.Timestamp(cfg.start).normalize(), periods=cfg.n_days)
    minutes = int(pd.Timedelta(cfg.bar) / pd.Timedelta("1min"))
    offsets = SESSION_OPEN + pd.to_timedelta(np.arange(0, SESSION_MINUTES, minutes), "min")
    stamps = (days.values[:, None] + offsets.values[None, :]).ravel()
    return pd.DatetimeIndex(stamps).tz_localize(EXCHANGE_TZ).tz_convert("UTC")


def _event_times(cfg: TickConfig, rng: np.random.Generator) -> np.ndarray:
    """Poisson event times (UTC nanoseconds, whole microseconds) inside each session, sorted."""
    days = pd.bdate_range(pd.Timestamp(cfg.start).normalize(), periods=cfg.n_days)
    opens = pd.DatetimeIndex(days + SESSION_OPEN).tz_localize(EXCHANGE_TZ).tz_convert("UTC").as_unit("ns").asi8
    seconds = SESSION_MINUTES * 60
    parts = []
    for start in opens:
        n = rng.poisson(cfg.event_rate * seconds)
        parts.append(start + np.sort(rng.uniform(0, seconds, n)) * 1e9)
    # Microseconds, as Alpaca stamps quotes and trades.
    return np.concatenate(parts).astype(np.int64) // 1000 * 1000


def _simulate(cfg: TickConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One symbol's quotes and trades."""
    times = _event_times(cfg, rng)
    n = times.size
    kind, side_u, size_u, noise = rng.random(n), rng.random(n), rng.random((n, 2)), rng.standard_normal(n)
    gaps = np.diff(times, prepend=times[0]) / 1e9
    # Geometric sizes from uniforms: number of trials to the first success with p = 1 / mean.
    def geometric(u: float, mean: float) -> int:
        return 1 + int(math.log(1.0 - u) / math.log(1.0 - 1.0 / mean)) if mean > 1 else 1

    ask = int(round(cfg.initial_price / cfg.tick))
    bid = ask - 1
    value = bid + 0.5
    qb = qa = max(int(round(cfg.depth)), 1)
    last_side = 1
    quotes: list[tuple[int, int, int, int, int]] = [(times[0] - 1000, bid, qb, ask, qa)] if n else []
    trades: list[tuple[int, int, int]] = []
    for i in range(n):
        value += cfg.value_vol * math.sqrt(gaps[i]) * noise[i]
        before = (bid, qb, ask, qa)
        u = kind[i]
        if u < cfg.market_share:
            if side_u[i] < cfg.persistence:
                side = last_side
            else:
                p_buy = 1.0 / (1.0 + math.exp(-cfg.informed * (value - 0.5 * (bid + ask))))
                side = 1 if size_u[i, 1] < p_buy else -1
            last_side = side
            left = geometric(size_u[i, 0], cfg.order_size)
            fresh = rng.random(8)
            level = 0
            while left > 0:
                if side > 0:
                    take = min(left, qa)
                    trades.append((times[i], ask, take))
                    qa -= take
                    if qa == 0:
                        ask += 1
                        qa = geometric(fresh[level % 8], cfg.depth)
                else:
                    take = min(left, qb)
                    trades.append((times[i], bid, take))
                    qb -= take
                    if qb == 0:
                        bid -= 1
                        qb = geometric(fresh[level % 8], cfg.depth)
                left -= take
                level += 1
        elif u < cfg.market_share + cfg.cancel_share:
            size = geometric(size_u[i, 0], 2.0)
            if side_u[i] < 0.5:
                qb -= size
                if qb <= 0:
                    bid -= 1
                    qb = geometric(size_u[i, 1], cfg.depth)
            else:
                qa -= size
                if qa <= 0:
                    ask += 1
                    qa = geometric(size_u[i, 1], cfg.depth)
        else:
            size = geometric(size_u[i, 0], 2.0)
            gap = ask - bid - 1  # empty ticks inside the spread
            improve = gap > 0 and size_u[i, 1] < cfg.improve_share
            # An improving order lands on any tick inside the spread (uniformly), so wide spreads close fast.
            step = 1 + int(noise[i] ** 2 * 1e6) % gap if improve else 0
            if side_u[i] < 0.5:
                bid, qb = (bid + step, size) if improve else (bid, qb + size)
            else:
                ask, qa = (ask - step, size) if improve else (ask, qa + size)
        if (bid, qb, ask, qa) != before:
            quotes.append((times[i], bid, qb, ask, qa))
    q = np.array(quotes, dtype=np.int64).reshape(-1, 5)
    t = np.array(trades, dtype=np.int64).reshape(-1, 3)
    quote_frame = pd.DataFrame(
        {"bid_price": q[:, 1] * cfg.tick, "bid_size": q[:, 2] * cfg.lot, "ask_price": q[:, 3] * cfg.tick,
         "ask_size": q[:, 4] * cfg.lot},
        index=pd.DatetimeIndex(q[:, 0], tz="UTC", name="timestamp"),
    )
    trade_frame = pd.DataFrame({"price": t[:, 1] * cfg.tick, "size": t[:, 2] * cfg.lot},
                               index=pd.DatetimeIndex(t[:, 0], tz="UTC", name="timestamp"))
    return quote_frame, trade_frame


def bars_from_trades(trades: pd.DataFrame, index: pd.DatetimeIndex, length: str, first_price: float) -> np.ndarray:
    """``(T, 5)`` OHLCV of the trades inside each bar ``[start, start + length)``; a bar without trades
    repeats the last close (``first_price`` before any) with zero volume.

    :param trades: trades (``price``, ``size``) with a DatetimeIndex.
    :param index: bar start times.
    :param length: bar length.
    :param first_price: the price before the first trade.
    """
    from envs.data.ticks import _bar_of

    bar = _bar_of(pd.DatetimeIndex(trades.index), index, pd.Timedelta(length))
    inside = bar >= 0
    groups = trades[inside].groupby(bar[inside])
    ohlc = groups["price"].agg(["first", "max", "min", "last"]).reindex(range(len(index)))
    volume = groups["size"].sum().reindex(range(len(index))).fillna(0.0)
    close = ohlc["last"].ffill().fillna(first_price)
    filled = ohlc.copy()
    for column in ("first", "max", "min", "last"):
        filled[column] = ohlc[column].fillna(close)
    return np.column_stack([filled["first"], filled["max"], filled["min"], filled["last"], volume]).astype(float)


def generate_ticks(config: TickConfig | None = None, **overrides: object) -> TickMarket:
    """Simulate the tick market and aggregate it into bars with their microstructure fields.

    :param config: the market (default :class:`TickConfig`).
    :param overrides: :class:`TickConfig` fields replacing the config's.
    """
    cfg = config or TickConfig()
    if overrides:
        cfg = TickConfig(**{**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k != "symbol_names"},
                            **overrides})
    rng = np.random.default_rng(cfg.seed)
    index = _bar_index(cfg)
    quotes, trades, columns = {}, {}, []
    for symbol, stream in zip(cfg.symbol_names, rng.spawn(len(cfg.symbol_names))):
        q, t = _simulate(cfg, stream)
        quotes[symbol], trades[symbol] = q, t
        first = 0.5 * (q["bid_price"].iloc[0] + q["ask_price"].iloc[0]) if len(q) else cfg.initial_price
        columns.append(bars_from_trades(t, index, cfg.bar, first))
    bars = MarketData(np.stack(columns, axis=1), index, cfg.symbol_names, ("XNYS",) * len(cfg.symbol_names))
    data = with_microstructure(validate(bars), {s: (quotes[s], trades[s]) for s in cfg.symbol_names}, cfg.bar,
                               tick=cfg.tick, horizon=cfg.horizon, window=cfg.window)
    return TickMarket(data, quotes, trades)

