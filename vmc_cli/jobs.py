"""The user-level jobs behind the commands: tune a clip into a profile, invert it,
generate from it. Commands only parse options and print; these do the work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .backend import DTYPES, check_device
from .clips import clip_sha256, pick_frames, read_clip
from .errors import VmcError
from .progress import SILENT, Reporter
from .profiles import CLIP, INVERSION, SCHEMA, WEIGHTS, ProfileStore, check_backend, now, slug, validate_name
from .prompts import appearance_invariant
from .sampling import matching_timestep
from .tuning import BACKEND_TUNABLE, TuneConfig, apply_weights, blend_weights, loss_summary, resolve_config, tune
from .video import check_output, write_video


def default_backend() -> str:
    """``$VMC_BACKEND``, else Show-1 (the model the method was built on)."""
    import os

    return os.environ.get("VMC_BACKEND") or "show1"


def check_dtype(dtype: str | None) -> str | None:
    if dtype is not None and dtype not in DTYPES:
        raise VmcError(f"unknown --dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
    return dtype


def check_counts(**options: int | None) -> None:
    """Step counts given on the command line must be >= 1 (checked before any loading)."""
    for option, value in options.items():
        if value is not None and value < 1:
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} must be at least 1, got {value}",
                           f"give a whole number of 1 or more, e.g. {name} 50, or leave it out for the default")


#: the highest frame rate taken (higher ones only make a resampled clip or a video enormous)
MAX_FPS = 1000.0
#: the largest key-frame side taken by --width / --height
MAX_SIDE = 4096
#: seeds are recorded in TOML and JSON, whose integers are 64-bit
MAX_SEED = 2**63 - 1


def check_finite(**options: float | None) -> None:
    """Floating-point options must be numbers: nan and inf pass the command line's parser."""
    for option, value in options.items():
        if value is not None and not math.isfinite(value):
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} must be a finite number, got {value}",
                           f"give a number such as {name} 1.5, or leave it out for the default")


def check_fps(fps: float | None) -> None:
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise VmcError(f"--fps must be a number of frames per second above 0 and at most {MAX_FPS:g}, got {fps}",
                       "e.g. --fps 8, or leave it out to keep the clip's (or the backend's) own rate")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise VmcError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed}", "e.g. --seed 0")


def check_size(**sides: int | None) -> None:
    """--width / --height: None is the model's own; anything given must be a usable size."""
    for option, value in sides.items():
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise VmcError(f"--{option} must be a number of pixels from 1 to {MAX_SIDE}, got {value}",
                           f"e.g. --{option} 256 (latent backends: a multiple of 64), or leave it out for the model's")


def check_strength(strength: float | None) -> None:
    """None (not given: the backend's default) passes; anything else must be in (0, 1]."""
    if strength is not None and not 0 < strength <= 1:
        raise VmcError(f"--strength must be in (0, 1], got {strength}",
                       "1 runs the whole inversion (the method); lower values keep more of the clip")


def or_default(value, default):
    return default if value is None else value


def resolve_device(device: str = "auto") -> str:
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VmcError(f"--device {device} asked for, but CUDA is not available here", "use --device cpu")
    return device


