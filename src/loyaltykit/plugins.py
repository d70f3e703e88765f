"""Plugin discovery and the plugin manager.

Two entry-point groups:

* ``loyaltykit`` — **engine adapters**: each entry point loads an
  :class:`~loyaltykit.adapter.EngineAdapter` subclass; its name is the engine's name. Only the
  selected engine's adapter is imported when a facade is built.
* ``loyaltykit.plugins`` — **observer plugins**: modules or objects with ``@hookimpl`` functions
  (audit logs, metrics, tracing, as ``wrapper=True`` implementations), registered with every facade.

Discovery reads entry-point metadata only; nothing is imported until :meth:`Discovered.load`, so
listing plugins stays cheap however many engines are installed. It reads the installed
distributions' ``entry_points.txt`` files straight from ``sys.path`` (:func:`entry_points`), without
importing :mod:`importlib.metadata` (which loads the e-mail and zip machinery and parses every
distribution's metadata): that import alone cost more than the rest of ``import loyaltykit``.
Where something other than plain directories provides distributions (a zip on ``sys.path``, a
custom finder), it falls back to :func:`importlib.metadata.entry_points`.
"""

from __future__ import annotations

import os
import sys

# Not typing's, nor dataclasses, re or the kit's errors at the top: discovery runs at start-up and
# each of those imports costs more than the scan itself (errors are imported where raised).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    import pluggy

    from .adapter import EngineAdapter

GROUP = "loyaltykit"
PLUGIN_GROUP = "loyaltykit.plugins"


class _Distribution:
    """An installed distribution's name and version, read from its metadata when first asked."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._meta: Any = None

    def _metadata(self) -> Any:
        if self._meta is None:
            from importlib.metadata import PathDistribution
            from pathlib import Path

            self._meta = PathDistribution(Path(self._path))
        return self._meta

    @property
    def name(self) -> str:
        return str(self._metadata().name)

    @property
    def version(self) -> str:
        return str(self._metadata().version)


class EntryPoint:
    """An entry point as :class:`importlib.metadata.EntryPoint` describes it (name, value, group,
    dist, load); loading it goes through that class."""

    def __init__(self, name: str, value: str, group: str, dist: _Distribution) -> None:
        self.name, self.value, self.group, self.dist = name, value, group, dist

    def load(self) -> Any:
        from importlib.metadata import EntryPoint as Standard

        return Standard(self.name, self.value, self.group).load()

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def _normalized(name: str) -> str:
    """A distribution name as importlib.metadata compares them: runs of - _ . as one _, lower case."""
    name = name.replace("-", "_").replace(".", "_").lower()
    while "__" in name:
        name = name.replace("__", "_")
    return name


def _sections(text: str) -> Iterator[tuple[str, str, str]]:
    """(group, name, value) of an ``entry_points.txt`` (the INI-like format of the entry points
    specification: ``[group]`` headers, ``name = value`` lines, ``#`` and ``;`` comments)."""
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group and "=" in line:
            name, _, value = line.partition("=")
            yield group, name.strip(), value.strip()


def _standard_finders_only() -> bool:
    from importlib.machinery import PathFinder

    return all(finder is PathFinder or not hasattr(finder, "find_distributions") for finder in sys.meta_path)


def entry_points(*, group: str | None = None) -> list[Any]:
    """The entry points of ``group`` (``None``: of every group) of every installed distribution, as
    :func:`importlib.metadata.entry_points` lists them (the first distribution of a name on
    ``sys.path`` wins), read from the ``*.dist-info`` / ``*.egg-info`` directories on ``sys.path``."""
    if not _standard_finders_only():
        return _standard(group)
    found: list[Any] = []
    seen: set[str] = set()
    for entry in sys.path:
        directory = entry or "."
        try:
            listing = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.isfile(directory):  # a zip archive: the standard lookup reads those
                return _standard(group)
            continue
        except OSError:
            continue
        with listing:
            names = sorted(item.name for item in listing if item.name.endswith((".dist-info", ".egg-info")))
        for name in names:
            stem = name.rsplit(".", 1)[0]
            normalized = _normalized(stem.partition("-")[0])
            if normalized in seen:
                continue
            seen.add(normalized)
            path = os.path.join(directory, name)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as file:
                    text = file.read()
            except OSError:
                continue
            dist = _Distribution(path)
            found.extend(EntryPoint(n, v, g, dist) for g, n, v in _sections(text) if group is None or g == group)
    return found


def _standard(group: str | None) -> list[Any]:
    from importlib.metadata import entry_points as standard

    if group is not None:
        return list(standard(group=group))
    every = standard()  # Python 3.11 answers a deprecated mapping here: read it group by group
    return [ep for name in sorted(every.groups) for ep in every.select(group=name)]


class Discovered:
    """One discovered entry point: an engine adapter (group ``loyaltykit``) or an observer plugin."""

    def __init__(self, name: str, group: str, entry_point: Any) -> None:
        self.name = name  # the entry-point name (an adapter's is its engine name)
        self.group = group
        self.entry_point = entry_point
        self._obj: Any = None
        self._loaded = False

    @property
    def distribution(self) -> str | None:
        """The installed distribution's name (read from its metadata on first use)."""
        dist = getattr(self.entry_point, "dist", None)
        return dist.name if dist else None

    @property
    def version(self) -> str | None:
        dist = getattr(self.entry_point, "dist", None)
        return dist.version if dist else None

    def __repr__(self) -> str:
        return (f"Discovered(name={self.name!r}, group={self.group!r}, distribution={self.distribution!r}, "
                f"version={self.version!r})")

    @property
    def is_adapter(self) -> bool:
        return self.group == GROUP

    def load(self) -> Any:
        """Import the plugin (once); an adapter entry point is validated as an adapter class."""
        if not self._loaded:
            from .errors import ConfigError

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
    for ep in entry_points():  # one scan of sys.path for both groups
        if ep.group not in (GROUP, PLUGIN_GROUP) or ep.name in block or (allow is not None and ep.name not in allow):
            continue
        found.append(Discovered(ep.name, ep.group, ep))
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
    from .errors import ConfigError

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
