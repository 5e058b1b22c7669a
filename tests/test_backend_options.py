"""Options a backend declares for itself: listed by ``vmc backends``, checked and converted by the
core before any model loads, and passed to the backend (``--option NAME=VALUE``, or the
environment variable an option names); a profile records them and keeps the ``kept`` ones."""

from __future__ import annotations

import json
import os

import pytest

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_cli.errors import VmcError
from vmc_cli.models.plugins import load_plugins, pm
from vmc_pixel.tiny import TinyBackend

FAST = ("--stages", "keyframes", "--steps", "1", "--invert-steps", "1")


class OptionsBackend(TinyBackend):
    """A third-party backend (the tiny model underneath) that records what it is given."""

    received: list[tuple[str, dict]] = []

    def configure(self, *, model_path=None, progress=None, **options):
        """Every backend's settings arrive here: from the core before loading (a clip's size) and
        from the opening of ``load()``, the same in both."""
        OptionsBackend.received.append(("configure", options))


class OutOfMemoryError(RuntimeError):  # named like torch.cuda.OutOfMemoryError
    pass


class HungryBackend(TinyBackend):
    oom_hint = "try --option chunk=1"

    def load(self, **kwargs):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB.")


class PlainHungryBackend(HungryBackend):
    oom_hint = ""


OPTIONS = [
    BackendOption("boost", int, help="how much to boost"),
    BackendOption("style", str, default="plain", help="the style"),
    BackendOption("sharp", bool, help="sharpen", commands=("tune",)),
    BackendOption("gain", float, help="a gain"),
    BackendOption("mode", default="fast", choices=("fast", "slow"), env="VMC_OPTIONED_MODE", kept=True,
                  help="how it runs"),
    BackendOption("level", int, range=(1, 5), env="VMC_OPTIONED_LEVEL", help="a level"),
]
#: what the optioned backend gets when nothing is given
DEFAULTS = {"style": "plain", "mode": "fast"}


class ThirdPartyPlugin:
    @hookimpl
    def register_backends(self, register):
        register("optioned", OptionsBackend, description="Declares options", options=OPTIONS)
        register("hungry", HungryBackend, description="Runs out of memory", options=[BackendOption("chunk", int)])
        register("hungry-plain", PlainHungryBackend, description="Runs out of memory, no hint of its own")


@pytest.fixture
def third_party():
    load_plugins()
    pm.register(ThirdPartyPlugin(), name="third-party-options")
    OptionsBackend.received = []
    for option in OPTIONS:
        if option.env:
            os.environ.pop(option.env, None)
    yield OptionsBackend.received
    pm.unregister(name="third-party-options")


@pytest.fixture
def no_loading(monkeypatch):
    import vmc_cli.jobs

    monkeypatch.setattr(vmc_cli.jobs.Runtime, "load", lambda *a, **k: pytest.fail("a model was loaded"))


@pytest.fixture(scope="module")
def shared_profile(tmp_path_factory, clip_path):
    from conftest import tune_tiny_profile

    return tune_tiny_profile(tmp_path_factory.mktemp("options-home"), clip_path)


@pytest.fixture
def profile(shared_profile, vmc_home) -> str:
    import shutil

    shutil.copytree(shared_profile, vmc_home / "profiles" / shared_profile.name)
    return shared_profile.name


def one_line_error(res, code: int = 1) -> tuple[str, str]:
    """Exit ``code``, exactly an Error: and a Hint: line on stderr, one JSON document on stdout."""
    assert res.code == code, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), res
    assert json.loads(res.stdout)["error"] == lines[0][len("Error: "):], res
    return lines[0], lines[1]


