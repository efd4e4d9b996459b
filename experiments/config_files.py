"""What the commands' config dataclasses share: YAML in and out, with errors that name the file and field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import yaml

from envs.execution import ConfigError

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
