"""Options: Black-Scholes-Merton pricing and Greeks with Jaeckel's implied-vol solver
(:mod:`~envs.options.pricing`, :mod:`~envs.options.lets_be_rational`), option chains (synthetic, and real
ones read from files or the store: :mod:`~envs.options.chains`, :mod:`~envs.options.chain_store`),
multi-leg strategies (:mod:`~envs.options.strategies`) and the option account that fills, marks, exercises
and settles them (:mod:`~envs.options.account`)."""

from envs.options.account import OptionAccount, OptionCosts
from envs.options.chains import ChainConfig, OptionChain, SyntheticChains
from envs.options.pricing import bsm_greeks, bsm_price, implied_vol

__all__ = [
    "ChainConfig",
    "OptionAccount",
    "OptionChain",
    "OptionCosts",
    "SyntheticChains",
    "bsm_greeks",
    "bsm_price",
    "implied_vol",
]
