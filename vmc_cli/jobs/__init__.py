"""The user-level jobs behind the commands: tune a clip into a profile, invert it, generate from
it (here), export a profile as a LoRA file (:mod:`.export`) and import one made elsewhere
(:mod:`.importing`), each on a :class:`.runtime.Runtime` (device, dtype, model, the backend's
options) that loads a backend and a profile's weights onto it. Commands only parse options and
print; these do the work, with the method itself in :class:`vmc_cli.method.pipeline.MotionPipeline`
and the input checks in :mod:`vmc_cli.checks`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from vmc_cli.checks import check_counts, check_options, check_outputs, check_strength, or_default
from vmc_cli.method.generate_config import GenerateConfig
from vmc_cli.io.clips import clip_sha256, pick_frames, read_clip
from vmc_cli.errors import VmcError
from vmc_cli.store.manifests import TuneJob, tune_manifest
from vmc_cli.io.pictures import write_outputs
from vmc_cli.method.pipeline import MotionPipeline
from vmc_cli.progress import Reporter
from vmc_cli.store.profiles import CLIP, INVERSION, WEIGHTS, ProfileStore, now, slug, validate_name
from vmc_cli.method.prompts import appearance_invariant
from vmc_cli.jobs.runtime import Runtime, default_backend, load_profile, recordable_model_path
from vmc_cli.method.tuning import BACKEND_TUNABLE, TuneConfig, resolve_config, tune


def tune_clip(clip: str | Path, prompt: str, *, store: ProfileStore, runtime: Runtime,
              backend_name: str | None = None, name: str | None = None, frames: int | None = None,
              stride: int = 1, start: int | str | None = 0, config: TuneConfig | None = None,
              options: dict | None = None, keep_prompt: bool = False, force: bool = False, crop: str = "center",
              fps: float | None = None, resume: bool = False, checkpoint_every: int = 50,
              width: int | None = None, height: int | None = None) -> dict:
    """Learn the motion of ``clip`` and store it as a profile. Returns the summary.

    ``config`` gives every tuning setting; else ``options`` gives some (None: not given)
    and the backend's tuning defaults, then the paper's, fill in the rest."""
    prompt = prompt.strip()
    if not prompt:
        raise VmcError("--prompt is empty", "describe the clip's subject and motion, e.g. 'a cat is roaring'")
    check_options(checkpoint_every=checkpoint_every, fps=fps, width=width, height=height, frames=frames,
                  stride=stride, seed=(options or {}).get("seed") if config is None else config.seed)
    if config is None:
        resolve_config({}, **(options or {}))  # a bad --steps, --lr, --loss... fails here, before any work
    tuning_prompt = prompt if keep_prompt else appearance_invariant(prompt)
    name = validate_name(slug(tuning_prompt) if name is None else name)  # --name '' is refused, not replaced
    if store.exists(name) and not force:
        raise VmcError(f"profile {name!r} already exists", "pass --name NEW, or --force to replace it")
    from vmc_cli.store.checkpoints import staging_root
    from vmc_cli.models.plugins import get_backend

    if resume and not (staging_root(store.home) / name).is_dir():
        raise VmcError(f"--resume: there is no unfinished tune of {name!r} to continue",
                       "run the same command without --resume")
    # The clip and every option are checked before the name is locked (a refused input leaves
    # nothing in the store, not even a lock file) and before any model loads.
    clip = Path(clip)
    backend_name = backend_name or default_backend()
    backend = get_backend(backend_name)
    given = sorted(k for k in BACKEND_TUNABLE if (options or {}).get(k) is not None)
    config = config or resolve_config(backend.tune_defaults, **(options or {}))
    runtime.configure(backend)  # sizes from the model's configurations
    backend.check_target(config.target)
    if width is not None or height is not None:
        backend.set_keyframe_size(width, height)
    source = read_clip(clip, size=(backend.width, backend.height), crop=crop)
    picked = pick_frames(source, or_default(frames, backend.num_frames), stride, start, fps)
    if not 1 <= config.stride < len(picked.indexes):
        raise VmcError(f"--residual-stride must be between 1 and {len(picked.indexes) - 1} for "
                       f"{len(picked.indexes)} frames", "e.g. --residual-stride 1 (the paper's), or take more --frames")
    job = TuneJob(clip, prompt, tuning_prompt, name, backend, backend_name, source, picked, config, given, stride,
                   start, crop, fps, keep_prompt, force, resume, checkpoint_every)
    # The name is ours from here to the saved profile: a second tune of the same name stops
    # at once instead of racing this one (and losing minutes of work at the end).
    with store.lock(name):
        return _tune_locked(job, store, runtime)


def _tune_locked(job: TuneJob, store: ProfileStore, runtime: Runtime) -> dict:
    from vmc_cli.store.checkpoints import Checkpointer

    backend, name, config = job.backend, job.name, job.config
    runtime.load(backend, ("keyframes",))
    x = backend.frames_to_model(job.source.frames[job.picked.indexes])
    text = backend.encode_prompts([job.tuning_prompt])
    backend.release_text_encoder()
    sha = clip_sha256(job.clip, job.source)
    fingerprint = {"clip_sha256": sha, "frame_indexes": job.picked.indexes, "crop": job.crop,
                   "tuning_prompt": job.tuning_prompt, "backend": job.backend_name, "models": backend.model_info(),
                   **config.to_dict()}
    checkpoint = Checkpointer(store.home, name, fingerprint, job.checkpoint_every)
    if checkpoint.exists() and not job.resume:
        described = checkpoint.describe()
        runtime.progress.log(f"an unfinished tune of {name!r} ({described}) is replaced by this one"
                             + ("" if described.startswith("damaged") else "; --resume would have continued it"))
    started = time.time()
    try:
        result = tune(backend, x, text, config, runtime.progress, checkpoint=checkpoint, resume=job.resume)
    except KeyboardInterrupt:
        if checkpoint.exists():
            runtime.progress.log(f"interrupted; the tuning state of {name!r} at {checkpoint.describe()} is kept: "
                                 "run the same command with --resume to continue")
        raise
    seconds = time.time() - started
    manifest = tune_manifest(job, recordable_model_path(runtime.model_path), result, sha, seconds,
                             runtime.recorded_options(backend))
    folder = store.create(name, manifest, {WEIGHTS: result["weights"], CLIP: {"clip": x.detach().cpu().float()}},
                          overwrite=job.force)
    checkpoint.remove()  # finished: the staging data goes
    return {"profile": name, "path": str(folder), "backend": job.backend_name, "prompt": job.prompt,
            "tuning_prompt": job.tuning_prompt, "frames": job.picked.indexes, "steps": config.steps,
            "parameters": result["parameters"], "loss": manifest["loss"], "seconds": round(seconds, 3),
            "resumed_at_step": result["resumed_at"]}


def noise_shape(backend) -> tuple[int, ...]:
    """The key-frames' shape in model space, (1, C, F, h, w), as the backend maps a clip of its size."""
    import numpy as np

    blank = np.zeros((backend.num_frames, backend.height, backend.width, 3), np.uint8)
    return tuple(backend.frames_to_model(blank).shape)


