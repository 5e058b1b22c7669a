from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmc_cli.errors import VmcError
from vmc_cli.commands.options import Backend, MotionScale, RunOptions, Seed, Strength, run_options


def _read_prompts(prompt: str | None, prompt_file: Path | None) -> list[str]:
    if (prompt is None) == (prompt_file is None):
        raise VmcError("give exactly one of --prompt and --prompt-file",
                       "--prompt 'a tiger roaring in snow' for one video, --prompt-file FILE for one per line")
    if prompt is not None:
        if not prompt.strip():
            raise VmcError("--prompt is empty", "describe the new video, e.g. --prompt 'a tiger roaring in snow'")
        return [prompt.strip()]
    if prompt_file.is_dir():
        raise VmcError(f"--prompt-file {prompt_file} is a folder", "give a text file with one prompt per line")
    if not prompt_file.is_file():
        raise VmcError(f"no such file: {prompt_file}", "--prompt-file takes a text file with one prompt per line")
    try:
        text = prompt_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise VmcError(f"--prompt-file {prompt_file} is not UTF-8 text",
                       "give a text file with one prompt per line") from None
    except OSError as exc:
        raise VmcError(f"cannot read --prompt-file {prompt_file} ({exc.strerror or exc})",
                       "give a readable text file with one prompt per line") from None
    lines = [ln.strip() for ln in text.splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise VmcError(f"{prompt_file} holds no prompts", "write one prompt per line")
    return prompts


def output_paths(profile: str, prompts: list[str], output: Path | None, fmt: str | None, batch: bool) -> list[Path]:
    """Where each video goes. One prompt: ``-o`` is the file (default ``<profile>_<prompt>.mp4``).
    A prompt file: ``-o`` is a folder (default ``.``) holding ``NNN_<prompt>.<ext>``."""
    from vmc_cli.store.profiles import slug

    ext = {"png": ""}.get(fmt or "mp4", f".{fmt or 'mp4'}")
    if not batch:
        return [output or Path(f"{profile}_{slug(prompts[0], 40)}{ext}")]
    folder = output or Path(".")
    if folder.exists() and not folder.is_dir():
        raise VmcError(f"-o {folder} is a file", "with --prompt-file, -o names a folder")
    return [folder / f"{i:03d}_{slug(p, 40)}{ext}" for i, p in enumerate(prompts)]


def keyframe_paths(outputs: list[Path], keyframes_out: Path | None, batch: bool, option: str = "--keyframes-out",
                   suffix: str = "keyframes") -> list[Path] | None:
    """Where each video's key-frames (or side-by-side pictures) go: the option's value is the
    file for one prompt, a folder for a prompt file (``<video name>_<suffix>.gif`` there)."""
    if keyframes_out is None:
        return None
    if not batch:
        return [keyframes_out]
    if keyframes_out.exists() and not keyframes_out.is_dir():
        raise VmcError(f"{option} {keyframes_out} is a file", "with --prompt-file, it names a folder")
    return [keyframes_out / f"{out.stem}_{suffix}.gif" for out in outputs]


class _Processes:
    """This process among several started by ``accelerate launch`` (a barrier and who is main)."""

    def __init__(self, state):
        self.state = state
        self.is_main = state.is_main_process

    def wait(self) -> None:
        self.state.wait_for_everyone()

    def close(self) -> None:
        """Leave the process group, every process together. A gloo group left to the
        interpreter's exit can abort the process ("terminate called without an active
        exception") after its work is done."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _processes() -> _Processes | None:
    """The accelerate process group when launched as several processes, else None (no import)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Without CUDA, the processes are CPU processes joined over gloo (accelerate's own
    # detection only does that for MPI launches).
    state = PartialState(cpu=not torch.cuda.is_available())
    return _Processes(state) if state.num_processes > 1 else None


@run_options
def generate(
    profile: Annotated[str, typer.Argument(help="Profile name (see `vmc profiles list`).")],
    prompt: Annotated[Optional[str], typer.Option(
        "--prompt", "-p", help="The new context, e.g. 'a tiger roaring in snow'.", show_default=False)] = None,
    prompt_file: Annotated[Optional[Path], typer.Option(
        "--prompt-file", help="Text file with one prompt per line: one video each (batch).",
        show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Output file (a folder with --prompt-file) (default: <profile>_<prompt>.mp4).",
        show_default=False)] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="mp4, gif or png (a folder of frames) (default: from -o, else mp4).",
        show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Key-frame sampling steps (default: the backend's, listed below).", show_default=False)] = None,
    guidance: Annotated[Optional[float], typer.Option(
        "--guidance", help="Classifier-free guidance scale (default: the backend's, listed below).", show_default=False)] = None,
    invert_steps: Annotated[Optional[int], typer.Option(
        "--invert-steps", help="DDIM inversion steps when inverting (default: the backend's, listed below).",
        show_default=False)] = None,
    negative_prompt: Annotated[Optional[str], typer.Option(
        "--negative-prompt", help="Prompt to steer away from (default: the backend's).", show_default=False)] = None,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Starting noise: inverted (DDIM inversion of the clip, the method) or noise (fresh) "
        "(default: inverted; noise for a profile without a source clip, one made by `vmc import`).",
        show_default=False)] = None,
    invert_with: Annotated[Optional[str], typer.Option(
        "--invert-with", help="The model that inverts the clip: profile (the tuned model at --motion-scale, the "
        "way VMC's code does it) or base (the model without the profile; sampling still uses it) "
        "(default: profile).", show_default=False)] = None,
    strength: Strength = None,
    motion_scale: MotionScale = None,
    stages: Annotated[str, typer.Option(
        "--stages", help="all (key-frames and the backend's later stages: interpolation, super-resolution), "
        "keyframes (a quick look), or either with optional stages added, e.g. all,xl (zeroscope's XL "
        "upscale).")] = "all",
    keyframes_out: Annotated[Optional[Path], typer.Option(
        "--keyframes-out", help="Also write the sampled key-frames here (gif, mp4 or png folder; a folder with "
        "--prompt-file), from the same run as the video.", show_default=False)] = None,
    side_by_side: Annotated[Optional[Path], typer.Option(
        "--side-by-side", help="Also write the source's key-frames and the generated ones side by side here "
        "(a GIF; a folder with --prompt-file).", show_default=False)] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second of the video.",
                                                 show_default=False)] = None,
    seed: Seed = 0,
    backend: Backend = None,
    *,
    run: RunOptions,
):
    """Generate the profile's motion with a new prompt: key-frames from the inverted clip, then the cascade."""
    from vmc_cli.method.generate_config import GenerateConfig
    from vmc_cli.jobs import generate as job
    from vmc_cli.commands.output import emit_json
    from vmc_cli.store.profiles import validate_name

    validate_name(profile)
    config = GenerateConfig(steps=steps, guidance=guidance, invert_steps=invert_steps, negative_prompt=negative_prompt,
                            strength=strength, motion_scale=motion_scale, init=init, invert_with=invert_with,
                            seed=seed, stages=stages, fps=fps)
    prompts = _read_prompts(prompt, prompt_file)
    outputs = output_paths(profile, prompts, output, fmt, batch=prompt_file is not None)
    keyframes = keyframe_paths(outputs, keyframes_out, batch=prompt_file is not None)
    pairs = keyframe_paths(outputs, side_by_side, prompt_file is not None, "--side-by-side", "side_by_side")
    if run.as_json:
        from vmc_cli.io.video import stream_of

        taken = [p for p in [*outputs, *(keyframes or []), *(pairs or [])] if stream_of(p) == 1]
        if taken:
            raise VmcError(f"--json and {taken[0]} both write to stdout",
                           "drop --json, or write the video to a file")
    processes = _processes()
    mine = list(range(len(prompts)))
    device = None  # --device, unless a launch placed this process
    if processes is not None:  # accelerate launch: this process's share of the prompts, on its own device
        with processes.state.split_between_processes(mine) as share:
            mine = list(share)
        if run.device == "auto":
            placed = processes.state.device
            device = "cpu" if placed.type == "cpu" else str(placed)
    progress = run.reporter(quiet=not (processes is None or processes.is_main))
    results = []
    runtime = run.runtime("generate", progress, device)
    with progress.session():
        if mine:
            results = job(profile, [prompts[i] for i in mine], [outputs[i] for i in mine], store=run.store(),
                          runtime=runtime, config=config, backend_name=backend, fmt=fmt,
                          keyframe_outputs=[keyframes[i] for i in mine] if keyframes else None, sync=processes,
                          side_by_side_outputs=[pairs[i] for i in mine] if pairs else None)
        elif processes is not None:
            processes.wait()  # more processes than prompts: nothing to do, but the barrier is shared
    for index, r in zip(mine, results):
        r["index"] = index
        if processes is not None:
            r["process"] = processes.state.process_index
    if processes is not None:
        from accelerate.utils import gather_object

        results = sorted(gather_object(results), key=lambda r: r["index"])
        processes.close()
        if not processes.is_main:
            return
    if run.as_json:
        emit_json({"profile": profile, "videos": results})
    else:
        for r in results:
            print(f"{r['path']}  ({r['frames']} frames, {r['width']}x{r['height']}): {r['prompt']}"
                  + (f"  [key-frames: {r['keyframes']}]" if r.get("keyframes") else "")
                  + (f"  [side by side: {r['side_by_side']}]" if r.get("side_by_side") else ""))
