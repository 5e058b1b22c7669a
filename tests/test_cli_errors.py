"""The error contract: every expected failure is exit code 1, one ``Error:`` line and one
``Hint:`` line on stderr, no traceback, with ``--json`` exactly one JSON document on stdout
(``{"error", "hint", "code"}``), and nothing half-written on disk. Usage errors are exit
code 2, in the same form."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import INVERSION, MANIFEST, WEIGHTS, ProfileStore, _read_toml, _write_toml

PROFILE = "disc-is-moving"


# -- helpers -------------------------------------------------------------------
def assert_user_error(res, *fragments: str, json_mode: bool = True, code: int = 1) -> str:
    """Exit ``code``, stderr is exactly ``Error: ...`` + ``Hint: ...``, no traceback, and (``json_mode``:
    the command had --json) stdout is one JSON document saying the same; returns the Error line."""
    import json

    assert res.code == code, res
    assert "Traceback" not in res.stderr, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, res
    assert lines[0].startswith("Error: "), res
    assert lines[1].startswith("Hint: ") and len(lines[1]) > len("Hint: ") + 5, res
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, res)
    if json_mode:
        assert json.loads(res.stdout) == {"error": lines[0][len("Error: "):], "hint": lines[1][len("Hint: "):],
                                          "code": code}, res
        assert res.stdout.count("\n") == 1, res  # one document, one line
    return lines[0]


def store_entries(home: Path) -> list[str]:
    """Everything in ``$VMC_HOME/profiles`` (profiles, temp folders, stray files)."""
    root = home / "profiles"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def assert_store_empty(home: Path) -> None:
    assert store_entries(home) == []


def assert_no_temp(home: Path) -> None:
    root = home / "profiles"
    leftovers = [p.name for p in root.rglob(".*")] if root.is_dir() else []
    assert leftovers == [], leftovers


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory, clip_path) -> Path:
    """One real tiny profile (2 steps), tuned once for this module in its own store."""
    from vmc_cli.jobs import Runtime, tune_clip
    from vmc_cli.method.tuning import TuneConfig

    home = tmp_path_factory.mktemp("shared-home")
    tune_clip(clip_path, "a disc is moving", store=ProfileStore(home), runtime=Runtime("cpu"),
              config=TuneConfig(steps=2))
    assert (home / "profiles" / PROFILE / MANIFEST).is_file()
    return home


@pytest.fixture
def profile(shared_home, vmc_home) -> Path:
    """A private copy of the shared profile in this test's ``$VMC_HOME``."""
    dest = vmc_home / "profiles" / PROFILE
    shutil.copytree(shared_home / "profiles" / PROFILE, dest)
    return dest


def edit_manifest(folder: Path, edit) -> None:
    manifest = _read_toml(folder / MANIFEST)
    edit(manifest)
    _write_toml(folder / MANIFEST, manifest)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- bad clips -------------------------------------------------------------------
def test_missing_clip(run_cli, vmc_home, tmp_path):
    res = run_cli("tune", tmp_path / "nope.mp4", "--prompt", "a disc is moving", "--json")
    assert_user_error(res, "no such file", "nope.mp4")
    assert_store_empty(vmc_home)


def test_clip_that_is_not_a_video(run_cli, vmc_home, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"this is not a video\x00\x01\x02" * 100)
    res = run_cli("tune", bad, "--prompt", "a disc is moving", "--json")
    assert_user_error(res, "cannot read", "x.mp4")
    assert_store_empty(vmc_home)


