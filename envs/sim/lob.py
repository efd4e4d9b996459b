"""A limit-order-book simulator for market making and execution, batched over ``N`` episodes.

The model is the one of Avellaneda and Stoikov (2008) and its extensions in Cartea, Jaimungal and
Penalva (2015), stepped in discrete time ``dt = horizon / n_steps``:

- **Mid-price**: ``S_{k+1} = S_k + alpha_k dt + sigma sqrt(dt) Z + J``, a Brownian motion plus an optional
  short-term drift ``alpha`` (an Ornstein-Uhlenbeck process kicked up by buy market orders and down by
  sell market orders: ``alpha_{k+1} = alpha_k e^{-zeta dt} + eps (n_buy - n_sell) + eta sqrt(dt) Z'``,
  the source of adverse selection) and optional compound-Poisson jumps ``J ~ N(0, jump_std^2)`` at rate
  ``jump_rate``.
- **Market orders**: per side, Poisson with intensity ``arrival_rate``, or Hawkes (self-exciting):
  ``lambda_{k+1} = mu + (lambda_k - mu) e^{-beta dt} + a n_k``.
- **Fills**, ``fill_model="exponential"`` (Avellaneda-Stoikov): each market order reaching the side lifts
  the agent's quote with probability ``exp(-kappa delta)``, ``delta`` the quote's distance from the mid,
  so a step's fills are ``Binomial(n, exp(-kappa delta))`` of its ``n`` orders and, over steps, a Poisson
  process of intensity ``A exp(-kappa delta)``. ``fill_model="queue"``: a stylised full book, ``book_depth`` lots
  resting at every tick level beyond the best quotes; market orders of geometric size (mean
  ``mo_size`` lots) sweep it level by level; the agent's order joins the back of its level's queue and
  fills only after the levels in front of it and the queue ahead of it are consumed; keeping the same
  price keeps the queue position, which cancellations (rate ``cancel_rate``) move forward.
- **Prices and sizes**: quotes are rounded away from the mid onto the ``tick`` grid; sizes are whole
  lots of ``lot`` units; inventory stays within ``+-max_inventory`` lots (fills beyond are not taken).
  Every fill is at the agent's quoted price and pays ``maker_fee`` times its notional (negative: a rebate).

The step is one compiled loop over the batch (:func:`step_book`). Its random numbers come from numba's
generator, seeded at the start of every step with a number drawn from the owner's seeded
``numpy.random.Generator``, so the same seed gives the same paths, a pickled copy continues as the original
does, and a step draws only the numbers its features need (no jump numbers without jumps...).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

import numba
import numpy as np

from envs.sim.execution import ConfigError, config_from

# Rows of the state block (one column per episode).
MID, ALPHA, CASH, INV, LAM_BUY, LAM_SELL, QUEUE_BID, QUEUE_ASK, POSTED_BID, POSTED_ASK = range(10)
N_STATE = 10
# Rows of the event block written by each step.
BID_PX, ASK_PX, BID_FILL, ASK_FILL, N_BUY, N_SELL, BUY_VOLUME, SELL_VOLUME, MID_BEFORE, FEES, BUY_LEVELS, \
    SELL_LEVELS = range(12)
N_EVENTS = 12
# Layout of the parameter vector the compiled step reads.
(P_DT, P_SIGMA, P_MU, P_KAPPA, P_TICK, P_LOT, P_FEE, P_MAXINV, P_HAWKES_A, P_HAWKES_B, P_ALPHA_DECAY,
 P_ALPHA_IMPACT, P_ALPHA_VOL, P_JUMP_RATE, P_JUMP_STD, P_QUEUE, P_DEPTH, P_MO_SIZE, P_CANCEL) = range(19)
N_PARAMS = 19

_jit = numba.njit(cache=True, error_model="numpy")
_inline = numba.njit(cache=True, error_model="numpy", inline="always")


@dataclass(frozen=True)
class BookConfig:
    """The market of the simulator; units are the instrument's price units and time units of ``horizon``.

    The defaults are the Avellaneda-Stoikov (2008) example: ``S0 = 100``, ``sigma = 2``, ``T = 1``,
    ``A = 140``, ``kappa = 1.5``, 200 steps.

    :param s0: initial mid-price.
    :param sigma: mid-price volatility (price units per square root of time unit).
    :param horizon: episode length ``T`` in time units.
    :param n_steps: steps per episode; ``dt = horizon / n_steps``.
    :param arrival_rate: market orders per time unit on each side (the baseline ``mu`` under Hawkes).
    :param fill_decay: ``kappa``, the decay of the fill probability with the quote's distance from the mid.
    :param tick: price tick; quotes are rounded away from the mid onto it.
    :param lot: units per lot; sizes and inventory are whole lots.
    :param maker_fee: fee per unit of filled notional (negative: a maker rebate).
    :param max_inventory: inventory limit in lots, either side; fills beyond it are not taken.
    :param arrival_process: ``"poisson"`` or ``"hawkes"``.
    :param hawkes_excitation: jump of a side's intensity per market order on that side (Hawkes).
    :param hawkes_decay: decay rate of the excitation (Hawkes); ``excitation / decay < 1`` for stationarity.
    :param alpha_decay: mean-reversion rate ``zeta`` of the short-term drift.
    :param alpha_impact: drift jump ``eps`` per net market order (0: no short-term alpha).
    :param alpha_vol: volatility ``eta`` of the drift's diffusion.
    :param jump_rate: mid-price jumps per time unit (0: none).
    :param jump_std: standard deviation of a mid-price jump.
    :param fill_model: ``"exponential"`` (Avellaneda-Stoikov fill probability) or ``"queue"`` (full book
        with queue position).
    :param book_depth: lots resting at each tick level (queue model).
    :param mo_size: mean market-order size in lots (queue model; geometric sizes).
    :param cancel_rate: rate at which the queue ahead of the agent's order cancels (queue model).
    """

    s0: float = 100.0
    sigma: float = 2.0
    horizon: float = 1.0
    n_steps: int = 200
    arrival_rate: float = 140.0
    fill_decay: float = 1.5
    tick: float = 0.01
    lot: float = 1.0
    maker_fee: float = 0.0
    max_inventory: int = 20
    arrival_process: Literal["poisson", "hawkes"] = "poisson"
    hawkes_excitation: float = 0.0
    hawkes_decay: float = 10.0
    alpha_decay: float = 10.0
    alpha_impact: float = 0.0
    alpha_vol: float = 0.0
    jump_rate: float = 0.0
    jump_std: float = 0.0
    fill_model: Literal["exponential", "queue"] = "exponential"
    book_depth: float = 5.0
    mo_size: float = 2.0
    cancel_rate: float = 5.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "arrival_process":
                if value not in ("poisson", "hawkes"):
                    raise ConfigError(f"BookConfig.arrival_process must be 'poisson' or 'hawkes', got {value!r}")
                continue
            if f.name == "fill_model":
                if value not in ("exponential", "queue"):
                    raise ConfigError(f"BookConfig.fill_model must be 'exponential' or 'queue', got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise ConfigError(f"BookConfig.{f.name} must be a finite number, got {value!r}")
            if value < 0 and f.name not in ("maker_fee", "alpha_impact"):
                raise ConfigError(f"BookConfig.{f.name} must be >= 0, got {value!r}")
        for name in ("s0", "horizon", "fill_decay", "tick", "lot", "hawkes_decay", "mo_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"BookConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("n_steps", "max_inventory"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"BookConfig.{name} must be a positive integer, got {value!r}")
        if self.maker_fee <= -1 or self.maker_fee >= 1:
            raise ConfigError(f"BookConfig.maker_fee is a fraction of notional in (-1, 1), got {self.maker_fee}")
        if self.arrival_process == "hawkes" and self.hawkes_excitation >= self.hawkes_decay:
            raise ConfigError(
                "BookConfig.hawkes_excitation must be < hawkes_decay (a stationary Hawkes process), got "
                f"{self.hawkes_excitation} >= {self.hawkes_decay}"
            )
        if self.fill_model == "queue" and self.book_depth <= 0:
            raise ConfigError(f"BookConfig.book_depth must be > 0 for the queue model, got {self.book_depth}")

    @property
    def dt(self) -> float:
        """Time per step."""
        return self.horizon / self.n_steps

    @classmethod
    def of(cls, value: "BookConfig | Mapping[str, Any] | None") -> "BookConfig":
        """A config from itself, a dict of fields (unknown names rejected by name) or ``None`` (defaults).

        :param value: the config or its fields.
        """
        return config_from(cls, value, "book")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values."""
        return asdict(self)

    def params(self) -> np.ndarray:
        """The parameter vector of :func:`step_book`."""
        p = np.zeros(N_PARAMS)
        p[P_DT] = self.dt
        p[P_SIGMA] = self.sigma
        p[P_MU] = self.arrival_rate
        p[P_KAPPA] = self.fill_decay
        p[P_TICK] = self.tick
        p[P_LOT] = self.lot
        p[P_FEE] = self.maker_fee
        p[P_MAXINV] = self.max_inventory
        hawkes = self.arrival_process == "hawkes"
        p[P_HAWKES_A] = self.hawkes_excitation if hawkes else 0.0
        p[P_HAWKES_B] = self.hawkes_decay
        p[P_ALPHA_DECAY] = self.alpha_decay
        p[P_ALPHA_IMPACT] = self.alpha_impact
        p[P_ALPHA_VOL] = self.alpha_vol
        p[P_JUMP_RATE] = self.jump_rate
        p[P_JUMP_STD] = self.jump_std
        p[P_QUEUE] = 1.0 if self.fill_model == "queue" else 0.0
        p[P_DEPTH] = self.book_depth
        p[P_MO_SIZE] = self.mo_size
        p[P_CANCEL] = self.cancel_rate
        return p


