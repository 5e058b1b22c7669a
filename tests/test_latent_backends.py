"""The ``zeroscope`` and ``animatediff`` backends on tiny random-weight models.

The components are built from inline configurations (a few channels, 2 blocks, a small
CLIP text model with a tokenizer written offline, as diffusers' own tests do), saved with
``save_pretrained`` into the hub's layout, and driven through the real CLI.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from vmc_cli.method.inversion import ddim_invert
from vmc_cli.store.profiles import ProfileStore
from vmc_cli.method.sampling import ddim_sample
from vmc_cli.method.tuning import TuneConfig, select_parameters, tune
from vmc_cli.io.video import read_frames

SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
FAST = ("--steps", "2", "--invert-steps", "2")


def _text(tiny_clip_dir, seed):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tiny_clip_dir))
    torch.manual_seed(seed)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=tok.model_max_length,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()
    return te, tok


def _vae(seed):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         norm_num_groups=32, sample_size=32)


def _unet3d(seed, sample_size):
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    return UNet3DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size,
                                in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=32)


@pytest.fixture(scope="session")
def zeroscope_folder(tmp_path_factory, tiny_clip_dir):
    """What ``TextToVideoSDPipeline.save_pretrained`` writes, for a tiny random model (32x32 frames)."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline

    te, tok = _text(tiny_clip_dir, 1)
    unet = _unet3d(0, sample_size=16)
    folder = tmp_path_factory.mktemp("zeroscope") / "tiny-zeroscope"
    TextToVideoSDPipeline(vae=_vae(2), text_encoder=te, tokenizer=tok, unet=unet,
                          scheduler=DDIMScheduler(**SCHEDULER)).save_pretrained(folder)
    return folder


def _unet2d(seed):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2)


def _adapter(seed):
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    return MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_norm_num_groups=2,
                         motion_num_attention_heads=4)


