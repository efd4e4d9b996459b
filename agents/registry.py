"""Name a policy on the command line, give it parameters, save it to a folder and load it back.

- Names: ``make_policy("sma_crossover", {"fast": 5})``. A policy class registers itself where it is
  defined, with the :func:`register_policy` decorator. The modules that do so are found through the
  ``alpaca_gym.policies`` entry point group (``pyproject.toml``) and imported on the first lookup, so this
  module names no policy family (``agents`` sits below ``baselines``) and another package can add its own.
- Parameters come from Python, a YAML file (:func:`load_param_file`) or ``--param key=value`` strings
  (:func:`parse_overrides`); values are coerced to the type of the class's annotated attribute, and
  unknown names fail with the list of known ones.
- A saved policy is a folder with ``policy.yaml``: ``kind``, ``class`` (``"module:Class"``), ``name`` and
  ``params``, plus whatever artefacts the policy writes there. :func:`load_policy` dispatches on ``kind``
  to a loader (:func:`register_loader`); the default ``"params"`` loader rebuilds the class from its
  parameters, then calls the class's ``load_artifacts(folder)`` if it has one. A learned policy (PPO
  weights, a fitted model) either implements ``save_artifacts``/``load_artifacts`` or registers its own
  kind and loader, listing the module that registers it in :data:`LOADER_MODULES`.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from agents.params import coerce, declared_params
from agents.policy import Policy

MANIFEST = "policy.yaml"

PLUGIN_GROUP = "alpaca_gym.policies"
"""Entry point group naming the modules that register policies on import (e.g. ``baselines``)."""

# Saved-policy kinds whose loader lives in a module that registers it on import; imported on first use
# so that loading a rule bot never imports torch.
LOADER_MODULES: dict[str, str] = {"ppo": "agents.ppo", "a2c": "agents.ppo", "sac": "agents.ppo"}

Loader = Callable[[Path, dict[str, Any]], Policy]

_policies: dict[str, str | type] = {}
_plugins_loaded = False
_loaders: dict[str, Loader] = {}


class RegistryError(ValueError):
    """An unknown policy name, parameter, loader kind, or a malformed saved policy."""


def register_policy(name: Any = None, target: str | type | None = None) -> Any:
    """Make a name resolve to a policy class; usable as a class decorator.

    ``@register_policy`` registers the class under its ``name`` attribute; ``@register_policy("other")``
    under another name; ``register_policy("name", Class)`` or ``register_policy("name", "module:Class")``
    (imported on first use) directly.

    :param name: the command-line name (or, used bare as a decorator, the class itself).
    :param target: the class, or ``"module:Class"`` to import lazily.
    """
    if isinstance(name, type):
        name, target = None, name
    if target is None:
        return lambda cls: register_policy(name, cls)
    key = name or getattr(target, "name", None)
    if not isinstance(key, str) or not key:
        raise RegistryError(f"{target!r} has no name attribute; give register_policy a name")
    _policies[key] = target
    return target


def _load_plugins() -> None:
    """Import every module of the ``alpaca_gym.policies`` entry points once (they register on import)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=PLUGIN_GROUP):
        entry.load()


def register_loader(kind: str, loader: Loader) -> None:
    """Make saved policies whose manifest says ``kind`` load with ``loader(folder, manifest)``.

    :param kind: the manifest's ``kind`` value.
    :param loader: function returning the policy.
    """
    _loaders[kind] = loader


def policy_names() -> list[str]:
    """Every registered policy name, sorted."""
    _load_plugins()
    return sorted(_policies)


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    if not attr:
        raise RegistryError(f"expected 'module:Class', got {target!r}")
    return getattr(importlib.import_module(module), attr)


