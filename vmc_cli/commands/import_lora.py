from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..options import Device, Dtype, Home, Json, ModelPath, Option, Quiet


def import_lora(
    file: Annotated[Path, typer.Argument(help="A motion LoRA, .safetensors: diffusers' keys, ComfyUI's native Wan keys "
                                         "(or kohya's lora_unet_...), or the original AnimateDiff motion-LoRA keys.",
                                         show_default=False)],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The backend whose model the LoRA is for "
                                         "(wan, shapes-wan, animatediff, or any with a LoRA format: `vmc backends`).",
                                         show_default=False)],
    name: Annotated[str, typer.Option("--name", "-n", help="The new profile's name.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace a profile of that name.")] = False,
    home: Home = None,
    device: Device = "auto",
    dtype: Dtype = None,
    model_path: ModelPath = None,
    option: Option = None,
    as_json: Json = False,
    quiet: Quiet = False,
):
    """Make a profile of a motion LoRA trained elsewhere, so `vmc generate NAME` uses it.

    The layout is told from the file's keys; the model is loaded to check every factor's shape.
    Such a profile has no source clip: `vmc generate` samples it from fresh noise (--init noise).
    """
    from ..backend_options import parse_given
    from ..importing import import_lora as run
    from ..jobs import Runtime
    from ..output import emit_json, reporter
    from ..profiles import ProfileStore

    progress = reporter(as_json, quiet)
    runtime = Runtime(device, dtype, model_path, progress, parse_given(option), "import")
    with progress.session():
        result = run(file, backend_name=backend, name=name, store=ProfileStore(home), runtime=runtime, force=force)
    if as_json:
        emit_json(result)
    else:
        print(f"imported {file} ({result['layout']}, {result['modules']} modules, rank "
              f"{'/'.join(map(str, result['ranks']))}) as profile {name}: {result['path']}")
        print(f"generate with: vmc generate {name} --prompt '...' (from fresh noise: it has no source clip)")
