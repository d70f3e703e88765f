"""Plugin discovery and the plugin manager.

Every plugin is published in the ``loyaltykit`` entry-point group. An entry point that loads an
:class:`~loyaltykit.adapter.EngineAdapter` subclass is an *engine adapter* (instantiated only when
selected); anything else (a module or object with ``@hookimpl`` functions) is a plain plugin,
registered as it is — audit logs, metrics and tracing, as ``wrapper=True`` implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .adapter import EngineAdapter, validate_adapter_class
from .errors import ConfigError

GROUP = "loyaltykit"


@dataclass(frozen=True)
class Discovered:
    name: str  # the entry-point name
    distribution: str | None
    version: str | None
    obj: Any

    @property
    def is_adapter(self) -> bool:
        return isinstance(self.obj, type) and issubclass(self.obj, EngineAdapter)


def discover(allow: list[str] | None = None, block: list[str] | tuple[str, ...] = ()) -> list[Discovered]:
    """Load the group's entry points, honouring the allow-list and block-list."""
    found = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in block or (allow is not None and ep.name not in allow):
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"plugin {ep.name!r} failed to load: {type(exc).__name__}: {exc}") from exc
        dist = ep.dist
        found.append(Discovered(ep.name, dist.name if dist else None, dist.version if dist else None, obj))
    for item in found:
        if item.is_adapter:
            validate_adapter_class(item.obj)
            if item.obj.name != item.name:
                raise ConfigError(
                    f"entry point {item.name!r} loads adapter named {item.obj.name!r}; they must match"
                )
    return found


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _claimant(impl: Any) -> str:
    """A readable name for a hook implementation's plugin (pluggy names unnamed objects by id())."""
    name = impl.plugin_name
    if not name.isdigit():
        return name
    plugin = impl.plugin
    if isinstance(plugin, EngineAdapter):
        return f"adapter:{plugin.name}"
    return getattr(plugin, "__name__", None) or type(plugin).__qualname__


def check_routing(pm: pluggy.PluginManager) -> EngineAdapter:
    """Exactly one non-wrapper implementation per operation hook, all from one engine adapter.

    Returns that adapter. Raises ``ConfigError`` naming the hook and the claimants otherwise.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"a plugin implements an unknown hook: {exc}") from exc
    owner: EngineAdapter | None = None
    for name in hookspecs.OPERATION_HOOKS:
        caller = getattr(pm.hook, name)
        claimants = [impl for impl in caller.get_hookimpls() if not (impl.wrapper or impl.hookwrapper)]
        if not claimants:
            raise ConfigError(f"no engine adapter answers {name}: install or select one (setting 'engine')")
        if len(claimants) > 1:
            names = ", ".join(sorted(_claimant(impl) for impl in claimants))
            raise ConfigError(
                f"{len(claimants)} plugins claim {name} ({names}): exactly one engine adapter may "
                "answer it; observers must use @hookimpl(wrapper=True)"
            )
        plugin = claimants[0].plugin
        if not isinstance(plugin, EngineAdapter):
            raise ConfigError(f"{name} is answered by {claimants[0].plugin_name}, which is not an engine adapter")
        if owner is not None and plugin is not owner:
            raise ConfigError(f"operation hooks are split between {owner.name} and {plugin.name}")
        owner = plugin
    assert owner is not None
    return owner
