"""A corpus of bad and odd inputs, each run through the real CLI (``vmc_cli.cli.main``).

Every case must be refused the same way: exit code 1 (2 for a usage error), one ``Error:``
line naming the problem and one ``Hint:`` line on stderr, no traceback, exactly one JSON
document on stdout with ``--json`` (``{"error", "hint", "code"}``), nothing new in the
profile store, no file written or changed anywhere, and no model loaded: each input is
refused before any work starts (loading a model or tracking points fails the test).

Placeholders: {clip} a 12-frame video, {one} a folder holding one frame, {text} a text
file, {audio} an audio-only file, {bin} a file that is not UTF-8, {dir} an empty folder,
{tmp} the test's folder, {out} an output path there (never created), {profile} a tuned
profile, {ro} a folder this process cannot write into (the case is skipped when root can).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

PROFILE = "disc-is-moving"
SKIP_AS_ROOT = "{ro}"

# (command line, a fragment of the Error line, exit code)
TUNE = [
    (["--frames", "1"], "--frames must be at least 2", 1),
    (["--frames", "0"], "--frames must be at least 2", 1),
    (["--frames", "-3"], "--frames must be at least 2", 1),
    (["--stride", "0"], "--stride must be at least 1", 1),
    (["--stride", "-2"], "--stride must be at least 1", 1),
    (["--start", "-1"], "--start '-1'", 1),
    (["--start", "nans"], "--start 'nans'", 1),
    (["--start", "infs"], "--start 'infs'", 1),
    (["--start", "-1s"], "--start '-1s'", 1),
    (["--start", "abc"], "--start 'abc'", 1),
    (["--start", "99s"], "past the end", 1),
    (["--start", "100"], "the clip has 12 frames", 1),
    (["--frames", "40"], "the clip has 12 frames", 1),
    (["--frames", "99999999999"], "the clip has 12 frames", 1),
    (["--fps", "0"], "--fps", 1),
    (["--fps", "-4"], "--fps", 1),
    (["--fps", "nan"], "--fps", 1),
    (["--fps", "inf"], "--fps", 1),
    (["--fps", "1e9"], "--fps", 1),
    (["--width", "0"], "--width", 1),
    (["--height", "-5"], "--height", 1),
    (["--width", "100000"], "--width", 1),
    (["--name", ""], "invalid profile name ''", 1),
    (["--name", "../x"], "invalid profile name", 1),
    (["--name", "a b"], "invalid profile name", 1),
    (["--name", "-"], "invalid profile name", 1),
    (["--steps", "0"], "--steps must be at least 1", 1),
    (["--steps", "-1"], "--steps must be at least 1", 1),
    (["--lr", "-1"], "--lr must be a positive number", 1),
    (["--lr", "0"], "--lr must be a positive number", 1),
    (["--lr", "nan"], "--lr must be a positive number", 1),
    (["--lr", "inf"], "--lr must be a positive number", 1),
    (["--loss", "bogus"], "unknown loss", 1),
    (["--target", "["], "not a valid regular expression", 1),
    (["--timesteps", "5:1"], "--timesteps", 1),
    (["--timesteps", "x"], "--timesteps", 1),
    (["--timesteps", "-5:10"], "--timesteps", 1),
    (["--residual-stride", "0"], "--residual-stride", 1),
    (["--residual-stride", "8"], "--residual-stride", 1),
    (["--checkpoint-every", "-1"], "--checkpoint-every", 1),
    (["--seed", "-1"], "--seed", 1),
    (["--seed", str(2**64)], "--seed", 1),
    (["--crop", "bogus"], "unknown --crop", 1),
    (["--device", "bogus"], "unknown --device", 1),
    (["--dtype", "bogus"], "unknown --dtype", 1),
    (["--backend", "nope"], "unknown backend", 1),
    (["--resume"], "no unfinished tune", 1),
    (["--steps", "many"], "--steps", 2),
    (["--bogus"], "--bogus", 2),
]
TUNE = [(["tune", "{clip}", "-p", "a ball is rolling", *args], fragment, code) for args, fragment, code in TUNE] + [
    (["tune", "{clip}", "-p", ""], "--prompt is empty", 1),
    (["tune", "{clip}", "-p", "   "], "--prompt is empty", 1),
    (["tune", "{clip}"], "--prompt", 2),
    (["tune", "{tmp}/missing.mp4", "-p", "a disc"], "no such file", 1),
    (["tune", "{dir}", "-p", "a disc"], "holds no images", 1),
    (["tune", "{text}", "-p", "a disc"], "cannot read", 1),
    (["tune", "{audio}", "-p", "a disc"], "has no video stream", 1),
    (["tune", "{one}", "-p", "a disc"], "the clip has 1 frame,", 1),
    (["tune", "{tmp}/*.nothing", "-p", "a disc"], "no images match", 1),
    (["tune", "{clip}", "-p", "a disc", "--home", "{text}"], "is a file, not a folder", 1),
]

GENERATE = [
    (["--guidance", "nan"], "--guidance must be a finite number", 1),
    (["--guidance", "inf"], "--guidance must be a finite number", 1),
    (["--guidance", "-inf"], "--guidance must be a finite number", 1),
    (["--strength", "0"], "--strength", 1),
    (["--strength", "1.5"], "--strength", 1),
    (["--strength", "nan"], "--strength", 1),
    (["--motion-scale", "-1"], "--motion-scale", 1),
    (["--motion-scale", "nan"], "--motion-scale", 1),
    (["--motion-scale", "inf"], "--motion-scale", 1),
    (["--fps", "0"], "--fps", 1),
    (["--fps", "-1"], "--fps", 1),
    (["--fps", "nan"], "--fps", 1),
    (["--fps", "inf"], "--fps", 1),
    (["--fps", "1e9"], "--fps", 1),
    (["--steps", "0"], "--steps must be at least 1", 1),
    (["--invert-steps", "-1"], "--invert-steps must be at least 1", 1),
    (["--seed", "-1"], "--seed", 1),
    (["--init", "bogus"], "unknown --init", 1),
    (["--stages", "bogus"], "--stages", 1),
    (["--stages", ""], "--stages", 1),
    (["--stages", ","], "--stages", 1),
    (["--device", "bogus"], "unknown --device", 1),
    (["--dtype", "bogus"], "unknown --dtype", 1),
    (["--backend", "nope"], "unknown backend", 1),
    (["--format", "bogus"], "unknown format", 1),
    (["--keyframes-out", "{tmp}/k.avi"], "cannot tell the format", 1),
    (["--keyframes-out", "/proc/nope/k.gif"], "cannot write --keyframes-out", 1),
    (["--keyframes-out", "{tmp}"], "not a folder of frames written by vmc", 1),
    (["--keyframes-out", "{tmp}/taken.png"], "not a folder of frames written by vmc", 1),
    (["--side-by-side", "/proc/nope/s.gif"], "cannot write --side-by-side", 1),
    (["--keyframes-out", "{ro}/k.gif"], "cannot write --keyframes-out", 1),
    (["--option", "adapter=x"], "takes no option 'adapter'", 1),
    (["--keyframes-out", "{out}"], "the same file as -o", 1),
    (["--side-by-side", "{tmp}/s.gif", "--keyframes-out", "{tmp}/s.gif"], "the same file as", 1),
    (["--guidance", "lots"], "--guidance", 2),
]
GENERATE = [(["generate", "{profile}", "-p", "a red cube", "-o", "{out}", *args], fragment, code)
            for args, fragment, code in GENERATE] + [
    (["generate", "{profile}", "-p", "a cube", "-o", "{tmp}/out.avi"], "cannot tell the format", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{tmp}"], "not a folder of frames written by vmc", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{tmp}", "--format", "mp4"], "is a folder", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", ""], "-o", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "/proc/nope/x.mp4"], "cannot write -o", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{tmp}/" + "x" * 250 + ".mp4"], "too long", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{ro}/x.mp4"], "cannot write -o", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{text}/x.mp4"], "is not a folder", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{tmp}/pipe", "--format", "png"], "stream", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "/dev/stdout"], "both write to stdout", 1),
    (["generate", "{profile}", "-p", "", "-o", "{out}"], "--prompt is empty", 1),
    (["generate", "{profile}", "-o", "{out}"], "exactly one of", 1),
    (["generate", "{profile}", "-p", "a", "--prompt-file", "{text}", "-o", "{out}"], "exactly one of", 1),
    (["generate", "{profile}", "--prompt-file", "{dir}", "-o", "{tmp}/batch"], "is a folder", 1),
    (["generate", "{profile}", "--prompt-file", "{bin}", "-o", "{tmp}/batch"], "not UTF-8", 1),
    (["generate", "{profile}", "--prompt-file", "{tmp}/none.txt", "-o", "{tmp}/batch"], "no such file", 1),
    (["generate", "{profile}", "--prompt-file", "{text}", "-o", "{text}"], "is a file", 1),
    (["generate", "ghost", "-p", "a cube", "-o", "{out}"], "no profile named 'ghost'", 1),
    (["generate", "../x", "-p", "a cube", "-o", "{out}"], "invalid profile name", 1),
    (["generate", "{profile}", "-p", "a cube", "-o", "{out}", "--home", "{text}"], "is a file, not a folder", 1),
]

INVERT = [
    (["invert", "{profile}", "--steps", "0"], "--steps must be at least 1", 1),
    (["invert", "{profile}", "--strength", "0"], "--strength", 1),
    (["invert", "{profile}", "--strength", "nan"], "--strength", 1),
    (["invert", "{profile}", "--motion-scale", "nan"], "--motion-scale", 1),
    (["invert", "{profile}", "--motion-scale", "-2"], "--motion-scale", 1),
    (["invert", "ghost"], "no profile named", 1),
    (["invert"], "profile", 2),
]

EVAL = [
    (["eval", "{tmp}/gone.mp4", "--no-clip", "--source", "{clip}"], "no such file", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{tmp}/gone.mp4"], "no such file", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{audio}"], "has no video stream", 1),
    (["eval", "{audio}", "--no-clip", "--source", "{clip}"], "has no video stream", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{text}"], "cannot read", 1),
    (["eval", "{clip}", "--no-clip"], "--no-clip", 1),
    (["eval", "{clip}", "--source", "{clip}"], "--prompt", 1),
    (["eval", "{clip}", "-p", "a disc", "--keyframes", "0"], "--keyframes", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--plot", "{tmp}/p.jpg"], "PNG", 1),
    (["eval", "{clip}", "--no-clip", "--plot", "{tmp}/p.png"], "--source", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--plot", "/proc/nope/p.png"], "cannot write --plot", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--plot", "{ro}/p.png"], "cannot write --plot", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--plot", "{tmp}/taken.png"], "is a folder", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--plot", "{text}/p.png"], "is not a folder", 1),
    (["eval", "{clip}", "--no-clip", "--source", "{clip}", "--device", "bogus"], "--device", 1),
    (["eval"], "video", 2),
]

PROFILES = [
    (["profiles", "show", "ghost"], "no profile named", 1),
    (["profiles", "show", "a/b"], "invalid profile name", 1),
    (["profiles", "rm", "{profile}"], "without --yes", 1),
    (["profiles", "rm", "../x", "--yes"], "invalid profile name", 1),
    (["profiles", "clean", "ghost", "--yes"], "no unfinished tune named", 1),
    (["profiles", "list", "--home", "{text}"], "is a file, not a folder", 1),
    (["profiles", "list", "--home", "{text}/sub"], "a file, not a folder", 1),
    (["profiles", "path", "--home", "{text}"], "is a file, not a folder", 1),
    (["profiles", "bogus"], "bogus", 2),
    (["nonsense"], "nonsense", 2),
]

CASES = TUNE + GENERATE + INVERT + EVAL + PROFILES


@pytest.fixture(scope="module")
def shared_profile(tmp_path_factory, clip_path) -> Path:
    """A real tiny profile (1 step), tuned once for this module."""
    from conftest import tune_tiny_profile

    path = tune_tiny_profile(tmp_path_factory.mktemp("corpus-home"), clip_path)
    assert path.name == PROFILE
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clip_path) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    from vmc_cli.io.media import ffmpeg_exe

    root = tmp_path_factory.mktemp("corpus-inputs")
    (root / "one").mkdir()
    Image.fromarray(np.full((40, 64, 3), 90, np.uint8)).save(root / "one" / "0001.png")
    (root / "notes.txt").write_text("a tiger\n")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") + b"\xff\xfe\x00")
    audio = root / "tone.m4a"
    import subprocess

    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    str(audio)], check=True, timeout=60)
    return {"clip": clip_path, "one": root / "one", "text": root / "notes.txt", "bin": root / "latin1.txt",
            "audio": audio}


def tree(folder: Path) -> dict[str, tuple]:
    """Every file and folder under ``folder`` with its kind, size and modification time."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize(("args", "fragment", "code"), CASES, ids=[" ".join(c[0])[:70] for c in CASES])
