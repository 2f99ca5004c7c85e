"""Lazy package exports (``common.lazy``): every public name is listed by ``dir()``."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.lazy import lazy_exports

ROOT = Path(__file__).resolve().parents[2]
TOP = ("common", "trainees", "envs", "experts", "agents", "evaluation", "experiments", "benchmarks")
LAZY = (
    "envs",
    "experts",
    "agents",
    "agents.integrations",
    "evaluation",
    "experiments",
    "benchmarks",
)


def packages() -> list[str]:
    """Every package of the library (subpackages included)."""
    found = list(TOP)
    for top in TOP:
        module = importlib.import_module(top)
        found += [m.name for m in pkgutil.walk_packages(module.__path__, f"{top}.") if m.ispkg]
    return found


def test_the_lazy_packages_are_every_package_with_a_module_getattr():
    hooked = {p for p in packages() if hasattr(importlib.import_module(p), "__getattr__")}
    assert hooked == set(LAZY)


@pytest.mark.parametrize("name", packages())
def test_dir_lists_every_public_name(name):
    package = importlib.import_module(name)
    assert set(getattr(package, "__all__", ())) <= set(dir(package))


def test_dir_imports_nothing_and_lists_loaded_names_too():
    code = (
        "import importlib, sys\n"
        f"for name in {LAZY!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    before = set(sys.modules)\n"
        "    listed = dir(package)\n"
        "    assert set(sys.modules) == before, (name, set(sys.modules) - before)\n"
        "    assert set(package.__all__) <= set(listed), name\n"
        "    assert '__name__' in listed and listed == sorted(listed), name\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_lazy_exports_loads_a_name_on_first_use_and_refuses_unknown_ones():
    names, getattr_, dir_ = lazy_exports("common", {"seeds": ("take",), "stats": ("iqm",)})
    assert names == ["iqm", "take"]
    assert getattr_("take") is importlib.import_module("common.seeds").take
    assert {"iqm", "take", "__name__"} <= set(dir_())
    with pytest.raises(AttributeError, match="module 'common' has no attribute 'nope'"):
        getattr_("nope")