@pytest.fixture(scope="session")
def animatediff_folders(tmp_path_factory, tiny_clip_dir):
    """Two SD1.5-layout bases (different weights), two adapters, and an AnimateDiffPipeline folder."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler, StableDiffusionPipeline

    root = tmp_path_factory.mktemp("animatediff")
    folders = {}
    for name, seed in (("base_a", 10), ("base_b", 20)):
        te, tok = _text(tiny_clip_dir, seed)
        StableDiffusionPipeline(vae=_vae(seed + 1), text_encoder=te, tokenizer=tok, unet=_unet2d(seed + 2),
                                scheduler=DDIMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
                                requires_safety_checker=False).save_pretrained(root / name)
        folders[name] = root / name
    for name, seed in (("adapter_1", 30), ("adapter_2", 40)):
        _adapter(seed).save_pretrained(root / name)
        folders[name] = root / name
    te, tok = _text(tiny_clip_dir, 50)
    AnimateDiffPipeline(vae=_vae(51), text_encoder=te, tokenizer=tok, unet=_unet2d(52), motion_adapter=_adapter(53),
                        scheduler=DDIMScheduler(**SCHEDULER)).save_pretrained(root / "pipeline")
    folders["pipeline"] = root / "pipeline"
    return folders


def loaded(name, **load):
    from vmc_cli.models.plugins import get_backend

    backend = get_backend(name)
    backend.load(device="cpu", **load)
    return backend


# -- zeroscope ---------------------------------------------------------------------------------
def test_zeroscope_through_the_cli(run_cli, clip_path, zeroscope_folder, tmp_path, vmc_home):
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "zeroscope", "--model-path", zeroscope_folder,
                "--frames", "8", "--steps", "2", "--name", "z", "--json")
    assert r.code == 0, r
    store = ProfileStore()
    clip = store.load("z", "clip.safetensors")["clip"]
    assert clip.shape == (1, 4, 8, 16, 16)  # VAE latents of 8 frames of 32x32: the VAE is in the path
    manifest = store.manifest("z")
    assert manifest["backend"]["models"]["keyframes"]["source"] == "local"
    assert manifest["source"]["size"] == [32, 32]  # sample_size 16 x the VAE's factor 2
    weights = store.load("z", "weights.safetensors")
    assert weights and all("temp_attentions" in k and any(p in k for p in ("to_q", "to_k", "to_v")) for k in weights)
    r = run_cli("generate", "z", "-p", "a red cube", "-o", tmp_path / "z.mp4", "--model-path", zeroscope_folder, *FAST)
    assert r.code == 0, r
    assert read_frames(tmp_path / "z.mp4").shape == (8, 32, 32, 3)
    assert "inversion" in store.manifest("z")


@pytest.mark.parametrize("name", ["zeroscope", "animatediff"])
def test_only_the_temporal_qkv_change(name, zeroscope_folder, animatediff_folders, clip_path):
    """Tuning through the core's loop moves every temporal q/k/v and leaves every other
    parameter bit-identical."""
    if name == "zeroscope":
        backend, fresh = loaded(name, model_path=str(zeroscope_folder)), loaded(name, model_path=str(zeroscope_folder))
    else:
        paths = dict(model_path=str(animatediff_folders["base_a"]), adapter=str(animatediff_folders["adapter_1"]))
        backend, fresh = loaded(name, **paths), loaded(name, **paths)
    frames = read_frames(clip_path)[:8]
    import cv2

    frames = np.stack([cv2.resize(f, (backend.width, backend.height)) for f in frames])
    x = backend.frames_to_model(frames)
    text = backend.encode_prompts(["a disc"])
    targets = set(select_parameters(backend.unet, "qkv", backend.temporal_attention_marker))
    assert targets and all(backend.temporal_attention_marker in k for k in targets)
    tune(backend, x, text, TuneConfig(steps=2, lr=1e-2, weight_decay=0.0))
    before, after = fresh.unet.state_dict(), backend.unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == targets


def test_latent_round_trip_with_an_exact_denoiser(zeroscope_folder, clip_path):
    """DDIM inversion and sampling with the backend's own schedulers in latent space: with the
    exact denoiser of a point mass at the clip's latents, sampling the inverted noise gives the
    latents back, and decoding them the same frames."""
    backend = loaded("zeroscope", model_path=str(zeroscope_folder))
    import cv2

    frames = np.stack([cv2.resize(f, (32, 32)) for f in read_frames(clip_path)[:8]])
    z = backend.frames_to_model(frames).double()
    abar = torch.tensor(np.asarray(__import__("diffusers").DDPMScheduler.from_config(SCHEDULER).alphas_cumprod),
                        dtype=torch.float64)  # from the config, not from the backend

    def exact(x, t):
        a = abar[t.long()].view(-1, 1, 1, 1, 1)
        return (x - a.sqrt() * z) / (1 - a).sqrt()

    # ModelScope's own schedule (set_alpha_to_one false): DDIM's first inversion step reads
    # the clean latents at abar[0] < 1, a small known error of every DDIM inversion with it.
    noise = ddim_invert(exact, backend.inversion_scheduler(), z, 25)
    assert (noise - z).abs().max() > 0.5 * z.abs().max()  # it really moved away from the latents
    back = ddim_sample(exact, backend.sampling_scheduler(), noise, 25)
    assert (back - z).abs().max() < 0.03 * z.abs().max()
    # With the clean end of the schedule at abar = 1 the round trip is exact.
    backend._scheduler_config["set_alpha_to_one"] = True
    noise = ddim_invert(exact, backend.inversion_scheduler(), z, 25)
    back = ddim_sample(exact, backend.sampling_scheduler(), noise, 25)
    assert torch.allclose(back, z, atol=1e-9)
    assert np.array_equal(backend.model_to_frames(back.float()), backend.model_to_frames(z.float()))


def test_v_prediction_model_round_trip(zeroscope_folder, clip_path, monkeypatch):
    """A latent model whose scheduler config says v_prediction: the core turns its v into epsilon
    and tells its samplers they get epsilon, so invert-then-sample with the exact v of a point
    mass gives the latents back (DDIM told v_prediction while handed epsilon would not)."""
    backend = loaded("zeroscope", model_path=str(zeroscope_folder))
    import cv2

    frames = np.stack([cv2.resize(f, (32, 32)) for f in read_frames(clip_path)[:8]])
    z = backend.frames_to_model(frames).double()
    backend._scheduler_config.update(prediction_type="v_prediction", set_alpha_to_one=True)
    abar = torch.tensor(np.asarray(__import__("diffusers").DDPMScheduler.from_config(SCHEDULER).alphas_cumprod),
                        dtype=torch.float64)  # from the config, not from the backend

    def exact_v(x, t, text):  # v = sqrt(abar) eps - sqrt(1 - abar) x0, eps from x_t and the point mass
        a = abar[t.long()].view(-1, 1, 1, 1, 1)
        eps = (x - a.sqrt() * z) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * z

    monkeypatch.setattr(backend, "unet_forward", exact_v)
    empty = torch.zeros(1, 77, 8, dtype=torch.float64)
    x_t = abar[700].sqrt() * z + (1 - abar[700]).sqrt() * torch.ones_like(z)
    eps = backend.predict_noise(x_t, torch.tensor([700]), empty)
    torch.testing.assert_close(eps, torch.ones_like(z), atol=1e-6, rtol=0)  # converted in float32
    predict = lambda x, t: backend.predict(x, t, empty)  # noqa: E731
    noise = ddim_invert(predict, backend.inversion_scheduler(), z, 25)
    assert (noise - z).abs().max() > 0.5 * z.abs().max()
    back = ddim_sample(predict, backend.sampling_scheduler(), noise, 25)
    assert (back - z).abs().max() < 1e-5 * z.abs().max()


@pytest.mark.parametrize("name", ["zeroscope", "animatediff"])
def test_gradient_checkpointing_takes_effect(name, zeroscope_folder, animatediff_folders, monkeypatch):
    """With VMC_<BACKEND>_GRADIENT_CHECKPOINTING=1 far fewer activations are kept for the
    backward pass of a tuning step (what the option is for), and the gradients stay the same."""
    paths = (dict(model_path=str(zeroscope_folder)) if name == "zeroscope" else
             dict(model_path=str(animatediff_folders["base_a"]), adapter=str(animatediff_folders["adapter_1"])))

    def one_step(flag):
        monkeypatch.setenv(f"VMC_{name.upper()}_GRADIENT_CHECKPOINTING", flag)
        backend = loaded(name, **paths)
        torch.manual_seed(0)
        x = torch.randn(1, 4, 4, 16, 16)
        text = backend.encode_prompts(["a disc"])
        backend.unet.train()
        q = select_parameters(backend.unet, "qkv", backend.temporal_attention_marker)
        for p in q.values():
            p.requires_grad_(True)
        kept = []  # bytes autograd keeps for backward outside checkpointed regions

        def pack(t):
            kept.append(t.numel() * t.element_size())
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = backend.predict_noise(x, torch.tensor([500]), text).pow(2).mean()
        loss.backward()
        on = any(getattr(m, "vmc_checkpointed", False) for m in backend.unet.modules())
        return sum(kept), on, {k: p.grad.clone() for k, p in q.items()}

    plain_bytes, plain_on, plain_grads = one_step("0")
    ckpt_bytes, ckpt_on, ckpt_grads = one_step("1")
    assert (plain_on, ckpt_on) == (False, True)
    assert ckpt_bytes < 0.6 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert all(torch.allclose(plain_grads[k], ckpt_grads[k], atol=1e-6) for k in plain_grads)


@pytest.mark.parametrize("name", ["zeroscope", "animatediff"])
def test_offload_keeps_the_vae_and_text_encoder_off_the_device_with_the_same_results(
        name, zeroscope_folder, animatediff_folders, monkeypatch):
    """VMC_<BACKEND>_OFFLOAD=1: between calls the VAE's and the text encoder's weights live
    only in accelerate's CPU store (their parameters are on the meta device), and encoding a
    clip, encoding a prompt and decoding give exactly what they give without offload. (Run
    on a CPU, so it checks the wiring, not the memory saved on a GPU.)"""
    paths = (dict(model_path=str(zeroscope_folder)) if name == "zeroscope" else
             dict(model_path=str(animatediff_folders["base_a"]), adapter=str(animatediff_folders["adapter_1"])))
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    def run(flag):
        monkeypatch.setenv(f"VMC_{name.upper()}_OFFLOAD", flag)
        backend = loaded(name, **paths)
        devices = {p.device.type for m in (backend._vae, backend._text_encoder) for p in m.parameters()}
        z = backend.frames_to_model(frames)
        text = backend.encode_prompts(["a disc"])
        return devices, z, text, backend.model_to_frames(z), {p.device.type for p in backend.unet.parameters()}

    plain, offloaded = run("0"), run("1")
    assert plain[0] == {"cpu"} and offloaded[0] == {"meta"}
    assert offloaded[4] == {"cpu"}  # the UNet stays where it runs
    assert torch.equal(plain[1], offloaded[1]) and torch.equal(plain[2], offloaded[2])
    assert np.array_equal(plain[3], offloaded[3])


# -- animatediff --------------------------------------------------------------------------------
@pytest.mark.slow
def test_animatediff_profiles_move_across_bases_but_not_adapters(run_cli, clip_path, animatediff_folders, tmp_path):
    f = animatediff_folders
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "animatediff", "--model-path", f["base_a"],
                "--option", f"adapter={f['adapter_1']}", "--frames", "8", "--steps", "2", "--name", "a")
    assert r.code == 0, r
    models = ProfileStore().manifest("a")["backend"]["models"]
    assert models["keyframes"]["id"] == str(f["adapter_1"].resolve()) and models["base"]["id"] == str(f["base_a"].resolve())
    weights = ProfileStore().load("a", "weights.safetensors")
    assert weights and all("motion_modules" in k for k in weights)
    common = ("-p", "a red cube", "--option", f"adapter={f['adapter_1']}", *FAST, "--stages", "keyframes", "--format", "png",
              "--init", "noise")
    r = run_cli("generate", "a", "-o", tmp_path / "on_a", "--model-path", f["base_a"], *common)
    assert r.code == 0, r
    assert "note:" not in r.stderr
    r = run_cli("generate", "a", "-o", tmp_path / "on_b", "--model-path", f["base_b"], *common)
    assert r.code == 0, r
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "tuned with base" in notes[0] and str(f["base_b"].resolve()) in notes[0]
    on_a, on_b = read_frames(tmp_path / "on_a"), read_frames(tmp_path / "on_b")
    assert on_a.shape == on_b.shape == (8, 32, 32, 3) and not np.array_equal(on_a, on_b)  # the base really changed
    r = run_cli("generate", "a", "-o", tmp_path / "other", "--model-path", f["base_a"], *common[:2],
                "--option", f"adapter={f['adapter_2']}", *FAST)
    assert r.code == 1
    assert "was tuned on key-frame model" in r.stderr and str(f["adapter_1"].resolve()) in r.stderr


def test_animatediff_pipeline_folder_and_adapter_refused_elsewhere(run_cli, clip_path, animatediff_folders):
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "animatediff", "--model-path",
                animatediff_folders["pipeline"], "--frames", "8", "--steps", "1", "--name", "p")
    assert r.code == 0, r
    assert ProfileStore().manifest("p")["backend"]["models"]["keyframes"]["id"].endswith("motion_adapter")
    r = run_cli("tune", clip_path, "-p", "a disc", "--option", "adapter=x/y", "--steps", "1")
    assert r.code == 1 and "takes no option 'adapter'" in r.stderr


# -- both ------------------------------------------------------------------------------------------
def offline_empty_cache(folder):
    """In the child: the hub offline over an empty cache (what HF_HUB_OFFLINE=1 and a new HF_HOME
    give a fresh interpreter, set where huggingface_hub reads them)."""
    def apply():
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
        constants.HF_HUB_CACHE = str(folder)
    return apply


def tune_offline(backend, clip_path, tmp_path, **variables):
    """``vmc tune`` as a process of its own (:mod:`forked`), offline, with no model files anywhere."""
    import forked

    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "VMC_HOME": str(tmp_path / "home"), **variables}
    return forked.run(["tune", clip_path, "-p", "a disc", "--backend", backend, "--steps", "1"], env,
                      before=offline_empty_cache(tmp_path / "empty-hf"))


@pytest.mark.parametrize("backend, names", [
    ("zeroscope", ["cerspense/zeroscope_v2_576w"]),
    ("animatediff", ["stable-diffusion-v1-5/stable-diffusion-v1-5", "guoyww/animatediff-motion-adapter-v1-5-2"]),
])
def test_offline_without_the_files_is_one_error_with_the_download_commands(backend, names, clip_path, tmp_path):
    r = tune_offline(backend, clip_path, tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), r.stderr
    assert "are not on this machine and the hub cannot be reached" in lines[0]
    from vmc_animatediff.backend import PINNED as ANIMATEDIFF
    from vmc_zeroscope.backend import PINNED as ZEROSCOPE

    PINNED = {"zeroscope": ZEROSCOPE, "animatediff": ANIMATEDIFF}[backend]  # each backend pins its own
    for name in names:  # each at its pinned commit, in the message and in the command that fetches it
        assert f"{name}@{PINNED[name]}" in lines[0] and f"hf download {name} --revision {PINNED[name]}" in lines[1]


@pytest.mark.parametrize("backend, variable, name", [
    ("zeroscope", "VMC_ZEROSCOPE_REVISION", "cerspense/zeroscope_v2_576w"),
    ("animatediff", "VMC_ANIMATEDIFF_ADAPTER_REVISION", "guoyww/animatediff-motion-adapter-v1-5-2"),
])
def test_the_revision_variable_overrides_the_pin(backend, variable, name, clip_path, tmp_path):
    r = tune_offline(backend, clip_path, tmp_path, **{variable: "main"})
    assert r.returncode == 1
    assert f"{name}@main" in r.stderr and f"hf download {name}" in r.stderr, r.stderr
    assert f"hf download {name} --revision" not in r.stderr


def test_a_cached_snapshot_at_the_pin_is_used_over_main(zeroscope_folder, tmp_path, monkeypatch):
    """Offline, with the hub cache holding two commits of the default repository and ``main``
    pointing at the other one, the backend loads the pinned commit and records it."""
    from huggingface_hub import constants

    from vmc_zeroscope.backend import DEFAULT_ID, PINNED

    cache = tmp_path / "hf-cache"
    repo = cache / ("models--" + DEFAULT_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").mkdir()
    newer = "c" * 40
    (repo / "refs" / "main").write_text(newer)
    for commit in (PINNED[DEFAULT_ID], newer):
        (repo / "snapshots" / commit).symlink_to(zeroscope_folder, target_is_directory=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("VMC_ZEROSCOPE_REVISION", raising=False)
    monkeypatch.delenv("VMC_ZEROSCOPE_MODEL", raising=False)
    from vmc_zeroscope.backend import ZeroScopeBackend

    pinned = ZeroScopeBackend()
    pinned.configure()
    assert pinned.model_info()["keyframes"] == {"id": DEFAULT_ID, "revision": PINNED[DEFAULT_ID], "source": "hub"}
    monkeypatch.setenv("VMC_ZEROSCOPE_REVISION", "main")
    latest = ZeroScopeBackend()
    latest.configure()
    assert latest.model_info()["keyframes"]["revision"] == newer


def test_backends_lists_them_with_their_defaults(run_cli):
    rows = {r["name"]: r for r in run_cli("backends", "--json").json()["backends"]}
    assert "576x320" in rows["zeroscope"]["description"] and "512x512" in rows["animatediff"]["description"]
    assert rows["zeroscope"]["tuning"] == "--loss cos --target qkv --steps 400 --lr 0.0001"  # the paper's


def test_half_precision_keeps_fp32_masters_for_the_tuned_qkv(zeroscope_folder):
    """In bfloat16 (CPU) or float16 (CUDA) the UNet runs in the half dtype under autocast, but the
    temporal q/k/v that tuning trains stay float32; the prediction stays close to float32's."""
    full = loaded("zeroscope", model_path=str(zeroscope_folder))
    half = loaded("zeroscope", model_path=str(zeroscope_folder), dtype="bfloat16")
    params = dict(half.unet.named_parameters())
    qkv = select_parameters(half.unet, "qkv", "temp_attentions")
    assert all(p.dtype == torch.float32 for p in qkv.values())
    assert params["conv_in.weight"].dtype == torch.bfloat16
    torch.manual_seed(0)
    x = torch.randn(1, 4, 4, 16, 16)
    a = full.predict_noise(x, torch.tensor([400]), full.encode_prompts(["a disc"]))
    b = half.predict_noise(x, torch.tensor([400]), half.encode_prompts(["a disc"]))
    assert b.shape == a.shape and (a - b.float()).abs().mean() < 0.05 * a.abs().mean()
    tune(half, x.to(torch.bfloat16), half.encode_prompts(["a disc"]), TuneConfig(steps=1, lr=1e-3))