@dataclass
class Runtime:
    """Where and how models run, shared by every job."""

    device: str = "auto"
    dtype: str | None = None
    model_path: str | None = None
    progress: Reporter = SILENT
    adapter: str | None = None  # --adapter: backends whose load() takes one (animatediff)

    def __post_init__(self):
        check_device(self.device)
        check_dtype(self.dtype)

    def backend(self, name: str, stages: tuple[str, ...]):
        from .plugins import get_backend

        return self.load(get_backend(name), stages)

    def backend_options(self, backend, method) -> dict:
        """The backend-specific options (``--adapter``) that ``method`` takes; one given to a
        backend that has no use for it is an error."""
        import inspect

        if self.adapter is None:
            return {}
        if "adapter" not in inspect.signature(method).parameters:
            raise VmcError(f"backend {backend.name!r} takes no --adapter", "drop --adapter (it is for animatediff)")
        return {"adapter": self.adapter}

    def configure(self, backend) -> None:
        backend.configure(model_path=self.model_path, progress=self.progress,
                          **self.backend_options(backend, backend.configure))

    def load(self, backend, stages: tuple[str, ...], check=None):
        import inspect

        extra = self.backend_options(backend, backend.load)
        if check is not None and "check" in inspect.signature(backend.load).parameters:
            extra["check"] = check  # older plugins without it are checked after loading instead
        backend.load(device=resolve_device(self.device), dtype=self.dtype, model_path=self.model_path,
                     stages=stages, progress=self.progress, **extra)
        return backend


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
    from .checkpoints import staging_root
    from .plugins import get_backend

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
    if width is not None or height is not None:
        backend.set_keyframe_size(width, height)
    source = read_clip(clip, size=(backend.width, backend.height), crop=crop)
    picked = pick_frames(source, or_default(frames, backend.num_frames), stride, start, fps)
    if not 1 <= config.stride < len(picked.indexes):
        raise VmcError(f"--residual-stride must be between 1 and {len(picked.indexes) - 1} for "
                       f"{len(picked.indexes)} frames", "e.g. --residual-stride 1 (the paper's), or take more --frames")
    # The name is ours from here to the saved profile: a second tune of the same name stops
    # at once instead of racing this one (and losing minutes of work at the end).
    with store.lock(name):
        return _tune_locked(clip, prompt, tuning_prompt, name, store=store, runtime=runtime, backend=backend,
                            backend_name=backend_name, source=source, picked=picked, stride=stride, start=start,
                            config=config, given=given, keep_prompt=keep_prompt, force=force,
                            crop=crop, fps=fps, resume=resume, checkpoint_every=checkpoint_every)


def _tune_locked(clip, prompt, tuning_prompt, name, *, store, runtime, backend, backend_name, source, picked,
                 stride, start, config, given, keep_prompt, force, crop, fps, resume, checkpoint_every) -> dict:
    from .checkpoints import Checkpointer

    idx = picked.indexes
    video = source.frames
    runtime.load(backend, ("keyframes",))
    x = backend.frames_to_model(video[idx])
    text = backend.encode_prompts([tuning_prompt])
    backend.release_text_encoder()
    sha = clip_sha256(clip, source)
    fingerprint = {"clip_sha256": sha, "frame_indexes": idx, "crop": crop, "tuning_prompt": tuning_prompt,
                   "backend": backend_name, "models": backend.model_info(), **config.to_dict()}
    checkpoint = Checkpointer(store.home, name, fingerprint, checkpoint_every)
    if checkpoint.exists() and not resume:
        described = checkpoint.describe()
        runtime.progress.log(f"an unfinished tune of {name!r} ({described}) is replaced by this one"
                             + ("" if described.startswith("damaged") else "; --resume would have continued it"))
    started = time.time()
    try:
        result = tune(backend, x, text, config, runtime.progress, checkpoint=checkpoint, resume=resume)
    except KeyboardInterrupt:
        if checkpoint.exists():
            runtime.progress.log(f"interrupted; the tuning state of {name!r} at {checkpoint.describe()} is kept: "
                                 "run the same command with --resume to continue")
        raise
    seconds = time.time() - started
    summary = loss_summary(result["losses"])
    manifest = {
        "schema": SCHEMA,
        "vmc_version": __version__,
        "name": name,
        "created": now(),
        "backend": {"name": backend_name, "models": backend.model_info(),
                    "model_path": recordable_model_path(runtime.model_path)},
        "source": {
            "path": str(clip.resolve()),
            "kind": source.kind,
            "sha256": sha,
            "frames_in_clip": len(video),
            "frame_indexes": idx,
            "frame_times": picked.times,
            "frame_files": [source.files[i].name for i in idx] if source.files else None,
            "stride": stride,
            "start": str(start if start is not None else 0),
            "fps": fps,
            "crop": crop,
            "native_size": list(source.native_size) if source.native_size else None,
            "size": [backend.width, backend.height],
        },
        "prompt": {"original": prompt, "tuning": tuning_prompt, "appearance_invariant": not keep_prompt},
        "tuning": {**config.to_dict(), "optimizer": "AdamW", "parameters": result["parameters"],
                   "defaults": f"backend {backend_name}" if backend.tune_defaults else "paper",
                   "given": given,
                   "tensors": len(result["weights"]), "device": str(backend.device),
                   "dtype": str(backend.dtype).replace("torch.", ""), "seconds": round(seconds, 3),
                   "resumed_at_step": result["resumed_at"] or None},
        "loss": summary,
    }
    folder = store.create(name, manifest, {WEIGHTS: result["weights"], CLIP: {"clip": x.detach().cpu().float()}},
                          overwrite=force)
    checkpoint.remove()  # finished: the staging data goes
    return {
        "profile": name,
        "path": str(folder),
        "backend": backend_name,
        "prompt": prompt,
        "tuning_prompt": tuning_prompt,
        "frames": idx,
        "steps": config.steps,
        "parameters": result["parameters"],
        "loss": summary,
        "seconds": round(seconds, 3),
        "resumed_at_step": result["resumed_at"],
    }


