"""A tiny name -> object registry with a decorator, shared by losses, blocks and modifications.

Registering is how a researcher extends pneumobench without editing the core: decorate a
function or class in any module, import it, and configurations can name it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError"]


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

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
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
