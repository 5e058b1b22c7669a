"""The backend contract: one suite run against every registered backend at tiny size (#20).

Every backend found through the plugin manager (the ``vmc`` entry-point group, as ``vmc
backends`` lists them) is a parameter. Each one needs a *tiny factory*: how to build it small,
offline, on a CPU (:class:`Tiny`). The built-in ones are in :data:`TINY` below; a third-party
backend gives its own through ``VMC_CONTRACT_FACTORIES=package.module:NAME`` (a mapping from
backend name to a :class:`Tiny` or a dict of its fields), see docs/backends.md. A registered
backend without one is reported as skipped, with what to provide.

What is checked, for each backend:

- it loads through the plugin manager and states its facts (frames, size, model, schedules);
- prompt encoding: one row per prompt, the same prompt gives the same row in any batch;
- prediction: the shape and dtype of its input, the same twice, rows independent of the
  batch they are in, and it depends on the timestep and on the text;
- frames -> model -> frames: the shapes, frames mapped one by one in order, and for a
  lossless model space the same pixels back;
- the q/k/v under ``temporal_attention_marker`` attend over frames;
- tuning changes the selected parameters (the temporal q/k/v), every one of them, and
  nothing else;
- the schedulers agree with the stated schedule: with an exact denoiser in place of the
  model, DDIM inversion then sampling gives the clip back, closer with more steps;
- with the model, DDIM inversion then sampling under the empty prompt at guidance 1 gives
  the clip back at full strength within the backend's stated tolerance, closer than
  sampling from fresh noise by a stated factor; at strength 0.5 half the steps run, the
  inversion stops nearer the clip and the clip comes back closer;
- motion scale S puts W0 + S (W - W0) into the tuned parameters and nothing else; 0 is the
  base model exactly, 1 the tuned one;
- the cascade's output shape is the one the factory states;
- ``model_info`` survives the manifest's TOML, is the same for a second load of the same
  files, and a profile recorded with another key-frame revision is refused by ``load``'s
  check before the key-frame model is there.

The expected values come from the test (arithmetic, the factory's stated shapes, the clip
itself, a second fresh instance), never from the output being checked. Cases that run the
model many times are ``slow``.
"""

from __future__ import annotations

import importlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

PROMPT = "a red cube is sliding"


# ------------------------------------------------------------------------------------------
# tiny factories
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tiny:
    """How the contract suite builds one backend small, offline, on a CPU, in float32.

    The backend itself always comes from the plugin manager (``get_backend(name)``); this says
    only what its ``load`` needs and what to expect of it."""

    #: once per test session: write model files under the given empty folder and return what
    #: :attr:`load` needs (None: nothing to write)
    prepare: Callable[[Path], Any] | None = None
    #: keyword arguments of ``backend.load`` besides device, dtype, stages and check, from what
    #: :attr:`prepare` returned (e.g. ``lambda root: {"model_path": str(root)}``)
    load: Callable[[Any], dict] = lambda prepared: {}
    #: environment variables set while the backend is made and loaded (sizes, steps, modes)
    env: dict = field(default_factory=dict)
    #: the clip the checks use, (frames, height, width, 3) uint8, from the loaded backend
    #: (default: a disc moving on a dark background at the backend's key-frame size)
    clip: Callable[[Any], np.ndarray] | None = None
    #: (frames, height, width) of what the whole cascade (``--stages all``) makes from
    #: key-frames; None: not checked (say why in ``why``)
    cascade_shape: tuple[int, int, int] | None = None
    #: frames -> model -> frames: the largest mean absolute error in 8-bit levels; None for a
    #: lossy model space built with random weights (a random VAE is no codec)
    round_trip_levels: float | None = 1.0
    #: DDIM steps of the model's inversion round trip
    invert_steps: int = 4
    #: the model's invert-then-sample at full strength: the largest relative error
    #: ||x - clip|| / ||clip|| in model space (None: not checked, as for random weights, whose
    #: latents have any scale), and the largest ratio to the error of sampling from fresh
    #: noise (None: not checked; say why)
    reconstruction: float | None = None
    baseline_ratio: float | None = 0.35
    #: the round trip with an exact denoiser in place of the model, at 40 steps (the largest
    #: relative error): what the schedulers alone lose
    exact_tolerance: float = 0.05
    #: why the tolerances are what they are (shown when a check fails)
    why: str = ""


