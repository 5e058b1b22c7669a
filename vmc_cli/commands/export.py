from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmc_cli.commands.options import RunOptions, run_options


@run_options
def export(
    profile: Annotated[str, typer.Argument(help="Profile name (see `vmc profiles list`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write, NAME.safetensors.",
                                         show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="lora: diffusers' keys, for diffusers' load_lora_weights; "
                                     "comfyui: the keys ComfyUI's own loaders take, for wan and shapes-wan profiles "
                                     "ComfyUI's native Wan keys (LoraLoaderModelOnly), for animatediff profiles the "
                                     "original motion-LoRA keys (AnimateDiff-Evolved's Load AnimateDiff LoRA). "
                                     "Strength 1.0 there is --motion-scale 1 here.")] = "lora",
    rank: Annotated[Optional[int], typer.Option(
        "--rank", help="U-Net profiles: the rank of the SVD approximation of each weight change (default 32; "
        "the report says the share of the change kept). LoRA profiles (wan) keep their own.",
        show_default=False)] = None,
    *,
    run: RunOptions,
):
    """Write a profile as a LoRA file that other tools load (diffusers, ComfyUI, AnimateDiff-Evolved).

    Wan profiles are LoRA adapters already and are written as they are. U-Net profiles (show1,
    zeroscope, animatediff, ...) hold tuned weights: the key-frame model is loaded for its base
    weights and each change W - W0 is cut to --rank by SVD. --format lora writes diffusers' keys
    (`pipe.load_lora_weights("motion.safetensors")`); --format comfyui the keys of the model's
    native tools, where it has them. The file's header records the backend, the base model and
    revision, rank and alpha, layout, tuning prompt and settings and the suggested strength.
    """
    from vmc_cli.jobs.export import export_profile
    from vmc_cli.commands.output import emit_json

    progress = run.reporter()
    runtime = run.runtime("export", progress)
    with progress.session():
        result = export_profile(profile, output, store=run.store(), runtime=runtime, fmt=fmt, rank=rank)
    if run.as_json:
        emit_json(result)
    else:
        how = ("its LoRA adapters as they are" if not result["approximated"] else
               f"rank {result['rank']} by SVD, {100 * result['kept']:.1f}% of the change kept"
               + (f"; {len(result['left_out'])} tensors a LoRA cannot hold left out" if result["left_out"] else ""))
        print(f"exported {profile} ({result['layers']} layers, {how}): {result['path']}")
        print(f"loads in {result['loads_in']}; strength {result['suggested_strength']:g} there is "
              f"--motion-scale {result['suggested_strength']:g} here")
