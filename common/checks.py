"""The one validation helper: a bad value is a ValueError naming it and what is valid."""

from __future__ import annotations

from typing import Any


def check(ok: bool, name: str, value: Any, valid: str) -> None:
    """Raise ``ValueError("{name}={value!r} is invalid; expected {valid}")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; expected {valid}")


def check_fields(obj: Any, rules: list[tuple[bool, str, str]]) -> None:
    """``check`` each ``(ok, field name, valid)`` of a config object, reading the value from it."""
    for ok, name, valid in rules:
        check(ok, name, getattr(obj, name), valid)
