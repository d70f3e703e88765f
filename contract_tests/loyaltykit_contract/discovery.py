"""Finding the harnesses the suite runs against.

A harness factory is a callable returning a fresh :class:`loyaltykit.testing.EngineHarness`. The
suite finds them in two ways:

* ``--loyaltykit-harness=package.module:factory`` (repeatable): exactly these, nothing else;
* otherwise every entry point of the ``loyaltykit.harness`` group (name = engine), optionally
  narrowed with ``--loyaltykit-engine=NAME`` (repeatable).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

GROUP = "loyaltykit.harness"

HarnessFactory = Callable[[], Any]


@dataclass(frozen=True)
class HarnessSource:
    """One harness factory, or the reason it could not be loaded (reported as a failure)."""

    name: str
    origin: str  # "entry point loyaltykit.harness:local" or "mypkg.testing:make_harness"
    factory: HarnessFactory | None = None
    error: str | None = None


def load_spec(spec: str) -> HarnessFactory:
    """Import ``package.module:attribute`` (or ``package.module.attribute``)."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{spec!r} is not 'package.module:factory'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec!r} is not callable")
    factory: Callable[[], Any] = obj
    return factory


def _engine_name(factory: HarnessFactory, fallback: str) -> str:
    """The engine name of a factory given on the command line: ask one harness, then close it."""
    harness = factory()
    try:
        return str(getattr(harness, "engine", "") or fallback)
    finally:
        close = getattr(harness, "close", None)
        if callable(close):
            close()


def discover(specs: list[str] | None = None, engines: list[str] | None = None) -> list[HarnessSource]:
    sources: list[HarnessSource] = []
    if specs:
        for spec in specs:
            fallback = spec.replace(":", ".").split(".")[0]
            try:
                factory = load_spec(spec)
                name = _engine_name(factory, fallback)
            except Exception as exc:  # reported as a failing test, never swallowed
                sources.append(HarnessSource(fallback, spec, error=f"{type(exc).__name__}: {exc}"))
                continue
            sources.append(HarnessSource(name, spec, factory))
    else:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            if engines and ep.name not in engines:
                continue
            origin = f"entry point {GROUP}:{ep.name}"
            try:
                factory = ep.load()
            except Exception as exc:
                sources.append(HarnessSource(ep.name, origin, error=f"{type(exc).__name__}: {exc}"))
                continue
            sources.append(HarnessSource(ep.name, origin, factory))
    if engines and specs:
        sources = [s for s in sources if s.name in engines]
    seen: dict[str, int] = {}
    unique = []
    for source in sources:  # two factories for one engine get distinct ids
        count = seen.get(source.name, 0)
        seen[source.name] = count + 1
        if count:
            source = HarnessSource(f"{source.name}{count + 1}", source.origin, source.factory, source.error)
        unique.append(source)
    return unique
