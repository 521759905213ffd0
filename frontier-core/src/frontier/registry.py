"""Finding plugins and keeping them by kind and name.

Plugins are modules registered under the entry-point group ``frontier``; the built-in
ones ship in the ``frontier-*`` distributions and are found exactly like a third
party's. Each ``frontier_register_*`` hook adds named factories to a
:class:`PluginRegistry`; the same name registered twice is an error that names both
distributions. ``FRONTIER_PLUGINS=a,b`` loads only the entry points (or
distributions) named.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import attrs
import pluggy

from frontier import hookspecs
from frontier.config import SLOTS, PluginConfig
from frontier.errors import PluginError

__all__ = [
    "KINDS",
    "PluginEntry",
    "PluginHost",
    "PluginRegistry",
    "default_plugins",
    "load_plugins",
]

KINDS = (
    "replica_scheduler",
    "cluster_scheduler",
    "predictor",
    "cc_backend",
    "request_generator",
)

_CORE_DISTRIBUTION = "frontier-core"

_HOOK_OF_KIND = {
    "replica_scheduler": "frontier_register_replica_schedulers",
    "cluster_scheduler": "frontier_register_cluster_schedulers",
    "predictor": "frontier_register_predictors",
    "cc_backend": "frontier_register_cc_backends",
    "request_generator": "frontier_register_request_generators",
}


@attrs.frozen(kw_only=True)
class PluginEntry:
    """One registered plugin.

    Attributes:
        kind: One of :data:`KINDS`.
        name: The name configs use in ``type = "..."``.
        factory: Class (or callable) that builds the plugin.
        config_cls: The plugin's config class (a subclass of the slot's base).
        distribution: Distribution that registered it.
        version: That distribution's version.
        module: Module that registered it.
        description: One line for ``frontier plugins list``.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    config_cls: type[PluginConfig]
    distribution: str
    version: str
    module: str
    description: str


