"""Command-line parsing for the scripts: a frozen ``@dataclass Args`` becomes an argparse parser.

Each field is an option ``--field-name``: ``Literal`` fields become choices, ``bool``
fields ``--flag/--no-flag``, tuples take several values, and each option's help text
is the field's line in the class docstring's ``Attributes:`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def _field_help(cls: type) -> dict[str, str]:
    """``name: text`` pairs from an ``Attributes:`` section of the class docstring."""
    helps, in_attrs = {}, False
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_attrs = True
        elif in_attrs and ":" in stripped:
            name, text = stripped.split(":", 1)
            if name.isidentifier():
                helps[name] = text.strip()
    return helps


def _converter(tp: Any) -> tuple[Any, dict[str, Any]]:
    """argparse ``type`` and extra kwargs for an annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        conv, extra = _converter(inner[0])
        return (lambda s: None if s.lower() == "none" else conv(s)), extra
    if origin is Literal:
        return type(args[0]), {"choices": list(args)}
    if origin is tuple:
        return args[0], {"nargs": len(args) if args[-1] is not Ellipsis else "+"}
    return tp, {}


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one option per field of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(
        description=description or (cls.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        tp = hints[f.name]
        if tp is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=helps.get(f.name)
            )
            continue
        conv, extra = _converter(tp)
        parser.add_argument(flag, type=conv, default=default, help=helps.get(f.name, " "), **extra)
    return parser


def parse_args(cls: type[T], argv: Sequence[str] | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of the dataclass ``cls``."""
    ns = build_parser(cls).parse_args(argv)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(ns).items()}
    return cls(**values)
