from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmc_cli.errors import VmcError
from vmc_cli.commands.options import Backend, RunOptions, Seed, run_options


def parse_timesteps(text: str | None) -> tuple[int, int] | None:
    """``"LO:HI"`` -> (LO, HI); None stays None (the backend's default)."""
    if text is None:
        return None
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise VmcError(f"--timesteps {text!r} is not LO:HI", "give two whole numbers, e.g. --timesteps 0:600") from None
    return lo, hi


class TuneCommand(typer.core.TyperCommand):
    """``vmc tune --help`` ends with each installed backend's tuning defaults and own options
    (read when the help is shown, from the plugins' registrations, so no model code is imported)."""

    def get_help(self, ctx):
        from vmc_cli.commands.options import backend_options_help
        from vmc_cli.models.plugins import get_backends
        from vmc_cli.method.tune_config import describe_defaults

        lines = [f"{b.name}: {describe_defaults(b.tune_defaults)}" for b in get_backends().values()]
        self.epilog = ("Tuning defaults by backend (the paper's unless a backend sets its own): " + "; ".join(lines)
                       + "\n\n" + backend_options_help("tune"))
        return super().get_help(ctx)


@run_options
def tune(
    clip: Annotated[Path, typer.Argument(help="The clip whose motion to learn: a video file (mp4, webm, gif, ...), "
                                         "a folder of frames (jpg, jpeg, png, webp, in natural order: 2 before 10) "
                                         "or a quoted glob ('frames/*.png').")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What the clip shows, e.g. 'a cat is roaring'.")],
    name: Annotated[Optional[str], typer.Option(
        "--name", "-n", help="Profile name (default: made from the tuning prompt).", show_default=False)] = None,
    backend: Backend = None,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", help="Frames to sample from the clip (default: the backend's key-frame count).", show_default=False)] = None,
    stride: Annotated[int, typer.Option("--stride", help="Take every N-th frame (after --fps).")] = 1,
    start: Annotated[str, typer.Option(
        "--start", help="First frame to take: a frame number (0-based, after --fps) or seconds, e.g. 1.5s.")] = "0",
    fps: Annotated[Optional[float], typer.Option(
        "--fps", help="Resample the clip to this many frames per second first, on its own time axis "
        "(--fps 4 --frames 8: two seconds of motion). Videos only.", show_default=False)] = None,
    width: Annotated[Optional[int], typer.Option(
        "--width", help="Key-frame width in pixels (latent backends: a multiple of 64; default: the model's).",
        show_default=False)] = None,
    height: Annotated[Optional[int], typer.Option(
        "--height", help="Key-frame height in pixels (default: the model's).", show_default=False)] = None,
    crop: Annotated[str, typer.Option(
        "--crop", help="center: crop to the key-frame aspect, then resize; none: resize the whole frame "
        "(squashing it, as the paper's code does).")] = "center",
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Optimisation steps (default: the backend's, see below).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="AdamW learning rate (default: the backend's).", show_default=False)] = None,
    loss: Annotated[Optional[str], typer.Option(
        "--loss", help="Motion-distillation loss: cos (paper eq. 17), l2 (eq. 16), "
        "official (the authors' released variant: absolute residuals, cosine along frames), "
        "x0cos (cos on the denoised motion vectors of eq. 15), noise (plain noise matching, a reference) "
        "(default: the backend's).", show_default=False)] = None,
    target: Annotated[Optional[str], typer.Option(
        "--target", help="Parameters to tune: qkv (temporal attention q/k/v, the paper's), temporal "
        "(all temporal attention), attention (q/k/v of every attention layer), or a regex over parameter names "
        "(default: the backend's, listed below); a backend may take forms of its own (a Wan backend's LoRA "
        "targets, e.g. qk:0-14: `vmc backends`).", show_default=False)] = None,
    timesteps: Annotated[Optional[str], typer.Option(
        "--timesteps", help="Draw tuning timesteps from LO:HI only, e.g. 0:600 (default: the backend's; "
        "the paper's is the whole schedule).", show_default=False)] = None,
    residual_stride: Annotated[int, typer.Option(
        "--residual-stride", help="Frame stride c of the motion residuals v^(n+c) - v^n.")] = 1,
    keep_prompt: Annotated[bool, typer.Option(
        "--keep-prompt", help="Tune with the prompt as given instead of its appearance-invariant form.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile of the same name.")] = False,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Save the tuning state every N steps into the store's staging area "
        "(0: never), so an interrupted tune can be resumed.")] = 50,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the interrupted tune of this profile name from its last checkpoint "
        "(same clip, prompt and options; on a CPU the result is bit-identical to an uninterrupted run).")] = False,
    seed: Seed = 0,
    *,
    run: RunOptions,
):
    """Learn the motion of a clip: fine-tune the key-frame model's temporal attention into a profile.

    Only the temporal attention q/k/v projections are trained, with the motion-distillation
    loss on frame-to-frame noise residuals. The prompt is made appearance-invariant first
    (see `vmc prompt`) unless --keep-prompt is given; both forms are recorded in the profile,
    with every tuning setting used.
    """
    from vmc_cli.jobs import tune_clip
    from vmc_cli.commands.output import emit_json, info
    options = dict(steps=steps, lr=lr, loss=loss, seed=seed, target=target, stride=residual_stride,
                   timestep_range=parse_timesteps(timesteps))
    progress = run.reporter()
    store = run.store()
    runtime = run.runtime("tune", progress)
    with progress.session():
        result = tune_clip(clip, prompt, store=store, runtime=runtime,
                           backend_name=backend, name=name, frames=frames, stride=stride,
                           start=start, options=options, keep_prompt=keep_prompt, force=force, crop=crop, fps=fps,
                           resume=resume, checkpoint_every=checkpoint_every, width=width, height=height)
    if run.as_json:
        emit_json(result)
    else:
        info(f"tuning prompt: {result['tuning_prompt']!r}", run.quiet)
        info(f"loss {result['loss']['first']:.4f} -> {result['loss']['mean_last_10']:.4f} (mean of last 10) "
             f"in {result['seconds']:.1f}s", run.quiet)
        print(f"profile {result['profile']} saved in {result['path']}")
