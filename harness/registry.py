"""Names to lazily imported ``module:attribute`` plugins: built-ins plus a package entry-point group.

Backends, importers and normalisers are all found this way, so a third-party package adds any of
them by declaring an entry point; listing names imports nothing.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


class PluginRegistry(Generic[T]):
    """``kind`` names the plugin in messages; loaded classes must subclass ``base``."""

    kind = "plugin"
    base: type = object
    error: type[HarnessError] = HarnessError

    def __init__(self, targets: dict[str, str | type[T]] | None = None) -> None:
        self._targets: dict[str, str] = {}
        for name, target in (targets or {}).items():
            self.register(name, target)

    @classmethod
    def with_entry_points(cls, builtins: dict[str, str], group: str) -> PluginRegistry[T]:
        registry = cls(dict(builtins))
        for ep in entry_points(group=group):
            registry.register(ep.name, ep.value)
        return registry

    def register(self, name: str, target: str | type[T]) -> None:
        if name in self._targets:
            raise self.error(
                f"{self.kind} '{name}' is registered twice ({self._targets[name]} and {_target_str(target)}); "
                "rename one of them"
            )
        self._targets[name] = _target_str(target)

    def names(self) -> list[str]:
        return sorted(self._targets)

    def source(self, name: str) -> str:
        """Where ``name`` comes from, ``module:attribute``."""
        return self._targets[name]

    def target(self, name: str) -> object:
        """The object ``name`` points at, imported now."""
        if name not in self._targets:
            close = difflib.get_close_matches(name, self._targets, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.error(f"unknown {self.kind} '{name}'; {hint}available: {', '.join(self.names())}")
        module_name, _, attribute = self._targets[name].partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise self.error(f"{self.kind} '{name}' cannot be loaded from {self._targets[name]}: {exc}") from None

    def load(self, name: str) -> type[T]:
        """The class ``name`` points at, checked to be a ``base`` subclass."""
        cls = self.target(name)
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise self.error(
                f"{self.kind} '{name}' ({self._targets[name]}) is not a harness {self.base.__name__} subclass"
            )
        return cls


def _target_str(target: str | type) -> str:
    return target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
