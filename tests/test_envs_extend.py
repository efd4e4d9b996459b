"""``TradingEnvBase.extend``: an env fed bars one at a time walks the path of one built on them all."""

from __future__ import annotations

import numpy as np
import pytest

from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.features import FeatureConfig, compute_features

FEATURES = FeatureConfig(features=("ret_1", "rsi_14", "ema_ratio_20"))
ENVS = {"stocks": StocksEnv, "portfolio": PortfolioEnv}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=2, n_days=160, seed=3)


def make(kind: str, data: MarketData) -> StocksEnv | PortfolioEnv:
    return ENVS[kind](data, action_mode="weights", features=FEATURES)


def with_placeholder(data: MarketData) -> MarketData:
    """``data`` and a made-up next bar, as the live runner holds it."""
    nxt = data.values[-1:] * 1.5
    index = data.index.append(data.index[-1:] + (data.index[-1] - data.index[-2]))
    return MarketData(np.concatenate([data.values, nxt]), index, data.symbols)


@pytest.mark.parametrize("kind", list(ENVS))
def test_extended_env_matches_the_env_built_on_every_bar(market: MarketData, kind: str) -> None:
    market = market.select(list(market.symbols[:1])) if kind == "stocks" else market
    full = make(kind, market)
    start = full.first_t + 5
    grown = make(kind, with_placeholder(market.iloc(slice(0, start + 1))))
    rng = np.random.default_rng(0)
    actions = rng.uniform(0.0, 0.5, size=(market.n_bars - start - 1, full.action_space.shape[0]))
    obs_a, info_a = full.reset(seed=1, options={"start": start})
    obs_b, info_b = grown.reset(seed=1, options={"start": start})
    np.testing.assert_array_equal(obs_a, obs_b)
    for t, action in enumerate(actions, start + 1):
        grown.extend(with_placeholder(market.iloc(slice(0, t + 1))))
        obs_a, reward_a, _, _, info_a = full.step(action)
        obs_b, reward_b, _, _, info_b = grown.step(action)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b and info_a["equity"] == info_b["equity"] and info_b["t"] == t
        np.testing.assert_array_equal(info_a["history"].ohlcv, info_b["history"].ohlcv)
    assert grown.trade_frame().equals(full.trade_frame())


def test_extend_refuses_a_changed_past_a_short_feed_and_precomputed_features(market: MarketData) -> None:
    env = make("portfolio", market.iloc(slice(0, 80)))
    env.reset(seed=0, options={"start": 60})
    env.step(np.array([0.2, 0.2]))
    with pytest.raises(ValueError, match="must go past the current bar 61"):
        env.extend(market.iloc(slice(0, 62)))
    edited = market.values[:90].copy()
    edited[10, 0, 3] *= 1.01
    with pytest.raises(ValueError, match="must repeat the env's bars up to the current one"):
        env.extend(MarketData(edited, market.index[:90], market.symbols))
    with pytest.raises(ValueError, match="symbols"):
        env.extend(market.iloc(slice(0, 90)).select([market.symbols[1], market.symbols[0]]))
    env.extend(market.iloc(slice(0, 90)))
    assert env.last_t == 89 and env.step(np.array([0.1, 0.1]))[4]["t"] == 62

    data = market.iloc(slice(0, 80))
    fixed = PortfolioEnv(data, action_mode="weights", features=compute_features(data, FEATURES))
    fixed.reset(seed=0)
    with pytest.raises(ValueError, match="precomputed Features"):
        fixed.extend(market.iloc(slice(0, 90)))
