"""What a ``vmc tune`` records: the checked inputs of one tune (:class:`TuneJob`) and the
profile's manifest made from them (:func:`tune_manifest`, the store's TOML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmc_cli import __version__
from vmc_cli.store.profiles import SCHEMA, now
from vmc_cli.method.tuning import TuneConfig, loss_summary


@dataclass
class TuneJob:
    """One ``vmc tune`` whose inputs are checked: everything the locked part needs."""

    clip: Path
    prompt: str
    tuning_prompt: str
    name: str
    backend: Any
    backend_name: str
    source: Any  # vmc_cli.io.clips.Clip
    picked: Any  # vmc_cli.io.clips.Picked
    config: TuneConfig
    given: list[str]
    stride: int
    start: int | str | None
    crop: str
    fps: float | None
    keep_prompt: bool
    force: bool
    resume: bool
    checkpoint_every: int


def tune_manifest(job: TuneJob, model_path: str | None, result: dict, sha: str, seconds: float,
                  options: dict | None = None) -> dict:
    """The profile's manifest: the model and the backend's options, the source clip and frames, the
    prompts, the tuning."""
    backend, source, idx = job.backend, job.source, job.picked.indexes
    adapter = backend.adapter_layout()
    return {
        "schema": SCHEMA,
        "vmc_version": __version__,
        "name": job.name,
        "created": now(),
        "backend": {"name": job.backend_name, "models": backend.model_info(),
                    "model_path": model_path, **({"options": dict(options)} if options else {})},
        "source": {
            "path": str(job.clip.resolve()),
            "kind": source.kind,
            "sha256": sha,
            "frames_in_clip": len(source.frames),
            "frame_indexes": idx,
            "frame_times": job.picked.times,
            "frame_files": [source.files[i].name for i in idx] if source.files else None,
            "stride": job.stride,
            "start": str(job.start if job.start is not None else 0),
            "fps": job.fps,
            "crop": job.crop,
            "native_size": list(source.native_size) if source.native_size else None,
            "size": [backend.width, backend.height],
        },
        "prompt": {"original": job.prompt, "tuning": job.tuning_prompt, "appearance_invariant": not job.keep_prompt},
        "tuning": {**job.config.to_dict(), "optimizer": "AdamW", "parameters": result["parameters"],
                   "defaults": f"backend {job.backend_name}" if backend.tune_defaults else "paper",
                   "given": job.given,
                   "tensors": len(result["weights"]), "device": str(backend.device),
                   "dtype": str(backend.dtype).replace("torch.", ""), "seconds": round(seconds, 3),
                   "resumed_at_step": result["resumed_at"] or None},
        "loss": loss_summary(result["losses"]),
        # the adapters tuning added (a LoRA's rank, projections, blocks): generate rebuilds them
        **({"adapter": adapter} if adapter else {}),
    }
