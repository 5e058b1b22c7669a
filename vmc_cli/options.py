"""Option aliases shared by the commands (typer ``Annotated`` types)."""

from __future__ import annotations

from pathlib import Path
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
    "--model-path", help="Local folder holding the backend's model files (hub layout).", show_default=False)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Strength = Annotated[Optional[float], typer.Option(
    "--strength", help="How far to invert, in (0, 1]: 1 runs the whole DDIM inversion (the method); lower stops "
    "part-way and starts sampling from there, keeping more of the clip. The kept signal sqrt(abar) is printed "
    "and recorded in the profile (default: the backend's; 1 for show1).", show_default=False)]

MotionScale = Annotated[Optional[float], typer.Option(
    "--motion-scale", help="How much of the tuned motion to use: the tuned weights are blended as "
    "W0 + S (W - W0) with the base model's W0. 1 is the profile, 0 the untuned model, 0.6-0.8 softens an "
    "over-fitted motion, above 1 exaggerates it. The inversion is made with the same weights. (default: 1; "
    "the shapes backend's is 0.5, what measured best there: docs/shapes_transfer.md)",
    show_default=False)]

Adapter = Annotated[Optional[str], typer.Option(
    "--adapter", help="animatediff: the MotionAdapter, a hub id or a folder (default "
    "guoyww/animatediff-motion-adapter-v1-5-2; a profile keeps the one it was tuned with).", show_default=False)]

Option = Annotated[Optional[list[str]], typer.Option(
    "--option", help="One of the backend's own options, NAME=VALUE (repeatable); `vmc backends` lists what each "
    "backend takes (also below).", show_default=False, metavar="NAME=VALUE")]


def backend_options_help(command: str) -> str:
    """The installed backends' own options for ``command``, for the end of its ``--help`` (read
    from the plugins' registrations, so no model code is imported)."""
    from .plugins import get_backends

    lines = [f"{b.name}: " + "; ".join(o.usage() for o in b.options if command in o.commands)
             for b in get_backends().values() if any(command in o.commands for o in b.options)]
    return ("Backend options (--option NAME=VALUE; `vmc backends` lists them): "
            + (" | ".join(lines) if lines else "none installed for this command") + ".")


class BackendOptionsCommand(typer.core.TyperCommand):
    """A command whose ``--help`` ends with the backends' own options (``--option``)."""

    def get_help(self, ctx):
        self.epilog = backend_options_help(self.name)
        return super().get_help(ctx)
