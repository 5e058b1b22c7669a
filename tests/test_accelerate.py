"""``accelerate launch -m vmc_cli generate P --prompt-file F``: the prompts split across processes.

Two CPU processes: ``accelerate launch --multi_gpu --num_processes 2`` on a machine without
CUDA starts two processes through torch's elastic launcher, which vmc joins over gloo.
(``accelerate launch --cpu --num_processes 2`` starts only one unless MPI is set up, with
``--mpirun_hostfile``; vmc then simply generates every prompt in that process.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vmc_cli.io.video import read_frames

pytestmark = pytest.mark.slow  # two accelerate processes per run

LAUNCH = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vmc_cli"]
COMMON = ["--stages", "keyframes", "--steps", "2", "--invert-steps", "2", "--format", "png"]


@pytest.mark.parametrize("count", [3, 1])  # 3: shares of 2 and 1; 1: one process has none
def test_prompts_are_split_across_two_processes(run_cli, clip_path, tmp_path, vmc_home, count):
    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--name", "d").code == 0
    prompts = ["a red cube", "a blue ball", "a green cone", "a white star", "a black ring"][:count]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    env = {**os.environ, "VMC_HOME": str(vmc_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, *LAUNCH, "generate", "d", "--prompt-file", tmp_path / "p.txt",
                        "-o", tmp_path / "multi", *COMMON, "--json"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)  # exactly one JSON document: only the main process prints
    videos = doc["videos"]
    assert [v["prompt"] for v in videos] == prompts and [v["index"] for v in videos] == list(range(count))
    processes = [v["process"] for v in videos]
    assert sorted(set(processes)) == ([0, 1] if count > 1 else [0])  # both worked (when there was work)
    assert processes == sorted(processes)  # contiguous shares, in prompt order
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == sorted(
        os.path.basename(v["path"]) for v in videos)  # each prompt once, nothing else
    assert "the inversion was not saved" not in r.stderr  # the main process inverted, the other waited
    # the same videos as one process makes
    single = run_cli("generate", "d", "--prompt-file", tmp_path / "p.txt", "-o", tmp_path / "one", *COMMON, "--json")
    assert single.code == 0, single
    for a, b in zip(videos, single.json()["videos"]):
        fa, fb = read_frames(a["path"]), read_frames(b["path"])
        assert np.abs(fa.astype(int) - fb.astype(int)).max() <= 2
    shutil.rmtree(tmp_path / "multi")
