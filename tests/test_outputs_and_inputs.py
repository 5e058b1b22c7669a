"""Outputs go where the user said (devices and FIFOs written through, symlinks followed),
inputs are read faithfully (16-bit frames), and what the store holds is judged honestly
(a store that is a file, a cut-down manifest, a garbage checkpoint)."""

from __future__ import annotations

import ast
import io
import json
import os
import stat
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vmc_cli.store.profiles import MANIFEST

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "disc-is-moving"
FAST = ("--stages", "keyframes", "--steps", "1", "--invert-steps", "1")


@pytest.fixture(scope="module")
def shared_profile(tmp_path_factory, clip_path) -> Path:
    """A real tiny profile (1 step), tuned once for this module."""
    from conftest import tune_tiny_profile

    path = tune_tiny_profile(tmp_path_factory.mktemp("outputs-home"), clip_path)
    assert path.name == PROFILE
    return path


@pytest.fixture
def profile(shared_profile, vmc_home) -> Path:
    import shutil

    dest = vmc_home / "profiles" / PROFILE
    shutil.copytree(shared_profile, dest)
    return dest


def frames(n: int = 6) -> np.ndarray:
    from make_clip import moving_disc

    return moving_disc(n, 64, 40)


def decoded(data: bytes, tmp_path: Path, suffix: str = ".mp4") -> np.ndarray:
    from vmc_cli.io.video import read_frames

    path = tmp_path / f"decoded{suffix}"
    path.write_bytes(data)
    return read_frames(path)