def test_folder_instead_of_clip(run_cli, vmc_home, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    res = run_cli("tune", folder, "--prompt", "a disc is moving", "--json")
    assert_user_error(res, "folder")
    assert_store_empty(vmc_home)


def test_eval_missing_video(run_cli, tmp_path):
    res = run_cli("eval", tmp_path / "gone.mp4", "--prompt", "a tiger", "--json")
    assert_user_error(res, "no such file", "gone.mp4")


@pytest.mark.parametrize(("args", "need"), [
    (["--frames", "20"], "need 20"),
    (["--stride", "3"], "need 22"),  # 8 frames, stride 3: frame 21 is the last one needed
    (["--frames", "4", "--start", "10"], "need 14"),
])
def test_clip_too_short(run_cli, vmc_home, clip_path, args, need):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", *args, "--json")
    assert_user_error(res, "the clip has 12 frames", need)
    assert_store_empty(vmc_home)


# -- unknown backend / profile -------------------------------------------------
def test_unknown_backend_for_tune(run_cli, vmc_home, clip_path):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--backend", "nope", "--json")
    line = assert_user_error(res, "unknown backend", "'nope'")
    assert "tiny" in line  # lists what is installed
    assert_store_empty(vmc_home)


@pytest.mark.parametrize("args", [
    ["invert", "ghost"],
    ["generate", "ghost", "--prompt", "a tiger"],
    ["profiles", "show", "ghost"],
    ["profiles", "rm", "ghost", "--yes"],
])
def test_unknown_profile(run_cli, vmc_home, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)  # generate's default output goes to the current folder
    res = run_cli(*args, "--json")
    assert_user_error(res, "no profile named 'ghost'")
    assert_store_empty(vmc_home)
    assert not list(tmp_path.glob("*.mp4"))


# -- bad profile names -----------------------------------------------------------
@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "/tmp/abs"])
def test_tune_refuses_bad_name(run_cli, vmc_home, clip_path, bad):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--name", bad, "--steps", "2", "--json")
    assert_user_error(res, "invalid profile name", repr(bad))
    assert_store_empty(vmc_home)
    assert not (vmc_home / "x").exists() and not (vmc_home.parent / "x").exists()


@pytest.mark.parametrize("args", [
    ["generate", "../x", "--prompt", "a tiger"],
    ["invert", "../x"],
    ["profiles", "show", "a/b"],
    ["profiles", "rm", "../x", "--yes"],
])
def test_other_commands_refuse_bad_name(run_cli, vmc_home, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    victim = vmc_home / "x"  # what ../x would point at from the profiles folder
    victim.mkdir(parents=True)
    (victim / MANIFEST).write_text('schema = 1\n[backend]\nname = "tiny"\n')
    res = run_cli(*args, "--json")
    assert_user_error(res, "invalid profile name")
    assert (victim / MANIFEST).is_file()  # rm ../x did not escape the store
    assert not list(tmp_path.glob("*.mp4"))


# -- mismatched or damaged profiles ---------------------------------------------
def test_profile_from_another_backend(run_cli, profile, vmc_home, tmp_path):
    edit_manifest(profile, lambda m: m["backend"].update(name="other"))
    before = snapshot(profile)
    out = tmp_path / "out.mp4"
    res = run_cli("generate", PROFILE, "--backend", "tiny", "--prompt", "a tiger", "-o", out, "--json")
    assert_user_error(res, "made with backend 'other'", "not 'tiny'")
    assert not out.exists()
    assert snapshot(profile) == before
    assert_no_temp(vmc_home)


def test_profile_from_another_backend_not_installed(run_cli, profile, vmc_home):
    edit_manifest(profile, lambda m: m["backend"].update(name="other"))
    res = run_cli("invert", PROFILE, "--json")
    assert_user_error(res, "unknown backend 'other'")
    assert not (profile / INVERSION).exists()


def test_profile_from_another_model_revision(run_cli, profile, vmc_home, tmp_path):
    edit_manifest(profile, lambda m: m["backend"]["models"]["keyframes"].update(revision="0123456789abcdef"))
    before = snapshot(profile)
    out = tmp_path / "out.mp4"
    res = run_cli("generate", PROFILE, "--prompt", "a tiger", "-o", out, "--stages", "keyframes",
                  "--steps", "1", "--invert-steps", "1", "--json")
    assert_user_error(res, "0123456789abcdef")
    assert not out.exists()
    assert snapshot(profile) == before


def test_tampered_weights_are_refused(run_cli, profile, vmc_home, tmp_path):
    weights = profile / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor's data: still a loadable safetensors file
    weights.write_bytes(bytes(data))
    before = snapshot(profile)
    out = tmp_path / "out.mp4"
    res = run_cli("generate", PROFILE, "--prompt", "a tiger", "-o", out, "--stages", "keyframes",
                  "--steps", "1", "--invert-steps", "1", "--json")
    assert_user_error(res, "checksum", WEIGHTS)
    assert not out.exists()
    assert snapshot(profile) == before  # no inversion added to a damaged profile
    assert list(tmp_path.iterdir()) == [vmc_home]


def test_unreadable_manifest(run_cli, profile):
    (profile / MANIFEST).write_text("this is [not toml", encoding="utf-8")
    res = run_cli("profiles", "show", PROFILE, "--json")
    assert_user_error(res, "manifest", "cannot be read")


# -- failures during tuning -------------------------------------------------------
def interrupt_at_call(monkeypatch, n: int) -> list:
    """Ctrl-C from inside the tuning loop: the tiny backend's n-th noise prediction raises
    KeyboardInterrupt. Returns the list that counts the calls."""
    from vmc_tiny.backend import TinyBackend

    calls = []
    original = TinyBackend.predict_noise

    def predict_noise(self, x, t, text):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(self, x, t, text)

    monkeypatch.setattr(TinyBackend, "predict_noise", predict_noise)
    return calls


def test_interrupted_tune_leaves_nothing(run_cli, vmc_home, clip_path, monkeypatch):
    calls = interrupt_at_call(monkeypatch, 2)
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "2", "--json")
    assert len(calls) == 2  # the interrupt really came from inside the loop, at step 2
    assert res.code == 130, res
    assert "Traceback" not in res.stderr
    assert res.stdout == ""  # Ctrl-C is not an error to report: no document
    assert_store_empty(vmc_home)


