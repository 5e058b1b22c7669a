"""Show-1's repositories; where their files come from is :mod:`vmc_cli.repos` (shared by
every backend that loads hub repositories), re-exported here."""

from __future__ import annotations

from vmc_cli.repos import *  # noqa: F401,F403
from vmc_cli.repos import (  # noqa: F401
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
    resolve_all,
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


