from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..options import Adapter, Backend, Device, Dtype, Home, Json, ModelPath, MotionScale, Option, Quiet, Strength


def invert(
    profile: Annotated[str, typer.Argument(help="Profile name (see `vmc profiles list`).")],
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="DDIM inversion steps (default: the backend's, 75).", show_default=False)] = None,
    strength: Strength = None,
    motion_scale: MotionScale = None,
    backend: Backend = None,
    home: Home = None,
    device: Device = "auto",
    dtype: Dtype = None,
    model_path: ModelPath = None,
    adapter: Adapter = None,
    option: Option = None,
    as_json: Json = False,
    quiet: Quiet = False,
):
    """DDIM-invert the profile's clip with its tuned model (empty prompt, no guidance) and save the noise.

    Optional: `vmc generate` inverts by itself when the profile has no inversion yet.
    """
    from ..backend_options import parse_given
    from ..jobs import Runtime, invert_profile
    from ..output import emit_json, reporter
    from ..profiles import ProfileStore

    progress = reporter(as_json, quiet)
    runtime = Runtime(device, dtype, model_path, progress, parse_given(option, adapter=adapter), "invert")
    with progress.session():
        result = invert_profile(profile, store=ProfileStore(home), runtime=runtime,
                                steps=steps, backend_name=backend, strength=strength,
                                motion_scale=motion_scale)
    if as_json:
        emit_json(result)
    else:
        print(f"inverted {profile} in {result['steps']} steps up to t={result['final_timestep']} "
              f"(keeps {100 * result['signal']:.2f}% of the clip's signal): {result['path']}")
