"""One error style for every command: ``error: <what was wrong and what to do>`` on stderr, exit code 2.

A user error (a bad flag, an unknown policy or parameter, a missing or malformed data file, an invalid config
value) is one line, never a traceback; ``--debug`` anywhere on the command line re-raises it with its
traceback instead. Every command's ``main`` is wrapped with :func:`command`, and its parser is a
:class:`Parser`, whose own errors (unknown flag, bad choice) follow the same style.

What counts as a user error is :data:`USER_ERRORS`: the library reports bad input with ``ValueError``
(``DataValidationError``, ``ConfigError``, ``RegistryError`` are subclasses), ``KeyError`` (a symbol or field
not in the data), ``OSError`` (missing file, a directory where a file was expected, permissions) and
``ImportError`` (an optional package not installed). A bug in our code raising one of those also prints one
line; ``--debug`` shows where it came from.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
from typing import Callable, Iterable, NoReturn, Sequence

DEBUG_FLAG = "--debug"
EXIT_USER_ERROR = 2

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, ImportError)


class UserError(ValueError):
    """Bad input found by a command itself (not by the library): printed as one ``error:`` line."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one ``error: ...`` line and that documents ``--debug``.

    Subparsers made with ``add_subparsers`` are of the same class, so they behave the same way.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - argparse's own signature
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an error")

    def error(self, message: str) -> NoReturn:
        """Print ``error: message (see PROG --help)`` and exit with code 2.

        :param message: argparse's description of the problem.
        """
        fail(f"{message} (see {self.prog} --help)")


def closest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``known`` to ``name``, or an empty string.

    :param name: what the user typed.
    :param known: the valid names.
    """
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


def message(err: BaseException) -> str:
    """The error's text on one line (``KeyError`` without its quotes, chained whitespace collapsed).

    :param err: the exception.
    """
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split())
    if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text or type(err).__name__


def fail(text: str) -> NoReturn:
    """Print ``error: text`` to stderr and exit with code 2.

    :param text: what was wrong and what to do.
    """
    print(f"error: {text}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR)


def command(main: Callable[[list[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a command's ``main(argv)`` so user errors print one line and return exit code 2.

    ``--debug`` is taken out of ``argv`` before ``main`` sees it; with it, errors propagate with their
    traceback. ``SystemExit`` (``--help``, argparse errors) passes through.

    :param main: the command's entry point.
    """

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = DEBUG_FLAG in args
        args = [a for a in args if a != DEBUG_FLAG]
        if debug:
            return main(args)
        try:
            return main(args)
        except USER_ERRORS as err:
            print(f"error: {message(err)}", file=sys.stderr, flush=True)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr, flush=True)
            return 130

    return wrapper