def test_bad_input_is_refused_before_any_work(args, fragment, code, run_cli, shared_profile, inputs, tmp_path,
                                              vmc_home, monkeypatch):
    import vmc_cli.jobs
    import vmc_cli.method.metrics

    line = " ".join(args)
    ro = tmp_path / "read-only"
    if "{ro}" in line:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders (the /proc cases cover unwritable folders)")
        ro.mkdir()
        ro.chmod(0o555)
    shutil.copytree(shared_profile, vmc_home / "profiles" / PROFILE)
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "pipe")  # a stream, like /dev/null (whose node a regression could replace)
    (tmp_path / "taken.png").mkdir()  # a folder where a file is wanted
    (tmp_path / "taken.png" / "mine.txt").write_text("not frames")
    monkeypatch.chdir(tmp_path)  # default outputs land here, where the snapshot sees them

    def no_work(*a, **k):
        raise AssertionError("work started for an input that should have been refused")

    monkeypatch.setattr(vmc_cli.jobs.Runtime, "load", no_work)
    monkeypatch.setattr(vmc_cli.method.metrics, "motion_fidelity", no_work)
    monkeypatch.setattr(vmc_cli.method.metrics, "clip_scores", no_work)
    places = {**{k: str(v) for k, v in inputs.items()}, "tmp": str(tmp_path), "out": str(tmp_path / "out.mp4"),
              "dir": str(tmp_path / "empty"), "profile": PROFILE, "ro": str(ro)}
    argv = [a.format(**places) if "{" in a else a for a in args]
    before = {"tmp": tree(tmp_path), "inputs": {k: (v.stat().st_size, v.stat().st_mtime_ns) for k, v in inputs.items()}}

    res = run_cli(*argv, "--json")

    assert res.code == code, res
    assert "Traceback" not in res.stderr and "AssertionError" not in res.stderr, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), res
    assert len(lines[1]) > len("Hint: ") + 10, res  # a hint that says something
    assert fragment.format(**places).lower() in lines[0].lower(), (fragment, res)
    doc = json.loads(res.stdout)  # exactly one JSON document: json.loads refuses trailing data
    assert doc == {"error": lines[0][len("Error: "):], "hint": lines[1][len("Hint: "):], "code": code}, res
    after = {"tmp": tree(tmp_path), "inputs": {k: (v.stat().st_size, v.stat().st_mtime_ns) for k, v in inputs.items()}}
    assert after == before  # nothing new in the store, no output written, no input touched
