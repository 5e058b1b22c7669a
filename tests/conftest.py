"""Shared fixtures: offline, a private profile store, a synthetic clip, a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["VMC_BACKEND"] = "tiny"  # tests that name no backend run on the built-in tiny one

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "examples"))


def tune_tiny_profile(home: Path, clip: Path, prompt: str = "a disc is moving") -> Path:
    """A real tiny-backend profile (1 tuning step) in the store ``home``; its folder."""
    from vmc_cli.jobs import Runtime, tune_clip
    from vmc_cli.store.profiles import ProfileStore
    from vmc_cli.method.tuning import TuneConfig

    result = tune_clip(clip, prompt, store=ProfileStore(home), runtime=Runtime("cpu"), backend_name="tiny",
                       config=TuneConfig(steps=1))
    return home / "profiles" / result["profile"]


def pytest_configure(config):
    # One thread: the machines are small and shared; two threads under load thrash.
    import torch

    torch.set_num_threads(int(os.environ.get("VMC_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def vmc_home(tmp_path, monkeypatch):
    """Every test gets its own profile store."""
    home = tmp_path / "vmc-home"
    monkeypatch.setenv("VMC_HOME", str(home))
    monkeypatch.delenv("VMC_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    """A 12-frame synthetic clip (a disc moving along an arc), 128x80, mp4."""
    from make_clip import moving_disc

    from vmc_cli.io.video import write_video

    return write_video(moving_disc(12, 128, 80, seed=0), tmp_path_factory.mktemp("clips") / "disc.mp4")


class CliResult:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        import json

        return json.loads(self.stdout)

    def __repr__(self):
        return f"CliResult(code={self.code}, stdout={self.stdout[-500:]!r}, stderr={self.stderr[-800:]!r})"


@pytest.fixture
def run_cli(capsys):
    """Run ``vmc ARGS`` in-process: returns exit code, stdout and stderr."""
    from vmc_cli.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A folder holding a tiny random CLIP model (see ``tiny_models.make_tiny_clip``)."""
    from tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
