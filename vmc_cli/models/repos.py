"""Where a backend's model files come from: the Hugging Face hub or local folders.

Shared by the backends that load hub repositories (Show-1, ZeroScope, AnimateDiff).
Each model a backend uses is one hub repository, needed only in part (the
sub-folders its :class:`RepoSpec` lists). A repository is found, in this order:

1. under a local root folder (``--model-path`` or a backend's own variable) holding one
   sub-folder per repository in the hub's layout, named like the repository
   (``<root>/show-1-base/unet/...``, ``<root>/IF-II-L-v1.0/...``); its revision is
   ``sha256:<16 hex>``, a hash of its configuration files (``*.json``, ``*.txt``,
   ``*.model`` of the needed sub-folders and ``model_index.json``);
2. in the hub cache (no network), at the requested revision (a branch, tag or full
   commit hash; the backend's pin, else ``main``); its revision is the commit hash;
3. downloaded from the hub when it can be reached: only the needed sub-folders,
   and one set of weight files per model (safetensors before .bin, the fp16 variant
   when loading in half precision).

When a repository can't be found and the hub can't be reached, :func:`resolve_all`
raises ONE :class:`~vmc_cli.errors.VmcError` naming everything missing, with the
``hf download`` commands that fetch it. No retries: ``HF_HUB_OFFLINE=1`` or an
unreachable host answer at once (:func:`vmc_cli.models.hub.hub_reachable`).

This module is generic: the repositories, their pinned revisions and the environment
variables that override them belong to each backend's package.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vmc_cli.errors import VmcError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
CONFIG_SUFFIXES = (".json", ".txt", ".model")
_VARIANT = re.compile(r"\.(fp16|bf16|fp32)(?=[.-])")


@dataclass(frozen=True)
class RepoSpec:
    """One hub repository and the part of it a role needs."""

    role: str
    repo_id: str
    components: tuple[str, ...]  # sub-folders needed
    models: tuple[str, ...]  # those of them that hold weights
    purpose: str
    gated: bool = False
    #: the file that marks a snapshot as present in the hub cache (a repository of one
    #: model, such as a MotionAdapter, has no model_index.json)
    index_file: str = "model_index.json"

    @property
    def folder_name(self) -> str:
        """Name of its folder under a local root: the repository's name."""
        return self.repo_id.rsplit("/", 1)[-1]


@dataclass
class Resolved:
    spec: RepoSpec
    folder: Path
    revision: str  # commit hash (hub) or "sha256:..." (local folder)
    source: str  # "hub" or "local"

    def info(self) -> dict[str, str]:
        return {"id": self.spec.repo_id, "revision": self.revision, "source": self.source}


@dataclass
class Missing:
    spec: RepoSpec
    revision: str
    where: str  # "local" or "hub"
    folder: Path | None = None
    files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = f"{self.spec.repo_id}@{self.revision}" if self.where == "hub" else f"{self.folder}"
        lacks = f"; lacks {', '.join(self.files[:3])}" if self.files and self.folder is not None else ""
        return f"{what} ({self.spec.purpose}{lacks})"


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
def variant_of(filename: str) -> str | None:
    """``diffusion_pytorch_model.fp16.safetensors`` -> ``fp16``; no variant -> None."""
    m = _VARIANT.search(Path(filename).name)
    return m.group(1) if m else None


def weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def pick_variant(folder: Path, prefer: str | None) -> str | None:
    """The weight variant to load from a model folder: ``prefer`` when present,
    else the plain files, else whatever variant is there."""
    variants = {variant_of(p.name) for p in weight_files(folder)}
    if prefer in variants:
        return prefer
    if None in variants or not variants:
        return None
    return sorted(variants)[0]


def missing_files(folder: Path, spec: RepoSpec, need_index: bool = True) -> list[str]:
    """The needed files that a folder in the hub's layout lacks (empty: complete)."""
    if not folder.is_dir():
        return [f"{spec.folder_name}/"]
    missing = []
    if need_index and not (folder / spec.index_file).is_file():
        missing.append(spec.index_file)
    for comp in spec.components:
        sub = folder / comp if comp else folder
        if comp in spec.models:
            if not (sub / "config.json").is_file():
                missing.append(f"{comp}/config.json")
            if not weight_files(sub):
                missing.append(f"{comp}/ weights")
        elif "scheduler" in comp:
            if not (sub / "scheduler_config.json").is_file():
                missing.append(f"{comp}/scheduler_config.json")
        elif not sub.is_dir() or not any(sub.iterdir()):
            missing.append(f"{comp}/")
    return missing