@pytest.mark.slow
def test_zeroscope_xl_stage_runs_only_when_asked(run_cli, clip_path, zeroscope_folder, tmp_path, monkeypatch,
                                                 tiny_clip_dir):
    from diffusers import DDIMScheduler, TextToVideoSDPipeline

    te, tok = _text(tiny_clip_dir, 7)
    unet = _unet3d(8, sample_size=32)
    TextToVideoSDPipeline(vae=_vae(9), text_encoder=te, tokenizer=tok, unet=unet,
                          scheduler=DDIMScheduler(**SCHEDULER)).save_pretrained(tmp_path / "xl")
    monkeypatch.setenv("VMC_ZEROSCOPE_XL_PATH", str(tmp_path / "xl"))
    assert run_cli("tune", clip_path, "-p", "a disc", "--backend", "zeroscope", "--model-path", zeroscope_folder,
                   "--frames", "8", "--steps", "1", "--name", "z").code == 0
    common = ("-p", "a red cube", "--model-path", zeroscope_folder, *FAST, "--format", "png")
    r = run_cli("generate", "z", "-o", tmp_path / "plain", *common)  # all: key-frames only for zeroscope
    assert r.code == 0, r
    r = run_cli("generate", "z", "-o", tmp_path / "big", *common, "--stages", "all,xl")
    assert r.code == 0, r
    plain, big = read_frames(tmp_path / "plain"), read_frames(tmp_path / "big")
    assert plain.shape == (8, 32, 32, 3) and big.shape == (8, 64, 64, 3)  # twice the key-frames (a local XL)
    r = run_cli("generate", "z", "-o", tmp_path / "bad", *common, "--stages", "all,sr9")
    assert r.code == 1 and "has no stage 'sr9'" in r.stderr


