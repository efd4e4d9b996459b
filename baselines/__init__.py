"""Rule bots and closed-form policies. Each registers itself with :func:`agents.registry.register_policy`
where it is defined; importing this package registers them all (the registry imports it through the
``alpaca_gym.policies`` entry point, so ``agents`` never names ``baselines``)."""

from baselines import (  # noqa: F401  (each module registers its policies)
    bollinger_reversion,
    breakout,
    buy_and_hold,
    consensus,
    execution,
    macd_momentum,
    market_making,
    options_bots,
    oracles,
    pairs_trading,
    rsi_reversion,
    sma_crossover,
)
