"""The put/call volume ratio as an observation of Options-v0: the chains' own volume, causal, opt-in."""

from __future__ import annotations

import numpy as np
from gymnasium.utils.env_checker import check_env

from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market_with_state
from envs.environments.options import OptionsEnv
from envs.options.chains import SyntheticChains


def _market(n_days: int = 300) -> tuple[MarketData, object]:
    return generate_market_with_state(n_symbols=1, n_days=n_days, seed=4)


def test_put_call_ratio_is_the_chains_traded_volume() -> None:
    data, state = _market()
    chains = SyntheticChains.from_market(data, state=state)
    for t in (0, 57, 299):
        chain = chains.chain(t)
        puts, calls = chain.volume[~chain.is_call].sum(), chain.volume[chain.is_call].sum()
        assert chains.put_call_ratio[t] == puts / calls
    # Puts gain share after down days (the model's fear term), so the ratio falls with the bar's return.
    returns = np.diff(np.log(data.close[:, 0]))
    assert np.corrcoef(returns, np.log(chains.put_call_ratio[1:]))[0, 1] < -0.3


def test_options_env_observes_it_when_asked_and_never_reads_ahead() -> None:
    data, state = _market()
    plain = OptionsEnv(data)
    env = OptionsEnv(data, sentiment=True)
    assert plain.observation_space.shape == (20,) and env.observation_space.shape == (22,)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0, options={"start": 120})
    ratio = env.chains.put_call_ratio
    log_ratio = np.log(ratio[101:121])
    np.testing.assert_allclose(obs[10:12], [log_ratio[-1], log_ratio[-1] - log_ratio.mean()], rtol=1e-5)
    np.testing.assert_array_equal(obs[:10], plain.reset(seed=0, options={"start": 120})[0][:10])
    # A different future (closes from bar 200 on) leaves every earlier observation as it was.
    values = data.values.copy()
    values[200:] *= 1.3
    future = OptionsEnv(MarketData(values, data.index, data.symbols), sentiment=True)
    before = [env.reset(seed=0, options={"start": t})[0] for t in (100, 150, 199)]
    after = [future.reset(seed=0, options={"start": t})[0] for t in (100, 150, 199)]
    np.testing.assert_array_equal(before, after)
