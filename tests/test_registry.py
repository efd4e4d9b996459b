"""Policy registry: names, parameter coercion and errors, YAML and --param input, save/load by folder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest
import yaml

from agents import registry
from agents.params import Parameterised, coerce
from agents.policy import Policy
from agents.registry import (
    RegistryError,
    load_param_file,
    load_policy,
    make_policy,
    params_for,
    parse_overrides,
    policy_class,
    register_loader,
    register_policy,
    save_policy,
)
from baselines.sma_crossover import SmaCrossover


class Fitted(Parameterised):
    """A policy with an artefact file, like a trained model."""

    name: ClassVar[str] = "fitted_test"
    scale: float = 1.0
    mode: Literal["a", "b"] = "a"
    cap: int | None = None

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.coef = np.zeros(2)

    def reset(self, seed=None) -> None:
        pass

    def act(self, obs, info):
        return self.coef * self.scale

    def save_artifacts(self, folder: Path) -> None:
        np.save(folder / "coef.npy", self.coef)

    def load_artifacts(self, folder: Path) -> None:
        self.coef = np.load(folder / "coef.npy")


@pytest.fixture(autouse=True)
def restore_registry():
    policies, loaders = dict(registry._policies), dict(registry._loaders)
    yield
    registry._policies.clear()
    registry._policies.update(policies)
    registry._loaders.clear()
    registry._loaders.update(loaders)


def test_every_builtin_name_builds_a_policy():
    for name in registry.policy_names():
        policy = make_policy(name)
        assert isinstance(policy, Policy)
        assert policy.name == name


def test_unknown_name_suggests_close_ones():
    with pytest.raises(RegistryError, match=r"unknown policy 'sma_crosover' \(did you mean sma_crossover"):
        make_policy("sma_crosover")


def test_string_parameters_are_coerced_to_the_declared_types():
    bot = make_policy("sma_crossover", {"fast": "5", "slow": "30", "allow_short": "true", "fraction": "1"})
    assert (bot.fast, bot.slow, bot.allow_short, bot.fraction) == (5, 30, True, 1.0)
    assert isinstance(bot.fraction, float)
    assert coerce("p", "x", int | None, "none") is None
    assert coerce("p", "x", bool, "off") is False


@pytest.mark.parametrize(
    "params, message",
    [
        ({"speed": 3}, r"unknown parameter\(s\) \['speed'\] for sma_crossover; known: \['allow_short'"),
        ({"fast": "3.5"}, "sma_crossover.fast must be int, got '3.5'"),
        ({"allow_short": "maybe"}, "sma_crossover.allow_short must be bool"),
        ({"fast": 40}, "cannot build sma_crossover: sma_crossover needs 1 <= fast < slow"),
    ],
)
def test_bad_parameters_fail_clearly(params, message):
    with pytest.raises(RegistryError, match=message):
        make_policy("sma_crossover", params)


def test_overrides_target_one_policy_or_every_policy_declaring_the_key():
    overrides = parse_overrides(["fast=5", "consensus.threshold=0.7", "rsi_reversion.period=9"])
    assert overrides == [
        (None, "fast", "5"), ("consensus", "threshold", "0.7"), ("rsi_reversion", "period", "9"),
    ]
    assert params_for("sma_crossover", SmaCrossover, overrides) == {"fast": "5"}
    assert params_for("consensus", policy_class("consensus"), overrides) == {"threshold": "0.7"}
    with pytest.raises(RegistryError, match="key=value"):
        parse_overrides(["fast"])


def test_param_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sma_crossover:\n  fast: 4\n  slow: 12\n")
    assert load_param_file(path) == {"sma_crossover": {"fast": 4, "slow": 12}}
    path.write_text("- not a mapping\n")
    with pytest.raises(RegistryError, match="expected a mapping"):
        load_param_file(path)


def test_save_and_load_round_trip_by_path(tmp_path):
    bot = make_policy("rsi_reversion", {"period": 9, "oversold": 25})
    folder = save_policy(bot, tmp_path / "rsi")
    manifest = yaml.safe_load((folder / "policy.yaml").read_text())
    assert manifest["kind"] == "params"
    assert manifest["class"] == "baselines.rsi_reversion:RsiReversion"
    loaded = make_policy(str(folder))
    assert loaded.params == bot.params
    assert make_policy(str(folder), {"period": "21"}).period == 21


def test_artefacts_are_saved_and_restored(tmp_path):
    register_policy("fitted_test", Fitted)
    policy = make_policy("fitted_test", {"scale": 2, "mode": "b"})
    policy.coef = np.array([0.5, -1.0])
    folder = save_policy(policy, tmp_path / "fitted")
    loaded = load_policy(folder)
    assert isinstance(loaded, Fitted) and loaded.mode == "b"
    np.testing.assert_array_equal(loaded.act(None, {}), [1.0, -2.0])


def test_custom_loader_kind(tmp_path):
    calls = []

    def load_special(folder: Path, manifest: dict) -> Policy:
        calls.append(manifest["params"])
        return SmaCrossover(**manifest["params"])

    register_loader("special", load_special)
    save_policy(SmaCrossover(fast=3, slow=9), tmp_path / "s", kind="special")
    assert load_policy(tmp_path / "s").fast == 3
    assert calls and calls[0]["slow"] == 9


def test_malformed_saved_policies(tmp_path):
    with pytest.raises(RegistryError, match="no policy.yaml"):
        load_policy(tmp_path)
    (tmp_path / "policy.yaml").write_text("kind: mystery\nclass: x:y\n")
    with pytest.raises(RegistryError, match="unknown kind 'mystery'"):
        load_policy(tmp_path)
    (tmp_path / "policy.yaml").write_text("name: x\n")
    with pytest.raises(RegistryError, match=r"missing field\(s\) \['kind', 'class'\]"):
        load_policy(tmp_path)


def test_loader_modules_are_imported_for_their_kinds(tmp_path, monkeypatch):
    (tmp_path / "policy.yaml").write_text("kind: lazy_test\nclass: x:y\n")
    module = tmp_path / "lazy_loader_mod.py"
    module.write_text(
        "from agents.registry import register_loader\n"
        "from baselines.buy_and_hold import BuyAndHold\n"
        "register_loader('lazy_test', lambda folder, manifest: BuyAndHold())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.LOADER_MODULES, "lazy_test", "lazy_loader_mod")
    assert load_policy(tmp_path).name == "buy_and_hold"

