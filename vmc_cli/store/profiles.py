"""The profile store: one folder per learned motion.

    <home>/profiles/<name>/manifest.toml        what was done, by what, with which settings
    <home>/profiles/<name>/weights.safetensors  only the tuned parameters
    <home>/profiles/<name>/clip.safetensors     the clip in model space (for inversion)
    <home>/profiles/<name>/inversion.safetensors  after inversion

``<home>`` is ``--home``, else ``VMC_HOME``, else the platform's user data
folder. Only safetensors are ever loaded.

Every write is a whole-folder swap: the new state of a profile is written into
``profiles/.tmp-<name>~<token>`` (files kept from the old state are hard links, so adding
an inversion to a profile with large weights copies nothing), then renamed into place; a
profile being replaced is first renamed aside to ``profiles/.old-<name>~<token>/<name>``.
A process killed at any moment therefore leaves the profile either as it was or as it
was going to be, plus hidden leftovers that the next write (or listing) of the store
cleans up; a kill between the two renames of a replacement leaves the old profile in
its ``.old-`` folder, and it is put back. Writers of a name hold a lock file
(``<home>/locks/<name>.lock``, the ``filelock`` package): a second writer of the same
name stops at once with a one-line error instead of racing the first one. The lock
is released by the operating system when its holder dies, so a killed run never
leaves a name locked.

A profile is a folder. One whose manifest is missing or unreadable is *damaged*:
its name stays taken (``exists``), it is listed (``names``; ``vmc profiles list``
marks it) and it can be removed (``remove``), but nothing can be loaded from it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from vmc_cli.errors import VmcError

SCHEMA = 1
MANIFEST = "manifest.toml"
WEIGHTS = "weights.safetensors"
CLIP = "clip.safetensors"
INVERSION = "inversion.safetensors"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Hidden folders of writes in progress or interrupted: ``.tmp-<name>~<token>`` (a new
#: state being written) and ``.old-<name>~<token>`` (an old state renamed aside). "~" is
#: not allowed in names, so the name can be read back; ``-<8 chars>`` is the suffix that
#: earlier versions used (``tempfile.mkdtemp``).
_STAGED = re.compile(r"\.(tmp|old)-(?P<name>[A-Za-z0-9._-]+?)(~[0-9a-f]+|-[A-Za-z0-9_]{8})")
_LOCKS: dict[str, Any] = {}  # one FileLock per lock file in this process (re-entrant)
# A forked child is another process: it holds none of its parent's locks (filelock refuses
# instances inherited across a fork).
os.register_at_fork(after_in_child=_LOCKS.clear)


class StoreBusy(VmcError):
    """Another process is writing the same profile."""


def _write_error(name: str, root: Path, exc: BaseException) -> VmcError:
    """One line for a write the file system refused (disk full, read-only, file too large)."""
    code = getattr(exc, "errno", None)
    if code is None:  # safetensors reports I/O failures as SafetensorError("... (os error N)")
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    reason = os.strerror(code) if code else (_first_line(exc) or type(exc).__name__)
    hint = {errno.ENOSPC: "free some disk space and run it again",
            errno.EDQUOT: "free some disk space and run it again",
            errno.EFBIG: "a file-size limit (ulimit -f) is in force: raise it and run it again",
            errno.EROFS: "the store is on a read-only file system: pass --home or set VMC_HOME to a writable folder",
            errno.EACCES: "make the store writable, or pass --home / set VMC_HOME to a writable folder",
            errno.EPERM: "make the store writable, or pass --home / set VMC_HOME to a writable folder",
            }.get(code, "check the store's free space and permissions (`vmc profiles path` shows where it is)")
    return VmcError(f"cannot write profile {name!r} in {root}: {reason}; nothing was changed", hint)


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def _is_write_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError"


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


def _loads_toml(text: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


def manifest_problem(manifest: dict) -> str | None:
    """What makes a parsed manifest unusable (None: it is whole enough to load a profile from):
    every profile's manifest has its schema, its backend's name and its files' checksums."""
    schema = manifest.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        return "has no schema version"
    if schema > SCHEMA:
        return f"has schema {schema}, newer than this vmc's {SCHEMA} (made by a newer vmc: upgrade it)"
    backend = manifest.get("backend")
    if not isinstance(backend, dict) or not isinstance(backend.get("name"), str) or not backend["name"]:
        return "names no backend"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "lists no files"
    for filename, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            return f"has no checksum for {filename}"
    for section in ("prompt", "tuning", "source", "loss", "inversion", "adapter"):
        if section in manifest and not isinstance(manifest[section], dict):
            return f"has a broken [{section}] section"
    return None


