"""Lazy package exports: a package names its public objects by module, and a name loads
its module on first use (PEP 562), so importing one module loads no other. ``dir()`` and
tab completion list the lazy names beside the loaded ones."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__`` and the module hooks ``__getattr__`` and ``__dir__`` for ``package``'s
    ``{module: names}``.

    Usage, in a package's ``__init__``:
    ``__all__, __getattr__, __dir__ = lazy_exports(__name__, {...})``. A package that also
    imports names eagerly keeps its own ``__all__`` and takes the two hooks.
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:  # noqa: N807 (the module-level hook's own name)
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{module_of[name]}"), name)

    def __dir__() -> list[str]:  # noqa: N807 (the module-level hook's own name)
        # what the module holds now (dunders, loaded submodules) and every lazy name,
        # without importing any of them
        return sorted(set(vars(sys.modules[package])) | set(module_of))

    return sorted(module_of), __getattr__, __dir__