def policy_class(name: str) -> type:
    """The class registered under ``name``.

    :param name: a registered policy name.
    """
    if name not in _policies:
        _load_plugins()
    if name not in _policies:
        close = difflib.get_close_matches(name, _policies, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RegistryError(f"unknown policy {name!r}{hint}; known: {policy_names()}")
    target = _policies[name]
    if isinstance(target, str):
        target = _policies[name] = _import(target)
    return target


def check_params(cls: type, params: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``params`` coerced to the types of ``cls``'s annotated attributes; unknown names raise.

    :param cls: the policy class.
    :param params: raw values (strings from the command line are fine).
    :param owner: name used in error messages.
    """
    declared = declared_params(cls)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise RegistryError(
            f"unknown parameter(s) {unknown} for {owner}{_did_you_mean(unknown[0], declared)}; "
            f"known: {sorted(declared)}"
        )
    try:
        return {k: coerce(owner, k, declared[k], v) for k, v in params.items()}
    except TypeError as err:
        raise RegistryError(str(err)) from None


def make_policy(name: str, params: Mapping[str, Any] | None = None) -> Policy:
    """A policy from a registered name or from the folder of a saved one.

    :param name: a registered name, or a path to a folder holding ``policy.yaml``.
    :param params: parameter values overriding the defaults (or the saved values).
    """
    params = dict(params or {})
    if name not in _policies:
        _load_plugins()
    if name not in _policies and Path(name).is_dir():
        return load_policy(name, params)
    cls = policy_class(name)
    try:
        return cls(**check_params(cls, params, name))
    except (TypeError, ValueError) as err:
        raise RegistryError(f"cannot build {name}: {err}") from None


def parse_overrides(items: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """Parse ``key=value`` (every policy declaring ``key``) and ``policy.key=value`` (one policy).

    :param items: the strings given to ``--param``.
    :returns: ``(policy or None, key, value)`` triples.
    """
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RegistryError(f"--param expects key=value or policy.key=value, got {item!r}")
        policy, dot, param = key.rpartition(".")
        out.append((policy if dot else None, param.strip(), value.strip()))
    return out


def check_overrides(
    overrides: Sequence[tuple[str | None, str, str]], declared: Mapping[str, Sequence[str]]
) -> None:
    """Refuse overrides that no policy of the run would use, naming the closest valid name.

    An untargeted ``key=value`` must be declared by at least one policy, and ``policy.key=value`` must name
    one of the run's policies and one of its parameters; otherwise a typo (``fsat=5``) would be ignored.

    :param overrides: output of :func:`parse_overrides`.
    :param declared: each policy of the run (command-line name) -> its parameter names.
    """
    everything = sorted({key for keys in declared.values() for key in keys})
    for target, key, _ in overrides:
        if target is None:
            if key not in everything:
                raise RegistryError(
                    f"--param {key}: no policy of this run has a parameter {key!r}"
                    f"{_did_you_mean(key, everything)}; known: {everything}"
                )
        elif target not in declared:
            raise RegistryError(
                f"--param {target}.{key}: {target!r} is not a policy of this run"
                f"{_did_you_mean(target, declared)}; policies: {sorted(declared)}"
            )
        elif key not in declared[target]:
            known = sorted(declared[target])
            raise RegistryError(
                f"--param {target}.{key}: {target} has no parameter {key!r}{_did_you_mean(key, known)}; "
                f"known: {known}"
            )


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


def params_for(
    policy: str, cls: type, overrides: Sequence[tuple[str | None, str, str]]
) -> dict[str, str]:
    """The overrides that apply to ``policy``: its own, and untargeted ones for keys it declares.

    :param policy: the policy's command-line name.
    :param cls: its class.
    :param overrides: output of :func:`parse_overrides`.
    """
    declared = declared_params(cls)
    return {
        key: value
        for target, key, value in overrides
        if target == policy or (target is None and key in declared)
    }


def load_param_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``{policy name: {param: value}}`` from a YAML file.

    :param path: the YAML file.
    """
    text = Path(path).read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise RegistryError(f"{path}: expected a mapping of policy name -> mapping of parameters")
    return data


def save_policy(policy: Policy, path: str | Path, kind: str = "params") -> Path:
    """Write ``policy`` to the folder ``path`` (created if needed) and return it.

    :param policy: the policy; its ``params`` (if any) go into the manifest, and its
        ``save_artifacts(folder)`` (if any) writes model files next to it.
    :param path: the folder.
    :param kind: loader kind recorded in the manifest.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cls = type(policy)
    manifest = {
        "kind": kind,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "name": getattr(policy, "name", cls.__name__),
        "params": dict(getattr(policy, "params", {}) or {}),
    }
    if hasattr(policy, "save_artifacts"):
        policy.save_artifacts(folder)
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def load_policy(path: str | Path, params: Mapping[str, Any] | None = None) -> Policy:
    """Load a policy saved with :func:`save_policy`.

    :param path: the folder.
    :param params: parameter values overriding the saved ones.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise RegistryError(f"{folder} is not a saved policy: no {MANIFEST} in it")
    manifest = yaml.safe_load(manifest_path.read_text()) or {}
    missing = [k for k in ("kind", "class") if k not in manifest]
    if missing:
        raise RegistryError(f"{manifest_path}: missing field(s) {missing}")
    manifest["params"] = {**(manifest.get("params") or {}), **dict(params or {})}
    kind = manifest["kind"]
    if kind not in _loaders and kind in LOADER_MODULES:
        importlib.import_module(LOADER_MODULES[kind])
    loader = _loaders.get(kind)
    if loader is None:
        raise RegistryError(f"{manifest_path}: unknown kind {kind!r}; known: {sorted(_loaders)}")
    return loader(folder, manifest)


def _load_from_params(folder: Path, manifest: dict[str, Any]) -> Policy:
    cls = _import(manifest["class"])
    owner = manifest.get("name") or cls.__name__
    policy = cls(**check_params(cls, manifest["params"], owner))
    if hasattr(policy, "load_artifacts"):
        policy.load_artifacts(folder)
    return policy


register_loader("params", _load_from_params)
