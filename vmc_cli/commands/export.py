from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import Device, Dtype, Home, Json, ModelPath, Quiet


def export(
    profile: Annotated[str, typer.Argument(help="Profile name (see `vmc profiles list`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write, NAME.safetensors.",
                                         show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="lora: diffusers' LoRA keys (load_lora_weights).")] = "lora",
    rank: Annotated[Optional[int], typer.Option(
        "--rank", help="U-Net profiles: the rank of the SVD approximation of each weight change (default 32; "
        "the report says the share of the change kept). LoRA profiles (wan) keep their own.",
        show_default=False)] = None,
    home: Home = None,
    device: Device = "auto",
    dtype: Dtype = None,
    model_path: ModelPath = None,
    as_json: Json = False,
    quiet: Quiet = False,
):
    """Write a profile as a standard LoRA file that other tools load.

    Wan profiles are LoRA adapters already and are written as they are. U-Net profiles (show1,
    zeroscope, animatediff, ...) hold tuned weights: the key-frame model is loaded for its base
    weights and each change W - W0 is cut to --rank by SVD. Keys are diffusers'
    (`transformer.` or `unet.` + module + `.lora_A.weight` / `.lora_B.weight`, alpha = rank), so
    `pipe.load_lora_weights("motion.safetensors")` loads it.
    """
    from ..export import export_profile
    from ..jobs import Runtime
    from ..output import emit_json, reporter
    from ..profiles import ProfileStore

    progress = reporter(as_json, quiet)
    runtime = Runtime(device, dtype, model_path, progress, {}, "export")
    with progress.session():
        result = export_profile(profile, output, store=ProfileStore(home), runtime=runtime, fmt=fmt, rank=rank)
    if as_json:
        emit_json(result)
    else:
        how = ("its LoRA adapters as they are" if not result["approximated"] else
               f"rank {result['rank']} by SVD, {100 * result['kept']:.1f}% of the change kept"
               + (f"; {len(result['left_out'])} tensors a LoRA cannot hold left out" if result["left_out"] else ""))
        print(f"exported {profile} ({result['layers']} layers, {how}): {result['path']}")
