"""Resumable tuning: checkpoints in the staging area, --resume, profiles list / clean."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vmc_cli.store.checkpoints as checkpoints
from vmc_cli.store.profiles import ProfileStore

pytestmark = pytest.mark.slow  # real tunes in subprocesses, one killed with SIGKILL

TUNE = ("--steps", "8", "--checkpoint-every", "2", "--lr", "1e-2", "--seed", "3", "--backend", "tiny")


def weights(home: Path, name: str) -> dict:
    return load_file(home / "profiles" / name / "weights.safetensors")


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def interrupt_after(monkeypatch, step: int):
    """Make the tune stop (as Ctrl-C does) right after saving the checkpoint of ``step``."""
    real = checkpoints.Checkpointer.save

    def save(self, done, *args, **kw):
        real(self, done, *args, **kw)
        if done == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.Checkpointer, "save", save)


def test_resumed_tune_is_bit_identical(run_cli, clip_path, vmc_home, monkeypatch):
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "whole", *TUNE).code == 0
    assert not (vmc_home / "staging" / "whole").exists()  # a finished tune leaves no staging data
    with monkeypatch.context() as m:
        interrupt_after(m, 4)
        assert run_cli("tune", clip_path, "-p", "a disc", "--name", "cut", *TUNE).code == 130  # as after Ctrl-C
    assert not (vmc_home / "profiles" / "cut").exists()
    meta = json.loads((vmc_home / "staging" / "cut" / "checkpoint.json").read_text())
    assert meta["step"] == 4 and len(meta["losses"]) == 4
    r = run_cli("tune", clip_path, "-p", "a disc", "--name", "cut", *TUNE, "--resume", "--json")
    assert r.code == 0, r
    assert r.json()["resumed_at_step"] == 4
    assert same(weights(vmc_home, "cut"), weights(vmc_home, "whole"))
    store = ProfileStore(vmc_home)
    assert store.manifest("cut")["loss"] == store.manifest("whole")["loss"]  # the losses before the cut are kept
    assert store.manifest("cut")["tuning"]["resumed_at_step"] == 4
    assert not (vmc_home / "staging" / "cut").exists()
    # without the checkpoint's state the result differs: the test can tell
    with monkeypatch.context() as m:
        interrupt_after(m, 4)
        assert run_cli("tune", clip_path, "-p", "a disc", "--name", "cut2", *TUNE).code == 130  # as after Ctrl-C
    real_restore = __import__("vmc_cli.method.tuning", fromlist=["_restore_state"])._restore_state

    def weights_only(meta, tensors, targets, optimizer, gen, scaler):  # drops AdamW and RNG state
        with torch.no_grad():
            for n, p in targets.items():
                p.copy_(tensors[f"weight.{n}"])
    monkeypatch.setattr("vmc_cli.method.tuning._restore_state", weights_only)
    assert run_cli("tune", clip_path, "-p", "a disc", "--name", "cut2", *TUNE, "--resume").code == 0
    assert not same(weights(vmc_home, "cut2"), weights(vmc_home, "whole"))
    assert real_restore is not weights_only


def test_resume_after_a_real_sigkill(clip_path, tmp_path):
    """Each tune a process of its own (a fork of this one, :mod:`forked`), the middle one killed."""
    import forked

    home = tmp_path / "home"
    env = {**os.environ, "VMC_HOME": str(home), "HF_HUB_OFFLINE": "1"}

    def tune(name, *extra, wait=True):
        args = ["tune", clip_path, "-p", "a disc", "--name", name, *TUNE, *extra]
        return forked.run(args, env) if wait else forked.start(args, env)

    assert tune("whole").returncode == 0
    proc = tune("cut", wait=False)
    meta = home / "staging" / "cut" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if meta.is_file() and json.loads(meta.read_text())["step"] >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (home / "profiles" / "cut").exists()
    r = tune("cut", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming 'cut' at step" in r.stderr
    assert same(weights(home, "cut"), weights(home, "whole"))


def test_resume_refuses_other_settings_and_missing_checkpoints(run_cli, clip_path, vmc_home, monkeypatch):
    r = run_cli("tune", clip_path, "-p", "a disc", "--name", "none", *TUNE, "--resume")
    assert r.code == 1 and "no unfinished tune of 'none'" in r.stderr
    with monkeypatch.context() as m:
        interrupt_after(m, 2)
        r = run_cli("tune", clip_path, "-p", "a disc", "--name", "cut", *TUNE)
        assert r.code == 130  # as after Ctrl-C
        assert "interrupted; the tuning state of 'cut' at step 2 of 8 is kept" in r.stderr
    r = run_cli("tune", clip_path, "-p", "a disc", "--name", "cut", *TUNE, "--lr", "1e-3", "--seed", "4", "--resume")
    assert r.code == 1
    line = r.stderr.splitlines()[0]
    assert "was made with other settings" in line and "--lr 0.01 (now 0.001)" in line and "--seed 3 (now 4)" in line
    r = run_cli("tune", clip_path, "-p", "a spinning disc", "--name", "cut", *TUNE, "--resume")
    assert r.code == 1 and "the prompt (or --keep-prompt) differs" in r.stderr
    assert (vmc_home / "staging" / "cut" / "checkpoint.json").is_file()  # a refused resume keeps it


def test_profiles_list_and_clean_unfinished(run_cli, clip_path, vmc_home, monkeypatch):
    with monkeypatch.context() as m:
        interrupt_after(m, 2)
        for name in ("u1", "u2"):
            assert run_cli("tune", clip_path, "-p", "a disc", "--name", name, *TUNE).code == 130  # as after Ctrl-C
    listing = run_cli("profiles", "list", "--json").json()
    assert [(u["name"], u["step"], u["steps"]) for u in listing["unfinished"]] == [("u1", 2, 8), ("u2", 2, 8)]
    assert listing["profiles"] == []
    r = run_cli("profiles", "list")
    assert "unfinished tunes: u1 (step 2 of 8), u2 (step 2 of 8)" in r.stderr
    r = run_cli("profiles", "clean")
    assert r.code == 1 and "without --yes" in r.stderr
    r = run_cli("profiles", "clean", "--dry-run")
    assert r.code == 0 and "would remove" in r.stdout and (vmc_home / "staging" / "u1").is_dir()
    r = run_cli("profiles", "clean", "u1", "--yes", "--json")
    assert r.code == 0 and [u["name"] for u in r.json()["unfinished"] if u["removed"]] == ["u1"]
    assert not (vmc_home / "staging" / "u1").exists() and (vmc_home / "staging" / "u2").is_dir()
    r = run_cli("profiles", "clean", "ghost", "--yes")
    assert r.code == 1 and "no unfinished tune named 'ghost'" in r.stderr
    assert run_cli("profiles", "clean", "--yes").code == 0
    assert run_cli("profiles", "list", "--json").json()["unfinished"] == []


def test_checkpoints_replace_each_other(run_cli, clip_path, vmc_home, monkeypatch):
    """One tensor file at a time, pointed to by the JSON with its checksum; a new tune of the
    name without --resume says it replaces the unfinished one."""
    with monkeypatch.context() as m:
        interrupt_after(m, 6)
        assert run_cli("tune", clip_path, "-p", "a disc", "--name", "c", *TUNE).code == 130  # as after Ctrl-C
    folder = vmc_home / "staging" / "c"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-0000006.safetensors", "checkpoint.json"]
    r = run_cli("tune", clip_path, "-p", "a disc", "--name", "c", *TUNE)
    assert r.code == 0 and "an unfinished tune of 'c' (step 6 of 8) is replaced" in r.stderr
    assert not folder.exists()