def inversion_settings(backend, steps: int, strength: float, motion_scale: float = 1.0) -> dict:
    """Everything that decides an inversion's result (compared before a saved one is reused),
    the motion scale of the weights it is made with included."""
    check_strength(strength)
    return MotionPipeline(backend).inversion_settings(steps, strength, motion_scale)


def invert(backend, name: str, manifest: dict, store: ProfileStore, steps: int, progress: Reporter,
           strength: float = 1.0, settings: dict | None = None, cache_only: bool = False):
    """DDIM-invert the profile's clip with its tuned model and save it into the profile
    (``cache_only``: when saving fails, say so and go on)."""
    import torch

    settings = settings or inversion_settings(backend, steps, strength)
    progress.log(f"DDIM inversion ({settings['mode']} schedule): {steps} steps, strength {strength}, up to "
                 f"t={settings['final_timestep']}; the noise keeps {100 * settings['signal']:.2f}% of the clip's signal")
    clip = store.load(name, CLIP, manifest)["clip"]
    started = time.time()
    x_t = MotionPipeline(backend, progress).invert(clip, steps, strength)
    info = {**settings, "created": now(), "seconds": round(time.time() - started, 3)}
    try:
        store.add_file(name, INVERSION, {"noise": x_t.detach().cpu().float()}, "inversion", info)
    except VmcError as exc:
        if not cache_only:
            raise
        # generate keeps the inversion as a cache: a store that cannot take it now (another
        # process writing this profile, a full disk) must not cost the user the video.
        progress.log(f"the inversion was not saved into the profile ({exc.message}); it is used for this run only")
    return x_t.to(torch.float32), info


