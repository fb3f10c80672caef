"""Lazy attributes for the package's ``__init__`` files: a name is imported when first used, so
``import reactlib as rl`` is instant and a notebook pays only for the modules it touches. Lazy
attributes are not imports, so they add no edge to the package's import graph."""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.util import find_spec


def exports(package: str, table: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: attribute ``name`` is ``table[name]``, a
    module (``"reactlib.face.coeffs"``) or a module's attribute (``"reactlib.data.corpus:Split"``);
    any other name that is a submodule of ``package`` is that submodule."""

    def __getattr__(name: str):
        target = table.get(name)
        if target is None:
            if name.startswith("_") or find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            target = f"{package}.{name}"
        module_name, _, attribute = target.partition(":")
        value = import_module(module_name)
        if attribute:
            value = getattr(value, attribute)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(table) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
