"""Plugin discovery and the plugin manager.

Two entry-point groups:

* ``loyaltykit`` — **engine adapters**: each entry point loads an
  :class:`~loyaltykit.adapter.EngineAdapter` subclass; its name is the engine's name. Only the
  selected engine's adapter is imported when a facade is built.
* ``loyaltykit.plugins`` — **observer plugins**: modules or objects with ``@hookimpl`` functions
  (audit logs, metrics, tracing, as ``wrapper=True`` implementations), registered with every facade.

Discovery reads entry-point metadata only; nothing is imported until :meth:`Discovered.load`, so
listing plugins stays cheap however many engines are installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import pluggy

    from .adapter import EngineAdapter

GROUP = "loyaltykit"
PLUGIN_GROUP = "loyaltykit.plugins"


@dataclass
class Discovered:
    name: str  # the entry-point name (an adapter's is its engine name)
    group: str
    distribution: str | None
    version: str | None
    entry_point: Any = field(repr=False)
    _obj: Any = field(default=None, init=False, repr=False)
    _loaded: bool = field(default=False, init=False, repr=False)

    @property
    def is_adapter(self) -> bool:
        return self.group == GROUP

    def load(self) -> Any:
        """Import the plugin (once); an adapter entry point is validated as an adapter class."""
        if not self._loaded:
            try:
                obj = self.entry_point.load()
            except Exception as exc:
                raise ConfigError(f"plugin {self.name!r} failed to load: {type(exc).__name__}: {exc}") from exc
            if self.is_adapter:
                from .adapter import EngineAdapter, validate_adapter_class  # not needed to list plugins

                if not (isinstance(obj, type) and issubclass(obj, EngineAdapter)):
                    raise ConfigError(
                        f"entry point {self.name!r} in group {GROUP!r} must load an EngineAdapter subclass"
                    )
                validate_adapter_class(obj)
                if obj.name != self.name:
                    raise ConfigError(
                        f"entry point {self.name!r} loads adapter named {obj.name!r}; they must match"
                    )
            self._obj, self._loaded = obj, True
        return self._obj

    @property
    def obj(self) -> Any:
        return self.load()


def discover(allow: list[str] | None = None, block: list[str] | tuple[str, ...] = ()) -> list[Discovered]:
    """List adapters and plugins from entry-point metadata, honouring allow- and block-lists.

    Nothing is imported here; call :meth:`Discovered.load` for what you need.
    """
    found = []
    for group in (GROUP, PLUGIN_GROUP):
        for ep in entry_points(group=group):
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            dist = getattr(ep, "dist", None)
            found.append(
                Discovered(ep.name, group, dist.name if dist else None, dist.version if dist else None, ep)
            )
    return sorted(found, key=lambda d: (d.name, d.group))


def make_plugin_manager() -> pluggy.PluginManager:
    import pluggy  # here, not at the top: listing plugins (discover) needs no plugin manager

    from . import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _claimant(impl: Any) -> str:
    """A readable name for a hook implementation's plugin (pluggy names unnamed objects by id())."""
    name = str(impl.plugin_name)
    if not name.isdigit():
        return name
    from .adapter import EngineAdapter

    plugin = impl.plugin
    if isinstance(plugin, EngineAdapter):
        return f"adapter:{plugin.name}"
    return getattr(plugin, "__name__", None) or type(plugin).__qualname__


def check_routing(pm: pluggy.PluginManager) -> EngineAdapter:
    """Exactly one non-wrapper implementation per operation hook, all from one engine adapter.

    Returns that adapter. Raises ``ConfigError`` naming the hook and the claimants otherwise.
    """
    import pluggy

    from . import hookspecs

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"a plugin implements an unknown hook: {exc}") from exc
    from .adapter import EngineAdapter

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
    if owner is None:
        raise AssertionError("owner is set here")
    return owner
