"""Hook specifications for vmc plugins.

A plugin is a module (or object) registered under the entry-point group
``vmc`` that implements one or more of these hooks, marked with
``vmc_cli.hookimpl``::

    from vmc_cli import hookimpl

    @hookimpl
    def register_backends(register):
        register("mymodel", MyBackend, description="My video model")
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vmc")
hookimpl = pluggy.HookimplMarker("vmc")


@hookspec
def register_backends(register):
    """Register model backends.

    Call ``register(name, factory, description="", tune_defaults=None, options=None, defaults=None)``
    once per backend. ``options`` lists the backend's own settings
    (:class:`vmc_cli.backend_options.BackendOption`: name, type, default, help, commands, the
    environment variable that may also set it, choices or range);
    ``vmc backends`` and ``--help`` show them, users give them as ``--option NAME=VALUE``, and
    the core checks and converts them before passing them by name to the backend's
    ``configure()`` and ``load()``. ``defaults`` gives its generation settings where they
    depart from the method's (``vmc_cli.method.tune_config.GENERATE_DEFAULTS``: invert_steps,
    sample_steps, guidance, negative_prompt, strength, motion_scale); ``vmc backends`` and
    ``vmc generate --help`` show them. ``tune_defaults`` maps ``vmc_cli.method.tuning.TuneConfig`` fields (steps, lr,
    loss, target, timestep_range) to the backend's own defaults where they depart from
    the paper's; ``vmc tune --help`` shows them and profiles record what was used.
    ``factory`` is a zero-argument callable (usually a class) that returns a
    :class:`vmc_cli.backend.Backend`. It is only called when the backend is
    used, so keep the plugin module itself free of heavy imports (torch,
    diffusers): ``vmc backends`` and ``vmc --help`` import every plugin.
    """