# -- listing ---------------------------------------------------------------------------
def test_backends_json_lists_each_backends_declared_options(run_cli, third_party):
    rows = {r["name"]: r for r in run_cli("backends", "--json").json()["backends"]}
    animatediff = {o["name"]: o for o in rows["animatediff"]["options"]}
    assert list(animatediff) == ["model_path", "base_revision", "adapter", "adapter_revision", "offload",
                                 "gradient_checkpointing"]
    adapter = animatediff["adapter"]
    assert (adapter["type"], adapter["flag"], adapter["env"], adapter["kept"]) == (
        "str", None, "VMC_ANIMATEDIFF_ADAPTER", True) and "MotionAdapter" in adapter["help"]
    assert set(adapter["commands"]) == {"tune", "invert", "generate", "export", "import"}
    assert (animatediff["model_path"]["flag"], animatediff["model_path"]["env"]) == ("--model-path",
                                                                                     "VMC_ANIMATEDIFF_BASE")
    assert animatediff["gradient_checkpointing"]["commands"] == ["tune"]
    show1 = {o["name"]: o for o in rows["show1"]["options"]}
    assert (show1["inversion"]["choices"], show1["inversion"]["default"]) == (["authors", "model"], "authors")
    assert rows["wan"]["options"][[o["name"] for o in rows["wan"]["options"]].index("lora_rank")]["range"] == [1, None]
    assert rows["tiny"]["options"] == []
    mine = {o["name"]: o for o in rows["optioned"]["options"]}
    assert list(mine) == ["boost", "style", "sharp", "gain", "mode", "level"]
    assert (mine["boost"]["type"], mine["boost"]["default"]) == ("int", None)
    assert (mine["style"]["type"], mine["style"]["default"]) == ("str", "plain")
    assert (mine["sharp"]["type"], mine["sharp"]["commands"], mine["sharp"]["flag"]) == ("bool", ["tune"], None)
    assert (mine["mode"]["env"], mine["mode"]["choices"], mine["level"]["range"]) == (
        "VMC_OPTIONED_MODE", ["fast", "slow"], [1, 5])


def test_backends_and_help_show_the_options(run_cli, third_party, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps help at the terminal's width
    out = run_cli("backends").stdout.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("optioned "))
    assert out[at + 1].split() == ["--option", "boost=INTEGER:", "how", "much", "to", "boost"]
    assert out[at + 3].strip().startswith("--option sharp=1|0: sharpen") and "[tune only]" in out[at + 3]
    assert out[at + 5].strip() == "--option mode=fast|slow ($VMC_OPTIONED_MODE): how it runs (default fast)"
    assert out[at + 6].strip() == "--option level=INTEGER, 1 to 5 ($VMC_OPTIONED_LEVEL): a level"
    tiny = [line for line in out if line.startswith("tiny ")]
    assert len(tiny) == 1 and not out[out.index(tiny[0]) + 1].strip().startswith("--option")
    for command, shown, hidden in (("tune", "sharp=1|0", None), ("generate", "boost=INTEGER", "sharp="),
                                   ("invert", "adapter=TEXT ($VMC_ANIMATEDIFF_ADAPTER)", "sharp=")):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "--option NAME=VALUE" in text and "`vmc backends`" in text and shown in text, command
        assert hidden is None or hidden not in text, command


def test_every_backend_setting_is_declared():
    """No backend reads the environment itself: every setting goes through a declaration, so
    `vmc backends` lists all there are; and every VMC_ variable the user docs name is either a
    declared option's or one of the core's own."""
    import re
    from pathlib import Path

    from vmc_cli.models.plugins import get_backends

    root = Path(__file__).resolve().parents[1]
    readers = [str(f.relative_to(root)) for f in (root / "backends").rglob("*.py")
               if "train.py" not in f.name and re.search(r"os\.environ|getenv", f.read_text())]
    assert readers == []
    declared = {o.env for b in get_backends().values() for o in b.options if o.env}
    core = {"VMC_HOME", "VMC_BACKEND", "VMC_DEBUG", "VMC_FFMPEG", "VMC_LOAD_PLUGINS",
            "VMC_CONTRACT_FACTORIES"}  # the last: the contract test suite's
    named = set()
    for doc in [root / "README.md", *(root / "docs").glob("*.md"), *(root / "backends").rglob("README.md")]:
        named |= set(re.findall(r"\bVMC_[A-Z0-9_]*[A-Z0-9]\b", doc.read_text()))
    assert sorted(named - declared - core) == []
    assert {"VMC_SHOW1_STEPS", "VMC_WAN_KEYFRAMES", "VMC_ZEROSCOPE_XL_SIZE", "VMC_SHAPES_WAN_PATH"} <= declared


# -- refused before any model loads ------------------------------------------------------
@pytest.mark.parametrize("given, fragment, hint", [
    (["--option", "boost=3"], "backend 'tiny' takes no option 'boost'", "it is for optioned"),
    (["--option", "nobody=3"], "backend 'tiny' takes no option 'nobody'", "`vmc backends`"),
    (["--option", "adapter=x/y"], "backend 'tiny' takes no option 'adapter'", "it is for animatediff"),
])
def test_an_option_the_backend_does_not_declare_is_one_line_before_loading(run_cli, third_party, no_loading,
                                                                             clip_path, given, fragment, hint):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "tiny", "--steps", "1", *given, "--json")
    error, said = one_line_error(res)
    assert fragment in error and hint in said, res