def test_interrupted_tune_with_force_keeps_the_old_profile(run_cli, profile, vmc_home, clip_path, monkeypatch):
    before = snapshot(profile)
    calls = interrupt_at_call(monkeypatch, 2)
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "2", "--force", "--json")
    assert res.code != 0, res
    assert len(calls) == 2  # interrupted inside the loop, after the old profile was in place
    assert store_entries(vmc_home) == [PROFILE]
    assert snapshot(profile) == before


def test_nan_loss(run_cli, vmc_home, clip_path, monkeypatch):
    from vmc_tiny.backend import TinyBackend

    original = TinyBackend.predict_noise
    calls = []

    def predict_noise(self, x, t, text):
        calls.append(1)
        eps = original(self, x, t, text)
        return eps if len(calls) == 1 else eps * float("nan")

    monkeypatch.setattr(TinyBackend, "predict_noise", predict_noise)
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "2", "--json")
    assert_user_error(res, "nan", "step 2")
    assert len(calls) == 2
    assert_store_empty(vmc_home)


def test_existing_profile_is_not_replaced_without_force(run_cli, profile, vmc_home, clip_path):
    before = snapshot(profile)
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "2", "--json")
    assert_user_error(res, "already exists")
    assert snapshot(profile) == before
    assert store_entries(vmc_home) == [PROFILE]