def weights_revision(folder: Path) -> str:
    """sha256 (first 16 hex digits) over a shipped or self-trained model folder's configs and
    weight files (not its ``training.json``): a retrained model gets a new revision, so profiles
    of the old one are refused."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors") and path.name != "training.json":
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(folder: Path, spec: RepoSpec) -> str:
    """``sha256:<16 hex>`` over the configuration files a role uses (not the weights)."""
    paths = [folder / "model_index.json"] if (folder / "model_index.json").is_file() else []
    for comp in spec.components:
        sub = folder / comp if comp else folder
        if sub.is_dir():
            pattern = "*" if comp else "[!.]*"  # a top-level model: its own files, not sub-folders
            found = sub.rglob(pattern) if comp else sub.glob(pattern)
            paths += [p for p in found if p.is_file() and p.suffix in CONFIG_SUFFIXES and p not in paths
                      and ".index" not in p.name
                      and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    digest = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.relative_to(folder).as_posix()):
        digest.update(p.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(p.read_bytes())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def select_files(repo_files: list[str], spec: RepoSpec, prefer_variant: str | None) -> list[str]:
    """Which files of a hub repository to download for ``spec``: model_index.json,
    the configuration/tokenizer files of the needed sub-folders, and ONE set of weights
    per model (safetensors before .bin; ``prefer_variant`` before the plain files)."""
    chosen = [f for f in repo_files if f == "model_index.json"]
    for comp in spec.components:
        if not comp:  # the repository's top level (a single-model repository)
            inside = [f for f in repo_files if "/" not in f and f != "model_index.json"]
        else:
            inside = [f for f in repo_files if f.startswith(comp + "/") and "/" not in f[len(comp) + 1:]]
        chosen += [f for f in inside if f.endswith(CONFIG_SUFFIXES)]
        groups: dict[tuple[bool, str | None], list[str]] = {}
        for f in inside:
            if f.endswith(WEIGHT_SUFFIXES):
                groups.setdefault((f.endswith(".safetensors"), variant_of(f)), []).append(f)
        order = [(True, prefer_variant), (False, prefer_variant), (True, None), (False, None), *sorted(
            groups, key=lambda k: (not k[0], k[1] or ""))]
        for key in order:
            if key in groups:
                chosen += groups[key]
                break
    return chosen


# ---------------------------------------------------------------------------------------
# resolving
# ---------------------------------------------------------------------------------------
def from_local_root(root: Path, spec: RepoSpec) -> Resolved | Missing:
    folder = root / spec.folder_name
    missing = missing_files(folder, spec, need_index=False)
    if missing:
        return Missing(spec, "", "local", folder, missing)
    return Resolved(spec, folder, config_hash(folder, spec), "local")


def from_hub_cache(spec: RepoSpec, revision: str) -> tuple[Path, str] | None:
    """The cached snapshot folder and commit hash of ``spec`` at ``revision``, without
    any network access; None when not cached."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(spec.repo_id, spec.index_file, revision=revision)
    if not isinstance(path, str):
        return None
    snapshot = Path(path).parent
    return snapshot, snapshot.name


def revision_for(repo_id: str, given: str | None, pins: dict[str, str] | None = None) -> str:
    """The revision to load ``repo_id`` at: ``given`` (a backend's revision option) when set,
    else its pin in ``pins`` (each backend pins its own repositories), else ``main``."""
    return str(given or "").strip() or (pins or {}).get(repo_id, "main")