def _tiny_show1(root: Path) -> Path:
    from test_show1_backend import build_tiny_show1

    return build_tiny_show1(root)


def _tiny_zeroscope(root: Path) -> Path:
    from test_latent_backends import SCHEDULER, _text, _unet3d, _vae
    from tiny_models import make_tiny_clip

    from diffusers import DDIMScheduler, TextToVideoSDPipeline

    te, tok = _text(make_tiny_clip(root / "clip"), 1)
    TextToVideoSDPipeline(vae=_vae(2), text_encoder=te, tokenizer=tok, unet=_unet3d(0, sample_size=16),
                          scheduler=DDIMScheduler(**SCHEDULER)).save_pretrained(root / "zeroscope")
    return root / "zeroscope"


def _tiny_animatediff(root: Path) -> dict:
    from test_latent_backends import SCHEDULER, _adapter, _text, _unet2d, _vae
    from tiny_models import make_tiny_clip

    from diffusers import DDIMScheduler, StableDiffusionPipeline

    te, tok = _text(make_tiny_clip(root / "clip"), 10)
    StableDiffusionPipeline(vae=_vae(11), text_encoder=te, tokenizer=tok, unet=_unet2d(12),
                            scheduler=DDIMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(root / "base")
    _adapter(30).save_pretrained(root / "adapter")
    return {"model_path": str(root / "base"), "adapter": str(root / "adapter")}


def _shapes_clip(backend) -> np.ndarray:
    from vmc_shapes.world import make_clip

    return make_clip(0, size=(backend.width, backend.height), frames=backend.num_frames)[0]


RANDOM = ("random weights: the last DDIM step from the top of the schedule divides the model's error by "
          "sqrt(abar) there, so the model's round trip is only a few times closer to the clip than fresh noise "
          "(measured at 4 steps: tiny 0.23, zeroscope 0.18, animatediff 0.04 of fresh noise's error)")

#: the built-in backends' tiny factories (tests/test_show1_backend.py and
#: tests/test_latent_backends.py build the same miniatures for their own tests)
TINY: dict[str, Tiny] = {
    "tiny": Tiny(cascade_shape=(29, 60, 96), baseline_ratio=0.35, why=RANDOM),
    "shapes": Tiny(clip=_shapes_clip, cascade_shape=(29, 48, 48), reconstruction=0.2, baseline_ratio=0.5,
                   why="trained, but small: at full strength it gives back 0.13 of the clip (relative), 0.38 of "
                       "fresh noise's error, whose black background is already close to the clip's"),
    "show1": Tiny(prepare=_tiny_show1, load=lambda root: {"model_path": str(root)},
                  env={"VMC_SHOW1_KEYFRAME_SIZE": "16x10",
                       "VMC_SHOW1_STEPS": "interpolation=2,sr1_first_frame=2,sr1=2,sr2=2",
                       # the authors' inversion schedule is not the sampler's (on purpose: it keeps
                       # some of the clip); only the model's own schedule makes a round trip
                       "VMC_SHOW1_INVERSION": "model"},
                  cascade_shape=(29, 80, 144), baseline_ratio=None,
                  why="random weights, and the sampler clips x0 (the base model's clip_sample and thresholding): "
                      "from the top of the cosine schedule, where sqrt(abar) = 5e-5, the first step's x0 is "
                      "clipped noise, so the model's round trip is as far as fresh noise (0.97 of it); the "
                      "exact-denoiser round trip and strength 0.5 are checked"),
    "zeroscope": Tiny(prepare=_tiny_zeroscope, load=lambda folder: {"model_path": str(folder)},
                      cascade_shape=(16, 32, 32), round_trip_levels=None,
                      baseline_ratio=0.35, why=RANDOM),
    "animatediff": Tiny(prepare=_tiny_animatediff, load=dict, cascade_shape=(16, 32, 32), round_trip_levels=None,
                        baseline_ratio=0.35, why=RANDOM),
}


def _wan() -> Tiny:
    from vmc_wan.contract import TINY as WAN

    return Tiny(**WAN["wan"])


TINY["wan"] = _wan()
#: the shipped shapes-wan model (trained: its VAE is a codec and its round trip is measured)
#: the shipped shapes-wan model (trained: its VAE is a codec and its round trip is measured)
TINY["shapes-wan"] = Tiny(clip=_shapes_clip, cascade_shape=(9, 32, 32), round_trip_levels=6.0, invert_steps=25,
                          reconstruction=0.8, baseline_ratio=0.8, exact_tolerance=0.1,
                          why="trained and small; its flow inversion is coarse at 25 steps (0.69 of the clip's norm "
                              "with the empty prompt, 0.24 at 100 steps; docs/shapes_wan.md section 3); first-order "
                              "Euler on the unshifted flow grid gives 0.073 at 40 steps with the exact velocity")


def factories() -> dict[str, Tiny]:
    """:data:`TINY` plus those named by ``VMC_CONTRACT_FACTORIES`` (``module:NAME[,module:NAME]``)."""
    found = dict(TINY)
    for ref in filter(None, (r.strip() for r in os.environ.get("VMC_CONTRACT_FACTORIES", "").split(","))):
        module, _, attr = ref.partition(":")
        extra = getattr(importlib.import_module(module), attr or "TINY")
        found.update({name: f if isinstance(f, Tiny) else Tiny(**f) for name, f in extra.items()})
    return found


def registered() -> list[str]:
    from vmc_cli.models.plugins import get_backends

    return sorted(get_backends())


# ------------------------------------------------------------------------------------------
# fixtures: one module-scoped parameter per registered backend
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=registered())
def spec(request) -> tuple[str, Tiny]:
    name = request.param
    tiny = factories().get(name)
    if tiny is None:
        pytest.skip(f"backend {name!r} has no tiny factory: give one in VMC_CONTRACT_FACTORIES "
                    "(docs/backends.md, 'Running it against a third-party backend')")
    return name, tiny


