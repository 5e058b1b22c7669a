"""A fault campaign on the profile store: killed runs, a killed replacement between its two
renames, two tunes of one name at once, writes the file system refuses.

Every command here runs as a process of its own on the tiny backend (a fork of the test process,
:mod:`forked`, which skips the interpreter's start-up), so a SIGKILL is a real one (no cleanup
code runs) and a lock is held by another process. The promises checked afterwards:
every profile ``vmc profiles list`` shows loads (checksums match) and generates, the
listing works, nothing half-written is listed, and what killed runs left behind (hidden
folders holding weights) is gone after the next write.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import forked
import pytest

from vmc_cli.store.profiles import MANIFEST, ProfileStore

pytestmark = pytest.mark.slow  # real subprocesses killed mid-write: minutes in all

FAST = {  # the smallest runs that still go through every write of each command
    "tune": ["--steps", "2", "--backend", "tiny"],
    "invert": ["--steps", "2"],
    "generate": ["--steps", "2", "--invert-steps", "2", "--stages", "keyframes"],
}


def env(home: Path) -> dict:
    return {**os.environ, "VMC_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "VMC_DEBUG": ""}


def vmc(home: Path, *args, before=None):
    return forked.run(args, env(home), before)


def start(home: Path, *args) -> forked.Forked:
    return forked.start(args, env(home))


def hidden(home: Path) -> list[str]:
    """Leftovers of writes in the store (the lock folder lives outside ``profiles/``)."""
    root = home / "profiles"
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.is_dir() else []


def check_whole(home: Path, run_cli, tmp_path: Path, generate: bool = True) -> list[str]:
    """Every listed profile is whole: the JSON listing works, each file matches its checksum,
    and (``generate``) it generates. Returns the names."""
    listing = vmc(home, "profiles", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["profiles"]
    store = ProfileStore(home)
    for row in rows:
        name = row["name"]
        assert not row.get("problem"), row  # nothing half-written is listed as a profile
        manifest = store.manifest(name)
        for filename in manifest["files"]:
            store.load(name, filename, manifest)  # raises on a checksum mismatch
        if generate:
            out = tmp_path / f"check-{name}.mp4"
            r = run_cli("generate", name, "-p", "a cube", "-o", out, *FAST["generate"])
            assert r.code == 0 and out.is_file(), r
    return [row["name"] for row in rows]


# -- killed at random moments ----------------------------------------------------------
def test_sigkills_at_random_moments_leave_only_whole_profiles(clip_path, tmp_path, run_cli, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    ops = {
        "tune": lambda i: ["tune", clip_path, "-p", "a disc", "--name", f"t{i % 3}", "--force", *FAST["tune"]],
        "retune": lambda i: ["tune", clip_path, "-p", "a disc", "--name", "base", "--force", *FAST["tune"]],
        "invert": lambda i: ["invert", "base", *FAST["invert"], "--strength", str(0.5 + 0.1 * (i % 5))],
        "generate": lambda i: ["generate", "base", "-p", "a cube", "-o", tmp_path / f"g{i}.mp4",
                               *FAST["generate"], "--strength", str(0.5 + 0.1 * (i % 5))],
    }
    durations = {}
    for op, args in ops.items():  # one whole run each: how long, and where a kill can land
        began = time.perf_counter()
        r = vmc(home, *args(99))
        assert r.returncode == 0, r.stderr
        durations[op] = time.perf_counter() - began
    rng = random.Random(0)
    kills = 0
    for i in range(8):  # two of each, at random moments (twenty took 2 minutes of a 6-minute suite)
        op = list(ops)[i % len(ops)]
        proc = start(home, *ops[op](i))
        time.sleep(rng.uniform(0.1, 0.8 * durations[op]))  # within the run, whatever the load
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate()
    assert kills >= 5  # the kills land while the commands run, not after (a loaded machine varies)
    names = check_whole(home, run_cli, tmp_path)
    assert "base" in names  # it existed before the campaign; no kill may lose it
    # The next write cleans up after the killed ones (listing already recovers, too).
    assert run_cli("invert", "base", *FAST["invert"]).code == 0
    assert hidden(home) == []


# -- killed between the two renames of a replacement -----------------------------------
def kill_at_second_rename() -> None:
    """In the child: die at the second rename of a replacement, as a SIGKILL would, when the new
    state goes into the place the old one has just left (an .old- folder exists)."""
    real = os.replace

    def replace(src, dst, *a, **kw):
        if Path(src).name.startswith(".tmp-") and any(p.name.startswith(".old-") for p in Path(src).parent.iterdir()):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **kw)

    os.replace = replace


def run_killed_at_second_rename(home: Path, *args):
    return vmc(home, *args, before=kill_at_second_rename)


def profile_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", ["tune", "invert"])
def test_replacement_killed_between_renames_brings_the_old_profile_back(command, clip_path, tmp_path, run_cli,
                                                                        monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "disc", *FAST["tune"]).code == 0
    folder = home / "profiles" / "disc"
    before = profile_files(folder)
    args = (["tune", clip_path, "-p", "a disc", "--name", "disc", "--force", "--seed", "7", *FAST["tune"]]
            if command == "tune" else ["invert", "disc", *FAST["invert"]])
    r = run_killed_at_second_rename(home, *args)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not folder.exists()  # the window is real: the profile has moved aside
    assert any(name.startswith(".old-disc~") for name in hidden(home))
    assert check_whole(home, run_cli, tmp_path, generate=False) == ["disc"]  # listing puts it back
    assert profile_files(folder) == before  # the old profile, byte for byte
    assert hidden(home) == []
    r = run_cli("generate", "disc", "-p", "a cube", "-o", tmp_path / "after.mp4", *FAST["generate"])
    assert r.code == 0, r


def test_generate_finds_a_profile_left_between_renames(clip_path, tmp_path, run_cli, monkeypatch):
    """Not only listing: reading a profile by name puts it back too."""
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "disc", *FAST["tune"]).code == 0
    r = run_killed_at_second_rename(home, "invert", "disc", *FAST["invert"])
    assert r.returncode == -signal.SIGKILL
    r = run_cli("generate", "disc", "-p", "a cube", "-o", tmp_path / "after.mp4", *FAST["generate"])
    assert r.code == 0, r


def test_leftovers_of_killed_writes_are_cleaned_by_the_next_write(tmp_path):
    import torch

    store = ProfileStore(tmp_path / "home")
    store.create("disc", {"schema": 1}, {"w.safetensors": {"w": torch.ones(3)}})
    root = store.root
    for leftover in (".tmp-disc~0a1b2c3d", ".tmp-other-name~00ff", ".old-disc~12345678", ".tmp-disc-k2j4h5g6"):
        (root / leftover).mkdir()
        (root / leftover / "weights.safetensors").write_bytes(b"x" * 1000)
    (root / ".old-gone~abcdef01" / "gone").mkdir(parents=True)  # a killed replacement of "gone"
    (root / ".old-gone~abcdef01" / "gone" / MANIFEST).write_text("schema = 1\n")
    store.create("another", {"schema": 1}, {"w.safetensors": {"w": torch.zeros(3)}})
    assert sorted(p.name for p in root.iterdir()) == ["another", "disc", "gone"]  # all cleaned, gone is back
    assert (root / "gone" / MANIFEST).read_text() == "schema = 1\n"


def hold_lock(home: Path, name: str) -> subprocess.Popen:
    """Another process holding ``name``'s write lock for a minute (it prints "held" once it has it)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from vmc_cli.store.profiles import ProfileStore
        with ProfileStore({str(home)!r}).lock({name!r}):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)


