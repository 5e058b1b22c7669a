from __future__ import annotations

from typing import Annotated

import typer

from vmc_cli.commands.options import Json


def prompt(
    text: Annotated[str, typer.Argument(help="A prompt describing a clip, e.g. 'a cat is roaring on the grass'.")],
    as_json: Json = False,
):
    """Print the appearance-invariant form of a prompt (subject and action, no place or context).

    This is the prompt `vmc tune` trains with unless --keep-prompt is given.
    """
    from vmc_cli.method.prompts import appearance_invariant

    invariant = appearance_invariant(text)
    if as_json:
        from vmc_cli.commands.output import emit_json

        emit_json({"prompt": text, "appearance_invariant": invariant})
    else:
        print(invariant)
