"""Options a backend declares for itself: listed by ``vmc backends``, checked and converted by the
core before any model loads, and passed to the backend (``--option NAME=VALUE``; ``--adapter``)."""

from __future__ import annotations

import json

import pytest

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_cli.errors import VmcError
from vmc_cli.plugins import load_plugins, pm
from vmc_pixel.tiny import TinyBackend

FAST = ("--stages", "keyframes", "--steps", "1", "--invert-steps", "1")


class OptionsBackend(TinyBackend):
    """A third-party backend (the tiny model underneath) that records what it is given."""

    received: list[tuple[str, dict]] = []

    def configure(self, *, model_path=None, progress=None, **options):
        OptionsBackend.received.append(("configure", options))

    def load(self, *, check=None, **kwargs):
        known = ("device", "dtype", "model_path", "stages", "progress")
        OptionsBackend.received.append(("load", {k: v for k, v in kwargs.items() if k not in known}))
        super().load(check=check, **{k: v for k, v in kwargs.items() if k in known})


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
]


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
    adapter = rows["animatediff"]["options"]
    assert [o["name"] for o in adapter] == ["adapter"]
    assert adapter[0]["type"] == "str" and adapter[0]["flag"] == "--adapter" and "MotionAdapter" in adapter[0]["help"]
    assert set(adapter[0]["commands"]) == {"tune", "invert", "generate", "export", "import"}
    assert rows["tiny"]["options"] == [] and rows["zeroscope"]["options"] == []
    mine = {o["name"]: o for o in rows["optioned"]["options"]}
    assert list(mine) == ["boost", "style", "sharp", "gain"]
    assert (mine["boost"]["type"], mine["boost"]["default"]) == ("int", None)
    assert (mine["style"]["type"], mine["style"]["default"]) == ("str", "plain")
    assert (mine["sharp"]["type"], mine["sharp"]["commands"], mine["sharp"]["flag"]) == ("bool", ["tune"], None)


def test_backends_and_help_show_the_options(run_cli, third_party, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps help at the terminal's width
    out = run_cli("backends").stdout.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("optioned "))
    assert out[at + 1].split() == ["--option", "boost=INTEGER:", "how", "much", "to", "boost"]
    assert out[at + 3].strip().startswith("--option sharp=1|0: sharpen") and "[tune only]" in out[at + 3]
    tiny = [line for line in out if line.startswith("tiny ")]
    assert len(tiny) == 1 and not out[out.index(tiny[0]) + 1].strip().startswith("--option")
    for command, shown, hidden in (("tune", "sharp=1|0", None), ("generate", "boost=INTEGER", "sharp="),
                                   ("invert", "adapter=TEXT (--adapter)", "sharp=")):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "--option NAME=VALUE" in text and "`vmc backends`" in text and shown in text, command
        assert hidden is None or hidden not in text, command


# -- refused before any model loads ------------------------------------------------------
@pytest.mark.parametrize("given, fragment, hint", [
    (["--option", "boost=3"], "backend 'tiny' takes no option 'boost'", "it is for optioned"),
    (["--option", "nobody=3"], "backend 'tiny' takes no option 'nobody'", "`vmc backends`"),
    (["--adapter", "x/y"], "backend 'tiny' takes no --adapter", "it is for animatediff"),
    (["--option", "adapter=x/y"], "backend 'tiny' takes no --adapter", "it is for animatediff"),
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
    (["--adapter", "a/b", "--option", "adapter=c/d"], "--adapter and --option adapter=... are both given", 1),
])
def test_malformed_options_are_one_line(run_cli, third_party, no_loading, clip_path, given, fragment, code):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", *given, "--json")
    error, _ = one_line_error(res, code)
    assert fragment in error, res


def test_an_option_declared_for_another_command_is_refused(third_party):
    from vmc_cli.plugins import get_backend
    from vmc_cli.runtime import Runtime

    with pytest.raises(VmcError) as info:
        Runtime("cpu", options={"sharp": "1"}, command="generate").backend_options(get_backend("optioned"))
    assert info.value.message == "backend 'optioned' takes option 'sharp' in vmc tune, not in vmc generate"
    assert info.value.hint == "drop --option sharp=..."


# -- reaching the backend ------------------------------------------------------------------
def test_a_third_party_backend_receives_its_options_converted(run_cli, third_party, clip_path, tmp_path):
    res = run_cli("tune", clip_path, "-p", "a disc", "--backend", "optioned", "--steps", "1", "--name", "o",
                  "--option", "boost=3", "--option", "sharp=yes", "--option", "gain=0.25", "--json")
    assert res.code == 0, res
    want = {"boost": 3, "style": "plain", "sharp": True, "gain": 0.25}  # style: its declared default
    assert third_party == [("configure", want), ("load", want)]
    assert type(third_party[1][1]["boost"]) is int and type(third_party[1][1]["gain"]) is float
    third_party.clear()
    res = run_cli("generate", "o", "-p", "a cube", "-o", tmp_path / "o.gif", *FAST, "--option", "style=bold",
                  "--option", "boost=-2", "--json")
    assert res.code == 0, res
    assert ("load", {"boost": -2, "style": "bold"}) in third_party  # sharp is for tune only: not passed
    assert (tmp_path / "o.gif").is_file()


def test_not_given_options_pass_only_their_defaults(third_party):
    from vmc_cli.plugins import get_backend
    from vmc_cli.runtime import Runtime

    backend = get_backend("optioned")
    assert Runtime("cpu").backend_options(backend) == {"style": "plain"}
    assert Runtime("cpu", options={"gain": 2}, command="invert").backend_options(backend) == {"style": "plain",
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

    from vmc_cli.plugins import get_backends

    pm.register(Twice(), name="twice-plugin")
    try:
        with pytest.raises(VmcError, match="declares option 'a' twice"):
            get_backends()
    finally:
        pm.unregister(name="twice-plugin")


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
