"""The profile store (``vmc_cli.store.profiles``) and the ``vmc profiles`` commands."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vmc_cli.store.profiles as profiles
from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import CLIP, INVERSION, MANIFEST, WEIGHTS, ProfileStore, default_home, validate_name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"down.to_q.weight": torch.randn(4, 3, generator=g), "down.to_k.bias": torch.randn(5, generator=g)}


def manifest(**extra) -> dict:
    return {"schema": 1, "name": "disc", "backend": {"name": "tiny"}, "prompt": {"original": "a disc"},
            "tuning": {"steps": 2, "lr": 1e-4}, "loss": {"mean_last_10": 0.5}, **extra}


def make(store: ProfileStore, name: str = "disc", seed: int = 0, **kw) -> Path:
    return store.create(name, manifest(), {WEIGHTS: tensors(seed), CLIP: {"clip": torch.zeros(1, 3, 2, 4, 4)}}, **kw)


def entries(store: ProfileStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.is_dir() else []


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def store(vmc_home) -> ProfileStore:
    return ProfileStore()


# -- create ----------------------------------------------------------------------
def test_create_writes_manifest_and_files(store, vmc_home):
    folder = store.create("disc", manifest(note=None), {WEIGHTS: tensors(0), CLIP: {"clip": torch.ones(1, 3, 2, 4, 4)}})
    assert folder == vmc_home / "profiles" / "disc"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, WEIGHTS, CLIP])
    m = profiles._read_toml(folder / MANIFEST)
    assert m["backend"] == {"name": "tiny"} and m["tuning"]["lr"] == 1e-4
    assert "note" not in m  # None values are dropped (TOML has no null)
    assert m["files"][WEIGHTS] == {"sha256": sha256(folder / WEIGHTS), "tensors": 2}
    assert m["files"][CLIP] == {"sha256": sha256(folder / CLIP), "tensors": 1}
    saved = load_file(str(folder / WEIGHTS))
    for k, v in tensors(0).items():
        assert torch.equal(saved[k], v)
    assert entries(store) == ["disc"]  # no temp folder left
    assert store.names() == ["disc"] and store.exists("disc")
    assert store.manifest("disc") == m


def test_create_saves_non_contiguous_tensors(store):
    t = torch.arange(12.0).reshape(3, 4).t()
    assert not t.is_contiguous()
    folder = store.create("t", manifest(), {WEIGHTS: {"w": t}})
    assert torch.equal(load_file(str(folder / WEIGHTS))["w"], t)


def test_names_ignores_temp_folders_and_files_but_lists_damaged_ones(store):
    make(store, "disc")
    for hidden in (".tmp-cat-abc123", ".old-dog-xyz"):
        (store.root / hidden).mkdir()
        (store.root / hidden / MANIFEST).write_text("schema = 1\n")
    (store.root / "half").mkdir()  # a folder without a manifest: a damaged profile, its name is taken
    (store.root / "README.txt").write_text("not a profile")
    assert store.names() == ["disc", "half"]
    assert store.exists("half") and not store.exists("ghost")
    with pytest.raises(VmcError, match="profile 'half' has no manifest.toml") as info:
        store.manifest("half")
    assert "vmc profiles rm half --yes" in info.value.hint


def test_exists_agrees_with_create(store):
    """A leftover folder without a manifest: ``exists`` (the early check of tune) must say what
    ``create`` will do, or a tune runs for minutes and then refuses to save."""
    (store.root / "half").mkdir(parents=True)
    assert store.exists("half")
    with pytest.raises(VmcError, match="already exists"):
        make(store, "half")
    make(store, "half", overwrite=True)
    assert store.manifest("half")["name"] == "disc"


def test_tune_refuses_a_leftover_folder_before_any_work(run_cli, store, clip_path, monkeypatch):
    import vmc_cli.jobs as jobs

    (store.root / "half").mkdir(parents=True)
    monkeypatch.setattr(jobs, "read_clip", lambda *a, **k: pytest.fail("tune read the clip"))
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--name", "half", "--steps", "1", "--json")
    assert res.code == 1 and "already exists" in res.json()["error"], res
    assert res.stderr.startswith("Error: profile 'half' already exists")


def test_remove_needs_only_the_folder(store):
    make(store, "disc")
    (store.path("disc") / MANIFEST).write_text("this is [not toml")
    (store.root / "half").mkdir()
    assert store.remove("disc") == store.path("disc") and store.remove("half") == store.path("half")
    assert entries(store) == []
    (store.root / "README.txt").write_text("not a profile")
    for name in ("ghost", "README.txt"):
        with pytest.raises(VmcError, match=f"no profile named {name!r}"):
            store.remove(name)
    assert entries(store) == ["README.txt"]


def test_names_on_missing_store(store, vmc_home):
    assert store.names() == []
    assert not vmc_home.exists()  # reading does not create the store


def test_create_refuses_an_existing_name(store):
    folder = make(store, "disc", seed=0)
    before = snapshot(folder)
    with pytest.raises(VmcError, match="already exists"):
        make(store, "disc", seed=1)
    assert snapshot(folder) == before
    assert entries(store) == ["disc"]


def test_create_overwrite_replaces(store):
    folder = make(store, "disc", seed=0)
    make(store, "disc", seed=1, overwrite=True)
    saved = load_file(str(folder / WEIGHTS))
    assert torch.equal(saved["down.to_q.weight"], tensors(1)["down.to_q.weight"])
    assert store.manifest("disc")["files"][WEIGHTS]["sha256"] == sha256(folder / WEIGHTS)
    assert entries(store) == ["disc"]  # neither the temp folder nor the old copy is left


def test_failure_writing_the_manifest_leaves_nothing(store, monkeypatch):
    def fail(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(profiles, "_write_toml", fail)
    with pytest.raises(VmcError, match=r"cannot write profile 'disc' .*: No space left on device; nothing was changed"):
        make(store, "disc")
    assert entries(store) == []
    assert not store.exists("disc")


def test_failure_saving_a_tensor_leaves_nothing(store):
    with pytest.raises(AttributeError):
        store.create("disc", manifest(), {WEIGHTS: tensors(0), CLIP: {"clip": "not a tensor"}})
    assert entries(store) == []


def test_failure_during_overwrite_keeps_the_old_profile(store, monkeypatch):
    folder = make(store, "disc", seed=0)
    before = snapshot(folder)

    def fail(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(profiles, "_write_toml", fail)
    with pytest.raises(KeyboardInterrupt):
        make(store, "disc", seed=1, overwrite=True)
    assert snapshot(folder) == before
    assert entries(store) == ["disc"]


def test_create_refuses_bad_names(store, vmc_home):
    with pytest.raises(VmcError, match="invalid profile name"):
        make(store, "../escape")
    assert not (vmc_home / "escape").exists()
    assert entries(store) == []


# -- add_file ------------------------------------------------------------------------
def test_add_file_records_in_manifest(store):
    folder = make(store, "disc")
    weights_before = (folder / WEIGHTS).read_bytes()
    noise = torch.randn(1, 3, 2, 4, 4)
    store.add_file("disc", INVERSION, {"noise": noise}, "inversion", {"steps": 3, "prompt": ""})
    m = store.manifest("disc")
    assert m["files"][INVERSION] == {"sha256": sha256(folder / INVERSION), "tensors": 1}
    assert m["inversion"] == {"steps": 3, "prompt": ""}
    assert m["files"][WEIGHTS]["sha256"] == sha256(folder / WEIGHTS)  # other entries kept
    assert (folder / WEIGHTS).read_bytes() == weights_before
    assert torch.equal(store.load("disc", INVERSION)["noise"], noise)
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, WEIGHTS, CLIP, INVERSION])


def test_add_file_replaces(store):
    folder = make(store, "disc")
    store.add_file("disc", INVERSION, {"noise": torch.zeros(2)}, "inversion", {"steps": 3})
    first = sha256(folder / INVERSION)
    store.add_file("disc", INVERSION, {"noise": torch.ones(2)}, "inversion", {"steps": 5})
    m = store.manifest("disc")
    assert m["files"][INVERSION]["sha256"] == sha256(folder / INVERSION) != first
    assert m["inversion"] == {"steps": 5}
    assert torch.equal(store.load("disc", INVERSION)["noise"], torch.ones(2))
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp file left


def test_add_file_failure_keeps_the_old_state(store, monkeypatch):
    folder = make(store, "disc")
    store.add_file("disc", INVERSION, {"noise": torch.zeros(2)}, "inversion", {"steps": 3})
    before = snapshot(folder)

    def fail(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(profiles, "_write_toml", fail)
    with pytest.raises(VmcError, match="No space left on device"):
        store.add_file("disc", INVERSION, {"noise": torch.ones(2)}, "inversion", {"steps": 5})
    assert snapshot(folder) == before  # neither the file nor the manifest changed, no temp files


def test_add_file_to_unknown_profile(store):
    with pytest.raises(VmcError, match="no profile named 'ghost'"):
        store.add_file("ghost", INVERSION, {"noise": torch.zeros(2)}, "inversion", {})
    assert entries(store) == []


# -- load --------------------------------------------------------------------------
def test_load_returns_the_tensors(store):
    make(store, "disc", seed=3)
    loaded = store.load("disc", WEIGHTS)
    assert set(loaded) == set(tensors(3))
    assert all(torch.equal(loaded[k], v) for k, v in tensors(3).items())


def test_load_refuses_a_tampered_file(store):
    folder = make(store, "disc")
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-1] ^= 0x01
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(VmcError, match="checksum") as info:
        store.load("disc", WEIGHTS)
    assert "vmc profiles rm disc" in info.value.hint


def test_load_refuses_a_missing_or_unlisted_file(store):
    folder = make(store, "disc")
    with pytest.raises(VmcError, match="has no inversion.safetensors"):
        store.load("disc", INVERSION)
    (folder / INVERSION).write_bytes((folder / CLIP).read_bytes())  # on disk but not in the manifest
    with pytest.raises(VmcError, match="has no inversion.safetensors"):
        store.load("disc", INVERSION)
    (folder / WEIGHTS).unlink()
    with pytest.raises(VmcError, match="has no weights.safetensors"):
        store.load("disc", WEIGHTS)


# -- names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["disc", "cat-is-roaring", "A_b.c-1", "x", "x" * 64, "v1.2", "9lives"])
def test_validate_name_accepts(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", [
    "", "..", "../x", "a/../b", "a/b", "/abs", "a\\b", ".hidden", ".tmp-x-1", "-x", "_x", "a..b",
    "x" * 65, "a b", "caf\u00e9", "a\nb", "a:b", "x/", "~",
])
def test_validate_name_refuses(name):
    with pytest.raises(VmcError, match="invalid profile name"):
        validate_name(name)


# -- homes ---------------------------------------------------------------------------
def test_default_home_honours_vmc_home(monkeypatch, tmp_path):
    monkeypatch.setenv("VMC_HOME", str(tmp_path / "elsewhere"))
    assert default_home() == tmp_path / "elsewhere"
    assert ProfileStore().root == tmp_path / "elsewhere" / "profiles"


def test_default_home_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VMC_HOME", "~/vmc")
    assert default_home() == tmp_path / "vmc"


def test_default_home_without_vmc_home(monkeypatch):
    import platformdirs

    monkeypatch.delenv("VMC_HOME")
    assert default_home() == Path(platformdirs.user_data_dir("vmc", appauthor=False))


def test_explicit_home_wins(vmc_home, tmp_path):
    assert ProfileStore(tmp_path / "mine").root == tmp_path / "mine" / "profiles"


# -- vmc profiles ... ----------------------------------------------------------------
def test_profiles_path_json(run_cli, vmc_home, tmp_path):
    res = run_cli("profiles", "path", "--json")
    assert res.code == 0, res
    assert res.json() == {"home": str(vmc_home), "profiles": str(vmc_home / "profiles")}
    res = run_cli("profiles", "path", "--home", tmp_path / "other", "--json")
    assert res.json() == {"home": str(tmp_path / "other"), "profiles": str(tmp_path / "other" / "profiles")}
    res = run_cli("profiles", "path")
    assert res.stdout == f"{vmc_home / 'profiles'}\n"


def test_profiles_list_json_empty(run_cli, vmc_home):
    res = run_cli("profiles", "list", "--json")
    assert res.code == 0, res
    assert res.json() == {"home": str(vmc_home), "profiles": [], "unfinished": []}
    assert res.stderr == ""
    assert not vmc_home.exists()


def test_profiles_list_human_empty_says_so_on_stderr(run_cli):
    res = run_cli("profiles", "list")
    assert res.code == 0
    assert res.stdout == ""
    assert "no profiles yet" in res.stderr


def test_profiles_list_and_show_json(run_cli, store):
    make(store, "disc")
    (store.root / ".tmp-half-1").mkdir()
    res = run_cli("profiles", "list", "--json")
    assert res.code == 0, res
    rows = res.json()["profiles"]
    assert [r["name"] for r in rows] == ["disc"]
    assert rows[0]["backend"] == "tiny" and rows[0]["inverted"] is False and rows[0]["loss"] == 0.5
    assert rows[0]["path"] == str(store.path("disc"))
    res = run_cli("profiles", "show", "disc", "--json")
    assert res.code == 0, res
    assert res.json() == store.manifest("disc")


def test_profiles_rm_needs_yes(run_cli, store):
    folder = make(store, "disc")
    res = run_cli("profiles", "rm", "disc", "--json")
    assert res.code == 1, res
    assert res.json()["error"] == "not removing 'disc' without --yes"
    assert res.stderr.startswith("Error: not removing 'disc' without --yes")
    assert "Traceback" not in res.stderr
    assert (folder / MANIFEST).is_file()


@pytest.mark.parametrize("extra", [[], ["--yes"]])
def test_profiles_rm_dry_run_removes_nothing(run_cli, store, extra):
    folder = make(store, "disc")
    before = snapshot(folder)
    res = run_cli("profiles", "rm", "disc", "--dry-run", *extra, "--json")
    assert res.code == 0, res
    assert res.json() == {"name": "disc", "path": str(folder), "removed": False}
    assert snapshot(folder) == before


def test_profiles_rm_yes_removes(run_cli, store):
    folder = make(store, "disc")
    make(store, "keep")
    res = run_cli("profiles", "rm", "disc", "--yes", "--json")
    assert res.code == 0, res
    assert res.json() == {"name": "disc", "path": str(folder), "removed": True}
    assert not folder.exists()
    assert store.names() == ["keep"]


@pytest.mark.parametrize("damage", ["bad toml", "no manifest"])
def test_profiles_rm_removes_a_damaged_profile(run_cli, store, damage):
    folder = make(store, "disc")
    if damage == "bad toml":
        (folder / MANIFEST).write_text("this is [not toml")
    else:
        (folder / MANIFEST).unlink()
    res = run_cli("profiles", "rm", "disc", "--dry-run", "--json")
    assert res.code == 0 and res.json()["removed"] is False, res
    res = run_cli("profiles", "rm", "disc", "--json")
    assert res.code == 1 and res.stderr.startswith("Error: not removing 'disc' without --yes"), res
    res = run_cli("profiles", "rm", "disc", "--yes", "--json")
    assert res.code == 0, res
    assert res.json() == {"name": "disc", "path": str(folder), "removed": True}
    assert not folder.exists()


def test_profiles_list_shows_damaged_profiles(run_cli, store, monkeypatch):
    make(store, "disc")
    bad = make(store, "broken")
    (bad / MANIFEST).write_text("this is [not toml")
    (store.root / "half").mkdir()
    res = run_cli("profiles", "list", "--json")
    assert res.code == 0, res
    rows = {r["name"]: r for r in res.json()["profiles"]}
    assert list(rows) == ["broken", "disc", "half"]
    assert rows["disc"]["damaged"] is None and rows["disc"]["backend"] == "tiny"
    assert "cannot be read" in rows["broken"]["damaged"] and rows["broken"]["backend"] is None
    assert "has no manifest.toml" in rows["half"]["damaged"]
    assert rows["half"]["path"] == str(store.path("half"))
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    res = run_cli("profiles", "list")
    assert res.code == 0, res
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()[1:] if ln.strip()}
    assert set(lines) == {"broken", "disc", "half"}
    assert "DAMAGED" in lines["broken"] and "DAMAGED" in lines["half"] and "DAMAGED" not in lines["disc"]


def test_profiles_show_reads_the_manifest_once(run_cli, store, monkeypatch):
    folder = make(store, "disc")
    calls = []
    real = profiles._read_toml
    monkeypatch.setattr(profiles, "_read_toml", lambda path: calls.append(path) or real(path))
    res = run_cli("profiles", "show", "disc")
    assert res.code == 0, res
    assert res.stdout == (folder / MANIFEST).read_text(encoding="utf-8")
    assert calls == []  # humans get the file's text, not parsed and printed again
    res = run_cli("profiles", "show", "disc", "--json")
    assert res.code == 0 and res.json() == real(folder / MANIFEST), res
    assert calls == [folder / MANIFEST]
    res = run_cli("profiles", "show", "ghost")
    assert res.code == 1 and res.stderr.startswith("Error: no profile named 'ghost'"), res


def test_add_file_copies_nothing_large(store):
    """Adding an inversion swaps in a new folder whose other files are hard links of the old
    ones: the same inode, so a profile with gigabytes of weights is not copied."""
    folder = make(store, "disc")
    inode = (folder / WEIGHTS).stat().st_ino
    store.add_file("disc", INVERSION, {"noise": torch.zeros(2)}, "inversion", {"steps": 3})
    assert (folder / WEIGHTS).stat().st_ino == inode
    assert store.load("disc", WEIGHTS)  # and its checksum still matches