class PluginRegistry:
    """Every registered plugin, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in KINDS}

    def add(self, entry: PluginEntry) -> None:
        """Add ``entry``; a second plugin with its kind and name is an error."""
        existing = self._entries[entry.kind].get(entry.name)
        if existing is not None:
            raise PluginError(
                f"{entry.kind} {entry.name!r} is registered twice: by "
                f"{existing.distribution} ({existing.module}) and by "
                f"{entry.distribution} ({entry.module}). Uninstall one, or restrict "
                "loading with FRONTIER_PLUGINS."
            )
        self._entries[entry.kind][entry.name] = entry

    def get(self, kind: str, name: str) -> PluginEntry:
        """The plugin ``name`` of ``kind``.

        Raises:
            PluginError: Not installed; the message lists what is.
        """
        entries = self._entries[kind]
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise PluginError(f"no {kind} plugin named {name!r}; installed: {known}")
        return entries[name]

    def entries(self, kind: str | None = None) -> list[PluginEntry]:
        """All entries, or those of ``kind``, sorted by kind then name."""
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def config_classes(self) -> dict[str, dict[str, type[PluginConfig]]]:
        """For each kind, plugin name -> config class (for config building)."""
        return {
            kind: {name: e.config_cls for name, e in entries.items()}
            for kind, entries in self._entries.items()
        }


class _Registrar:
    """The object a ``frontier_register_*`` hook receives: adds plugins of one kind."""

    def __init__(
        self, registry: PluginRegistry, kind: str, distribution: str, version: str
    ) -> None:
        self._registry = registry
        self._kind = kind
        self._distribution = distribution
        self._version = version

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        config_cls: type[PluginConfig] | None = None,
        description: str | None = None,
    ) -> None:
        """Register ``factory`` under ``name`` with its config class.

        Args:
            name: What configs write in ``type = "..."``.
            factory: The plugin class.
            config_cls: Subclass of the slot's base config; the base itself (no
                options beyond ``type``) when omitted.
            description: One line; the factory's docstring summary by default.
        """
        base = {kind: cls for kind, cls in SLOTS.values()}[self._kind]
        config_cls = config_cls or base
        if not (isinstance(config_cls, type) and issubclass(config_cls, base)):
            raise PluginError(
                f"{self._distribution}: config class of {self._kind} {name!r} must "
                f"subclass {base.__name__}"
            )
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        self._registry.add(
            PluginEntry(
                kind=self._kind,
                name=name,
                factory=factory,
                config_cls=config_cls,
                distribution=self._distribution,
                version=self._version,
                module=getattr(factory, "__module__", "?"),
                description=description or (doc[0] if doc else ""),
            )
        )


class PluginHost:
    """The loaded plugin manager and the registry its hooks filled.

    Attributes:
        manager: The pluggy plugin manager.
        registry: Every registered plugin.
        packages: Top-level package of each loaded plugin distribution other than
            ``frontier-core`` -> ``(distribution, version)``; tells a crash inside
            a plugin from one inside Frontier.
    """

    def __init__(
        self,
        manager: pluggy.PluginManager,
        registry: PluginRegistry,
        packages: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.packages = packages or {}

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.frontier_run_started(...)``)."""
        return self.manager.hook

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (lets hot paths skip calls)."""
        return bool(getattr(self.manager.hook, hook_name).get_hookimpls())


def _wanted() -> set[str] | None:
    raw = os.environ.get("FRONTIER_PLUGINS", "").strip()
    if not raw:
        return None
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return names or None  # only commas and spaces: as if unset


def load_plugins(extra: Sequence[tuple[str, object]] = ()) -> PluginHost:
    """Load every plugin of the ``frontier`` entry-point group and fill a registry.

    Args:
        extra: ``(distribution label, plugin object)`` pairs to register as well;
            tests use it to add plugins without installing a distribution.

    Raises:
        PluginError: A plugin fails to import, or two register one name.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    wanted = _wanted()
    points = sorted(entry_points(group=hookspecs.PROJECT_NAME), key=lambda p: p.name)
    if wanted is not None:
        known = {p.name for p in points} | {p.dist.name for p in points if p.dist}
        unknown = sorted(wanted - known)
        if unknown:
            raise PluginError(
                f"FRONTIER_PLUGINS names {', '.join(map(repr, unknown))}, which is "
                "neither an installed entry point nor a distribution of the "
                f"'frontier' group; known: {', '.join(sorted(known))}"
            )
    for point in points:
        dist = point.dist
        dist_name = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if wanted is not None and point.name not in wanted and dist_name not in wanted:
            continue
        try:
            plugin = point.load()
        except Exception as error:
            raise PluginError(
                f"plugin {point.name!r} of {dist_name} failed to load ({point.value}): "
                f"{type(error).__name__}: {error}{_raised_at(error)} (set "
                "FRONTIER_TRACEBACK=1 for Python's traceback; uninstall the "
                "distribution, or leave it out with FRONTIER_PLUGINS, to run "
                "without it)"
            ) from error
        label = f"{dist_name}:{point.name}"
        if manager.is_registered(plugin):
            continue
        manager.register(plugin, name=label)
        origins[label] = (dist_name, version)
    for dist_name, plugin in extra:
        label = f"{dist_name}:{id(plugin)}"
        manager.register(plugin, name=label)
        origins[label] = (dist_name, "local")

    registry = PluginRegistry()
    for kind, hook_name in _HOOK_OF_KIND.items():
        for impl in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
            dist_name, version = origins.get(impl.plugin_name, (impl.plugin_name, "?"))
            try:
                impl.function(registry=_Registrar(registry, kind, dist_name, version))
            except PluginError:
                raise
            except Exception as error:
                raise PluginError(
                    f"{dist_name}: its {hook_name} hook failed: "
                    f"{type(error).__name__}: {error}{_raised_at(error)} (set "
                    "FRONTIER_TRACEBACK=1 for Python's traceback; uninstall the "
                    "distribution, or leave it out with FRONTIER_PLUGINS, to run "
                    "without it)"
                ) from error
    packages: dict[str, tuple[str, str]] = {}
    for label, plugin in manager.list_name_plugin():
        origin = origins.get(label)
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        if origin is not None and origin[0] != _CORE_DISTRIBUTION:
            packages[module.split(".")[0]] = origin
    for entry in registry.entries():
        if entry.distribution != _CORE_DISTRIBUTION:
            packages.setdefault(
                entry.module.split(".")[0], (entry.distribution, entry.version)
            )
    packages.pop(hookspecs.PROJECT_NAME, None)  # the core's own package
    return PluginHost(manager, registry, packages)


def _raised_at(error: BaseException) -> str:
    """`` at <file>, line <n>`` of the frame that raised ``error``."""
    tb = error.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"


@cache
def default_plugins() -> PluginHost:
    """The installed plugins, loaded once per process."""
    return load_plugins()