# -- outputs: devices, FIFOs, stdout, symlinks ----------------------------------------
# The tests write to device nodes of their own (made with mknod), never to the machine's
# /dev/null or /dev/full: run as root against a regression, they would replace those.
def device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device node like /dev/null (minor 3) or /dev/full (minor 7), in tmp_path."""
    node = tmp_path / name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here ({exc})")
    return node


def test_a_character_device_is_written_through_not_replaced(tmp_path):
    from vmc_cli.io.video import write_video

    node = device(tmp_path, "null", 3)
    link = tmp_path / "null-link.gif"
    link.symlink_to(node)
    write_video(frames(), node)
    write_video(frames(), link)
    assert stat.S_ISCHR(node.stat().st_mode) and stat.S_ISCHR(os.stat(link).st_mode)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "null-link.gif"]  # no temp files left


def test_a_full_device_is_an_error_and_stays_a_device(tmp_path):
    from vmc_cli.errors import VmcError
    from vmc_cli.io.video import write_video

    full = device(tmp_path, "full", 7)
    with pytest.raises(VmcError, match="cannot write .*full: No space left"):
        write_video(frames(), full)
    assert stat.S_ISCHR(full.stat().st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_a_fifo_is_written_through(tmp_path):
    from vmc_cli.io.video import write_video

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    def read():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    reader = threading.Thread(target=read, daemon=True)  # a regression must fail the test, not hang it
    reader.start()
    write_video(frames(), fifo, "mp4")
    reader.join(30)
    assert not reader.is_alive() and stat.S_ISFIFO(fifo.stat().st_mode)
    assert decoded(got["data"], tmp_path).shape == (6, 40, 64, 3)


def test_dev_stdout_is_this_process_stdout(tmp_path, monkeypatch):
    from vmc_cli.io.video import stream_of, write_video

    assert stream_of("/dev/stdout") == stream_of("/dev/fd/1") == stream_of("/proc/self/fd/1") == 1
    out = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", out)
    # the same path through /proc (a regression cannot replace anything there, unlike /dev/stdout)
    assert write_video(frames(), "/proc/self/fd/1", "gif") == Path("/proc/self/fd/1")
    out.flush()
    assert decoded(out.buffer.getvalue(), tmp_path, ".gif").shape == (6, 40, 64, 3)


def test_generate_follows_symlinks_and_writes_through_devices(run_cli, profile, tmp_path):
    target = tmp_path / "videos" / "real.mp4"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    dangling = tmp_path / "key.gif"
    dangling.symlink_to(tmp_path / "videos" / "key-target.gif")
    fifo = tmp_path / "pairs"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.update(data=open(fifo, "rb").read()), daemon=True)
    reader.start()
    res = run_cli("generate", PROFILE, "-p", "a cube", "-o", link, "--keyframes-out", dangling,
                  "--side-by-side", fifo, *FAST, "--json")
    reader.join(30)
    assert res.code == 0 and not reader.is_alive(), res
    assert link.is_symlink() and dangling.is_symlink()  # the links are kept...
    assert decoded(target.read_bytes(), tmp_path).shape[0] == 8  # ...and their targets written
    assert (tmp_path / "videos" / "key-target.gif").is_file()
    assert stat.S_ISFIFO(fifo.stat().st_mode) and decoded(got["data"], tmp_path).shape[0] == 8
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["key-target.gif", "real.mp4"]
    assert res.json()["videos"][0]["path"] == str(link)


def test_generate_to_a_null_device(run_cli, profile, tmp_path):
    null = device(tmp_path, "null", 3)
    res = run_cli("generate", PROFILE, "-p", "a cube", "-o", null, "--keyframes-out", null, *FAST, "--json")
    assert res.code == 0, res
    assert stat.S_ISCHR(null.stat().st_mode)


def test_eval_plot_follows_a_symlink(run_cli, tmp_path, clip_path):
    target = tmp_path / "plots" / "p.png"
    target.parent.mkdir()
    link = tmp_path / "p.png"
    link.symlink_to(target)
    res = run_cli("eval", clip_path, "--source", clip_path, "--no-clip", "--plot", link, "--json")
    assert res.code == 0, res
    assert link.is_symlink() and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_sampling(run_cli, profile, tmp_path, monkeypatch):
    import vmc_cli.jobs

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setattr(vmc_cli.jobs.Runtime, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    res = run_cli("generate", PROFILE, "-p", "a cube", "-o", folder / "x.mp4", *FAST, "--json")
    assert res.code == 1 and "cannot write -o" in res.json()["error"], res


# -- inputs --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["grey", "rgb", "rgba"])
def test_16_bit_frames_are_scaled_to_8_bits(tmp_path, mode):
    import cv2

    from vmc_cli.io.clips import read_clip

    ramp = np.linspace(0, 65535, 40 * 64).reshape(40, 64)
    rgb = np.stack([ramp, ramp[::-1], np.full_like(ramp, 20000)], -1)
    wanted = {"grey": np.repeat(ramp[..., None], 3, -1), "rgb": rgb, "rgba": rgb}[mode]
    for i in range(3):
        image = {"grey": ramp, "rgb": rgb[..., ::-1],  # cv2 writes BGR(A)
                 "rgba": np.concatenate([rgb[..., ::-1], np.full_like(ramp, 65535)[..., None]], -1)}[mode]
        assert cv2.imwrite(str(tmp_path / f"{i}.png"), np.round(image).astype(np.uint16))
    clip = read_clip(tmp_path)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (3, 40, 64, 3)
    assert np.abs(clip.frames[0].astype(int) - np.round(wanted / 257)).max() <= 1
    assert len(np.unique(clip.frames[0][..., 0])) > 200  # a ramp, not saturated black and white


# -- the store -----------------------------------------------------------------------
@pytest.mark.parametrize("under", [False, True])
def test_a_store_that_is_a_file_is_refused_by_every_command(run_cli, tmp_path, monkeypatch, under):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("VMC_HOME", str(home / "sub" if under else home))
    for args in (["profiles", "list"], ["profiles", "path"], ["profiles", "clean", "--yes"]):
        res = run_cli(*args, "--json")
        assert res.code == 1 and "not a folder" in res.json()["error"], res
        assert "VMC_HOME" in res.json()["hint"]
    assert home.read_text() == "not a folder"


def test_a_cut_down_manifest_is_damaged(run_cli, profile, tmp_path):
    (profile / MANIFEST).write_text("schema = 1\n")
    rows = run_cli("profiles", "list", "--json").json()["profiles"]
    assert rows[0]["name"] == PROFILE and "damaged" in rows[0]["damaged"] and "no backend" in rows[0]["damaged"]
    for args in (["profiles", "show", PROFILE], ["profiles", "show", PROFILE, "--json"],
                 ["generate", PROFILE, "-p", "a cube", "-o", tmp_path / "o.mp4"], ["invert", PROFILE]):
        res = run_cli(*args)
        assert res.code == 1, res
        assert res.stderr.startswith(f"Error: profile {PROFILE!r} is damaged"), res
        assert f"vmc profiles rm {PROFILE} --yes" in res.stderr and "None" not in res.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"step": "x"}', '{"schema": 1}'])
def test_a_garbage_checkpoint_is_marked_damaged_and_cleaned(run_cli, vmc_home, clip_path, text, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps the message at the terminal's width
    staging = vmc_home / "staging" / "junk"
    staging.mkdir(parents=True)
    (staging / "checkpoint.json").write_text(text)
    res = run_cli("profiles", "list", "--json")
    [row] = res.json()["unfinished"]
    assert row["name"] == "junk" and row["damaged"] and "checkpoint.json" in row["damaged"]
    human = run_cli("profiles", "list")
    assert "--resume" not in human.stderr and "step None" not in human.stderr
    assert "damaged" in human.stderr and "vmc profiles clean junk --yes" in human.stderr
    res = run_cli("tune", clip_path, "-p", "a disc", "--name", "junk", "--resume", "--steps", "1", "--json")
    assert res.code == 1 and "is damaged" in res.json()["error"] and "clean junk" in res.json()["hint"], res
    res = run_cli("profiles", "clean", "--yes", "--json")
    assert res.code == 0 and res.json()["unfinished"][0]["removed"], res
    assert not staging.exists()


def test_every_error_raised_has_a_hint():
    """Each ``VmcError(...)`` in vmc and its backends says what to do (a second argument or
    ``hint=``); the shapes backend is maintained separately and left out."""
    missing = []
    for path in [*sorted((ROOT / "vmc_cli").rglob("*.py")), *sorted((ROOT / "backends").rglob("*.py"))]:
        if "vmc_shapes" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in ("VmcError", "StoreBusy") and len(node.args) < 2 and not any(
                        k.arg == "hint" for k in node.keywords):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == []


def test_an_error_without_a_hint_still_gets_one(run_cli, monkeypatch):
    import vmc_cli.models.plugins
    from vmc_cli.errors import VmcError

    def boom():
        raise VmcError("a plugin's own error")

    monkeypatch.setattr(vmc_cli.models.plugins, "get_backends", boom)
    res = run_cli("backends", "--json")
    assert res.code == 1 and res.json() == {"error": "a plugin's own error",
                                            "hint": "see `vmc backends --help` for what each option takes", "code": 1}
    assert res.stderr.splitlines() == ["Error: a plugin's own error",
                                       "Hint: see `vmc backends --help` for what each option takes"]


@pytest.mark.parametrize("option", ["--steps", "--invert-steps"])
def test_more_steps_than_the_schedule_is_one_clean_error(run_cli, profile, tmp_path, option):
    res = run_cli("generate", PROFILE, "-p", "a cube", "-o", tmp_path / "o.mp4", *FAST, option, "5000", "--json")
    assert res.code == 1, res
    assert res.json()["error"] == f"{option} 5000 is more than the 1000 timesteps of tiny's schedule"
    assert not (tmp_path / "o.mp4").exists() and "ValueError" not in res.stderr


def test_a_one_frame_clip_is_one_frame(run_cli, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(tmp_path / "0.png")
    res = run_cli("tune", tmp_path, "-p", "a disc", "--json")
    assert res.code == 1 and "the clip has 1 frame, but 8 frames" in res.json()["error"], res


def test_json_error_document_is_the_only_stdout(run_cli):
    res = run_cli("profiles", "show", "ghost", "--json")
    assert res.code == 1
    assert json.loads(res.stdout)["error"].startswith("no profile named 'ghost'")
    assert res.stdout.strip().count("\n") == 0
