"""The ``vmc`` command: wiring only. Each command lives in ``vmc_cli/commands``."""

from __future__ import annotations

import os
import sys

import typer

from vmc_cli.commands import backends, evaluate, export, generate, import_lora, invert, profiles, prompt, tune
from vmc_cli.errors import VmcError
from vmc_cli.commands.options import BackendOptionsCommand

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
app.command("invert", cls=BackendOptionsCommand)(invert.invert)
app.command("generate", cls=BackendOptionsCommand)(generate.generate)
app.command("eval")(evaluate.evaluate)
app.command("export", cls=BackendOptionsCommand)(export.export)
app.command("import", cls=BackendOptionsCommand)(import_lora.import_lora)
app.add_typer(profiles.app, name="profiles")
app.command("backends")(backends.backends)


def _version(value: bool):
    if value:
        from vmc_cli import __version__

        print(f"vmc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """Video motion customization."""


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (the error contract is one line)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for ``--json`` (before a ``--`` that ends the options)."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in args


def _command_of(argv: list[str]) -> str:
    """``vmc tune``, ``vmc profiles list``...: the command named on the line, for hints."""
    words = ["vmc"]
    for arg in argv:
        if arg.startswith("-") or arg not in COMMANDS.get(" ".join(words[1:]), ()):
            break
        words.append(arg)
    return " ".join(words)


#: the command tree, for naming the command in a usage error's hint
COMMANDS = {"": ("prompt", "tune", "invert", "generate", "eval", "export", "import", "profiles", "backends"),
            "profiles": ("list", "show", "rm", "clean", "path")}


def fail(message: str, hint: str, code: int, as_json: bool) -> None:
    """The error contract: one ``Error:`` line and one ``Hint:`` line on stderr, and with
    ``--json`` exactly one JSON document on stdout (``{"error", "hint", "code"}``); exit ``code``."""
    print(f"Error: {message}", file=sys.stderr)
    print(f"Hint: {hint}", file=sys.stderr)
    if as_json:
        import json

        sys.stdout.write(json.dumps({"error": message, "hint": hint, "code": code}) + "\n")
        sys.stdout.flush()
    sys.exit(code)


def _run(argv: list[str], debug: bool, as_json: bool):
    """The app without click's standalone handling; usage errors follow the error contract."""
    try:
        return app(args=argv, prog_name="vmc", standalone_mode=False)
    except VmcError:
        raise
    except Exception as exc:
        kinds = {cls.__name__ for cls in type(exc).__mro__}  # click's, or the copy typer ships
        if "NoArgsIsHelpError" in kinds:  # `vmc` or `vmc profiles` alone: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        if debug or not kinds & {"ClickException", "Abort"}:
            raise
        if "Abort" in kinds:
            fail("aborted", "run the command again", 1, as_json)
        hint = f"see `{_command_of(argv)} --help` for what it takes"
        fail(_first_line(exc.format_message()) or "bad usage", hint, exc.exit_code, as_json)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one ``Error:`` line and a ``Hint:`` line (exit
    code 1; 2 for usage errors), plus one JSON document on stdout with ``--json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("VMC_DEBUG", "") not in ("", "0")
    as_json = _wants_json(argv)
    try:
        code = _run(argv, debug, as_json)
    except VmcError as exc:
        if debug:
            raise
        fail(exc.message, exc.hint or f"see `{_command_of(argv)} --help` for what each option takes",
             exc.exit_code, as_json)
    except Exception as exc:  # an unexpected failure: still one line unless debugging
        if debug:
            raise
        first = _first_line(exc)
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            from vmc_cli.models.plugins import oom_hint  # the hint of the backend that ran out

            fail(f"out of GPU memory ({first})", oom_hint(), 1, as_json)
        fail(f"{type(exc).__name__}{': ' + first if first else ''}",
             "run again with VMC_DEBUG=1 for the full traceback", 1, as_json)
    if isinstance(code, int) and code:  # typer.Exit(code), or 130 after Ctrl-C
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
