"""The one way scripts parse their arguments: tyro, with argument errors as one line.

Every script's ``Args`` is a frozen dataclass whose ``__post_init__`` checks each value
(fixed sets of values are ``Literal``; names of methods, experts and envs are checked
there too), so a bad argument is refused before any work starts. :func:`parse` turns
every such refusal (tyro's own: an invalid choice, an unknown flag, a missing value;
and a ``ValueError`` from ``__post_init__``) into one line on stderr and exit status 2,
as argparse does, instead of a traceback or a multi-line box::

    if __name__ == "__main__":
        main(parse(Args))
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import tyro

T = TypeVar("T")

__all__ = ["ArgumentError", "fail", "given_flags", "parse"]


class ArgumentError(ValueError):
    """A bad command-line argument: :func:`parse` prints its message as one line."""


def _prog() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "script"


def fail(message: str) -> NoReturn:
    """Print ``<script>: error: <message>`` (one line) to stderr and exit with status 2."""
    first = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{_prog()}: error: {first}", file=sys.stderr)
    raise SystemExit(2)


def _one_line(event: Any) -> str | None:
    """The message of a tyro parse-error event, or None to keep tyro's own output."""
    name = type(event).__name__
    arg = getattr(event, "argument", None)
    flag = arg.display_name() if arg is not None and hasattr(arg, "display_name") else None
    if name == "InvalidChoice":
        valid = ", ".join(sorted(event.choices))  # tyro's order is not stable for unions
        return f"invalid choice {event.value!r} for {flag}; valid: {valid}"
    if name == "UnrecognizedArgs":
        return f"unrecognized arguments: {' '.join(event.tokens)} (see --help)"
    if name == "InstantiationFailure":
        message = str(event.message).removeprefix("Error parsing ")
        return f"{flag}: {message}" if flag else message
    if name == "BadValue":
        return f"bad value for {flag}" + (
            f": {event.offending_value!r}" if event.offending_value is not None else ""
        )
    if name == "MissingArgs":
        return "missing required arguments (see --help)"
    return None


class _RefusedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _hook(event: Any) -> None:
    message = _one_line(event)
    if message is not None:
        raise _RefusedError(message)


def parse(args_type: type[T], argv: Sequence[str] | None = None, **kwargs: Any) -> T:
    """``tyro.cli(args_type)``; an argument error prints one line and exits with status 2.

    Args:
        args_type: the script's frozen ``Args`` dataclass.
        argv: the arguments (default: ``sys.argv[1:]``).
        **kwargs: passed to ``tyro.cli`` (e.g. ``description``).
    """
    try:
        from tyro._errors import on_parse_error  # tyro >= 1.0.17: structured parse errors
    except ImportError:  # pragma: no cover - an older tyro keeps its own messages
        on_parse_error = None
    try:
        if on_parse_error is None:
            return tyro.cli(args_type, args=argv, **kwargs)
        with on_parse_error(_hook):
            return tyro.cli(args_type, args=argv, **kwargs)
    except _RefusedError as e:
        fail(e.message)
    except ArgumentError as e:
        fail(str(e))


def given_flags(argv: Sequence[str] | None = None) -> set[str]:
    """The ``--flags`` written on the command line (``--a=1`` and ``--no-a`` as ``--a``)."""
    argv = sys.argv[1:] if argv is None else argv
    out = set()
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            flag = token.split("=", 1)[0]
            out.add("--" + flag[2:].removeprefix("no-").replace("_", "-"))
    return out