@pytest.fixture(scope="module")
def prepared(spec, tmp_path_factory):
    name, tiny = spec
    return tiny.prepare(tmp_path_factory.mktemp(f"contract-{name}")) if tiny.prepare else None


class Maker:
    """``make(stages=("keyframes",), check=None)``: a new instance from the plugin manager,
    loaded on the CPU in float32 with the factory's options and environment (``new`` and
    ``load`` do the two halves)."""

    def __init__(self, name: str, tiny: Tiny, prepared):
        self.name, self.tiny, self.prepared = name, tiny, prepared

    def _env(self):
        mp = pytest.MonkeyPatch()
        for key, value in self.tiny.env.items():
            mp.setenv(key, value)
        return mp

    def new(self):
        from vmc_cli.models.plugins import get_backend

        mp = self._env()
        try:
            return get_backend(self.name)
        finally:
            mp.undo()

    def load(self, backend, stages=("keyframes",), check=None):
        mp = self._env()
        try:
            backend.load(device="cpu", dtype="float32", stages=tuple(stages), check=check,
                         **self.tiny.load(self.prepared))
        finally:
            mp.undo()
        return backend

    def __call__(self, stages=("keyframes",), check=None):
        return self.load(self.new(), stages, check)


@pytest.fixture(scope="module")
def make(spec, prepared) -> Maker:
    return Maker(*spec, prepared)


@pytest.fixture(scope="module")
def backend(make):
    """A loaded instance that the read-only checks share."""
    return make()


@pytest.fixture(scope="module")
def clip(spec, backend) -> np.ndarray:
    from make_clip import moving_disc

    tiny = spec[1]
    frames = tiny.clip(backend) if tiny.clip else moving_disc(backend.num_frames, backend.width, backend.height)
    assert frames.shape == (backend.num_frames, backend.height, backend.width, 3) and frames.dtype == np.uint8
    return frames


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# ------------------------------------------------------------------------------------------
# load, prompts, prediction
# ------------------------------------------------------------------------------------------
def test_loads_and_states_its_facts(spec, backend):
    from vmc_cli.backend import Backend

    name = spec[0]
    assert isinstance(backend, Backend) and backend.name == name
    for fact in ("num_frames", "width", "height"):
        value = getattr(backend, fact)
        assert isinstance(value, int) and value > 0, (fact, value)
    assert backend.fps > 0
    assert isinstance(backend.unet, torch.nn.Module)
    assert backend.dtype == torch.float32 and backend.device == torch.device("cpu")
    assert {p.dtype for p in backend.unet.parameters()} == {torch.float32}  # float32 was asked for
    assert {p.device.type for p in backend.unet.parameters()} == {"cpu"}
    stages = backend.expand_stages(("all",))
    assert stages[0] == "keyframes" and set(stages[1:]) == set(backend.cascade_stages)
    for key in ("invert_steps", "sample_steps", "guidance"):
        assert key in backend.defaults, key
    config = backend.noise_scheduler_config()
    assert isinstance(config, dict) and int(config["num_train_timesteps"]) > 0
    for scheduler in (backend.sampling_scheduler(), backend.inversion_scheduler()):
        scheduler.set_timesteps(4)
        assert len(scheduler.timesteps) == 4