def invert_profile(name: str, *, store: ProfileStore, runtime: Runtime, steps: int | None = None,
                   backend_name: str | None = None, strength: float | None = None,
                   motion_scale: float | None = None) -> dict:
    check_counts(steps=steps)  # (vmc invert's --steps are generate's --invert-steps)
    config = GenerateConfig(invert_steps=steps, strength=strength, motion_scale=motion_scale, init="inverted")
    if not has_clip(store.manifest(name)):
        raise no_clip_error(name, store.manifest(name), "invert")
    backend, manifest = load_profile(name, store=store, runtime=runtime, backend_name=backend_name,
                                     stages=("keyframes",), motion_scale=motion_scale)
    config = config.resolve(backend, "inverted")
    _, info = invert(backend, name, manifest, store, config.invert_steps, runtime.progress, config.strength,
                     inversion_settings(backend, config.invert_steps, config.strength, config.motion_scale))
    return {"profile": name, "path": str(store.path(name) / INVERSION), **info}


def _inverted_start(backend, name: str, manifest: dict, store: ProfileStore, progress: Reporter, sync,
                    config: GenerateConfig):
    """The profile's inversion (the saved one when its settings match, else made and saved) and
    the sampler's timestep to start from. With ``sync`` only the main process inverts."""
    if sync is not None and not sync.is_main:
        sync.wait()
        manifest = store.manifest(name)  # with the main process's inversion
    saved = {"motion_scale": 1.0, **manifest.get("inversion", {})}  # made before the dial: at 1
    wanted = inversion_settings(backend, config.invert_steps, config.strength, config.inversion_scale)
    if INVERSION in manifest.get("files", {}) and all(saved.get(k) == v for k, v in wanted.items()):
        x_t = store.load(name, INVERSION, manifest)["noise"]
    else:
        x_t, _ = invert(backend, name, manifest, store, config.invert_steps, progress, config.strength, wanted,
                        cache_only=True)
    start = MotionPipeline(backend).start_timestep(config.steps, config.strength, wanted["signal"])
    if sync is not None and sync.is_main:
        sync.wait()
    return x_t, start


def has_clip(manifest: dict) -> bool:
    """Whether a profile keeps its source clip (a tuned one does; one made by ``vmc import`` not)."""
    return CLIP in manifest.get("files", {})


def no_clip_error(name: str, manifest: dict, what: str) -> VmcError:
    made = manifest.get("source", {}).get("path", "a LoRA file")
    return VmcError(f"profile {name!r} has no source clip to {what} (it was imported from {made})",
                    "generate from fresh noise: --init noise (the default for such a profile)")


