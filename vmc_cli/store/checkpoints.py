"""Resumable tuning: checkpoints of an unfinished tune in the store's staging area.

    <home>/staging/<name>/checkpoint.json              what is being tuned, the step, the losses so far
    <home>/staging/<name>/checkpoint-<step>.safetensors  tuned weights, AdamW state, every RNG state

Never in the profile folder: a profile exists only once its tune has finished. Each
checkpoint is a new tensor file, then the JSON that points to it (with its sha256) is
renamed into place, then older tensor files go: a run killed at any moment leaves the
last complete checkpoint. Only safetensors and JSON are read back.

``fingerprint`` is everything that decides the tuned weights (the clip's checksum and
frames, the tuning prompt, the backend and its models, every tuning setting); ``--resume``
continues only a checkpoint with the same fingerprint, so on a CPU the result is
bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vmc_cli.errors import VmcError

META = "checkpoint.json"
SCHEMA = 1
#: How a fingerprint key is given on the command line, for the "which option differs" error.
OPTION_NAMES = {"steps": "--steps", "lr": "--lr", "loss": "--loss", "seed": "--seed", "target": "--target",
                "stride": "--residual-stride", "timestep_range": "--timesteps", "clip_sha256": "the clip",
                "frame_indexes": "the frames (--frames/--stride/--start/--fps)", "crop": "--crop",
                "tuning_prompt": "the prompt (or --keep-prompt)", "backend": "--backend", "models": "the model"}


def staging_root(home: Path) -> Path:
    return Path(home) / "staging"


def read_meta(folder: Path) -> dict | None:
    """The checkpoint's JSON, or None when there is none (or it cannot be read, or is not a
    checkpoint's: see :func:`meta_problem`)."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    return None if meta_problem(meta) else meta


def meta_problem(meta) -> str | None:
    """Why a parsed checkpoint.json cannot be resumed from (None: it can)."""
    if not isinstance(meta, dict):
        return "is not a checkpoint's"
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return "has no step"
    fingerprint = meta.get("fingerprint")
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("steps"), int):
        return "has no settings"
    if not isinstance(meta.get("file"), str) or not isinstance(meta.get("sha256"), str):
        return "names no tensor file"
    return None


def damage(folder: Path) -> str | None:
    """Why the staging folder of a tune cannot be resumed (None: it can)."""
    try:
        meta = json.loads((folder / META).read_text())
    except FileNotFoundError:
        return f"no {META}"
    except (OSError, ValueError) as exc:
        return f"{META} cannot be read ({type(exc).__name__})"
    problem = meta_problem(meta)
    return f"{META} {problem}" if problem else None


def unfinished(home: Path) -> list[dict]:
    """Every unfinished tune in the store: name, step reached, steps wanted, when, and
    ``damaged`` (why it cannot be resumed, or None)."""
    root = staging_root(home)
    rows = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            meta = read_meta(folder) or {}
            rows.append({"name": folder.name, "step": meta.get("step"), "steps": meta.get("fingerprint", {}).get("steps"),
                         "saved": meta.get("saved"), "path": str(folder), "damaged": damage(folder)})
    return rows


def differences(saved: dict, wanted: dict) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if a != b:
            name = OPTION_NAMES.get(key, key)
            out.append(f"{name} {a} (now {b})" if name.startswith("--") else f"{name} differs")
    return out


class Checkpointer:
    """Saves and loads one name's checkpoints (the caller holds the name's store lock)."""

    def __init__(self, home: Path, name: str, fingerprint: dict, every: int):
        self.folder = staging_root(home) / name
        self.name = name
        self.fingerprint = json.loads(json.dumps(fingerprint))  # the JSON form, so comparisons are exact
        self.every = every

    def exists(self) -> bool:
        return self.folder.is_dir()

    def describe(self) -> str:
        meta = read_meta(self.folder)
        if meta is None:
            return f"damaged: {damage(self.folder)}"
        return f"step {meta['step']} of {meta['fingerprint']['steps']}"

    # -- writing -------------------------------------------------------------
    def save(self, step: int, losses: list[float], tensors: dict, extra: dict) -> None:
        from safetensors.torch import save_file

        from vmc_cli.store.profiles import now
        from vmc_cli.io.media import file_sha256

        self.folder.mkdir(parents=True, exist_ok=True)
        filename = f"checkpoint-{step:07d}.safetensors"
        tmp = self.folder / f".{filename}.tmp"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, self.folder / filename)
        meta = {"schema": SCHEMA, "name": self.name, "step": step, "file": filename,
                "sha256": file_sha256(self.folder / filename), "saved": now(),
                "fingerprint": self.fingerprint, "losses": losses, **extra}
        tmp_meta = self.folder / f".{META}.tmp"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.folder / META)
        for p in self.folder.iterdir():  # older checkpoints and leftovers of killed saves
            if p.name not in (META, filename):
                p.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- reading -------------------------------------------------------------
    def load(self) -> tuple[dict, dict]:
        """(meta, tensors) of the last checkpoint, after checking it belongs to this tune."""
        from safetensors.torch import load_file

        from vmc_cli.io.media import file_sha256

        meta = read_meta(self.folder)
        if meta is None:
            raise VmcError(f"--resume: the unfinished tune of {self.name!r} is damaged ({damage(self.folder)})",
                           f"start over without --resume, or remove it with `vmc profiles clean {self.name} --yes`")
        diff = differences(meta.get("fingerprint", {}), self.fingerprint)
        if diff:
            raise VmcError(f"--resume: the unfinished tune of {self.name!r} was made with other settings: "
                           + "; ".join(diff),
                           "give the same clip, prompt and options as the interrupted run, or drop --resume to start over")
        path = self.folder / meta["file"]
        if not path.is_file() or file_sha256(path) != meta.get("sha256"):
            raise VmcError(f"--resume: the checkpoint of {self.name!r} is damaged ({path.name})",
                           f"start over without --resume, or remove it with `vmc profiles clean {self.name} --yes`")
        return meta, load_file(str(path))