def test_a_live_writers_folder_is_not_cleaned(tmp_path):
    """Recovery only touches names no process holds: a tune in progress keeps its folder."""
    home = tmp_path / "home"
    store = ProfileStore(home)
    store.root.mkdir(parents=True)
    (store.root / ".tmp-busy~0123abcd").mkdir()
    holder = hold_lock(home, "busy")
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.names() == []
        assert (store.root / ".tmp-busy~0123abcd").is_dir()
    finally:
        holder.kill()
        holder.wait()
    store.names()  # the holder is gone: now it is a leftover
    assert not (store.root / ".tmp-busy~0123abcd").exists()


# -- two tunes of one name at once -------------------------------------------------------
@pytest.mark.parametrize("force", [False, True])
def test_two_tunes_of_one_name_one_wins(force, clip_path, tmp_path, run_cli, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    extra = ["--force"] if force else []
    procs = [start(home, "tune", clip_path, "-p", "a disc", "--name", "same", "--seed", str(seed),
                   *FAST["tune"], "--steps", "6", *extra) for seed in (1, 2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    code, out, err = next(r for r in results if r[0] == 1)
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: profile 'same' ") and len(lines) == 2 and lines[1].startswith("Hint:"), err
    assert ("is being written by another vmc process" in lines[0]) or ("already exists" in lines[0] and not force)
    winner = next(o for c, o, _ in results if c == 0)
    assert "same" in winner
    assert check_whole(home, run_cli, tmp_path) == ["same"]
    assert hidden(home) == []


def test_a_busy_name_is_refused_before_any_work(clip_path, tmp_path, monkeypatch):
    """The second tune stops at once, before loading a model, with exit code 1."""
    home = tmp_path / "home"
    holder = hold_lock(home, "same")
    try:
        assert holder.stdout.readline().strip() == "held"
        r = vmc(home, "tune", clip_path, "-p", "a disc", "--name", "same", *FAST["tune"])
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "Error: profile 'same' is being written by another vmc process right now"
    assert "key-frame" not in r.stderr and "tuning" not in r.stderr.lower()  # no work was started


# -- writes the file system refuses ----------------------------------------------------------
def limit_file_size(limit: int):
    def apply():  # in the child: files may not grow past ``limit``; EFBIG instead of SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_refused_write_is_one_line_and_loses_nothing(clip_path, tmp_path, run_cli, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "disc", *FAST["tune"]).code == 0
    before = profile_files(home / "profiles" / "disc")
    cases = {
        "new": ["tune", clip_path, "-p", "a disc", "--name", "other", *FAST["tune"]],
        "replace": ["tune", clip_path, "-p", "a disc", "--name", "disc", "--force", "--seed", "3", *FAST["tune"]],
        "invert": ["invert", "disc", *FAST["invert"]],
    }
    for case, args in cases.items():
        r = vmc(home, *args, before=limit_file_size(64 * 1024))  # the tensor files are larger
        assert r.returncode == 1, (case, r.stderr)
        lines = r.stderr.strip().splitlines()  # progress bars, then the error and its hint
        assert [line for line in lines if line.startswith("Error")] == [lines[-2]], (case, r.stderr)
        lines = lines[-2:]
        assert lines[1].startswith("Hint:"), (case, r.stderr)
        assert lines[0].startswith("Error: cannot write profile ") and lines[0].endswith(
            ": File too large; nothing was changed"), (case, lines[0])
        assert r.stdout == ""
        assert sorted(p.name for p in (home / "profiles").iterdir()) == ["disc"], case  # nothing partial
        assert profile_files(home / "profiles" / "disc") == before, case  # nothing lost


def test_generate_still_writes_the_video_when_the_inversion_cannot_be_saved(clip_path, tmp_path, run_cli,
                                                                              monkeypatch):
    """generate keeps its inversion as a cache only: a refused save is a note, not a failure."""
    home = tmp_path / "home"
    monkeypatch.setenv("VMC_HOME", str(home))
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "disc", *FAST["tune"]).code == 0
    before = profile_files(home / "profiles" / "disc")
    out = tmp_path / "out.gif"  # a GIF of 8 64x40 frames is far below the limit
    r = vmc(home, "generate", "disc", "-p", "a cube", "-o", out, *FAST["generate"],
            before=limit_file_size(128 * 1024))
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    assert "the inversion was not saved into the profile (cannot write profile 'disc'" in r.stderr
    assert profile_files(home / "profiles" / "disc") == before