def test_prompt_encoding(backend):
    rows = backend.encode_prompts([PROMPT, "", PROMPT])
    assert rows.dim() == 3 and rows.shape[0] == 3 and rows.dtype == backend.dtype
    assert torch.isfinite(rows).all()
    assert torch.equal(rows[0], rows[2])
    assert not torch.allclose(rows[0], rows[1])
    alone = backend.encode_prompts([""])  # the same row whatever the batch around it
    assert alone.shape == (1, *rows.shape[1:]) and torch.allclose(alone[0], rows[1], atol=1e-5)


def test_prediction_shape_and_dtype(backend, clip):
    x0 = backend.frames_to_model(clip)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, *x0.shape[1:]), generator=gen).to(backend.dtype)
    t = torch.tensor([50, 600])
    text = backend.encode_prompts([PROMPT, ""])
    with torch.no_grad():
        eps = backend.predict_noise(x, t, text)
        second = backend.predict_noise(x[1:], t[1:], text[1:])
        again = backend.predict_noise(x[1:], t[1:], text[1:])
        later = backend.predict_noise(x[1:], torch.tensor([900]), text[1:])
        worded = backend.predict_noise(x[1:], t[1:], text[:1])
    assert eps.shape == x.shape and eps.dtype == backend.dtype and torch.isfinite(eps).all()
    assert torch.equal(again, second), "the same input gave another prediction (dropout or noise left on?)"
    scale = float(eps.abs().mean())
    assert torch.allclose(second[0], eps[1], atol=1e-4 * max(scale, 1.0)), "a row depends on the batch it is in"
    assert (later - second).abs().mean() > 1e-3 * scale, "the prediction ignores the timestep"
    assert (worded - second).abs().mean() > 1e-4 * scale, "the prediction ignores the text"