@pytest.mark.parametrize("command", ["generate", "invert"])
def test_a_profiles_backend_is_checked_too(run_cli, third_party, no_loading, profile, tmp_path, command):
    args = ("-p", "a cube", "-o", tmp_path / "x.gif", *FAST) if command == "generate" else ()
    res = run_cli(command, profile, *args, "--option", "boost=1", "--json")
    error, hint = one_line_error(res)
    assert "backend 'tiny' takes no option 'boost'" in error and "optioned" in hint
    assert not (tmp_path / "x.gif").exists()


@pytest.mark.parametrize("given, fragment", [
    ("boost=lots", "--option boost='lots' is not a whole number"),
    ("boost=2.5", "is not a whole number"),
    ("gain=nan", "--option gain='nan' is not a number"),
    ("gain=", "is not a number"),
    ("sharp=maybe", "--option sharp='maybe' is not yes or no"),
    ("mode=quick", "--option mode='quick' is not one of fast, slow"),
    ("level=9", "--option level='9' is out of range (1 to 5)"),
])
def test_a_declared_option_of_the_wrong_type_is_refused(run_cli, third_party, no_loading, clip_path, given, fragment):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", "--option", given, "--json")
    error, _ = one_line_error(res)
    assert fragment in error, res
    assert third_party == []  # not even configure() saw it


@pytest.mark.parametrize("given, fragment, code", [
    (["--option", "boost"], "--option 'boost' is not NAME=VALUE", 1),
    (["--option", "=3"], "is not NAME=VALUE", 1),
    (["--option", "boost=1", "--option", "boost=2"], "--option boost=... is given twice", 1),
    (["--option", "model_path=a/b"], "--option model_path=... is --model-path", 1),
])
def test_malformed_options_are_one_line(run_cli, third_party, no_loading, clip_path, given, fragment, code):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", *given, "--json")
    error, _ = one_line_error(res, code)
    assert fragment in error, res


def test_an_option_declared_for_another_command_is_refused(third_party):
    from vmc_cli.models.plugins import get_backend
    from vmc_cli.jobs.runtime import Runtime

    with pytest.raises(VmcError) as info:
        Runtime("cpu", options={"sharp": "1"}, command="generate").backend_options(get_backend("optioned"))
    assert info.value.message == "backend 'optioned' takes option 'sharp' in vmc tune, not in vmc generate"
    assert info.value.hint == "drop --option sharp=..."


# -- reaching the backend ------------------------------------------------------------------
def test_a_third_party_backend_receives_its_options_converted(run_cli, third_party, clip_path, tmp_path):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", "--steps", "1", "--name", "o",
                  "--option", "boost=3", "--option", "sharp=yes", "--option", "gain=0.25", "--json")
    assert res.code == 0, res
    want = {"boost": 3, "style": "plain", "sharp": True, "gain": 0.25, "mode": "fast"}  # declared defaults too
    assert third_party == [("configure", want), ("configure", want)]  # before the clip is read; in load()
    assert type(third_party[1][1]["boost"]) is int and type(third_party[1][1]["gain"]) is float
    third_party.clear()
    res = run_cli("generate", "o", "-p", "a cube", "-o", tmp_path / "o.gif", *FAST, "--option", "style=bold",
                  "--option", "boost=-2", "--json")
    assert res.code == 0, res
    assert ("configure", {"boost": -2, "style": "bold", "mode": "fast"}) in third_party  # sharp is for tune only
    assert (tmp_path / "o.gif").is_file()


def test_not_given_options_pass_only_their_defaults(third_party):
    from vmc_cli.models.plugins import get_backend
    from vmc_cli.jobs.runtime import Runtime

    backend = get_backend("optioned")
    assert Runtime("cpu").backend_options(backend) == DEFAULTS
    assert Runtime("cpu", options={"gain": 2}, command="invert").backend_options(backend) == {**DEFAULTS,
                                                                                               "gain": 2.0}
    assert Runtime("cpu").backend_options(get_backend("tiny")) == {}