def _write_toml(path: Path, data: dict) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(_toml_clean(data)), encoding="utf-8")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class ProfileStore:
    def __init__(self, home: str | Path | None = None):
        self.home = Path(home).expanduser() if home else default_home()
        self.root = self.home / "profiles"
        self._check_home("--home" if home else "VMC_HOME" if os.environ.get("VMC_HOME") else "--home")

    def _check_home(self, where: str) -> None:
        """A store folder that is a file (or lies under one) is refused by every command alike,
        listing included (it would otherwise look like an empty store)."""
        for path in (self.home, *self.home.parents):
            if path.exists():
                if not path.is_dir():
                    what = "is a file" if path == self.home else f"lies under {path}, a file"
                    raise VmcError(f"the profile store {self.home} {what}, not a folder",
                                   f"point {where} at a folder (it is made when missing)")
                break
        for path in (self.root, self.home / "staging"):
            if path.exists() and not path.is_dir():
                raise VmcError(f"{path} is a file, but the profile store keeps its {path.name} there",
                               f"move it away, or point {where} at another folder")

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
        self.recover()
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir())

    # -- locking and recovery ------------------------------------------------
    def lock_path(self, name: str) -> Path:
        return self.home / "locks" / f"{validate_name(name)}.lock"

    @contextlib.contextmanager
    def lock(self, name: str):
        """Hold the write lock of ``name`` for the block, or raise :class:`StoreBusy` at once
        if another process holds it. Re-entrant within a process."""
        from filelock import FileLock, Timeout

        path = self.lock_path(name)
        lock = _LOCKS.setdefault(str(path), FileLock(str(path), timeout=0))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:
            raise StoreBusy(f"profile {name!r} is being written by another vmc process right now",
                            "wait for it to finish, or use another --name") from None
        except OSError as exc:  # the store cannot even hold a lock file
            raise _write_error(name, self.home, exc) from None
        try:
            yield
        finally:
            lock.release()

    def _staged(self) -> dict[str, list[Path]]:
        """Leftover hidden folders of writes, by profile name."""
        found: dict[str, list[Path]] = {}
        with contextlib.suppress(OSError):
            for p in self.root.iterdir():
                m = _STAGED.fullmatch(p.name)
                if m and p.is_dir():
                    found.setdefault(m.group("name"), []).append(p)
        return found

    def recover(self) -> None:
        """Best effort, for every name no live process is writing: put back a profile whose
        replacement was killed between its two renames, and delete what killed writes left
        behind (they hold weights: they must not pile up). A read-only store is left alone."""
        for name, paths in self._staged().items():
            try:
                with self.lock(name):
                    self._recover_locked(name, paths)
            except (VmcError, OSError):
                continue

    def _recover_locked(self, name: str, paths: list[Path] | None = None) -> None:
        """:meth:`recover` for one name whose lock is held."""
        final = self.path(name)
        if paths is None:
            paths = self._staged().get(name, [])
        for p in sorted(paths):
            kind = p.name[1:4]
            if kind == "old" and not final.exists() and (p / name / MANIFEST).is_file():
                os.replace(p / name, final)  # the old profile comes back
            shutil.rmtree(p, ignore_errors=True)

    def _stage(self, kind: str, name: str) -> Path:
        path = self.root / f".{kind}-{name}~{secrets.token_hex(4)}"
        path.mkdir()
        return path

    def _swap_in(self, name: str, tmp: Path) -> None:
        """Rename the complete folder ``tmp`` to the profile's place, replacing what is there."""
        final = self.path(name)
        if not final.exists():
            os.replace(tmp, final)
            return
        old = self._stage("old", name)
        os.replace(final, old / name)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old / name, final)
            raise
        shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def _writing(self, name: str):
        """Lock ``name``, clean what killed writes left, and turn a refused write into one line."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self.lock(name):
                self._recover_locked(name)
                yield
        except VmcError:
            raise
        except BaseException as exc:
            if _is_write_failure(exc):
                raise _write_error(name, self.root, exc) from None
            raise
        self.recover()

    def manifest_path(self, name: str) -> Path:
        """The manifest's path, after checking the profile exists and has one."""
        folder = self.path(name)
        if not folder.is_dir() and name in self._staged():
            self.recover()  # a replacement killed between its renames: the old profile comes back
        if not folder.is_dir():
            known = ", ".join(self.names()[:10]) or "none yet"
            raise VmcError(f"no profile named {name!r} in {self.root} (known: {known})",
                           "run `vmc profiles list`, or make one with `vmc tune CLIP --prompt ...`")
        path = folder / MANIFEST
        if not path.is_file():
            raise VmcError(f"profile {name!r} has no {MANIFEST} (damaged or left by an interrupted write)",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again")
        return path

    def manifest(self, name: str, text: str | None = None) -> dict:
        """The profile's manifest, checked to be whole (``text``: its contents, already read)."""
        path = self.manifest_path(name)
        try:
            if text is None:
                manifest = _read_toml(path)
            else:
                manifest = _loads_toml(text)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise VmcError(f"the manifest of profile {name!r} cannot be read ({reason})",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again") from None
        problem = manifest_problem(manifest)
        if problem:
            raise VmcError(f"profile {name!r} is damaged: its manifest {problem}",
                           f"remove it with `vmc profiles rm {name} --yes` and tune again")
        return manifest

    # -- writing -------------------------------------------------------------
    def create(self, name: str, manifest: dict, files: dict[str, dict], overwrite: bool = False) -> Path:
        """Write a new profile atomically. ``files``: {filename: {tensor name: tensor}}."""
        final = self.path(name)
        with self._writing(name):
            if final.exists() and not overwrite:
                raise VmcError(f"profile {name!r} already exists", "pass --name NEW, or --force to replace it")
            tmp = self._stage("tmp", name)
            try:
                self._fill(tmp, dict(manifest, files={}), files)
                self._swap_in(name, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return final

    @staticmethod
    def _fill(folder: Path, manifest: dict, files: dict[str, dict]) -> None:
        """Write tensor files into ``folder``, record them in ``manifest``, write it last."""
        from safetensors.torch import save_file

        from vmc_cli.io.media import file_sha256
        from vmc_cli.io.video import default_mode

        for filename, tensors in files.items():
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / filename))
            manifest["files"][filename] = {"sha256": file_sha256(folder / filename), "tensors": len(tensors)}
        _write_toml(folder / MANIFEST, manifest)
        for path in (folder, *folder.iterdir()):
            default_mode(path)

    def add_file(self, name: str, filename: str, tensors: dict, section: str, info: dict) -> None:
        """Add or replace one tensor file of an existing profile and record it in the manifest
        (``section``: ``info``), as a whole-folder swap: the other files are hard-linked into
        the new state, so nothing large is copied."""
        folder = self.path(name)
        with self._writing(name):
            manifest = self.manifest(name)
            tmp = self._stage("tmp", name)
            try:
                for p in folder.iterdir():
                    if p.name.startswith(".") or p.name in (filename, MANIFEST):
                        continue  # hidden: a leftover of an earlier version
                    if p.is_dir():
                        shutil.copytree(p, tmp / p.name)
                        continue
                    try:
                        os.link(p, tmp / p.name)
                    except OSError:  # a file system without hard links
                        shutil.copy2(p, tmp / p.name)
                manifest.setdefault("files", {})
                manifest[section] = info
                self._fill(tmp, manifest, {filename: tensors})
                self._swap_in(name, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def remove(self, name: str) -> Path:
        """Delete a profile's folder, whatever state its manifest is in (a damaged profile
        must stay removable). An unknown name is the usual "no profile named" error."""
        folder = self.path(name)
        if not folder.is_dir():
            self.manifest_path(name)  # raises the usual "no profile" error
        with self._writing(name):
            shutil.rmtree(folder)
        return folder

    # -- reading -------------------------------------------------------------
    def load(self, name: str, filename: str, manifest: dict | None = None) -> dict:
        """Tensors of one file, after checking its sha256 against the manifest."""
        from safetensors.torch import load_file

        from vmc_cli.io.media import file_sha256

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
