"""The profile store: one folder per learned motion.

    <home>/profiles/<name>/manifest.toml        what was done, by what, with which settings
    <home>/profiles/<name>/weights.safetensors  only the tuned parameters
    <home>/profiles/<name>/clip.safetensors     the clip in model space (for inversion)
    <home>/profiles/<name>/inversion.safetensors  after inversion

``<home>`` is ``--home``, else ``VMC_HOME``, else the platform's user data
folder. Profiles are written to a temporary folder and renamed into place, so
an interrupted tune leaves nothing behind; files added later are written to a
temporary name and renamed. Only safetensors are ever loaded.

A profile is a folder. One whose manifest is missing or unreadable is *damaged*:
its name stays taken (``exists``), it is listed (``names``; ``vmc profiles list``
marks it) and it can be removed (``remove``), but nothing can be loaded from it.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import VmcError

SCHEMA = 1
MANIFEST = "manifest.toml"
WEIGHTS = "weights.safetensors"
CLIP = "clip.safetensors"
INVERSION = "inversion.safetensors"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def default_home() -> Path:
    env = os.environ.get("VMC_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vmc", appauthor=False))


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise VmcError(
            f"invalid profile name {name!r}",
            "use letters, digits, '.', '_' and '-' (up to 64, no path separators, no '..')",
        )
    return name


def slug(text: str, limit: int = 48) -> str:
    """A profile name from a prompt: 'a cat is roaring' -> 'cat-is-roaring'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    if len(words) > 1 and words[0] in ("a", "an", "the"):
        words = words[1:]
    out = "-".join(words)[:limit].strip("-")
    return out or "profile"


def _toml_clean(value: Any) -> Any:
    """TOML has no null: drop None values, turn tuples into lists."""
    if isinstance(value, dict):
        return {str(k): _toml_clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_clean(v) for v in value if v is not None]
    return value


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def _write_toml(path: Path, data: dict) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(_toml_clean(data)), encoding="utf-8")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class ProfileStore:
    def __init__(self, home: str | Path | None = None):
        self.home = Path(home).expanduser() if home else default_home()
        self.root = self.home / "profiles"

    # -- paths and listing ---------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        """Whether the name is taken: anything at the profile's path, with or without a
        readable manifest. The same test as ``create`` (without ``overwrite``) refuses on,
        so a command can check early, before minutes of work, that it will be able to save."""
        return self.path(name).exists()

    def names(self) -> list[str]:
        """Every profile folder, sorted: complete ones and damaged ones (no or an unreadable
        manifest; see ``problem``), so that ``vmc profiles list`` shows what blocks a name and
        ``vmc profiles rm`` can clear it. Hidden folders (``.tmp-*``, ``.old-*``: writes in
        progress or interrupted) and stray files are not profiles and are left out."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir())

    def manifest_path(self, name: str) -> Path:
        """The manifest's path, after checking the profile exists and has one."""
        folder = self.path(name)
        if not folder.is_dir():
            known = ", ".join(self.names()[:10]) or "none yet"
            raise VmcError(f"no profile named {name!r} in {self.root} (known: {known})",
                           "run `vmc profiles list`, or make one with `vmc tune CLIP --prompt ...`")
        path = folder / MANIFEST
        if not path.is_file():
            raise VmcError(f"profile {name!r} has no {MANIFEST} (damaged or left by an interrupted write)",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again")
        return path

    def manifest(self, name: str) -> dict:
        path = self.manifest_path(name)
        try:
            return _read_toml(path)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise VmcError(f"the manifest of profile {name!r} cannot be read ({reason})",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again") from None

    # -- writing -------------------------------------------------------------
    def create(self, name: str, manifest: dict, files: dict[str, dict], overwrite: bool = False) -> Path:
        """Write a new profile atomically. ``files``: {filename: {tensor name: tensor}}."""
        from safetensors.torch import save_file

        from .video import default_mode, file_sha256

        final = self.path(name)
        if final.exists() and not overwrite:
            raise VmcError(f"profile {name!r} already exists", "pass --name NEW, or --force to replace it")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            manifest = dict(manifest)
            manifest["files"] = {}
            for filename, tensors in files.items():
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / filename))
                manifest["files"][filename] = {"sha256": file_sha256(tmp / filename), "tensors": len(tensors)}
            _write_toml(tmp / MANIFEST, manifest)
            for path in (tmp, *tmp.iterdir()):
                default_mode(path)
            if final.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=self.root))
                os.replace(final, trash / name)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def add_file(self, name: str, filename: str, tensors: dict, section: str, info: dict) -> None:
        """Add or replace one tensor file of an existing profile and record it in the manifest."""
        from safetensors.torch import save_file

        from .video import default_mode, file_sha256

        folder = self.path(name)
        manifest = self.manifest(name)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", dir=folder)
        os.close(fd)
        tmp_manifest = folder / f".{MANIFEST}.tmp"
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_name)
            manifest.setdefault("files", {})[filename] = {"sha256": file_sha256(tmp_name), "tensors": len(tensors)}
            manifest[section] = info
            _write_toml(tmp_manifest, manifest)
            default_mode(tmp_name)
            os.replace(tmp_name, folder / filename)
            os.replace(tmp_manifest, folder / MANIFEST)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            tmp_manifest.unlink(missing_ok=True)
            raise

    def remove(self, name: str) -> Path:
        """Delete a profile's folder, whatever state its manifest is in (a damaged profile
        must stay removable). An unknown name is the usual "no profile named" error."""
        folder = self.path(name)
        if not folder.is_dir():
            self.manifest_path(name)  # raises the usual "no profile" error
        shutil.rmtree(folder)
        return folder

    # -- reading -------------------------------------------------------------
    def load(self, name: str, filename: str, manifest: dict | None = None) -> dict:
        """Tensors of one file, after checking its sha256 against the manifest."""
        from safetensors.torch import load_file

        from .video import file_sha256

        manifest = manifest or self.manifest(name)
        entry = manifest.get("files", {}).get(filename)
        path = self.path(name) / filename
        if entry is None or not path.is_file():
            raise VmcError(f"profile {name!r} has no {filename}",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again")
        if file_sha256(path) != entry.get("sha256"):
            raise VmcError(f"{path} does not match the checksum in its manifest (modified or damaged)",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again")
        return load_file(str(path))


def check_backend(manifest: dict, name: str, backend_name: str, model_info: dict | None = None) -> None:
    """Refuse a profile made by another backend or another revision of its key-frame model."""
    made_by = manifest.get("backend", {}).get("name")
    if made_by != backend_name:
        raise VmcError(f"profile {name!r} was made with backend {made_by!r}, not {backend_name!r}",
                       f"use --backend {made_by}, or tune again with --backend {backend_name}")
    if model_info is None:
        return
    recorded = manifest.get("backend", {}).get("models", {}).get("keyframes", {})
    current = model_info.get("keyframes", {})
    for key in ("id", "revision"):
        if recorded.get(key) and current.get(key) and recorded[key] != current[key]:
            raise VmcError(
                f"profile {name!r} was tuned on key-frame model {recorded.get('id')}@{recorded.get('revision')}, "
                f"but the loaded one is {current.get('id')}@{current.get('revision')}",
                "load the same model revision, or tune the clip again",
            )