def resolve_init(init: str | None, name: str, manifest: dict, progress: Reporter, side_by_side) -> str:
    """``--init``: as given, else ``inverted`` for a profile with a source clip and ``noise``
    (said on stderr) for one without; inversion or a side-by-side asked of a clipless one: one line."""
    if has_clip(manifest):
        return init or "inverted"
    if init == "inverted":
        raise no_clip_error(name, manifest, "invert")
    if side_by_side:
        raise no_clip_error(name, manifest, "show beside the output (--side-by-side)")
    if init is None:
        progress.log(f"profile {name!r} has no source clip (made by vmc import): generating from fresh noise "
                     "(--init noise)")
    return "noise"


def generate(name: str, prompts: list[str], outputs: list[Path], *, store: ProfileStore, runtime: Runtime,
             config: GenerateConfig | None = None, backend_name: str | None = None, fmt: str | None = None,
             keyframe_outputs: list[Path] | None = None, side_by_side_outputs: list[Path] | None = None,
             sync=None) -> list[dict]:
    """Sample new key-frames with each prompt from the profile's inverted noise, run the cascade, write videos
    (and, with ``keyframe_outputs``, the key-frames of the same run). ``config``: the generation
    settings (:class:`vmc_cli.method.generate_config.GenerateConfig`, checked when made; None: defaults).

    ``sync``: one process of several (``accelerate launch``), with ``is_main`` and ``wait()``
    (a barrier, reached exactly once): the main process inverts and saves the clip first,
    the others wait for it and read the saved inversion."""
    import torch

    config = config or GenerateConfig()
    wanted_stages = config.stage_names()
    check_outputs(outputs, fmt, keyframe_outputs, side_by_side_outputs)
    init = resolve_init(config.init, name, store.manifest(name), runtime.progress, side_by_side_outputs)
    config = replace(config, init=init)
    # base first: the model holds the base weights while it inverts, the profile's come after
    backend, manifest = load_profile(name, store=store, runtime=runtime, backend_name=backend_name,
                                     stages=wanted_stages, motion_scale=config.inversion_scale)
    config = config.resolve(backend, init)
    negative = config.negative_prompt
    # Every prompt is encoded once, then the text encoder can go (a batch must not reload it).
    backend.encode_prompts(list(dict.fromkeys([*prompts, negative, ""])))
    backend.release_text_encoder()
    start = None
    if init == "inverted":
        x_t, start = _inverted_start(backend, name, manifest, store, runtime.progress, sync, config)
        if config.base_first:
            MotionPipeline(backend).apply_profile(store.load(name, WEIGHTS, manifest), config.motion_scale)
    else:
        if sync is not None:
            sync.wait()
        shape = store.load(name, CLIP, manifest)["clip"].shape if has_clip(manifest) else noise_shape(backend)
    source_key = None
    if side_by_side_outputs:  # the frames the profile was tuned on, as the model saw them
        source_key = backend.model_to_frames(store.load(name, CLIP, manifest)["clip"].to(backend.device, backend.dtype))
    pipeline = MotionPipeline(backend, runtime.progress)
    seed, steps, guidance = config.seed, config.steps, config.guidance
    results = []
    for i, (prompt, out) in enumerate(zip(prompts, outputs)):
        if init == "noise":
            x_t = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
        started = time.time()
        keyframes = pipeline.keyframes(x_t, prompt, steps=steps, guidance=guidance, negative_prompt=negative,
                                       start_timestep=start, label=f"key-frames {i + 1}/{len(prompts)}")
        key = backend.model_to_frames(keyframes)
        frames = pipeline.cascade(keyframes, prompt, stages=wanted_stages, negative_prompt=negative, seed=seed)
        written = write_outputs(key, frames, source_key, out, fmt, config.fps or backend.fps,
                                 keyframe_outputs[i] if keyframe_outputs else None,
                                 side_by_side_outputs[i] if side_by_side_outputs else None)
        results.append({"prompt": prompt, **written, "frames": int(frames.shape[0]), "width": int(frames.shape[2]),
                        "height": int(frames.shape[1]), **config.record(), "seconds": round(time.time() - started, 3)})
    return results
