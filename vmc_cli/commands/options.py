"""Option aliases shared by the commands (typer ``Annotated`` types)."""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr.")]
Home = Annotated[Optional[Path], typer.Option(
    "--home", help="Profile store folder (default: $VMC_HOME, else the user data folder).",
    show_default=False)]
Backend = Annotated[Optional[str], typer.Option(
    "--backend", "-b", help="Model backend (see `vmc backends`) (default: $VMC_BACKEND, else show1, for tune; the profile's own after).",
    show_default=False)]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Dtype = Annotated[Optional[str], typer.Option(
    "--dtype", help="float32, float16 or bfloat16 (default: the backend's choice for the device).",
    show_default=False)]
ModelPath = Annotated[Optional[str], typer.Option(
    "--model-path", help="The backend's model: a local folder (hub layout) or a hub id (default: the backend's "
    "variable, else its own; `vmc backends` names both).", show_default=False)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Strength = Annotated[Optional[float], typer.Option(
    "--strength", help="How far to invert, in (0, 1]: 1 runs the whole DDIM inversion (the method); lower stops "
    "part-way and starts sampling from there, keeping more of the clip. The kept signal sqrt(abar) is printed "
    "and recorded in the profile (default: the backend's, listed below).", show_default=False)]

MotionScale = Annotated[Optional[float], typer.Option(
    "--motion-scale", help="How much of the tuned motion to use: the tuned weights are blended as "
    "W0 + S (W - W0) with the base model's W0. 1 is the profile, 0 the untuned model, 0.6-0.8 softens an "
    "over-fitted motion, above 1 exaggerates it. The inversion is made with the same weights (default: the "
    "backend's, listed below).",
    show_default=False)]

Option = Annotated[Optional[list[str]], typer.Option(
    "--option", help="One of the backend's own options, NAME=VALUE (repeatable); `vmc backends` lists what each "
    "backend takes (also below).", show_default=False, metavar="NAME=VALUE")]


def backend_options_help(command: str) -> str:
    """The installed backends' own options for ``command``, for the end of its ``--help`` (read
    from the plugins' registrations, so no model code is imported)."""
    from vmc_cli.models.plugins import get_backends

    lines = [f"{b.name}: " + "; ".join(o.usage().replace("[", "\\[") for o in b.options if command in o.commands)
             for b in get_backends().values() if any(command in o.commands for o in b.options)]
    return ("Backend options (--option NAME=VALUE, or the variable named; `vmc backends` lists them): "
            + (" | ".join(lines) if lines else "none installed for this command") + ".")


def generate_defaults_help() -> str:
    """Each installed backend's generation defaults (from the registrations), for ``--help``."""
    from vmc_cli.models.plugins import get_backends
    from vmc_cli.method.tune_config import describe_generate_defaults

    return "Generation defaults by backend: " + "; ".join(
        f"{b.name}: {describe_generate_defaults(b.defaults)}" for b in get_backends().values()) + "."


class BackendOptionsCommand(typer.core.TyperCommand):
    """A command whose ``--help`` ends with the backends' own options (``--option``), and for
    generate and invert their generation defaults."""

    def get_help(self, ctx):
        parts = [generate_defaults_help()] if self.name in ("generate", "invert") else []
        self.epilog = "\n\n".join([*parts, backend_options_help(self.name)])
        return super().get_help(ctx)


@dataclass(frozen=True)
class RunOptions:
    """The options every command that loads a model takes (declared once, :func:`run_options`):
    the store, where and how the model runs, the backend's own options, and the output mode."""

    home: Optional[Path] = None
    device: str = "auto"
    dtype: Optional[str] = None
    model_path: Optional[str] = None
    option: Optional[list[str]] = None
    as_json: bool = False
    quiet: bool = False

    def reporter(self, quiet: bool = False):
        """Progress on stderr (none with --quiet or --json, or when ``quiet``)."""
        from vmc_cli.commands.output import reporter

        return reporter(self.as_json, self.quiet or quiet)

    def runtime(self, command: str, progress, device: str | None = None):
        """The :class:`vmc_cli.jobs.runtime.Runtime` of ``command`` (``device``: one placed for this process)."""
        from vmc_cli.backend_options import parse_given
        from vmc_cli.jobs.runtime import Runtime

        return Runtime(device or self.device, self.dtype, self.model_path, progress, parse_given(self.option), command)

    def store(self):
        from vmc_cli.store.profiles import ProfileStore

        return ProfileStore(self.home)


#: the parameters :func:`run_options` adds, as the command line shows them (in this order)
_RUN_PARAMETERS = (("home", Home, None), ("device", Device, "auto"), ("dtype", Dtype, None),
                   ("model_path", ModelPath, None), ("option", Option, None), ("as_json", Json, False),
                   ("quiet", Quiet, False))


def run_options(command):
    """Give ``command`` (a function with a ``run: RunOptions`` parameter) the shared options:
    typer sees ``--home --device --dtype --model-path --option --json --quiet`` in its place,
    and the function gets them as one :class:`RunOptions`."""
    import functools
    import inspect
    import typing

    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    kept = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
            if p.name != "run"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, annotation, default in _RUN_PARAMETERS]
    names = [name for name, _, _ in _RUN_PARAMETERS]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        run = RunOptions(**{name: kwargs.pop(name) for name in names if name in kwargs})
        return command(*args, run=run, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*kept, *added])
    wrapper.__annotations__ = {p.name: p.annotation for p in [*kept, *added]}
    del wrapper.__wrapped__  # typer reads the signature above, not the command's own
    return wrapper
