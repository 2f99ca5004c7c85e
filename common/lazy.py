"""Lazy package exports: a package names its public objects by module, and a name loads
its module on first use (PEP 562), so importing one module loads no other."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module ``__getattr__`` for ``package``'s ``{module: names}``.

    Usage, in a package's ``__init__``: ``__all__, __getattr__ = lazy_exports(__name__, {...})``.
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:  # noqa: N807 (the module-level hook's own name)
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{module_of[name]}"), name)

    return sorted(module_of), __getattr__
