"""The ``vmc`` command: wiring only. Each command lives in ``vmc_cli/commands``."""

from __future__ import annotations

import os
import sys

import typer

from .commands import backends, evaluate, generate, invert, profiles, prompt, tune
from .errors import VmcError

app = typer.Typer(
    name="vmc",
    help="Video motion customization (VMC, CVPR 2024): learn the motion of one clip, "
    "then generate the same motion in new contexts.\n\n"
    "  vmc tune clip.mp4 --prompt 'a cat is roaring'\n\n"
    "  vmc generate cat-is-roaring --prompt 'a tiger roaring in snow' -o tiger.mp4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("prompt")(prompt.prompt)
app.command("tune", cls=tune.TuneCommand)(tune.tune)
app.command("invert")(invert.invert)
app.command("generate")(generate.generate)
app.command("eval")(evaluate.evaluate)
app.add_typer(profiles.app, name="profiles")
app.command("backends")(backends.backends)


def _version(value: bool):
    if value:
        from . import __version__

        print(f"vmc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """Video motion customization."""


OOM_HINT = "try --dtype float16, VMC_SHOW1_OFFLOAD=1, or VMC_SHOW1_GRADIENT_CHECKPOINTING=1 for tuning"


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (the error contract is one line)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return ""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one ``Error:`` line and exit code 1."""
    debug = os.environ.get("VMC_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, prog_name="vmc")
    except VmcError as exc:
        if debug:
            raise
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an unexpected failure: still one line unless debugging
        if debug:
            raise
        first = _first_line(exc)
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            print(f"Error: out of GPU memory ({first})", file=sys.stderr)
            print(f"Hint: {OOM_HINT}", file=sys.stderr)
        else:
            print(f"Error: {type(exc).__name__}{': ' + first if first else ''}", file=sys.stderr)
            print("Hint: run again with VMC_DEBUG=1 for the full traceback", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