def test_a_plugin_declaring_a_bad_option_is_refused(third_party):
    with pytest.raises(ValueError, match="not a Python identifier"):
        BackendOption("two words")
    with pytest.raises(ValueError, match="is not str, int, float or bool"):
        BackendOption("size", list)
    with pytest.raises(ValueError, match="'eval' is not one of"):
        BackendOption("size", int, commands=("eval",))

    class Twice:
        @hookimpl
        def register_backends(self, register):
            register("twice", TinyBackend, options=[BackendOption("a"), BackendOption("a", int)])

    from vmc_cli.models.plugins import get_backends

    pm.register(Twice(), name="twice-plugin")
    try:
        with pytest.raises(VmcError, match="declares option 'a' twice"):
            get_backends()
    finally:
        pm.unregister(name="twice-plugin")


# -- environment variables ----------------------------------------------------------------
def test_an_environment_variable_sets_an_option_and_the_command_line_wins(third_party, monkeypatch):
    from vmc_cli.models.plugins import get_backend
    from vmc_cli.jobs.runtime import Runtime

    backend = get_backend("optioned")
    monkeypatch.setenv("VMC_OPTIONED_MODE", " Slow ")
    monkeypatch.setenv("VMC_OPTIONED_LEVEL", "4")
    assert Runtime("cpu", command="tune").backend_options(backend) == {**DEFAULTS, "mode": "slow", "level": 4}
    given = Runtime("cpu", options={"mode": "fast", "level": "2"}, command="tune").backend_options(backend)
    assert (given["mode"], given["level"]) == ("fast", 2)
    assert backend.setting("level") == 4 and backend.setting("level", "3") == 3  # what a backend reads


@pytest.mark.parametrize("variable, value, message", [
    ("VMC_OPTIONED_MODE", "quick", "VMC_OPTIONED_MODE='quick' is not one of fast, slow"),
    ("VMC_OPTIONED_LEVEL", "six", "VMC_OPTIONED_LEVEL='six' is not a whole number"),
    ("VMC_OPTIONED_LEVEL", "0", "VMC_OPTIONED_LEVEL='0' is out of range (1 to 5)"),
])
def test_a_bad_environment_variable_is_one_line_before_loading(run_cli, third_party, no_loading, clip_path,
                                                               monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", "--json")
    error, hint = one_line_error(res)
    assert error == f"Error: {message}" and variable in hint and "unset it" in hint, res
    assert third_party == []


def test_a_profile_records_its_options_and_keeps_the_kept_ones(run_cli, third_party, clip_path, tmp_path,
                                                               vmc_home, monkeypatch):
    import tomllib

    monkeypatch.setenv("VMC_OPTIONED_MODE", "slow")
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", "--steps", "1", "--name", "k",
                  "--option", "level=2", "--json")
    assert res.code == 0, res
    manifest = tomllib.loads((vmc_home / "profiles" / "k" / "manifest.toml").read_text())
    assert manifest["backend"]["options"] == {**DEFAULTS, "mode": "slow", "level": 2}
    monkeypatch.delenv("VMC_OPTIONED_MODE")
    third_party.clear()
    res = run_cli("generate", "k", "-p", "a cube", "-o", tmp_path / "k.gif", *FAST, "--json")
    assert res.code == 0, res
    assert ("configure", {**DEFAULTS, "mode": "slow"}) in third_party  # mode is kept; level is not
    third_party.clear()
    res = run_cli("generate", "k", "-p", "a cube", "-o", tmp_path / "k2.gif", *FAST, "--option", "mode=fast",
                  "--json")
    assert res.code == 0 and ("configure", DEFAULTS) in third_party, res  # given beats kept


# -- out of memory: the backend's own hint ---------------------------------------------------
@pytest.mark.parametrize("backend, hint", [
    ("hungry", "try --option chunk=1"),
    ("hungry-plain", "try --dtype float16, or a device with more free memory"),
])
def test_out_of_memory_hint_comes_from_the_backend_that_ran_out(run_cli, third_party, clip_path, vmc_home,
                                                                backend, hint):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", backend, "--steps", "1", "--json")
    error, said = one_line_error(res)
    assert error == "Error: out of GPU memory (CUDA out of memory. Tried to allocate 9.00 GiB.)"
    assert said == f"Hint: {hint}"


def test_latent_backends_name_their_own_switches():
    from vmc_animatediff.backend import AnimateDiffBackend
    from vmc_zeroscope.backend import ZeroScopeBackend

    assert "VMC_ZEROSCOPE_OFFLOAD=1" in ZeroScopeBackend().oom_hint
    assert "VMC_ANIMATEDIFF_GRADIENT_CHECKPOINTING=1" in AnimateDiffBackend().oom_hint
