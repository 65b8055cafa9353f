"""A tiny name -> object registry with a decorator, shared by losses, blocks and modifications.

Registering is how a researcher extends pneumobench without editing the core: decorate a
function or class in any module, import it, and configurations can name it. Every registry
remembers the module that defined each entry, so worker processes (``runner.prefetch``) can
import the same modules and know the same names (``extension_modules``, ``import_extensions``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ExtensionImportError", "Registry", "UnknownNameError", "extension_modules", "import_extensions"]

_REGISTRIES: list[Registry] = []
_SCRIPT_MODULES = ("__main__", "__mp_main__")  # a script re-runs itself in spawned workers


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class ExtensionImportError(ImportError):
    """A worker process cannot import a module that registered an extension."""


class Registry(Generic[T]):
    """Maps names to objects of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str, *, builtins: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtins = builtins  # a module that registers the built-in entries, imported on first lookup
        _REGISTRIES.append(self)

    def _load_builtins(self) -> None:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)

    def modules(self) -> set[str]:
        """The modules that define the registered functions and classes."""
        return {
            module
            for obj in self._entries.values()
            if (inspect.isclass(obj) or inspect.isroutine(obj)) and (module := getattr(obj, "__module__", None))
        }

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def decorate(obj: T) -> T:
            if name in self._entries and not replace and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True)")
            self._entries[name] = obj
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests that register temporary entries)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def in_order(self) -> list[tuple[str, T]]:
        """Every entry in the order it was registered (for entries that form a sequence, such as
        the report's sections)."""
        self._load_builtins()
        return list(self._entries.items())


def extension_modules() -> list[str]:
    """Every module outside pneumobench that defines a registered entry, sorted."""
    found = set().union(*(registry.modules() for registry in _REGISTRIES)) if _REGISTRIES else set()
    return sorted(name for name in found if name.split(".")[0] != "pneumobench" and name not in _SCRIPT_MODULES)


def import_extensions(modules: list[str]) -> None:
    """Import ``modules`` (a worker does this with its parent's ``extension_modules()``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:
            raise ExtensionImportError(
                f"a worker process cannot import {name!r}, which registered blocks, losses or modifications "
                f"that its runs need ({type(error).__name__}: {error}); make it importable (on sys.path) or pass "
                "--pb-workers 1"
            ) from error
