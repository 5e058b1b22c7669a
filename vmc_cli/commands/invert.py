from __future__ import annotations

from typing import Annotated, Optional

import typer

from vmc_cli.commands.options import Backend, MotionScale, RunOptions, Strength, run_options


@run_options
def invert(
    profile: Annotated[str, typer.Argument(help="Profile name (see `vmc profiles list`).")],
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="DDIM inversion steps (default: the backend's, listed below).", show_default=False)] = None,
    strength: Strength = None,
    motion_scale: MotionScale = None,
    backend: Backend = None,
    *,
    run: RunOptions,
):
    """DDIM-invert the profile's clip with its tuned model (empty prompt, no guidance) and save the noise.

    Optional: `vmc generate` inverts by itself when the profile has no inversion yet.
    """
    from vmc_cli.jobs import invert_profile
    from vmc_cli.commands.output import emit_json

    progress = run.reporter()
    runtime = run.runtime("invert", progress)
    with progress.session():
        result = invert_profile(profile, store=run.store(), runtime=runtime,
                                steps=steps, backend_name=backend, strength=strength,
                                motion_scale=motion_scale)
    if run.as_json:
        emit_json(result)
    else:
        print(f"inverted {profile} in {result['steps']} steps up to t={result['final_timestep']} "
              f"(keeps {100 * result['signal']:.2f}% of the clip's signal): {result['path']}")