# -- other errors ------------------------------------------------------------------
@pytest.mark.parametrize(("args", "fragment"), [
    (["--prompt", "a tiger", "--prompt-file", "p.txt"], "exactly one of"),
    ([], "exactly one of"),
    (["--prompt", "   "], "empty"),
    (["--prompt-file", "missing.txt"], "no such file"),
])
def test_generate_bad_prompts(run_cli, profile, vmc_home, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    res = run_cli("generate", PROFILE, *args, "--json")
    assert_user_error(res, fragment)
    assert not list(tmp_path.glob("*.mp4"))


def test_unexpected_exception_is_one_line(run_cli, monkeypatch):
    import vmc_cli.models.plugins

    def boom():
        raise RuntimeError("boom")

    monkeypatch.setattr(vmc_cli.models.plugins, "get_backends", boom)
    res = run_cli("backends", "--json")
    assert_user_error(res, "RuntimeError: boom")
    assert "VMC_DEBUG=1" in res.stderr


def test_unexpected_multiline_exception_prints_only_its_first_line(run_cli, monkeypatch):
    import vmc_cli.models.plugins

    def boom():
        raise RuntimeError("boom\nsecond line\nthird line")

    monkeypatch.setattr(vmc_cli.models.plugins, "get_backends", boom)
    res = run_cli("backends", "--json")
    line = assert_user_error(res, "RuntimeError: boom")
    assert line == "Error: RuntimeError: boom"
    assert "second line" not in res.stderr and "VMC_DEBUG=1" in res.stderr


def test_out_of_gpu_memory_is_an_expected_error(run_cli, monkeypatch, vmc_home, clip_path):
    import vmc_cli.jobs

    class OutOfMemoryError(RuntimeError):  # named like torch.cuda.OutOfMemoryError
        pass

    def tune_clip(*args, backend_name=None, **kwargs):
        from vmc_cli.models.plugins import get_backend

        get_backend(backend_name)  # the backend at work when memory runs out gives the hint
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nSee documentation for "
                               "Memory Management (PYTORCH_CUDA_ALLOC_CONF)")

    monkeypatch.setattr(vmc_cli.jobs, "tune_clip", tune_clip)
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "1", "--backend", "show1", "--json")
    line = assert_user_error(res, "out of GPU memory")
    assert line == "Error: out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB.)"
    hint = res.stderr.splitlines()[1]
    assert hint == ("Hint: try --dtype float16, VMC_SHOW1_OFFLOAD=1, or VMC_SHOW1_GRADIENT_CHECKPOINTING=1 "
                    "for tuning")
    assert_store_empty(vmc_home)


@pytest.mark.parametrize("n", ["0", "-2"])
def test_eval_keyframes_below_one_is_a_user_error(run_cli, tmp_path, tiny_clip_dir, n):
    from make_clip import moving_disc

    from vmc_cli.io.video import write_video

    video = write_video(moving_disc(9, 64, 40, seed=0), tmp_path / "v.mp4")
    res = run_cli("eval", video, "--prompt", "a disc", "--keyframes", n, "--clip-model", tiny_clip_dir, "--json")
    assert_user_error(res, "--keyframes", n)


# -- VMC_DEBUG ---------------------------------------------------------------------
def test_debug_raises_instead_of_one_line(monkeypatch, tmp_path):
    from vmc_cli.cli import main

    monkeypatch.setenv("VMC_DEBUG", "1")
    with pytest.raises(VmcError, match="no such file"):
        main(["tune", str(tmp_path / "nope.mp4"), "--prompt", "a disc is moving", "--json"])


def test_debug_zero_is_off(monkeypatch, tmp_path, capsys):
    from vmc_cli.cli import main

    monkeypatch.setenv("VMC_DEBUG", "0")
    with pytest.raises(SystemExit) as info:
        main(["tune", str(tmp_path / "nope.mp4"), "--prompt", "a disc is moving", "--json"])
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith("Error: no such file")


def test_debug_shows_traceback_in_a_real_process(tmp_path, vmc_home):
    import os
    import subprocess

    cmd = [sys.executable, "-c", "from vmc_cli.cli import main; main()", "tune", str(tmp_path / "nope.mp4"),
           "--prompt", "a disc", "--json"]
    debug = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "VMC_DEBUG": "1"}, timeout=120)
    assert debug.returncode != 0 and debug.stdout == ""
    assert "Traceback" in debug.stderr and "VmcError: no such file" in debug.stderr


# -- usage errors --------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["tune", "{clip}"],  # no --prompt
    ["tune"],  # no clip
    ["generate", "x", "--bogus"],
    ["tune", "{clip}", "--prompt", "a disc", "--steps", "many"],
    ["nonsense-command"],
])
def test_usage_errors_exit_2(run_cli, vmc_home, clip_path, args):
    res = run_cli(*[a.replace("{clip}", str(clip_path)) for a in args], "--json")
    line = assert_user_error(res, code=2)
    assert "--help" in res.stderr.splitlines()[1]  # the hint names the command's help
    assert "Usage:" not in res.stderr and "╭" not in line
    assert_store_empty(vmc_home)


def test_usage_error_without_json_leaves_stdout_empty(run_cli, vmc_home):
    res = run_cli("tune", "--steps", "many")
    assert_user_error(res, json_mode=False, code=2)
    assert res.stdout == ""


