from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmc_cli.commands.options import RunOptions, run_options


@run_options
def import_lora(
    file: Annotated[Path, typer.Argument(help="A motion LoRA, .safetensors: diffusers' keys, ComfyUI's native Wan keys "
                                         "(or kohya's lora_unet_...), or the original AnimateDiff motion-LoRA keys.",
                                         show_default=False)],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The backend whose model the LoRA is for "
                                         "(wan, shapes-wan, animatediff, or any with a LoRA format: `vmc backends`).",
                                         show_default=False)],
    name: Annotated[str, typer.Option("--name", "-n", help="The new profile's name.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace a profile of that name.")] = False,
    *,
    run: RunOptions,
):
    """Make a profile of a motion LoRA trained elsewhere, so `vmc generate NAME` uses it.

    The layout is told from the file's keys; the model is loaded to check every factor's shape.
    Such a profile has no source clip: `vmc generate` samples it from fresh noise (--init noise).
    """
    from vmc_cli.jobs.importing import import_lora as job
    from vmc_cli.commands.output import emit_json

    progress = run.reporter()
    runtime = run.runtime("import", progress)
    with progress.session():
        result = job(file, backend_name=backend, name=name, store=run.store(), runtime=runtime, force=force)
    if run.as_json:
        emit_json(result)
    else:
        print(f"imported {file} ({result['layout']}, {result['modules']} modules, rank "
              f"{'/'.join(map(str, result['ranks']))}) as profile {name}: {result['path']}")
        print(f"generate with: vmc generate {name} --prompt '...' (from fresh noise: it has no source clip)")
