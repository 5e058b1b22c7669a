"""The plugin system: backends come from pluggy plugins in the ``vmc`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vmc_cli import hookimpl
from vmc_cli.backend import Backend
from vmc_cli.errors import VmcError
from vmc_cli.models.plugins import get_backend, get_backends, load_plugins, pm


class MockBackend(Backend):
    """A backend that loads nothing."""

    def __init__(self):
        self.loaded = False

    def load(self, **kwargs):
        self.loaded = True


class OtherMockBackend(MockBackend):
    pass


class MockPlugin:
    @hookimpl
    def register_backends(self, register):
        register("mock", MockBackend, description="A mock backend")
        register("mock2", OtherMockBackend, description="Another one from the same plugin")


class ClashingPlugin:
    @hookimpl
    def register_backends(self, register):
        register("tiny", MockBackend, description="Wants the tiny name too")


@pytest.fixture
def register_plugin():
    """Register plugin objects with the plugin manager for one test."""
    load_plugins()  # the installed ones first, as in real use
    names = []

    def register(obj, name):
        pm.register(obj, name=name)
        names.append(name)

    yield register
    for name in names:
        pm.unregister(name=name)


@pytest.fixture
def mock_plugin(register_plugin):
    register_plugin(MockPlugin(), "mock-plugin")


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


# -- listing -------------------------------------------------------------------
def test_backends_json_lists_tiny(run_cli):
    res = run_cli("backends", "--json")
    assert res.code == 0, res
    rows = {r["name"]: r for r in res.json()["backends"]}  # the whole of stdout is one JSON document
    assert rows["tiny"]["plugin"] == "vmc_tiny"
    assert rows["tiny"]["description"]
    assert res.stderr == ""


def test_backends_human_output(run_cli):
    res = run_cli("backends")
    assert res.code == 0, res
    tiny = [ln for ln in res.stdout.splitlines() if ln.startswith("tiny ")]
    assert len(tiny) == 1 and "[vmc_tiny]; tuning: --loss cos --target qkv --steps 400 --lr 0.0001" in tiny[0]


def test_mock_plugin_appears_in_backends(run_cli, mock_plugin):
    res = run_cli("backends", "--json")
    assert res.code == 0, res
    rows = {r["name"]: r for r in res.json()["backends"]}
    assert {"tiny", "mock", "mock2"} <= set(rows)
    assert rows["mock"] == {"name": "mock", "description": "A mock backend", "plugin": MockBackend.__module__,
                            "tune_defaults": {}, "tuning": "--loss cos --target qkv --steps 400 --lr 0.0001",
                            "generate_defaults": {"invert_steps": 75, "sample_steps": 75, "guidance": 9.0,
                                                  "negative_prompt": "", "strength": 1.0, "motion_scale": 1.0},
                            "generation": "--steps 75 --invert-steps 75 --guidance 9 --strength 1 --motion-scale 1",
                            "options": []}  # the method's generation defaults (docs/method.md), none of its own


def test_mock_backend_can_be_instantiated(mock_plugin):
    backend = get_backend("mock")
    assert type(backend) is MockBackend
    assert backend.name == "mock"
    other = get_backend("mock2")
    assert type(other) is OtherMockBackend and other.name == "mock2"
    assert get_backend("mock") is not backend  # a fresh instance each time


def test_unregistered_plugin_is_gone():
    load_plugins()
    pm.register(MockPlugin(), name="temporary")
    try:
        assert "mock" in get_backends()
    finally:
        pm.unregister(name="temporary")
    assert "mock" not in get_backends()
    with pytest.raises(VmcError, match="unknown backend 'mock'"):
        get_backend("mock")


def test_unknown_backend_names_the_installed_ones():
    with pytest.raises(VmcError) as info:
        get_backend("nope")
    assert "'nope'" in info.value.message and "tiny" in info.value.message
    assert info.value.hint and "vmc backends" in info.value.hint


def test_same_name_twice_is_an_error(register_plugin):
    register_plugin(ClashingPlugin(), "clash")
    with pytest.raises(VmcError, match="registered twice") as info:
        get_backends()
    assert "vmc_tiny" in info.value.message and MockBackend.__module__ in info.value.message


def test_same_name_twice_in_the_cli(run_cli, register_plugin):
    register_plugin(ClashingPlugin(), "clash")
    res = run_cli("backends", "--json")
    assert res.code == 1, res
    assert res.json()["code"] == 1 and res.json()["error"] == res.stderr.splitlines()[0][len("Error: "):]
    assert res.stderr.startswith("Error: backend 'tiny' is registered twice")
    assert "Traceback" not in res.stderr


# -- entry points and VMC_LOAD_PLUGINS (a fresh process: plugins load once per process) -----
LIST_BACKENDS = "from vmc_cli.models.plugins import get_backends; print(sorted(get_backends()))"


def test_load_plugins_env_empty_loads_none():
    res = run_python(LIST_BACKENDS, VMC_LOAD_PLUGINS="")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_load_plugins_env_selects():
    res = run_python(LIST_BACKENDS, VMC_LOAD_PLUGINS="tiny")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['tiny']"


# -- no heavy imports on the fast paths --------------------------------------------
NO_TORCH = """
import sys
from vmc_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "numpy") if m in sys.modules)
assert not heavy, heavy
"""


def test_import_cli_does_not_import_torch():
    res = run_python("import sys, vmc_cli.cli; assert 'torch' not in sys.modules, 'torch imported'")
    assert res.returncode == 0, res.stderr


def test_import_vmc_tiny_does_not_import_torch():
    res = run_python("import sys, vmc_tiny; assert 'torch' not in sys.modules, 'torch imported'; "
                     "assert callable(vmc_tiny.register_backends)")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["tune", "--help"],
    ["backends", "--json"],
    ["prompt", "a cat is roaring on the grass", "--json"],
    ["profiles", "list", "--json"],
])
def test_fast_commands_do_not_import_torch(argv):
    res = run_python(NO_TORCH, *argv)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()  # it did answer


def test_help_lists_the_commands(run_cli):
    res = run_cli("--help")
    assert res.code == 0
    for command in ("tune", "invert", "generate", "eval", "profiles", "backends", "prompt"):
        assert command in res.stdout


# -- vmc prompt --json ---------------------------------------------------------------
def test_prompt_json_is_one_document(run_cli):
    res = run_cli("prompt", "a cat is roaring on the grass under the tree", "--json")
    assert res.code == 0, res
    doc, end = json.JSONDecoder().raw_decode(res.stdout)
    assert res.stdout[end:].strip() == ""  # nothing after the one document
    assert doc == {"prompt": "a cat is roaring on the grass under the tree", "appearance_invariant": "a cat is roaring"}
    assert res.stderr == ""


def test_prompt_plain(run_cli):
    res = run_cli("prompt", "a cat is roaring on the grass under the tree")
    assert res.code == 0
    assert res.stdout == "a cat is roaring\n"


# -- per-backend tuning defaults ---------------------------------------------------
class TunedTinyPlugin:
    """The tiny backend again, registered with tuning defaults of its own."""

    @hookimpl
    def register_backends(self, register):
        from vmc_tiny.backend import TinyBackend

        register("tiny-tuned", TinyBackend, description="tiny with its own tuning defaults",
                 tune_defaults={"steps": 2, "lr": 5e-3, "loss": "x0cos", "timestep_range": (10, 500)})


class BadDefaultsPlugin:
    @hookimpl
    def register_backends(self, register):
        register("bad-defaults", MockBackend, tune_defaults={"steps": 2, "momentum": 0.9})


def test_backend_tuning_defaults_apply_and_are_recorded(run_cli, register_plugin, clip_path):
    register_plugin(TunedTinyPlugin(), "tuned-tiny")
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "tiny-tuned", "--name", "a", "--json")
    assert r.code == 0, r
    tuning = run_cli("profiles", "show", "a", "--json").json()["tuning"]
    assert (tuning["steps"], tuning["lr"], tuning["loss"], tuning["target"]) == (2, 5e-3, "x0cos", "qkv")
    assert tuning["timestep_range"] == [10, 500] and tuning["defaults"] == "backend tiny-tuned"
    assert tuning["given"] == []
    # what the user gives wins over the backend's defaults
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "tiny-tuned", "--name", "b",
                "--steps", "1", "--loss", "cos", "--timesteps", "0:999", "--json")
    assert r.code == 0, r
    tuning = run_cli("profiles", "show", "b", "--json").json()["tuning"]
    assert (tuning["steps"], tuning["lr"], tuning["loss"], tuning["timestep_range"]) == (1, 5e-3, "cos", [0, 999])
    assert tuning["given"] == ["loss", "steps", "timestep_range"]
    # a backend that sets none tunes with the paper's settings
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--name", "c", "--steps", "1", "--json")
    tuning = run_cli("profiles", "show", "c", "--json").json()["tuning"]
    assert (tuning["lr"], tuning["loss"], tuning["timestep_range"], tuning["defaults"]) == (1e-4, "cos", [0, -1],
                                                                                           "paper")


def test_tune_help_lists_each_backends_defaults(run_cli, register_plugin):
    register_plugin(TunedTinyPlugin(), "tuned-tiny")
    r = run_cli("tune", "--help")
    assert r.code == 0, r
    text = " ".join(r.stdout.split())
    assert "tiny-tuned: --loss x0cos --target qkv --steps 2 --lr 0.005 --timesteps 10:500" in text
    assert "tiny: --loss cos --target qkv --steps 400 --lr 0.0001" in text


def test_unknown_tuning_default_is_refused(run_cli, register_plugin):
    register_plugin(BadDefaultsPlugin(), "bad-defaults")
    r = run_cli("backends")
    assert r.code == 1 and "unknown tuning defaults: momentum" in r.stderr


def test_bad_timesteps_are_refused(run_cli, clip_path):
    for value, message in [("600", "is not LO:HI"), ("500:100", "not a range"), ("0:5000", "past the schedule")]:
        r = run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--timesteps", value)
        assert r.code == 1 and message in r.stderr, (value, r)
