"""The plugin manager: backends are pluggy plugins in the entry-point group ``vmc``.

Built-in backends are installed through the same entry points as third-party
ones (see ``pyproject.toml``), so there is one path for all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import pluggy

from vmc_cli import hookspecs
from vmc_cli.errors import VmcError

pm = pluggy.PluginManager("vmc")
pm.add_hookspecs(hookspecs)

_loaded = False


def load_plugins() -> None:
    """Load plugins from the ``vmc`` entry-point group (once).

    ``VMC_LOAD_PLUGINS`` (comma-separated entry-point names) restricts which
    ones are loaded; an empty value loads none.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    only = os.environ.get("VMC_LOAD_PLUGINS")
    if only is None:
        pm.load_setuptools_entrypoints("vmc")
        return
    from importlib.metadata import entry_points

    wanted = {n.strip() for n in only.split(",") if n.strip()}
    for ep in entry_points(group="vmc"):
        if ep.name in wanted and not pm.has_plugin(ep.name):
            pm.register(ep.load(), name=ep.name)


@dataclass(frozen=True)
class BackendEntry:
    name: str
    factory: Callable
    description: str
    plugin: str
    #: tuning settings where the backend departs from the paper's (``TuneConfig`` field -> value)
    tune_defaults: dict = field(default_factory=dict)
    #: the options it takes (:class:`vmc_cli.backend_options.BackendOption`)
    options: tuple = ()
    #: its generation defaults: the method's (``vmc_cli.method.tune_config.GENERATE_DEFAULTS``) with its own over them
    defaults: dict = field(default_factory=dict)


def get_backends() -> dict[str, BackendEntry]:
    """Every registered backend, by name."""
    load_plugins()
    backends: dict[str, BackendEntry] = {}

    def register(name, factory, description="", tune_defaults=None, options=None, defaults=None):
        plugin = getattr(factory, "__module__", None) or "?"
        if name in backends:
            raise VmcError(
                f"backend {name!r} is registered twice ({backends[name].plugin} and {plugin})",
                "uninstall one of the two plugins",
            )
        from vmc_cli.backend_options import check_declarations
        from vmc_cli.method.tune_config import check_generate_defaults, check_tune_defaults

        backends[name] = BackendEntry(name, factory, description, plugin,
                                      check_tune_defaults(name, dict(tune_defaults or {})),
                                      check_declarations(name, options),
                                      check_generate_defaults(name, dict(defaults or {})))

    pm.hook.register_backends(register=register)
    return backends


def get_backend(name: str):
    """Instantiate the backend called ``name`` (not yet loaded: call ``.load()``)."""
    backends = get_backends()
    if name not in backends:
        known = ", ".join(sorted(backends)) or "none"
        raise VmcError(f"unknown backend {name!r} (installed: {known})", "run `vmc backends` to list them")
    backend = backends[name].factory()
    backend.name = name
    backend.tune_defaults = backends[name].tune_defaults
    backend.options = backends[name].options
    backend.defaults = backends[name].defaults
    global _oom_hint
    _oom_hint = str(getattr(backend, "oom_hint", "") or "")
    return backend


def option_takers() -> dict[str, list[str]]:
    """Option name -> the backends that declare it (for the hint of an option given to another)."""
    takers: dict[str, list[str]] = {}
    for entry in get_backends().values():
        for option in entry.options:
            takers.setdefault(option.name, []).append(entry.name)
    return takers


#: when the backend at work has no hint of its own
OOM_HINT = "try --dtype float16, or a device with more free memory"
#: the out-of-memory hint of the backend made last (the one at work), read when it was made
_oom_hint = ""


def oom_hint() -> str:
    """What to do about running out of GPU memory: the hint of the backend at work
    (``Backend.oom_hint``: its own switches), else a generic one."""
    return _oom_hint or OOM_HINT
