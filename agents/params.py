"""Policy parameters declared as typed class attributes (backtesting.py style), and their coercion.

A policy class lists its parameters as annotated class attributes with defaults::

    class SmaCrossover(SignalBot):
        fast: int = 10
        slow: int = 20

:class:`Parameterised` gives such a class a keyword constructor that rejects unknown names and values of
the wrong type, and :func:`coerce` turns command-line strings (``"fast=5"``) into the declared type.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def declared_params(cls: type) -> dict[str, Any]:
    """Name -> type of every public, annotated, non-ClassVar attribute of ``cls`` and its bases.

    :param cls: a policy class.
    """
    hints = get_type_hints(cls)
    # The class's own parameters first, then those it inherits.
    order = dict.fromkeys(n for klass in cls.__mro__ for n in vars(klass).get("__annotations__", {}))
    return {
        name: hints[name]
        for name in order
        if not name.startswith("_") and ClassVar not in (hints[name], get_origin(hints[name]))
    }


def _is_optional(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    """``value`` converted to ``hint`` (strings parsed, ints widened to float), or a clear TypeError.

    :param owner: policy name for the error message.
    :param name: parameter name for the error message.
    :param hint: the declared type (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``Literal``).
    :param value: a value from Python, YAML or the command line.
    """
    if _is_optional(hint):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    origin = get_origin(hint)
    if origin is typing.Literal:
        choices = get_args(hint)
        if value not in choices:
            raise TypeError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")
        return value
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            # "1e6" on a command line means a million steps, not an error
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}.{name} must be {getattr(hint, '__name__', hint)}, got {value!r}"
        ) from None
    return value


class Parameterised:
    """Keyword constructor over the declared parameters; ``params`` returns their current values.

    :param params: values overriding the class defaults, by parameter name.
    """

    name: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        declared = declared_params(type(self))
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {unknown} for {self.name or type(self).__name__}; "
                f"known: {sorted(declared)}"
            )
        owner = self.name or type(self).__name__
        for key, value in params.items():
            setattr(self, key, coerce(owner, key, declared[key], value))
        self.validate()

    def validate(self) -> None:
        """Check parameter values together; subclasses raise ValueError naming the parameter."""

    @property
    def params(self) -> dict[str, Any]:
        """Current value of every declared parameter."""
        return {key: getattr(self, key) for key in declared_params(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def param_docs(cls: type) -> dict[str, str]:
    """Each ``:param name: text`` of ``cls``'s docstring, as ``{name: text}`` (help text for configs)."""
    doc = re.sub(r"\s+", " ", cls.__doc__ or "")
    return dict(re.findall(r":param (\w+): (.*?)(?= :param |$)", doc))