def test_the_readme_download_commands_carry_the_pins():
    import re
    from pathlib import Path

    from vmc_animatediff.backend import PINNED as ANIMATEDIFF
    from vmc_wan.backend import PINNED as WAN
    from vmc_zeroscope.backend import PINNED as ZEROSCOPE

    PINNED = {**ZEROSCOPE, **ANIMATEDIFF, **WAN}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = dict(re.findall(r"hf download (\S+/\S+) --revision ([0-9a-f]{40})", readme))
    assert found and all(PINNED[repo] == commit for repo, commit in found.items()), found


# -- vmc export --format lora ----------------------------------------------------------------------
def _unet_out(unet, backend, x, text, t=400):
    """``unet``'s prediction called as ``backend`` calls its own key-frame model."""
    mine = backend._unet
    backend._unet = unet
    try:
        with torch.no_grad():
            return backend.model_output(x, torch.tensor([t]), text)
    finally:
        backend._unet = mine


def _peft_loaded(unet, path, prefix="unet."):
    """A LoRA file put on ``unet`` with peft itself: adapters of the file's rank on the modules it
    names (alpha = rank), then its factors (for models whose diffusers class has no LoRA loader)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    state = {k[len(prefix):]: v for k, v in load_file(path).items()}
    ranks = {k.rsplit(".lora_", 1)[0]: v.shape[0] for k, v in state.items() if ".lora_A." in k}
    r = max(ranks.values())
    # each module at its own rank (a full-rank export is min(out, in) per layer), alpha = rank
    pattern = {f"^{m}$": n for m, n in ranks.items()}
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=r, target_modules=sorted(ranks), rank_pattern=pattern,
                                       alpha_pattern=pattern), unet)
    set_peft_model_state_dict(unet, state)
    return unet


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zeroscope", "animatediff"])
def test_export_loads_into_diffusers_and_peft(name, run_cli, clip_path, zeroscope_folder, animatediff_folders,
                                              tmp_path):
    """``vmc export`` of a U-Net profile at full rank. AnimateDiff: diffusers' own
    AnimateDiffPipeline takes the file with ``load_lora_weights`` (its motion LoRAs' layout).
    ZeroScope: diffusers' UNet3DConditionModel has no LoRA loader, so peft puts the file on it.
    Either way the key-frame model then predicts as vmc does with the profile."""
    from diffusers import AnimateDiffPipeline, UNet3DConditionModel
    from safetensors.torch import load_file

    from vmc_cli.jobs.runtime import Runtime, load_profile

    folder = zeroscope_folder if name == "zeroscope" else animatediff_folders["pipeline"]
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", name, "--model-path", folder, "--frames", "8",
                "--steps", "2", "--lr", "1e-2", "--name", "m")
    assert r.code == 0, r
    out = tmp_path / "motion.safetensors"
    r = run_cli("export", "m", "--format", "lora", "-o", out, "--rank", "1000", "--json")
    assert r.code == 0, r
    report = r.json()
    assert report["approximated"] and report["kept"] > 1 - 1e-9 and not report["left_out"]
    keys = set(load_file(out))
    marker = "temp_attentions" if name == "zeroscope" else "motion_modules"
    assert keys and all(k.startswith("unet.") and marker in k and k.endswith((".lora_A.weight", ".lora_B.weight"))
                        for k in keys)
    if name == "zeroscope":
        base = UNet3DConditionModel.from_pretrained(folder, subfolder="unet")
        theirs_unet = _peft_loaded(UNet3DConditionModel.from_pretrained(folder, subfolder="unet"), out)
    else:
        base = AnimateDiffPipeline.from_pretrained(folder).unet
        pipe = AnimateDiffPipeline.from_pretrained(folder)
        pipe.load_lora_weights(out)
        theirs_unet = pipe.unet
    ours, _ = load_profile("m", store=ProfileStore(), runtime=Runtime(device="cpu"), backend_name=None,
                           stages=("keyframes",))
    x = torch.randn(1, *ours.frames_to_model(np.zeros((8, ours.height, ours.width, 3), np.uint8)).shape[1:],
                    generator=torch.Generator().manual_seed(0))
    text = ours.encode_prompts(["a red cube"])
    before, theirs, mine = (_unet_out(u, ours, x, text) for u in (base, theirs_unet, ours.unet))
    assert torch.allclose(theirs, mine, atol=1e-4), float((theirs - mine).abs().max())
    assert (mine - before).abs().max() > 100 * (theirs - mine).abs().max()  # the profile really changes it
