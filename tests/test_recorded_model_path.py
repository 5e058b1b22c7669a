"""A profile tuned with ``--model-path DIR`` finds DIR again: ``generate`` and ``invert`` without
``--model-path`` use the recorded folder while its files still match the recorded hash;
``--model-path`` overrides it. Offline (HF_HUB_OFFLINE=1): the hub default is never reached."""

from __future__ import annotations

import json
import shutil

import pytest
from test_latent_backends import FAST, zeroscope_folder  # noqa: F401 (a fixture)

from vmc_cli.store.profiles import ProfileStore
from vmc_cli.io.video import read_frames

pytestmark = pytest.mark.slow  # three tunes and generations of a tiny ZeroScope through the CLI


def test_generate_uses_the_recorded_local_model(run_cli, clip_path, zeroscope_folder, tmp_path,  # noqa: F811
                                                monkeypatch):
    monkeypatch.delenv("VMC_ZEROSCOPE_MODEL", raising=False)
    model = tmp_path / "models" / "my-zeroscope"
    shutil.copytree(zeroscope_folder, model)
    monkeypatch.chdir(tmp_path / "models")  # a relative --model-path, recorded as an absolute one
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "zeroscope", "--model-path", "my-zeroscope",
                "--frames", "8", "--steps", "1", "--name", "z", "--json")
    assert r.code == 0, r
    manifest = ProfileStore().manifest("z")
    assert manifest["backend"]["model_path"] == str(model.resolve())
    monkeypatch.chdir(tmp_path)

    out = tmp_path / "z.mp4"
    r = run_cli("generate", "z", "-p", "a red cube", "-o", out, "--stages", "keyframes", *FAST)
    assert r.code == 0, r  # offline, without --model-path: the recorded folder, not the hub's default
    assert read_frames(out).shape == (8, 32, 32, 3)
    assert f"model: {model.resolve()}" in r.stderr

    # --model-path overrides the recorded folder: another copy of the same files is another model
    r = run_cli("invert", "z", "--model-path", zeroscope_folder, "--steps", "1", "--json")
    assert r.code == 1 and str(zeroscope_folder.resolve()) in r.json()["error"], r

    # files changed since the tune: refused, saying so
    config = model / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "steps_offset": 0}))
    r = run_cli("generate", "z", "-p", "a red cube", "-o", tmp_path / "changed.mp4", *FAST, "--json")
    assert r.code == 1 and "have changed since profile 'z' was tuned" in r.json()["error"], r
    assert "--model-path" in r.json()["hint"] and not (tmp_path / "changed.mp4").exists()

    # the folder is gone: refused, naming it
    shutil.rmtree(model)
    r = run_cli("generate", "z", "-p", "a red cube", "-o", tmp_path / "gone.mp4", *FAST, "--json")
    assert r.code == 1 and "not there any more" in r.json()["error"] and str(model.resolve()) in r.json()["error"], r


def test_profiles_from_before_the_record_find_their_folder(run_cli, clip_path, zeroscope_folder, tmp_path,  # noqa: F811
                                                           monkeypatch):
    """A manifest without ``model_path`` (made before it was recorded) still names the local
    folder as its model's id: that is used."""
    from vmc_cli.store.profiles import MANIFEST, _read_toml, _write_toml

    monkeypatch.delenv("VMC_ZEROSCOPE_MODEL", raising=False)
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "zeroscope", "--model-path", zeroscope_folder,
                "--frames", "8", "--steps", "1", "--name", "old", "--json")
    assert r.code == 0, r
    path = ProfileStore().path("old") / MANIFEST
    manifest = _read_toml(path)
    del manifest["backend"]["model_path"]
    _write_toml(path, manifest)
    r = run_cli("generate", "old", "-p", "a red cube", "-o", tmp_path / "old.mp4", "--stages", "keyframes", *FAST,
                "--json")
    assert r.code == 0, r