def download(spec: RepoSpec, revision: str, prefer_variant: str | None, log: Callable[[str], None],
             revisions_env: str | None = None) -> tuple[Path, str]:
    """Download the files ``spec`` needs at ``revision``; returns (snapshot folder, commit)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/{spec.repo_id}"
    try:
        info = HfApi().model_info(spec.repo_id, revision=revision)
        files = select_files([s.rfilename for s in info.siblings or []], spec, prefer_variant)
        log(f"downloading {spec.repo_id}@{info.sha[:10]} ({len(files)} files, {spec.purpose})")
        folder = snapshot_download(spec.repo_id, revision=info.sha, allow_patterns=files)
    except GatedRepoError:
        raise VmcError(f"{spec.repo_id} is gated: the hub refused the download",
                       f"accept its license on {page} (logged in), then run `hf auth login`") from None
    except RevisionNotFoundError:
        where = f"set {revisions_env} to" if revisions_env else "pin"
        raise VmcError(f"{spec.repo_id} has no revision {revision!r}",
                       f"{where} an existing branch, tag or commit, such as main (see {page}/commits/main)") from None
    except RepositoryNotFoundError:
        raise VmcError(f"the hub has no repository {spec.repo_id} (or it is private)",
                       "check the id, or run `hf auth login`") from None
    except (HfHubHTTPError, OSError) as exc:
        raise VmcError(f"downloading {spec.repo_id}@{revision} failed: {type(exc).__name__}: {exc}".splitlines()[0],
                       f"try again, or download it yourself: {download_command(spec, revision)}") from None
    return Path(folder), info.sha


def download_command(spec: RepoSpec, revision: str = "main", local_dir: Path | None = None) -> str:
    cmd = f"hf download {spec.repo_id}"
    if revision and revision != "main":
        cmd += f" --revision {revision}"
    if local_dir is not None:
        cmd += f" --local-dir {local_dir}"
    return cmd


def resolve_all(specs: list[RepoSpec], revisions: dict[str, str], root: Path | None, prefer_variant: str | None,
                log: Callable[[str], None], family: str = "model", path_env: str | None = None,
                revisions_env: str | None = None) -> dict[str, Resolved]:
    """Resolve every spec (see the module docstring) or raise one VmcError for all that are missing.
    ``family``, ``path_env`` and ``revisions_env`` name the backend's model family and its
    environment variables in the messages (each backend passes its own)."""
    from vmc_cli.models.hub import hub_reachable

    resolved: dict[str, Resolved] = {}
    missing: list[Missing] = []
    reachable: bool | None = None
    for spec in specs:
        revision = revisions.get(spec.role, "main")
        if root is not None:
            found = from_local_root(root, spec)
            if isinstance(found, Missing):
                missing.append(found)
            else:
                resolved[spec.role] = found
            continue
        cached = from_hub_cache(spec, revision)
        lacks: list[str] = []
        if cached is not None:
            lacks = missing_files(cached[0], spec)
            if not lacks:
                resolved[spec.role] = Resolved(spec, cached[0], cached[1], "hub")
                continue
        if reachable is None:
            reachable = hub_reachable()
        if reachable:
            folder, commit = download(spec, revision, prefer_variant, log, revisions_env)
            lacks = missing_files(folder, spec)
            if lacks:
                raise VmcError(f"{spec.repo_id}@{commit[:10]} lacks {', '.join(lacks)}",
                               f"pin another revision with {revisions_env}, or use --model-path" if revisions_env
                               else "use --model-path with a folder holding it")
            resolved[spec.role] = Resolved(spec, folder, commit, "hub")
        else:
            missing.append(Missing(spec, revision, "hub", cached[0] if cached else None, lacks))
    if missing:
        raise _missing_error(missing, root, family, path_env)
    return resolved


def _missing_error(missing: list[Missing], root: Path | None, family: str = "model",
                   path_env: str | None = None) -> VmcError:
    listing = "; ".join(m.describe() for m in missing)
    if root is not None:
        commands = " && ".join(download_command(m.spec, local_dir=root / m.spec.folder_name) for m in missing)
        message = f"{family} model files not found under {root}: {listing}"
    else:
        commands = " && ".join(download_command(m.spec, m.revision) for m in missing)
        message = f"{family} model files are not on this machine and the hub cannot be reached: {listing}"
    hint = f"download them where there is a network: `{commands}`"
    gated = [m.spec for m in missing if m.spec.gated]
    if gated:
        hint += (f" ({', '.join(s.repo_id for s in gated)} is gated: accept its license on "
                 f"https://huggingface.co/{gated[0].repo_id} and run `hf auth login` first)")
    if root is None:
        where = f"--model-path / {path_env}" if path_env else "--model-path"
        hint += f"; or point {where} at a folder holding " + ", ".join(
            f"{m.spec.folder_name}/" for m in missing)
    return VmcError(message, hint)