def check_options(*, checkpoint_every: int = 0, fps: float | None = None, width: int | None = None,
                  height: int | None = None, frames: int | None = None, stride: int = 1,
                  seed: int | None = None) -> None:
    """The tune options that need no clip and no model, checked before anything is read."""
    if checkpoint_every < 0:
        raise VmcError(f"--checkpoint-every must be 0 (never) or more, got {checkpoint_every}",
                       "e.g. --checkpoint-every 50, or 0 for no checkpoints")
    check_fps(fps)
    check_size(width=width, height=height)
    if frames is not None and frames < 2:
        raise VmcError(f"--frames must be at least 2, got {frames}", "e.g. --frames 8, or leave it out for the backend's")
    if stride < 1:
        raise VmcError(f"--stride must be at least 1, got {stride}", "e.g. --stride 2 to take every other frame")
    if seed is not None:
        check_seed(seed)


def check_steps_fit(backend, **steps: int) -> None:
    """Sampling and inversion steps cannot outnumber the schedule's timesteps (diffusers says so
    with a ValueError, after the model has loaded; here as one line with what to type)."""
    limit = int(backend.sampling_scheduler().config.num_train_timesteps)
    for option, value in steps.items():
        if value > limit:
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} {value} is more than the {limit} timesteps of {backend.name}'s schedule",
                           f"give {name} {limit} or fewer (50 to 100 is usual)")


def same_file_twice(options: list[tuple[str, list[Path] | None]]) -> None:
    """Refuse two outputs of one run that are the same file (the second would overwrite the first)."""
    import os

    from .video import stream_of

    seen: dict[str, str] = {}
    for option, paths in options:
        for path in paths or []:
            if stream_of(path) is not None:
                continue  # /dev/null twice is fine
            key = os.path.realpath(path)
            if key in seen:
                raise VmcError(f"{option} {path} is the same file as {seen[key]}", "give each output its own path")
            seen[key] = f"{option} {path}"


def check_motion_scale(scale: float | None) -> None:
    if scale is not None and not (math.isfinite(scale) and scale >= 0):
        raise VmcError(f"--motion-scale must be a number >= 0, got {scale}",
                       "1 is the profile as tuned, 0 the base model, 0.6-0.8 softens it, above 1 exaggerates it")


def motion_scale_for(backend, scale: float | None) -> float:
    """``--motion-scale`` as given, else the backend's default (1: the profile as tuned)."""
    return or_default(scale, backend.defaults.get("motion_scale", 1.0))


def recordable_model_path(model_path: str | None) -> str | None:
    """``--model-path`` as the manifest keeps it: a folder as its absolute path (so a later
    command from another folder finds it), anything else (a hub id) as given."""
    if model_path is None:
        return None
    folder = Path(model_path).expanduser()
    return str(folder.resolve()) if folder.is_dir() else str(model_path)