# ------------------------------------------------------------------------------------------
# frames <-> model
# ------------------------------------------------------------------------------------------
def test_frames_model_round_trip(spec, backend, clip):
    tiny = spec[1]
    z = backend.frames_to_model(clip)
    f = clip.shape[0]
    fold = backend.temporal_factor
    assert z.dim() == 5 and z.shape[0] == 1 and z.shape[2] == backend.latent_frames(f), z.shape
    assert z.shape[2] == (f if fold == 1 else (f - 1) // fold + 1), "latent_frames does not say the model's count"
    assert z.dtype == backend.dtype and torch.isfinite(z).all()
    back = backend.model_to_frames(z)
    assert isinstance(back, np.ndarray) and back.dtype == np.uint8 and back.shape == clip.shape
    if fold > 1 or backend.causal_frames:  # a causal VAE: the first frame is a model frame of its own, then
        # fold frames each (Wan's reads them in chunks of 4 even where it folds none: shapes-wan)
        alone = backend.frames_to_model(clip[:1])
        assert alone.shape[2] == 1 and torch.allclose(alone[:, :, 0], z[:, :, 0], atol=1e-4), \
            "the first frame alone is not model frame 0"
        assert backend.model_to_frames(z[:, :, :2]).shape == (1 + fold, *clip.shape[1:])
        if fold == 1:  # causal: the first 5 frames alone are the first 5 model frames
            assert torch.allclose(backend.frames_to_model(clip[:5]), z[:, :, :5], atol=1e-4), "not causal"
        with pytest.raises(Exception):  # a clip of another length is refused, not silently cut
            backend.frames_to_model(clip[:fold if fold > 1 else 2])
        return
    reversed_z = backend.frames_to_model(np.ascontiguousarray(clip[::-1]))
    assert torch.allclose(reversed_z, z.flip(2), atol=1e-5), "frames are not mapped one by one"
    for i in (0, f - 1):  # each frame alone lands where it is in the clip
        alone = backend.frames_to_model(clip[i:i + 1])
        assert torch.allclose(alone[:, :, 0], z[:, :, i], atol=1e-5), f"frame {i} is not model frame {i}"
    assert np.array_equal(backend.model_to_frames(z[:, :, :2]), back[:2])
    if tiny.round_trip_levels is not None:
        error = np.abs(back.astype(np.int16) - clip.astype(np.int16)).mean()
        assert error <= tiny.round_trip_levels, f"frames -> model -> frames is off by {error:.2f} levels on average"


# ------------------------------------------------------------------------------------------
# tuning and motion scale
# ------------------------------------------------------------------------------------------
QKV = re.compile(r"\.(to_q|to_k|to_v)\.(weight|bias)$")
#: LoRA factors on those projections (peft's names: ``...to_q.lora_A.default.weight``)
LORA_QKV = re.compile(r"\.(to_q|to_k|to_v)\.lora_[AB]\.")


def plain(state: dict) -> dict:
    """A state dict under the base model's names: peft's wrapped ``to_q.base_layer.weight`` is
    ``to_q.weight`` again, so a model with adapters compares with one without."""
    return {k.replace(".base_layer.", "."): v for k, v in state.items()}


def tuned_names(backend) -> set[str]:
    """What the default tuning trains, found here by name: the temporal q/k/v, or, for a backend
    that tunes adapters (``adapter_layout()``), the LoRA factors on them."""
    if backend.adapter_layout() is None:
        return temporal_qkv(backend)
    inside = re.compile(rf"(^|\.){re.escape(backend.temporal_attention_marker)}\.")
    names = {n for n, _ in backend.unet.named_parameters() if inside.search(n) and LORA_QKV.search(n)}
    assert names, "the adapters put nothing on the q/k/v under the marker"
    return names


def temporal_qkv(backend) -> set[str]:
    """The paper's tuning targets, found here by name (not by the core's selection): the q/k/v
    projections inside modules whose name contains the backend's temporal attention marker."""
    inside = re.compile(rf"(^|\.){re.escape(backend.temporal_attention_marker)}\.")
    names = {n for n, _ in backend.unet.named_parameters() if inside.search(n) and QKV.search(n)}
    assert names, f"no q/k/v under {backend.temporal_attention_marker!r}: the marker names no module of the model"
    return names


@pytest.fixture(scope="module")
def tuned(make, clip):
    """A fresh instance before and after two tuning steps: (backend, base state, result)."""
    from vmc_cli.method.tuning import TuneConfig, tune

    backend = make()
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    x0 = backend.frames_to_model(clip)
    result = tune(backend, x0, backend.encode_prompts([PROMPT]), TuneConfig(steps=2, lr=1e-2, weight_decay=0.0))
    return backend, base, result


def test_the_marker_names_temporal_attention(backend, clip):
    """The q/k/v under ``temporal_attention_marker`` attend over frames. ``attention_span``
    ``frames``: every one of them sees sequences as long as the clip, (batch x height x width,
    frames, channels). ``tokens`` (a video transformer): one sequence holds every frame's tokens,
    so it is a whole number of tokens per frame times the frames, and one model frame fewer
    makes it shorter by exactly one frame's tokens."""
    names = {n.rsplit(".", 1)[0] for n in temporal_qkv(backend)}
    text = backend.encode_prompts([PROMPT])

    def lengths_for(x) -> dict[str, set]:
        lengths: dict[str, set] = {}
        hooks = [backend.unet.get_submodule(n).register_forward_pre_hook(
            lambda module, args, n=n: lengths.setdefault(n, set()).add(args[0].shape[-2])) for n in names]
        try:
            with torch.no_grad():
                backend.predict_noise(x, torch.tensor([300]), text)
        finally:
            for hook in hooks:
                hook.remove()
        assert set(lengths) == names, f"{len(names) - len(lengths)} of them never ran"
        return lengths

    x = backend.frames_to_model(clip)
    frames = x.shape[2]
    lengths = lengths_for(x)
    if backend.attention_span == "frames":
        wrong = {n: v for n, v in lengths.items() if v != {frames}}
        assert not wrong, f"not over the {frames} frames: {dict(list(wrong.items())[:2])}"
        return
    assert backend.attention_span == "tokens", backend.attention_span
    shorter = lengths_for(x[:, :, :-1])
    for n in names:
        (full,), (less,) = lengths[n], shorter[n]
        per_frame = full - less
        assert per_frame >= 1 and full == frames * per_frame, (n, full, less, frames)


@pytest.mark.slow
def test_tuning_changes_only_the_selected_parameters(tuned):
    backend, base, result = tuned
    expected = tuned_names(backend)
    after = plain(backend.unet.state_dict())
    changed = {k for k in set(base) | set(after) if k not in base or k not in after or not torch.equal(base[k], after[k])}
    assert changed == expected, (sorted(changed - expected)[:3], sorted(expected - changed)[:3])
    assert set(result["weights"]) == expected
    live = dict(backend.unet.named_parameters())
    assert all(torch.equal(w, live[n].detach().float()) for n, w in result["weights"].items())
    assert not any(p.requires_grad for p in backend.unet.parameters())


@pytest.mark.slow
def test_motion_scale(make, tuned, clip):
    """apply_profile at scale S: W0 + S (W - W0) in the tuned parameters, everything else the
    base model's; S = 0 predicts as the base model, S = 1 as the tuned one."""
    from vmc_cli.method.pipeline import MotionPipeline

    tuned_backend, base, result = tuned
    weights = result["weights"]
    fresh = make()
    layout = tuned_backend.adapter_layout()
    if layout is not None:  # a profile of adapters: the backend rebuilds them (B = 0) first
        fresh.use_adapter_layout(layout, "contract")
        return _lora_motion_scale(fresh, tuned_backend, base, weights, clip)
    pipeline = MotionPipeline(fresh)
    x = fresh.frames_to_model(clip)
    t = torch.tensor([400])
    text = fresh.encode_prompts([PROMPT])
    with torch.no_grad():
        base_eps = fresh.predict_noise(x, t, text)
        tuned_eps = tuned_backend.predict_noise(x, t, tuned_backend.encode_prompts([PROMPT]))
    assert (tuned_eps - base_eps).abs().max() > 0, "tuning did not change the prediction"

    pipeline.apply_profile(weights, 0.5)
    now = fresh.unet.state_dict()
    for k, w0 in base.items():
        want = w0 + 0.5 * (weights[k] - w0) if k in weights else w0
        assert torch.allclose(now[k], want, atol=1e-6), k
    pipeline.apply_profile({k: base[k] for k in weights})  # back to the base model
    pipeline.apply_profile(weights, 0.0)
    with torch.no_grad():
        assert torch.equal(fresh.predict_noise(x, t, text), base_eps)
    pipeline.apply_profile(weights, 1.0)
    with torch.no_grad():
        assert torch.allclose(fresh.predict_noise(x, t, text), tuned_eps, atol=1e-5)


def _lora_motion_scale(fresh, tuned_backend, base, weights, clip):
    """Adapters: at motion scale S each weight changes by S B A (the LoRA scale); the base
    weights stay; 0 predicts as the base model, 1 as the tuned one."""
    from vmc_cli.method.pipeline import MotionPipeline

    x = fresh.frames_to_model(clip)
    t = torch.tensor([400])
    text = fresh.encode_prompts([PROMPT])
    with torch.no_grad():
        base_eps = fresh.predict_noise(x, t, text)  # B = 0: the base model
        tuned_eps = tuned_backend.predict_noise(x, t, tuned_backend.encode_prompts([PROMPT]))
    assert (tuned_eps - base_eps).abs().max() > 0, "tuning did not change the prediction"
    modules = sorted({n.split(".lora_A.")[0] for n in weights if ".lora_A." in n})
    assert modules and len(weights) == 2 * len(modules)
    ab = {m: (next(n for n in weights if n.startswith(m + ".lora_A.")), next(n for n in weights
                                                                          if n.startswith(m + ".lora_B.")))
          for m in modules}
    pipeline = MotionPipeline(fresh)
    for scale in (0.5, 0.0, 1.0):
        pipeline.apply_profile({n: torch.zeros_like(w) if ".lora_B." in n else w
                                for n, w in weights.items()})  # back to B = 0
        pipeline.apply_profile(weights, scale)
        live = dict(fresh.unet.named_parameters())
        for m, (a, b) in ab.items():
            want = scale * (weights[b] @ weights[a])
            assert torch.allclose(live[b].detach() @ live[a].detach(), want, atol=1e-6), (scale, m)
        now = plain({k: v for k, v in fresh.unet.state_dict().items() if ".lora_" not in k})
        assert all(torch.equal(now[k], w0) for k, w0 in base.items()), "a base weight moved"
        with torch.no_grad():
            eps = fresh.predict_noise(x, t, text)
        if scale == 0:
            assert torch.equal(eps, base_eps)
        if scale == 1:
            assert torch.allclose(eps, tuned_eps, atol=1e-5)


# ------------------------------------------------------------------------------------------
# inversion and strength
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def round_trip(spec, backend, clip):
    """Invert the clip (empty prompt) and sample it back (empty prompt, guidance 1) at strength
    1 and 0.5, and sample from fresh noise; counts the model's calls of each step."""
    from vmc_cli.method.pipeline import MotionPipeline

    steps = spec[1].invert_steps
    pipeline = MotionPipeline(backend)
    x0 = backend.frames_to_model(clip)
    calls = []  # the key-frame model's forward passes, whatever method of the backend runs it
    hook = backend.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        out = {"x0": x0, "steps": steps}
        for strength in (1.0, 0.5):
            calls.clear()
            inverted = pipeline.invert(x0, steps, strength)
            out[f"inverted {strength}"], out[f"invert calls {strength}"] = inverted, len(calls)
            calls.clear()
            out[f"back {strength}"] = pipeline.transfer(x0, "", steps=steps, guidance=1.0, strength=strength,
                                                        inverted=inverted)
            out[f"sample calls {strength}"] = len(calls)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        out["fresh"] = pipeline.keyframes(noise, "", steps=steps, guidance=1.0)
    finally:
        hook.remove()
    return out


def test_an_exact_denoiser_makes_the_round_trip(spec, backend, clip):
    """The backend's two schedulers and its stated training schedule agree. In place of the
    model, the exact denoiser of Gaussian data N(0, S^2) (every value independent, S = 2):
    epsilon = sqrt(1 - abar) x / (abar S^2 + 1 - abar), abar from ``noise_scheduler_config()``.
    Its probability-flow path scales the clip by a known amount at each noise level, so DDIM
    inversion then sampling through the pipeline gives the clip back, with an error that halves
    as the steps double (DDIM is first order); an inverter or sampler on another schedule
    misses, and more steps do not help (checked by hand with a scaled-linear inverter on the
    tiny backend's cosine schedule: 0.23 at 10 steps, 0.28 at 40). Show-1's ``authors``
    inversion is on another schedule on purpose; its factory picks ``model``."""
    from diffusers import DDPMScheduler

    from vmc_cli.method.pipeline import MotionPipeline
    from vmc_cli.method.schedule import Schedule

    x0 = backend.frames_to_model(clip)
    if Schedule.of(backend).flow:
        # rectified flow, x_t = (1 - s) x0 + s eps, s = t / num_train_timesteps: for N(0, S^2) data
        # E[x0 | x_t] = (1 - s) S^2 x_t / D and E[eps | x_t] = s x_t / D, D = (1 - s)^2 S^2 + s^2;
        # the model's output is the velocity eps - x0
        steps_total = float(backend.noise_scheduler_config().get("num_train_timesteps", 1000))

        def exact(x, t, text):
            s = (torch.as_tensor(t, dtype=torch.float64).cpu() / steps_total).view(-1, *([1] * (x.dim() - 1)))
            s = s.to(x.device)
            d = (1 - s) ** 2 * 4 + s ** 2
            return ((s - (1 - s) * 4) * x.double() / d).to(x.dtype)

        replaced = "model_output"
    else:
        abar = DDPMScheduler.from_config(backend.noise_scheduler_config()).alphas_cumprod.to(torch.float64)

        def exact(x, t, text):
            a = abar[torch.as_tensor(t).long().cpu()].view(-1, *([1] * (x.dim() - 1))).to(x.device)
            return ((1 - a).sqrt() * x.double() / (4 * a + 1 - a)).to(x.dtype)

        replaced = "predict_noise"
    pipeline = MotionPipeline(backend)
    setattr(backend, replaced, exact)
    errors = {}
    try:
        for steps in (10, 40):
            inverted = pipeline.invert(x0, steps)
            errors[steps] = _rel(pipeline.keyframes(inverted, "", steps=steps, guidance=1.0), x0)
            assert _rel(inverted, x0) > 0.2, "the inversion left the clip where it was"
    finally:
        delattr(backend, replaced)
    assert errors[40] < spec[1].exact_tolerance, f"relative error {errors[40]:.4f} at 40 steps ({spec[1].why})"
    assert errors[40] < 0.6 * errors[10], f"the error does not shrink with the steps: {errors}"


@pytest.mark.slow
def test_invert_then_sample_reproduces_the_clip(spec, round_trip):
    tiny = spec[1]
    x0 = round_trip["x0"]
    error, fresh = _rel(round_trip["back 1.0"], x0), _rel(round_trip["fresh"], x0)
    assert round_trip["back 1.0"].shape == x0.shape
    if tiny.reconstruction is None and tiny.baseline_ratio is None:
        pytest.skip(f"the factory states no tolerance for the model's round trip ({tiny.why})")
    if tiny.reconstruction is not None:
        assert error <= tiny.reconstruction, f"relative error {error:.3f} > {tiny.reconstruction} ({tiny.why})"
    if tiny.baseline_ratio is not None:
        assert error <= tiny.baseline_ratio * fresh, (
            f"relative error {error:.3f}, {error / fresh:.2f} of fresh noise's {fresh:.3f} ({tiny.why})")


@pytest.mark.slow
def test_strength(round_trip):
    """At strength 0.5 half the steps run each way, the inversion stops nearer the clip, and
    the clip comes back closer than from the full inversion."""
    steps, x0 = round_trip["steps"], round_trip["x0"]
    assert round_trip["invert calls 1.0"] == steps and round_trip["invert calls 0.5"] == math.ceil(steps / 2)
    assert round_trip["sample calls 1.0"] == steps
    assert abs(round_trip["sample calls 0.5"] - steps / 2) <= 1
    assert _rel(round_trip["inverted 0.5"], x0) < _rel(round_trip["inverted 1.0"], x0)
    assert _rel(round_trip["back 0.5"], x0) < _rel(round_trip["back 1.0"], x0)


# ------------------------------------------------------------------------------------------
# cascade
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cascade_output_shape(spec, make, clip):
    from vmc_cli.method.pipeline import MotionPipeline

    tiny = spec[1]
    if tiny.cascade_shape is None:
        pytest.skip(f"the factory states no cascade shape ({tiny.why})")
    backend = make(stages=("all",))
    pipeline = MotionPipeline(backend)
    keyframes = backend.frames_to_model(clip)
    only = pipeline.cascade(keyframes, PROMPT, stages=("keyframes",))
    assert np.array_equal(only, backend.model_to_frames(keyframes))
    frames = pipeline.cascade(keyframes, PROMPT, stages=("all",), seed=3)
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8
    assert frames.shape == (*tiny.cascade_shape, 3)


# ------------------------------------------------------------------------------------------
# model_info
# ------------------------------------------------------------------------------------------
def test_model_info_is_recorded_and_a_mismatch_refused(spec, make, backend):
    import tomli_w

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from vmc_cli.errors import VmcError
    from vmc_cli.store.profiles import check_backend

    name = spec[0]
    info = backend.model_info()
    keyframes = info["keyframes"]
    assert isinstance(keyframes["id"], str) and keyframes["id"]
    assert isinstance(keyframes["revision"], str) and keyframes["revision"]
    manifest = {"backend": {"name": name, "models": info}}
    assert tomllib.loads(tomli_w.dumps(manifest)) == manifest  # what the profile's manifest keeps

    seen = []

    def same(now):
        seen.append(now)
        check_backend(manifest, "p", name, now)

    again = make(check=same)  # a second load of the same files: the record matches
    assert seen and all(s["keyframes"] == keyframes for s in seen)
    assert again.model_info() == info

    other = {**manifest, "backend": {**manifest["backend"], "models": {
        **info, "keyframes": {**keyframes, "revision": "0" * 16}}}}
    refused = []
    fresh = make.new()

    def mismatch(now):
        try:
            ready = isinstance(fresh.unet, torch.nn.Module)
        except Exception:  # "call load() first"
            ready = False
        refused.append(ready)
        check_backend(other, "p", name, now)

    with pytest.raises(VmcError, match="was tuned on key-frame model"):
        make.load(fresh, check=mismatch)
    assert refused == [False], "the check ran after the key-frame model was loaded"
