"""Name -> component registries, with plug-in discovery through entry points.

A registry entry is a name, a class, and default keyword parameters, so that a named variant
(``hj_sobolev``) is the same class configured differently, never a subclass that changes one
line. Names are kept in a stable order: hjbench's own components in registration order, then
those of installed plug-ins (entry-point group ``hjbench.methods`` or ``hjbench.priors``,
sorted by entry-point name; each entry point is a callable ``register()`` or a module whose
import registers). For code run from ``PYTHONPATH`` without installing, the environment
variable ``HJBENCH_PLUGINS`` (comma-separated module names) is honoured as well.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

__all__ = ["Entry", "Registry", "PluginWarning"]

T = TypeVar("T")
_WARNED: set[str] = set()


class PluginWarning(UserWarning):
    """A plug-in failed to import; hjbench goes on without it."""


def _warn_once(what: str, exc: BaseException) -> None:
    """One warning line per broken plug-in and process (each registry loads plug-ins once):
    ``plug-in 'x' failed to import: TypeName: first line; fix it or remove it from ...``."""
    if what in _WARNED:
        return
    _WARNED.add(what)
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    warnings.warn(f"{what}: {text[:300]}; hjbench goes on without it (fix the module, or remove it from "
                  "HJBENCH_PLUGINS / uninstall the package)", PluginWarning, stacklevel=3)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: ``cls(**{**defaults, **user_params})`` builds it."""

    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    source: str = "hjbench"  # top-level package that registered it: "hjbench" or a plug-in

    def build(self, **params: Any) -> T:
        obj = self.cls(**{**self.defaults, **params})
        obj.name = self.name  # the registry key is the component's name in results
        return obj


class Registry(Generic[T]):
    """A registry for one role (methods or priors)."""

    def __init__(self, role: str, group: str):
        self.role = role
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = False

    # -- registration -------------------------------------------------------------------
    def register(self, name: str, cls: type | None = None, *, summary: str | None = None,
                 source: str | None = None, **defaults: Any) -> Callable[[type], type] | type:
        """Register ``cls`` under ``name`` with ``defaults``; usable as a class decorator."""

        def add(klass: type) -> type:
            if not name.isidentifier() or name != name.lower():
                raise ConfigError(f"{self.role} name {name!r} must be a lower-case identifier")
            if name in self._entries and self._entries[name].cls is not klass:
                raise ConfigError(f"{self.role} name {name!r} is already registered "
                                  f"by {self._entries[name].cls.__qualname__}")
            doc = summary if summary is not None else (klass.__doc__ or "").strip().split("\n")[0]
            src = source or klass.__module__.split(".")[0]
            self._entries[name] = Entry(name, klass, dict(defaults), doc, src)
            return klass

        return add if cls is None else add(cls)

    # -- discovery ----------------------------------------------------------------------
    def load_plugins(self) -> None:
        """Import plug-ins once: entry points of ``self.group`` and ``HJBENCH_PLUGINS``."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        eps = sorted(metadata.entry_points(group=self.group), key=lambda ep: ep.name)
        seen: set[str] = set()
        for ep in eps:
            if ep.value in seen:
                continue
            seen.add(ep.value)
            try:
                obj = ep.load()
                if callable(obj):
                    obj()
            except Exception as exc:  # a broken plug-in must not break hjbench
                _warn_once(f"plug-in {ep.name!r} ({ep.value}) failed to import", exc)
        for mod in filter(None, (m.strip() for m in os.environ.get("HJBENCH_PLUGINS", "").split(","))):
            try:
                module = importlib.import_module(mod)
                if callable(getattr(module, "register", None)):
                    module.register()
            except Exception as exc:
                _warn_once(f"plug-in {mod!r} (HJBENCH_PLUGINS) failed to import", exc)

    # -- look-up ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names in a stable order (built-ins first, then plug-ins)."""
        self.load_plugins()
        builtin = [n for n, e in self._entries.items() if e.source == "hjbench"]
        other = [n for n, e in self._entries.items() if e.source != "hjbench"]
        return builtin + other

    def entry(self, name: str) -> Entry[T]:
        self.load_plugins()
        if name not in self._entries:
            raise ConfigError(f"unknown {self.role} {name!r}; registered {self.role}s are {self.names()}")
        return self._entries[name]

    def get(self, name: str, **params: Any) -> T:
        """Build the component registered as ``name`` with ``params`` over its defaults."""
        return self.entry(name).build(**params)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