def recorded_model_path(manifest: dict) -> str | None:
    """The ``--model-path`` a profile was tuned with: recorded as such, or (profiles made before
    it was) the local folder its model was loaded from."""
    backend = manifest.get("backend", {})
    if backend.get("model_path"):
        return str(backend["model_path"])
    models = backend.get("models", {})
    info = models.get("base") if "base" in models else models.get("keyframes")  # base: --adapter is not it
    if isinstance(info, dict) and info.get("source") == "local" and Path(str(info.get("id", ""))).is_absolute():
        return str(info["id"]).split("#")[0]
    return None


def with_recorded_model(runtime: Runtime, manifest: dict, name: str) -> tuple[Runtime, str | None]:
    """``runtime`` with the model a profile was tuned with when no ``--model-path`` is given
    (it overrides); the folder's files are then checked against the recorded hashes like any
    model's. Returns (runtime, the recorded path used or None)."""
    import dataclasses

    recorded = recorded_model_path(manifest)
    if runtime.model_path is not None or recorded is None:
        return runtime, None
    if Path(recorded).is_absolute() and not Path(recorded).is_dir():
        raise VmcError(f"profile {name!r} was tuned with the model in {recorded}, which is not there any more",
                       "pass --model-path with a folder holding the same model files, or tune again")
    runtime.progress.log(f"model: {recorded} (the one profile {name!r} was tuned with)")
    return dataclasses.replace(runtime, model_path=recorded), recorded


def load_profile(name: str, *, store: ProfileStore, runtime: Runtime, backend_name: str | None,
                 stages: tuple[str, ...], motion_scale: float | None = 1.0):
    """Backend with the profile's tuned weights applied (at ``motion_scale``: W0 + S (W - W0);
    None: the backend's default), plus the manifest."""
    from .plugins import get_backend

    manifest = store.manifest(name)
    made_by = manifest.get("backend", {}).get("name")
    if backend_name:
        get_backend(backend_name)  # an unknown backend is reported as such
    check_backend(manifest, name, backend_name or made_by)
    runtime, recorded = with_recorded_model(runtime, manifest, name)

    def same_models(info: dict) -> None:
        try:
            check_backend(manifest, name, made_by, info)
        except VmcError as exc:
            if recorded is None:
                raise
            raise VmcError(f"the model files in {recorded} have changed since profile {name!r} was tuned with them "
                           f"({exc.message})",
                           "pass --model-path with a folder holding the files it was tuned with, or tune again") from None

    backend = get_backend(made_by)
    runtime.backend_options(backend, backend.load)  # an option the backend has no use for, before loading
    backend = runtime.load(backend, stages, check=same_models)  # refused before weights load
    same_models(backend.model_info())
    recorded = manifest.get("backend", {}).get("models", {})
    for role, now_info in backend.model_info().items():  # e.g. another SD1.5 base under the same adapter
        then = recorded.get(role, {})
        if role != "keyframes" and then.get("id") and (then.get("id"), then.get("revision")) != (
                now_info.get("id"), now_info.get("revision")):
            runtime.progress.log(f"note: profile {name!r} was tuned with {role} {then.get('id')}@"
                                 f"{str(then.get('revision'))[:12]}; this run uses {now_info.get('id')}@"
                                 f"{str(now_info.get('revision'))[:12]}")
    apply_weights(backend.unet, blend_weights(backend.unet, store.load(name, WEIGHTS, manifest),
                                              motion_scale_for(backend, motion_scale)))
    return backend, manifest


def inversion_settings(backend, steps: int, strength: float, motion_scale: float = 1.0) -> dict:
    """Everything that decides an inversion's result (compared before a saved one is reused),
    the motion scale of the weights it is made with included."""
    from .inversion import kept_signal

    check_strength(strength)
    return {**backend.inversion_info(steps), "steps": steps, "strength": strength, "motion_scale": motion_scale,
            **kept_signal(backend.inversion_scheduler(), steps, strength), "prompt": "", "guidance": 1.0}


