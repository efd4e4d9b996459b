"""What the commands' config dataclasses share: YAML in and out, with errors that name the file and field."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Union, get_args, get_origin

import yaml

from envs.sim.execution import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


class YamlConfig:
    """Mixin for a config dataclass: plain values and YAML that :func:`read_fields` reads back."""

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready values (tuples as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()  # type: ignore[call-overload]
        }

    def to_yaml(self) -> str:
        """The config as YAML, loadable with ``--config``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def read_fields(path: str | Path | None, owner: str, default_name: str | None = None) -> dict[str, Any]:
    """Field values from a YAML mapping.

    :param path: the YAML file; ``None`` falls back to ``experiments/configs/<default_name>.yaml`` if it
        exists, else no values.
    :param owner: the config class name, for errors.
    :param default_name: the command's name (``ppo``, ``xgboost``, ...) that picks the default file.
    """
    if path is None and default_name is not None and (CONFIG_DIR / f"{default_name}.yaml").is_file():
        path = CONFIG_DIR / f"{default_name}.yaml"
    if path is None:
        return {}
    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of {owner} fields, got {type(loaded).__name__}")
    return dict(loaded)


def check_known(values: Iterable[str], known: Iterable[str], owner: str) -> None:
    """Raise :class:`ConfigError` naming every field in ``values`` that ``owner`` does not have."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {owner} field(s) {unknown}; known: {sorted(known)}")


def coerce_field(name: str, hint: Any, value: Any, scalar: Callable[[str, Any, Any], Any]) -> Any:
    """``value`` (from Python, YAML or command-line text) as a config field's declared type.

    An optional field reads ``None``, ``"none"``, ``"null"`` and ``""`` as None. A list field
    (``tuple[X, ...]``) takes a list, a single value, or text: ``a,b,c``, ``[a, b, c]``, or ``a;b`` when
    the items contain commas themselves (data specs such as ``synthetic:seed=1,n_days=300``).

    :param name: the field name, passed on to ``scalar``.
    :param hint: the field's type hint.
    :param value: the value given.
    :param scalar: the config's conversion of one plain value, ``scalar(name, hint, value)``; it raises
        :class:`ConfigError` naming the field.
    """
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            return None
        return coerce_field(name, next(a for a in args if a is not type(None)), value, scalar)
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            value = [p.strip() for p in text.split(";" if ";" in text else ",") if p.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(coerce_field(name, args[0], item, scalar) for item in value)
    return scalar(name, hint, value)
