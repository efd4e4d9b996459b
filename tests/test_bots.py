"""Rule bots: act == act_batch bar by bar, causality, each rule's behaviour, sizing and parameter checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy, policy_class, policy_names
from envs.sim.sizing import CappedKelly, FixedFraction, VolatilityTarget, make_sizer
from baselines.consensus import Consensus
from baselines.pairs_trading import PairsTrading
from baselines.rsi_reversion import RsiReversion
from baselines.signals import crossed_above, hold_last, latch
from baselines.sma_crossover import SmaCrossover
from envs.data.history import History
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.environments.portfolio import PortfolioEnv
from experiments.engine import MINIMAL_FEATURES

# Stock bots: the baselines that name no env of their own (options, market-making and execution policies do).
BOTS = [n for n in policy_names() if policy_class(n).__module__.startswith("baselines.") and getattr(policy_class(n), "env_id", None) is None]


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=3, n_days=320, seed=11)


def shorting(name: str) -> dict:
    return {"allow_short": True} if name != "pairs_trading" else {"formation": 60, "max_pvalue": 0.5}


@pytest.mark.parametrize("name", BOTS)
def test_act_batch_equals_stepping_act(name, market):
    bot = make_policy(name, shorting(name))
    batch = bot.act_batch(market)
    assert batch.shape == (market.n_bars, market.n_symbols)
    assert np.isfinite(batch).all() and (np.abs(batch) <= 1).all()
    bot.reset(0)
    stepped = np.array([bot.act(None, {"history": History(market, t)}) for t in range(market.n_bars)])
    np.testing.assert_array_equal(stepped, batch)
    assert np.count_nonzero(batch) > 0, f"{name} never trades on this data"


@pytest.mark.parametrize("name", ["sma_crossover", "consensus", "pairs_trading"])
def test_act_reads_the_env_history(name, market):
    bot = make_policy(name, shorting(name))
    env = PortfolioEnv(market, window_size=1, features=MINIMAL_FEATURES, action_mode="weights",
                       execution={"allow_short": True})
    expected = bot.act_batch(market)
    obs, info = env.reset(options={"start": 200})
    for _ in range(30):
        np.testing.assert_array_equal(bot.act(obs, info), expected[info["t"]])
        obs, _, _, _, info = env.step(bot.act(obs, info))


@pytest.mark.parametrize("name", BOTS)
def test_changing_the_future_changes_nothing_before_it(name, market):
    bot = make_policy(name, shorting(name))
    t = 250
    values = market.values.copy()
    values[t + 1 :, :, :4] *= np.linspace(0.5, 1.5, market.n_bars - t - 1)[:, None, None]
    future = MarketData(values, market.index, market.symbols)
    np.testing.assert_array_equal(bot.act_batch(future)[: t + 1], bot.act_batch(market)[: t + 1])


def test_signal_helpers():
    a = np.array([[1.0], [2.0], [3.0], [2.0], [np.nan], [5.0]])
    b = np.full_like(a, 2.5)
    assert crossed_above(a, b)[:, 0].tolist() == [False, False, True, False, False, False]
    events = np.array([[np.nan], [1.0], [np.nan], [-1.0], [np.nan]])
    assert hold_last(events)[:, 0].tolist() == [0.0, 1.0, 1.0, -1.0, -1.0]
    enter = np.array([[False], [True], [False], [False], [True]])
    leave = np.array([[False], [False], [False], [True], [True]])
    assert latch(enter, leave)[:, 0].tolist() == [False, True, True, False, True]


def test_sma_crossover_trades_only_on_strict_crossings():
    close = np.array([10, 10, 10, 10, 12, 14, 9, 7, 6, 6], dtype=float)
    data = MarketData(np.repeat(close[:, None, None], 5, axis=2), pd.date_range("2024-01-01", periods=10),
                      ("X",))
    bot = SmaCrossover(fast=2, slow=3, fraction=1.0, allow_short=True)
    fast = pd.Series(close).rolling(2).mean()
    slow = pd.Series(close).rolling(3).mean()
    up = (fast.shift() < slow.shift()) & (fast > slow)
    down = (slow.shift() < fast.shift()) & (slow > fast)
    assert not up.any()  # equal averages at the start are not a crossing
    weights = bot.act_batch(data)[:, 0]
    assert weights.tolist() == [0, 0, 0, 0, 0, 0, -1, -1, -1, -1]
    assert down.to_numpy().nonzero()[0].tolist() == [6]


def test_rsi_reversion_holds_until_the_exit_level(market):
    bot = RsiReversion(allow_short=True, fraction=1.0)
    from envs.features.indicators import rsi

    level = rsi(market.close, 14)
    weights = bot.act_batch(market)
    with np.errstate(invalid="ignore"):
        assert (weights[level < 30] == 1).all() and (weights[level > 70] == -1).all()
        long_ok = level[weights == 1] < 50
        short_ok = level[weights == -1] > 50
    assert long_ok.all() and short_ok.all()


def test_consensus_needs_agreement_above_the_threshold(market):
    bot = Consensus(allow_short=True, fraction=1.0)
    votes = bot.votes(market)
    agreement = votes.mean(axis=0)
    weights = bot.act_batch(market)
    assert set(np.unique(weights)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(weights != 0, np.abs(agreement) > 0.6)
    np.testing.assert_array_equal(np.sign(weights), np.where(np.abs(agreement) > 0.6, np.sign(agreement), 0))
    assert (Consensus(threshold=0.9, allow_short=True).act_batch(market) != 0).sum() < (weights != 0).sum()


def test_pairs_trading_finds_the_cointegrated_pair_and_hedges_it():
    data = generate_market(n_symbols=2, n_days=1500, seed=4, hedge_ratio=0.8, spread_std=0.03)
    bot = PairsTrading(formation=250, max_pvalue=0.1)
    log_a, log_b = np.log(data.close[:, 0]), np.log(data.close[:, 1])
    fit = bot.fit(log_b, log_a)
    assert fit.beta == pytest.approx(0.8, abs=0.03) and fit.pvalue < 0.01
    weights = bot.act_batch(data)
    held = weights[:, 0] != 0
    assert held.any()
    # Opposite legs, gross exposure = fraction.
    assert (np.sign(weights[held, 0]) == -np.sign(weights[held, 1])).all()
    np.testing.assert_allclose(np.abs(weights[held]).sum(axis=1), 0.5)


def test_pairs_trading_rejects_bad_setups(market):
    with pytest.raises(ValueError, match="allow_short=True"):
        PairsTrading(allow_short=False)
    with pytest.raises(ValueError, match="symbol_b='NOPE'"):
        PairsTrading(symbol_b="NOPE").act_batch(market)


def test_bad_parameters_name_the_parameter():
    with pytest.raises(ValueError, match="fast < slow"):
        SmaCrossover(fast=30, slow=20)
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['speed'\]"):
        SmaCrossover(speed=3)
    with pytest.raises(TypeError, match="sma_crossover.fast must be int"):
        SmaCrossover(fast="ten")
    with pytest.raises(TypeError, match="sizing must be one of"):
        SmaCrossover(sizing="martingale")


def test_long_only_bots_never_go_short(market):
    for name in ("sma_crossover", "rsi_reversion", "macd_momentum", "breakout", "consensus"):
        assert (make_policy(name).act_batch(market) >= 0).all()


def test_sizers():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 2)), axis=0))
    signal = np.ones((300, 2))
    np.testing.assert_allclose(FixedFraction(0.1)(signal, close), 0.1)
    vol = VolatilityTarget(target_vol=0.08, lookback=20, max_weight=1.0, periods_per_year=252)(signal, close)
    assert (vol[:20] == 0).all()
    realised = pd.DataFrame(np.diff(np.log(close), axis=0)).rolling(20).std().to_numpy()[-1] * np.sqrt(252)
    np.testing.assert_allclose(vol[-1], np.minimum(0.08 / realised, 1.0))
    # A signal that always earned money gets a positive, capped Kelly bet; a losing one gets none.
    trend = 100 * np.exp(np.cumsum(np.abs(rng.normal(0.001, 0.01, (300, 1))), axis=0))
    kelly = CappedKelly(scale=0.5, lookback=30, max_weight=0.25)
    assert kelly(np.ones((300, 1)), trend)[-1, 0] == pytest.approx(0.25)
    assert kelly(-np.ones((300, 1)), trend)[-1, 0] == 0.0
    with pytest.raises(ValueError, match="unknown sizing"):
        make_sizer("doubling", 0.1)


@pytest.mark.parametrize("sizing", ["volatility", "kelly"])
def test_sized_bots_keep_act_equal_to_act_batch(sizing, market):
    bot = make_policy("macd_momentum", {"sizing": sizing, "fraction": 0.3, "allow_short": True})
    batch = bot.act_batch(market)
    stepped = np.array([bot.act(None, {"history": History(market, t)}) for t in range(0, market.n_bars, 7)])
    np.testing.assert_array_equal(stepped, batch[::7])
    assert (np.abs(batch) <= 0.3).all() and np.count_nonzero(batch) > 0
