"""Show-1's repositories and the environment variables that say where their files are
(``VMC_SHOW1_PATH``) and at which revisions (``VMC_SHOW1_REVISIONS``); how files are found
is :mod:`vmc_cli.models.repos` (shared by every backend that loads hub repositories), re-exported
here with Show-1's names in its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from vmc_cli.models import repos as _core
from vmc_cli.models.repos import *  # noqa: F401,F403
from vmc_cli.models.repos import (  # noqa: F401
    Missing,
    RepoSpec,
    Resolved,
    config_hash,
    download,
    download_command,
    from_hub_cache,
    from_local_root,
    missing_files,
    pick_variant,
    select_files,
    variant_of,
    weight_files,
)

#: role -> repository. ``keyframes`` is the model VMC tunes (the profile check compares it).
REPOS: dict[str, RepoSpec] = {
    "keyframes": RepoSpec("keyframes", "showlab/show-1-base", ("unet", "scheduler", "tokenizer", "text_encoder"),
                          ("unet", "text_encoder"), "key-frames and the T5 text encoder"),
    "interpolation": RepoSpec("interpolation", "showlab/show-1-interpolation", ("unet", "scheduler"), ("unet",),
                              "frame interpolation"),
    "sr1_first_frame": RepoSpec("sr1_first_frame", "DeepFloyd/IF-II-L-v1.0",
                                ("unet", "scheduler", "image_noising_scheduler"), ("unet",),
                                "super-resolution 1, first frame", gated=True),
    "sr1": RepoSpec("sr1", "showlab/show-1-sr1", ("unet", "scheduler", "image_noising_scheduler"), ("unet",),
                    "super-resolution 1"),
    "sr2": RepoSpec("sr2", "showlab/show-1-sr2", ("unet", "scheduler", "vae", "text_encoder", "tokenizer"),
                    ("unet", "vae", "text_encoder"), "super-resolution 2"),
}

#: a local root holding one folder per repository (``show-1-base/``, ...), like --model-path
PATH_ENV = "VMC_SHOW1_PATH"
#: revisions per role, e.g. ``keyframes=<commit>,sr2=main`` (no pins: ``main`` by default)
REVISIONS_ENV = "VMC_SHOW1_REVISIONS"


def resolve_all(specs: list[RepoSpec], revisions: dict[str, str], root: Path | None, prefer_variant: str | None,
                log: Callable[[str], None]) -> dict[str, Resolved]:
    """:func:`vmc_cli.models.repos.resolve_all` for Show-1: its messages name Show-1 and its variables."""
    return _core.resolve_all(specs, revisions, root, prefer_variant, log, family="Show-1", path_env=PATH_ENV,
                             revisions_env=REVISIONS_ENV)