def test_bare_command_still_prints_its_help(run_cli):
    res = run_cli("profiles")
    assert res.code == 2 and "Usage" in res.stdout and "list" in res.stdout, res  # as typer prints it


# -- controls: the same commands succeed on good input (so the refusals above are not vacuous) --
def test_control_generate_succeeds_on_the_untouched_profile(run_cli, profile, vmc_home, tmp_path):
    out = tmp_path / "out.mp4"
    res = run_cli("generate", PROFILE, "--prompt", "a tiger", "-o", out, "--stages", "keyframes",
                  "--steps", "1", "--invert-steps", "1", "--json")
    assert res.code == 0, res
    doc = res.json()  # the whole of stdout is one JSON document
    assert doc["videos"][0]["path"] == str(out) and out.is_file()
    assert res.stderr == ""
    assert (profile / INVERSION).is_file()
    assert_no_temp(vmc_home)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mp4", vmc_home.name])


def test_generate_batch_output_must_be_a_folder(run_cli, profile, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a tiger\na horse\n")
    target = tmp_path / "taken.mp4"
    target.write_bytes(b"mine")
    res = run_cli("generate", PROFILE, "--prompt-file", prompts, "-o", target, "--json")
    assert_user_error(res, "is a file")
    assert target.read_bytes() == b"mine"
    assert not (profile / INVERSION).exists()


# -- options checked before any work is done --
def test_generate_with_unknown_backend_says_unknown(run_cli, profile, tmp_path):
    res = run_cli("generate", PROFILE, "--backend", "nope", "--prompt", "a tiger", "-o", tmp_path / "o.mp4",
                  "--json")
    assert_user_error(res, "unknown backend 'nope'")


@pytest.mark.parametrize("stride", ["0", "8"])
def test_bad_residual_stride_is_a_user_error(run_cli, vmc_home, clip_path, stride):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "1", "--residual-stride", stride,
                  "--json")
    line = assert_user_error(res, "stride")
    assert "ValueError" not in line and "VMC_DEBUG" not in res.stderr
    assert_store_empty(vmc_home)


def test_bad_device_is_a_user_error(run_cli, vmc_home, clip_path):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "1", "--device", "bogus", "--json")
    line = assert_user_error(res, "device", "bogus")
    assert "RuntimeError" not in line and "VMC_DEBUG" not in res.stderr
    assert_store_empty(vmc_home)


def test_bad_dtype_is_refused(run_cli, vmc_home, clip_path):
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "1", "--dtype", "bogus", "--json")
    assert_user_error(res, "unknown --dtype 'bogus'")  # our own check of a free-form option: exit 1, not 2
    assert_store_empty(vmc_home)


def test_negative_inversion_steps_are_refused(run_cli, profile):
    res = run_cli("invert", PROFILE, "--steps", "-3", "--json")
    assert_user_error(res, "--steps", "-3")  # a well-formed int refused by our own check: exit 1, not 2
    assert not (profile / INVERSION).exists()
    assert "inversion" not in _read_toml(profile / MANIFEST)


@pytest.mark.parametrize("args", [["--format", "bogus", "-o", "{tmp}/o"], ["-o", "{tmp}/out.avi"]])
def test_bad_output_format_fails_before_any_work(run_cli, profile, tmp_path, args):
    before = snapshot(profile)
    res = run_cli("generate", PROFILE, "--prompt", "a tiger", "--stages", "keyframes", "--steps", "1",
                  "--invert-steps", "1", *[a.replace("{tmp}", str(tmp_path)) for a in args], "--json")
    assert_user_error(res, "format")
    assert snapshot(profile) == before  # no inversion computed and stored for a command that was bound to fail


def test_show1_is_the_default_backend_and_offline_says_how_to_download(run_cli, clip_path, monkeypatch, tmp_path,
                                                                       vmc_home):
    monkeypatch.delenv("VMC_BACKEND", raising=False)
    monkeypatch.delenv("VMC_SHOW1_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--steps", "1", "--json")
    assert_user_error(res, "showlab/show-1-base")
    assert "hf download" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (vmc_home / "profiles").exists() or not any((vmc_home / "profiles").iterdir())
