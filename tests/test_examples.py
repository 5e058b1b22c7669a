"""The README demo and the batch example run from a shell, as a user runs them (smoke tests
with small step counts: what they print and write, not how good the result is)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the demo and the batch example, run whole from a shell

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "VMC_HOME": str(tmp / "home"), "VMC_DEMO_OUT": str(tmp / "out"), "VMC_DEMO_STEPS": "2",
           "VMC_DEMO_SAMPLE_STEPS": "3", "VMC_BATCH_OUT": str(tmp / "batch"), "VMC_BATCH_STEPS": "3", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh")], capture_output=True, text=True, env=env,
                       timeout=600, cwd=ROOT)
    return r, tmp, env


def test_demo_says_what_it_shows_and_writes_it(demo):
    r, tmp, _ = demo
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("vmc demo: learn the zig-zag motion of a red circle")
    # both path errors, with the profile and without it, each after its heading
    at = lines.index("with the profile (--motion-scale 1):")
    assert lines[at + 1].startswith("centroid path error"), r.stdout
    at = lines.index("without it (--motion-scale 0, the same noise):")
    assert lines[at + 1].startswith("centroid path error"), r.stdout
    for name in ("source.mp4", "square_scale1.mp4", "square_scale0.mp4", "side_by_side_scale1.gif",
                 "side_by_side_scale0.gif", "tracks.png"):
        assert (tmp / "out" / name).is_file(), name
    from vmc_cli.io.video import read_frames

    one, zero = read_frames(tmp / "out" / "square_scale1.mp4"), read_frames(tmp / "out" / "square_scale0.mp4")
    assert one.shape == zero.shape == (9, 32, 32, 3)


def test_batch_example_lists_one_video_per_prompt(demo):
    r, tmp, env = demo
    assert r.returncode == 0, r.stderr[-2000:]
    b = subprocess.run(["bash", str(ROOT / "examples" / "batch.sh")], capture_output=True, text=True,
                       env=env, timeout=600, cwd=ROOT)
    assert b.returncode == 0, b.stderr[-2000:]
    rows = [line.split(" <- ") for line in b.stdout.splitlines()]
    assert [prompt for _, prompt in rows] == ["a blue circle is moving", "a green square is moving",
                                              "a white triangle is moving"]
    assert all(Path(path).is_file() and Path(path).parent == tmp / "batch" for path, _ in rows)