def invert(backend, name: str, manifest: dict, store: ProfileStore, steps: int, progress: Reporter,
           strength: float = 1.0, settings: dict | None = None, cache_only: bool = False):
    """DDIM-invert the profile's clip with its tuned model and save it into the profile
    (``cache_only``: when saving fails, say so and go on)."""
    import torch

    from .inversion import ddim_invert

    settings = settings or inversion_settings(backend, steps, strength)
    progress.log(f"DDIM inversion ({settings['mode']} schedule): {steps} steps, strength {strength}, up to "
                 f"t={settings['final_timestep']}; the noise keeps {100 * settings['signal']:.2f}% of the clip's signal")
    clip = store.load(name, CLIP, manifest)["clip"].to(backend.device, backend.dtype)
    empty = backend.encode_prompts([""])
    started = time.time()
    x_t = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                      backend.inversion_scheduler(), clip, steps, progress, strength=strength)
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
    check_strength(strength)
    check_counts(steps=steps)
    check_motion_scale(motion_scale)
    backend, manifest = load_profile(name, store=store, runtime=runtime, backend_name=backend_name,
                                     stages=("keyframes",), motion_scale=motion_scale)
    motion_scale = motion_scale_for(backend, motion_scale)
    steps = or_default(steps, backend.defaults["invert_steps"])
    check_steps_fit(backend, steps=steps)
    strength = or_default(strength, backend.defaults.get("strength", 1.0))
    _, info = invert(backend, name, manifest, store, steps, runtime.progress, strength,
                     inversion_settings(backend, steps, strength, motion_scale))
    return {"profile": name, "path": str(store.path(name) / INVERSION), **info}


