"""vmc: video motion customization (VMC, CVPR 2024) from the command line.

The parts, in the order a newcomer meets them:

- :mod:`vmc_cli.cli` and :mod:`vmc_cli.commands`: the ``vmc`` command, thin wiring (typer);
- :mod:`vmc_cli.jobs`: the user-level steps the commands run (tune, invert, generate, export, import);
- :mod:`vmc_cli.method`: the method itself, once for every backend (schedule, inversion, sampling,
  losses, tuning, the pipeline);
- :mod:`vmc_cli.store`: the profile store (folders, TOML manifests, checkpoints);
- :mod:`vmc_cli.io`: clips and videos in and out;
- :mod:`vmc_cli.models`: finding backends (plugins) and their model files, LoRA file layouts;
- the plugin API a backend is written against: :mod:`vmc_cli.backend` (the contract),
  :mod:`vmc_cli.backend_options` (its declared settings), :mod:`vmc_cli.hookspecs`,
  :mod:`vmc_cli.errors`, :mod:`vmc_cli.progress`; and :mod:`vmc_cli.checks` (checks of values that
  need no model).
"""

__version__ = "0.1.0"

from vmc_cli.hookspecs import hookimpl  # noqa: E402  (plugins import this marker)

__all__ = ["__version__", "hookimpl"]