@_inline
def _order_sizes(n: int, mean: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """Total and largest size of ``n`` market orders of geometric size (mean ``mean`` lots, at least 1)."""
    if n == 0:
        return 0.0, 0.0
    if mean <= 1.0:
        return float(n), 1.0
    total = 0.0
    largest = 0.0
    for _ in range(n):
        size = float(np.random.geometric(1.0 / mean))
        total += size
        if size > largest:
            largest = size
    return total, largest


@_inline
def _thinned(lam: float, p: float) -> tuple[int, int]:  # pragma: no cover - compiled
    """Of ``Poisson(lam)`` orders each filling with probability ``min(p, 1)``: the fills and the orders."""
    n = np.random.poisson(lam)
    if p >= 1.0:
        return n, n
    filled = 0
    # Mostly zero or one order per step: a uniform per order is cheaper than a binomial draw.
    for _ in range(n):
        if np.random.random() < p:
            filled += 1
    return filled, n


@_inline
def _queue_fill(
    volume: float, levels_ahead: float, queue_ahead: float, depth: float, size: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    """Lots of the agent's order filled by ``volume`` lots of market orders, and the queue left ahead."""
    reaching = volume - levels_ahead * depth
    if reaching <= 0.0:
        return 0.0, queue_ahead
    filled = reaching - queue_ahead
    queue_left = max(queue_ahead - reaching, 0.0)
    if filled <= 0.0:
        return 0.0, queue_left
    return min(filled, size), queue_left


@_inline
def step_one(
    i: int, p: np.ndarray, bid_offset: float, ask_offset: float, bid_lots: float, ask_lots: float,
    state: np.ndarray, events: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """One step of episode ``i``: quote, market orders, fills, then the mid-price moves.

    A side with ``lots <= 0`` or a non-finite offset is not quoted.
    """
    dt = p[P_DT]
    tick = p[P_TICK]
    lot = p[P_LOT]
    max_inv = p[P_MAXINV]
    mid = state[MID, i]
    inv = state[INV, i]
    events[MID_BEFORE, i] = mid
    # Quotes rounded away from the mid onto the tick grid (the small epsilon keeps an on-grid price put).
    bid_px = math.nan
    ask_px = math.nan
    if bid_lots > 0.0 and math.isfinite(bid_offset):
        bid_px = math.floor((mid - bid_offset) / tick + 1e-9) * tick
    if ask_lots > 0.0 and math.isfinite(ask_offset):
        ask_px = math.ceil((mid + ask_offset) / tick - 1e-9) * tick
    events[BID_PX, i] = bid_px
    events[ASK_PX, i] = ask_px
    # Market orders: buys lift asks, sells hit bids.
    lam_buy = state[LAM_BUY, i] * dt
    lam_sell = state[LAM_SELL, i] * dt
    ask_fill = 0.0
    bid_fill = 0.0
    if p[P_QUEUE] == 0.0:
        # The step's orders, each lifting the quote with probability exp(-kappa delta).
        lifted, n_buy = _thinned(lam_buy, math.exp(-p[P_KAPPA] * (ask_px - mid)) if ask_px == ask_px else 0.0)
        hit, n_sell = _thinned(lam_sell, math.exp(-p[P_KAPPA] * (mid - bid_px)) if bid_px == bid_px else 0.0)
        ask_fill = lifted * ask_lots
        bid_fill = hit * bid_lots
        buy_volume, buy_largest = float(n_buy), 1.0 if n_buy else 0.0
        sell_volume, sell_largest = float(n_sell), 1.0 if n_sell else 0.0
    else:
        n_buy = np.random.poisson(lam_buy)
        n_sell = np.random.poisson(lam_sell)
        depth = p[P_DEPTH]
        buy_volume, buy_largest = _order_sizes(n_buy, p[P_MO_SIZE])
        sell_volume, sell_largest = _order_sizes(n_sell, p[P_MO_SIZE])
        # The book's best quotes: the first tick strictly beyond the mid on each side.
        best_ask = math.floor(mid / tick + 1e-9) * tick + tick
        best_bid = math.ceil(mid / tick - 1e-9) * tick - tick
        keep = math.exp(-p[P_CANCEL] * dt)
        if ask_px == ask_px:
            improving = ask_px < best_ask - 0.5 * tick
            levels = 0.0 if improving else math.floor((ask_px - best_ask) / tick + 0.5)
            if ask_px != state[POSTED_ASK, i]:  # a new price joins the back of its queue
                state[QUEUE_ASK, i] = 0.0 if improving else depth
            ask_fill, queue = _queue_fill(buy_volume, levels, state[QUEUE_ASK, i], depth, ask_lots)
            state[QUEUE_ASK, i] = queue * keep
            state[POSTED_ASK, i] = ask_px if ask_fill < ask_lots else math.nan
        else:
            state[POSTED_ASK, i] = math.nan
        if bid_px == bid_px:
            improving = bid_px > best_bid + 0.5 * tick
            levels = 0.0 if improving else math.floor((best_bid - bid_px) / tick + 0.5)
            if bid_px != state[POSTED_BID, i]:
                state[QUEUE_BID, i] = 0.0 if improving else depth
            bid_fill, queue = _queue_fill(sell_volume, levels, state[QUEUE_BID, i], depth, bid_lots)
            state[QUEUE_BID, i] = queue * keep
            state[POSTED_BID, i] = bid_px if bid_fill < bid_lots else math.nan
        else:
            state[POSTED_BID, i] = math.nan
        buy_largest = math.ceil(buy_largest / depth)
        sell_largest = math.ceil(sell_largest / depth)
    # Inventory limits: fills that would cross them are not taken.
    ask_fill = min(ask_fill, max(inv + max_inv, 0.0))
    bid_fill = min(bid_fill, max(max_inv - inv, 0.0))
    fees = p[P_FEE] * lot * (ask_fill * ask_px if ask_fill > 0 else 0.0)
    fees += p[P_FEE] * lot * (bid_fill * bid_px if bid_fill > 0 else 0.0)
    cash = state[CASH, i]
    if ask_fill > 0.0:
        cash += ask_fill * lot * ask_px
    if bid_fill > 0.0:
        cash -= bid_fill * lot * bid_px
    state[CASH, i] = cash - fees
    state[INV, i] = inv + bid_fill - ask_fill
    events[ASK_FILL, i] = ask_fill
    events[BID_FILL, i] = bid_fill
    events[N_BUY, i] = n_buy
    events[N_SELL, i] = n_sell
    events[BUY_VOLUME, i] = buy_volume
    events[SELL_VOLUME, i] = sell_volume
    events[BUY_LEVELS, i] = buy_largest
    events[SELL_LEVELS, i] = sell_largest
    events[FEES, i] = fees
    # The mid moves after the step's orders: drift, diffusion, jumps.
    sqdt = math.sqrt(dt)
    alpha = state[ALPHA, i]
    move = alpha * dt + p[P_SIGMA] * sqdt * np.random.standard_normal()
    if p[P_JUMP_RATE] > 0.0 and np.random.random() < p[P_JUMP_RATE] * dt:
        move += p[P_JUMP_STD] * np.random.standard_normal()
    state[MID, i] = mid + move
    if p[P_ALPHA_IMPACT] != 0.0 or p[P_ALPHA_VOL] != 0.0:
        state[ALPHA, i] = (alpha * math.exp(-p[P_ALPHA_DECAY] * dt) + p[P_ALPHA_IMPACT] * (n_buy - n_sell)
                           + p[P_ALPHA_VOL] * sqdt * np.random.standard_normal())
    if p[P_HAWKES_A] > 0.0:
        decay = math.exp(-p[P_HAWKES_B] * dt)
        mu = p[P_MU]
        state[LAM_BUY, i] = mu + (state[LAM_BUY, i] - mu) * decay + p[P_HAWKES_A] * n_buy
        state[LAM_SELL, i] = mu + (state[LAM_SELL, i] - mu) * decay + p[P_HAWKES_A] * n_sell


@_jit
def step_book(
    p: np.ndarray, bid_offset: np.ndarray, ask_offset: np.ndarray, bid_lots: np.ndarray, ask_lots: np.ndarray,
    state: np.ndarray, events: np.ndarray, seed: int,
) -> None:  # pragma: no cover - compiled
    """Step every episode of the batch once (see :func:`step_one`), numba's generator seeded with ``seed``."""
    np.random.seed(seed)
    for i in range(state.shape[1]):
        step_one(i, p, bid_offset[i], ask_offset[i], bid_lots[i], ask_lots[i], state, events)


SEED_BLOCK = 256
"""Step seeds drawn from the owner's generator at once (one Generator call costs as much as a whole step)."""


class StepSeeds:
    """The seeds of the compiled steps, drawn from the owner's generator :data:`SEED_BLOCK` at a time.

    :meth:`peek` gives the next step's seed; :meth:`advance` consumes it once the step has run, so a step
    refused for an invalid action leaves the stream as it was.
    """

    def __init__(self) -> None:
        self._seeds = np.zeros(0, dtype=np.int64)
        self._k = 0

    def discard(self) -> None:
        """Forget the drawn seeds (after the owner's generator is reseeded)."""
        self._k = self._seeds.size

    def peek(self, rng: np.random.Generator) -> int:
        """The next step's seed.

        :param rng: the owner's seeded generator.
        """
        if self._k >= self._seeds.size:
            self._seeds = rng.integers(0, 2**32, size=SEED_BLOCK)
            self._k = 0
        return int(self._seeds[self._k])

    def advance(self) -> None:
        """The peeked seed was used."""
        self._k += 1


class OrderBookSim:
    """``n`` independent episodes of the :class:`BookConfig` market, stepped together.

    The state is one ``(N_STATE, n)`` block (rows :data:`MID`, :data:`INV`, :data:`CASH`...); each
    :meth:`step` writes the step's events into :attr:`events` (rows :data:`BID_PX`, :data:`ASK_FILL`,
    :data:`N_BUY`...). Inventory is in lots, cash in price units.

    :param config: the market.
    :param n: number of episodes.
    """

    def __init__(self, config: BookConfig, n: int = 1) -> None:
        self.config = config
        self.n = int(n)
        self.params = config.params()
        self.state = np.zeros((N_STATE, self.n))
        self.events = np.zeros((N_EVENTS, self.n))
        self.seeds = StepSeeds()
        self.reset_rows(np.arange(self.n))

    def reset_rows(self, rows: np.ndarray) -> None:
        """Start new episodes in ``rows``: mid at ``s0``, flat, no cash, intensities at their baseline (the
        events of their last step stay readable until the next step).

        :param rows: episode indices.
        """
        s = self.state
        s[:, rows] = 0.0
        s[MID, rows] = self.config.s0
        s[LAM_BUY, rows] = self.config.arrival_rate
        s[LAM_SELL, rows] = self.config.arrival_rate
        s[POSTED_BID, rows] = np.nan
        s[POSTED_ASK, rows] = np.nan

    def step(
        self, rng: np.random.Generator, bid_offset: np.ndarray, ask_offset: np.ndarray,
        bid_lots: np.ndarray, ask_lots: np.ndarray,
    ) -> np.ndarray:
        """Quote, fill and move every episode one step; returns :attr:`events`.

        :param rng: the generator the random numbers come from.
        :param bid_offset: ``(n,)`` distances of the bids below the mid (price units).
        :param ask_offset: ``(n,)`` distances of the asks above the mid.
        :param bid_lots: ``(n,)`` bid sizes in lots (0: no bid).
        :param ask_lots: ``(n,)`` ask sizes in lots (0: no ask).
        """
        step_book(self.params, bid_offset, ask_offset, bid_lots, ask_lots, self.state, self.events, self.seeds.peek(rng))
        self.seeds.advance()
        return self.events

    @property
    def mid(self) -> np.ndarray:
        """Mid-prices ``(n,)`` (a view)."""
        return self.state[MID]

    @property
    def inventory(self) -> np.ndarray:
        """Inventories in lots ``(n,)`` (a view)."""
        return self.state[INV]

    @property
    def cash(self) -> np.ndarray:
        """Cash ``(n,)`` (a view)."""
        return self.state[CASH]

    def mark_to_market(self) -> np.ndarray:
        """``cash + inventory * lot * mid`` per episode."""
        return self.state[CASH] + self.state[INV] * self.config.lot * self.state[MID]


# ---------------------------------------------------------------------------------------------- market maker
# The market maker's account and observation, compiled with the book's step so that a batched env step is
# one call (MarketMaking-v0's single env and vector env both step through it).
M_PHI, M_TERMINAL, M_MAX_OFFSET, M_MAX_LOTS, M_SIZES, M_N_STEPS, M_EMA = range(7)
N_MM_PARAMS = 7
# Rows of the market maker's running statistics.
S_PREV_MTM, S_FLOW, S_INTENSITY, S_RETURN, S_VARIANCE, S_PNL = range(6)
N_STATS = 6
N_OBS = 7
ACTION_TOLERANCE = 1e-6
"""How far outside the action box an action may be and still be clipped in (float32 round-off)."""
OBS_CLIP = 10.0


@_inline
def _unit(a: float) -> float:  # pragma: no cover - compiled
    """An action component in ``[-1, 1]`` as a fraction in ``[0, 1]``."""
    return min(max(0.5 * (a + 1.0), 0.0), 1.0)


def offsets_to_action(bid_offset: Any, ask_offset: Any, max_offset: float) -> np.ndarray:
    """The ``[-1, 1]`` action components of quote distances (clipped to ``[0, max_offset]``).

    :param bid_offset: distance of the bid below the mid (scalar or array).
    :param ask_offset: distance of the ask above the mid.
    :param max_offset: the env's largest distance.
    """
    offsets = np.stack(np.broadcast_arrays(np.asarray(bid_offset, float), np.asarray(ask_offset, float)), axis=-1)
    return np.clip(2.0 * offsets / max_offset - 1.0, -1.0, 1.0).astype(np.float32)


@_inline
def observe_market_maker(
    p: np.ndarray, m: np.ndarray, state: np.ndarray, stats: np.ndarray, clock: np.ndarray, obs: np.ndarray, i: int
) -> None:  # pragma: no cover - compiled
    """Row ``i`` of the observation: inventory, time left, order flow, intensity, return, volatility, spread."""
    unit = p[P_SIGMA] * math.sqrt(p[P_DT])
    tick = p[P_TICK]
    mid = state[MID, i]
    spread = (math.floor(mid / tick + 1e-9) - math.ceil(mid / tick - 1e-9) + 2.0)
    values = (
        state[INV, i] / p[P_MAXINV],
        1.0 - clock[i] / m[M_N_STEPS],
        stats[S_FLOW, i],
        stats[S_INTENSITY, i],
        stats[S_RETURN, i] / unit,
        math.sqrt(stats[S_VARIANCE, i]) / unit,
        spread,
    )
    for j in range(N_OBS):
        obs[i, j] = min(max(values[j], -OBS_CLIP), OBS_CLIP)


@_jit
def reset_market_maker(
    rows: np.ndarray, p: np.ndarray, m: np.ndarray, state: np.ndarray, stats: np.ndarray, clock: np.ndarray,
    obs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Running statistics and clocks of new episodes in ``rows`` (their book state already reset)."""
    unit2 = p[P_SIGMA] ** 2 * p[P_DT]
    for i in rows:
        clock[i] = 0
        stats[S_PREV_MTM, i] = state[CASH, i] + state[INV, i] * p[P_LOT] * state[MID, i]
        stats[S_PNL, i] = 0.0
        stats[S_FLOW, i] = 0.0
        stats[S_INTENSITY, i] = 1.0
        stats[S_RETURN, i] = 0.0
        stats[S_VARIANCE, i] = unit2
        observe_market_maker(p, m, state, stats, clock, obs, i)


@_jit
def step_market_maker(
    p: np.ndarray, m: np.ndarray, actions: np.ndarray, state: np.ndarray, stats: np.ndarray, clock: np.ndarray,
    events: np.ndarray, seed: int,
    obs: np.ndarray, rewards: np.ndarray, penalties: np.ndarray, truncated: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """One step of every market maker: quotes from ``actions``, the book's step, reward and observation.

    ``actions`` is ``(n, 2)`` bid and ask offsets, or ``(n, 4)`` with bid and ask sizes, each in ``[-1, 1]``
    mapping linearly onto ``[0, max_offset]`` and ``[0, max_lots]`` (sizes rounded to whole lots; 0 leaves
    the side unquoted). Nothing is stepped (and the generator is not seeded) if any action is
    outside ``[-1, 1]`` or NaN: the return value is then ``-(row + 1)`` of the first bad row. Otherwise it
    is the number of episodes that ended (truncated at ``n_steps``).

    The reward is the change of ``cash + inventory * mid`` less the running inventory penalty
    ``phi * dt * (q_before^2 + q_after^2) / 2`` (the trapezoid of ``phi * integral q^2 dt``) and, at the
    last step, the terminal penalty ``terminal * q_T^2`` (``q`` in units); ``penalties`` receives the
    penalty part, so rewards plus penalties sum to the P/L.
    """
    n = state.shape[1]
    width = actions.shape[1]
    for i in range(n):
        for j in range(width):
            a = actions[i, j]
            if not (-1.0 - ACTION_TOLERANCE <= a <= 1.0 + ACTION_TOLERANCE):  # NaN fails too
                return -(i + 1)
    np.random.seed(seed)
    dt = p[P_DT]
    lot = p[P_LOT]
    ema = m[M_EMA]
    expected = max(p[P_MU] * dt, 1e-12)
    n_done = 0
    for i in range(n):
        bid_off = _unit(actions[i, 0]) * m[M_MAX_OFFSET]
        ask_off = _unit(actions[i, 1]) * m[M_MAX_OFFSET]
        bid_lots = 1.0
        ask_lots = 1.0
        if width == 4:
            bid_lots = float(round(_unit(actions[i, 2]) * m[M_MAX_LOTS]))
            ask_lots = float(round(_unit(actions[i, 3]) * m[M_MAX_LOTS]))
        q0 = state[INV, i] * lot
        step_one(i, p, bid_off, ask_off, bid_lots, ask_lots, state, events)
        q1 = state[INV, i] * lot
        mtm = state[CASH, i] + q1 * state[MID, i]
        pnl = mtm - stats[S_PREV_MTM, i]
        stats[S_PREV_MTM, i] = mtm
        penalty = m[M_PHI] * dt * 0.5 * (q0 * q0 + q1 * q1)
        clock[i] += 1
        done = clock[i] >= m[M_N_STEPS]
        if done:
            penalty += m[M_TERMINAL] * q1 * q1
            n_done += 1
        rewards[i] = pnl - penalty
        penalties[i] = penalty
        stats[S_PNL, i] += pnl
        truncated[i] = done
        ret = state[MID, i] - events[MID_BEFORE, i]
        stats[S_FLOW, i] = ema * stats[S_FLOW, i] + (1.0 - ema) * (events[N_BUY, i] - events[N_SELL, i]) / expected
        stats[S_INTENSITY, i] = ema * stats[S_INTENSITY, i] + (1.0 - ema) * (
            events[N_BUY, i] + events[N_SELL, i]) / (2.0 * expected)
        stats[S_RETURN, i] = ret
        stats[S_VARIANCE, i] = ema * stats[S_VARIANCE, i] + (1.0 - ema) * ret * ret
        observe_market_maker(p, m, state, stats, clock, obs, i)
    return n_done