def generate(name: str, prompts: list[str], outputs: list[Path], *, store: ProfileStore, runtime: Runtime,
             backend_name: str | None = None, steps: int | None = None, guidance: float | None = None,
             invert_steps: int | None = None, seed: int = 0, negative_prompt: str | None = None,
             stages: str = "all", fmt: str | None = None, init: str = "inverted", fps: float | None = None,
             strength: float | None = None, keyframe_outputs: list[Path] | None = None,
             motion_scale: float | None = None, sync=None,
             side_by_side_outputs: list[Path] | None = None) -> list[dict]:
    """Sample new key-frames with each prompt from the profile's inverted noise, run the cascade, write videos
    (and, with ``keyframe_outputs``, the key-frames of the same run).

    ``sync``: one process of several (``accelerate launch``), with ``is_main`` and ``wait()``
    (a barrier, reached exactly once): the main process inverts and saves the clip first,
    the others wait for it and read the saved inversion."""
    import torch

    from .sampling import ddim_sample, guided

    wanted_stages = tuple(part.strip() for part in str(stages).split(",") if part.strip())
    if not wanted_stages or "keyframes" not in wanted_stages and "all" not in wanted_stages:
        raise VmcError(f"unknown --stages {stages!r}",
                       "use 'all', 'keyframes', or a list with extra stages of the backend, e.g. 'all,xl'")
    if init not in ("inverted", "noise"):
        raise VmcError(f"unknown --init {init!r}", "use 'inverted' or 'noise'")
    check_counts(steps=steps, invert_steps=invert_steps)
    check_strength(strength)
    check_motion_scale(motion_scale)
    check_finite(guidance=guidance)
    check_fps(fps)
    check_seed(seed)
    # a bad --format or suffix, a folder that cannot be written... fails before any work
    for out in outputs:
        check_output(Path(out), fmt, "-o")
    for option, paths in (("--keyframes-out", keyframe_outputs), ("--side-by-side", side_by_side_outputs)):
        for out in paths or []:
            check_output(Path(out), None, option)
    same_file_twice([("-o", outputs), ("--keyframes-out", keyframe_outputs), ("--side-by-side", side_by_side_outputs)])
    backend, manifest = load_profile(name, store=store, runtime=runtime, backend_name=backend_name,
                                     stages=wanted_stages,
                                     motion_scale=motion_scale)
    motion_scale = motion_scale_for(backend, motion_scale)
    steps = or_default(steps, backend.defaults["sample_steps"])
    guidance = or_default(guidance, backend.defaults["guidance"])
    invert_steps = or_default(invert_steps, backend.defaults["invert_steps"])
    check_steps_fit(backend, steps=steps, **({"invert_steps": invert_steps} if init == "inverted" else {}))
    strength = or_default(strength, backend.defaults.get("strength", 1.0))
    negative = or_default(negative_prompt, backend.defaults.get("negative_prompt", ""))
    # Every prompt is encoded once, then the text encoder can go (a batch must not reload it).
    backend.encode_prompts(list(dict.fromkeys([*prompts, negative, ""])))
    backend.release_text_encoder()
    start = None
    if init == "inverted":
        if sync is not None and not sync.is_main:
            sync.wait()
            manifest = store.manifest(name)  # with the main process's inversion
        saved = {"motion_scale": 1.0, **manifest.get("inversion", {})}  # made before the dial: at 1
        wanted = inversion_settings(backend, invert_steps, strength, motion_scale)
        if INVERSION in manifest.get("files", {}) and all(saved.get(k) == v for k, v in wanted.items()):
            x_t = store.load(name, INVERSION, manifest)["noise"]
        else:
            x_t, _ = invert(backend, name, manifest, store, invert_steps, runtime.progress, strength, wanted,
                            cache_only=True)
        # A full inversion is sampled from the top of the schedule (as the authors did, whatever
        # signal the inversion schedule left); a partial one from the sampler's timestep whose
        # noise level matches what the inversion reached (the two schedules may differ).
        if strength < 1:
            start = matching_timestep(backend.sampling_scheduler(), steps, wanted["signal"])
        if sync is not None and sync.is_main:
            sync.wait()
    else:
        if sync is not None:
            sync.wait()
        shape = store.load(name, CLIP, manifest)["clip"].shape
    source_key = None
    if side_by_side_outputs:  # the frames the profile was tuned on, as the model saw them
        source_key = backend.model_to_frames(store.load(name, CLIP, manifest)["clip"].to(backend.device, backend.dtype))
    results = []
    for i, (prompt, out) in enumerate(zip(prompts, outputs)):
        if init == "noise":
            x_t = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
        text, uncond = backend.encode_prompts([prompt, negative]).chunk(2)
        predict = guided(backend.predict_noise, text, uncond, guidance)
        started = time.time()
        keyframes = ddim_sample(predict, backend.sampling_scheduler(), x_t.to(backend.device, backend.dtype), steps,
                                runtime.progress, label=f"key-frames {i + 1}/{len(prompts)}", start_timestep=start)
        key = backend.model_to_frames(keyframes)
        later = tuple(st for st in backend.expand_stages(wanted_stages) if st != "keyframes")
        if not later:
            frames = key
        else:
            frames = backend.run_cascade(keyframes, prompt, negative_prompt=negative, seed=seed, stages=later,
                                         progress=runtime.progress)
        path = write_video(frames, out, fmt, fps or backend.fps)
        keyframe_path = None
        if keyframe_outputs:  # about the video's duration, at a whole frame rate (GIF delays are coarse)
            keyframe_path = str(write_video(key, keyframe_outputs[i], None,
                                            max(1, round((fps or backend.fps) * len(key) / len(frames)))))
        pair_path = None
        if side_by_side_outputs:
            from .pictures import side_by_side

            pair_path = str(write_video(side_by_side(source_key, key), side_by_side_outputs[i], None,
                                        max(1, round((fps or backend.fps) * len(key) / len(frames)))))
        results.append({
            "prompt": prompt,
            "path": str(path),
            "keyframes": keyframe_path,
            "side_by_side": pair_path,
            "frames": int(frames.shape[0]),
            "width": int(frames.shape[2]),
            "height": int(frames.shape[1]),
            "seed": seed,
            "motion_scale": motion_scale,
            "steps": steps,
            "guidance": guidance,
            "init": init,
            "strength": strength if init == "inverted" else None,
            "stages": stages,
            "seconds": round(time.time() - started, 3),
        })
    return results
