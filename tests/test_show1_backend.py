"""The Show-1 backend (``--backend show1``) on tiny local checkpoints.

A session fixture writes random-weight miniatures of all five repositories the backend
loads (show-1-base, show-1-interpolation, show-1-sr1, show-1-sr2, IF-II-L-v1.0) in the
hub's folder layout: Show-1 UNets with the real stages' block types, a tiny T5 encoder
and tokenizer, a tiny IF-II UNet, a tiny VAE and CLIP text encoder + tokenizer,
scheduler configs and model_index.json files. The key-frames are 16x10 (so sr1 makes
64x40 and sr2 144x80) and every later stage runs 2 steps, through
``VMC_SHOW1_KEYFRAME_SIZE`` and ``VMC_SHOW1_STEPS``.

CPU, offline, about a minute. ``RUN_SLOW=1`` adds a run on the real weights when they
are present (VMC_SHOW1_PATH or the hub cache).
"""

from __future__ import annotations

import json
import os
import shutil
import string
import time
from pathlib import Path

import pytest
import torch

from vmc_cli.errors import VmcError
from vmc_cli.method.inversion import kept_signal

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers + numpy 2

SIZE_ENV = {
    "VMC_SHOW1_KEYFRAME_SIZE": "16x10",
    "VMC_SHOW1_STEPS": "interpolation=2,sr1_first_frame=2,sr1=2,sr2=2",
}

# ------------------------------------------------------------------------------------------
# tiny checkpoints
# ------------------------------------------------------------------------------------------
# The base repository's scheduler as published (shared/reference/show1/pipeline_files.json).
BASE_SCHEDULER = {
    "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.19.1", "algorithm_type": "dpmsolver++",
    "beta_end": 0.02, "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "clip_sample": True,
    "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.95, "lambda_min_clipped": -5.1,
    "lower_order_final": True, "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.5,
    "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0, "thresholding": True,
    "timestep_spacing": "linspace", "trained_betas": None, "use_karras_sigmas": False, "variance_type": "fixed_small",
}
SR2_SCHEDULER = {
    "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.19.3", "algorithm_type": "dpmsolver++",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995, "lambda_min_clipped": float("-inf"),
    "lower_order_final": True, "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0,
    "set_alpha_to_one": False, "skip_prk_steps": True, "solver_order": 2, "solver_type": "midpoint",
    "steps_offset": 1, "thresholding": False, "timestep_spacing": "linspace", "trained_betas": None,
    "use_karras_sigmas": False, "variance_type": None,
}
# Not published in the reference data: IF-style guesses (the learned-variance path is exercised here).
SR1_SCHEDULER = {**BASE_SCHEDULER, "sample_max_value": 1.0, "variance_type": "learned_range"}
IF_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
                "dynamic_thresholding_ratio": 0.95, "num_train_timesteps": 1000, "prediction_type": "epsilon",
                "sample_max_value": 1.0, "thresholding": True, "variance_type": "learned_range"}
NOISING_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": False,
                     "num_train_timesteps": 1000, "variance_type": "fixed_small"}

T5_DIM = 48
# Same block types as the real stages (cf. shared/reference/show1/tiny_<stage>.config.json).
PIXEL_UNET = dict(
    act_fn="gelu", addition_embed_type="text", addition_embed_type_num_heads=4, attention_head_dim=8,
    block_out_channels=[32, 32], cross_attention_dim=32, cross_attention_norm="group_norm",
    down_block_types=["ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D"], encoder_hid_dim=T5_DIM,
    encoder_hid_dim_type="text_proj", in_channels=3, layers_per_block=1, mid_block_type="UNetMidBlock3DSimpleCrossAttn",
    norm_num_groups=16, out_channels=6, resnet_time_scale_shift="scale_shift", sample_size=16,
    up_block_types=["SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D"],
)
SR1_UNET = {
    **PIXEL_UNET, "block_out_channels": [32, 32, 32], "class_embed_type": "timestep", "in_channels": 6,
    "down_block_types": ["ResnetDownsampleBlock3D", "ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D"],
    "up_block_types": ["SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D", "ResnetUpsampleBlock3D"],
    "layers_per_block": [1, 2, 1], "mid_block_scale_factor": 1.4142271248762552,
    "resnet_out_scale_factor": 1.4142271248762552, "resnet_skip_time_act": True, "time_embedding_act_fn": "gelu",
    "time_embedding_dim": 96, "sample_size": 64,
}
SR2_UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=[32, 32], cross_attention_dim=32,
    down_block_types=["CrossAttnDownBlock3D", "DownBlock3D"], in_channels=4, layers_per_block=1,
    mid_block_type="UNetMidBlock3DCrossAttn", norm_num_groups=32, out_channels=4, sample_size=32,
    up_block_types=["UpBlock3D", "CrossAttnUpBlock3D"], use_linear_projection=True,
)
IF_UNET = dict(
    sample_size=64, layers_per_block=1, block_out_channels=[32, 32],
    down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"], in_channels=6, out_channels=6,
    cross_attention_dim=32, encoder_hid_dim=T5_DIM, attention_head_dim=8, addition_embed_type="text",
    addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
    act_fn="gelu", class_embed_type="timestep", mid_block_scale_factor=1.414, time_embedding_act_fn="gelu",
    time_embedding_dim=32, norm_num_groups=16,
)


def _index(name: str, cls: str, **components) -> dict:
    return {"_class_name": cls, "_diffusers_version": "0.19.3", "_name_or_path": name, **components}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _save_show1_unet(folder: Path, config: dict, seed: int) -> None:
    from vmc_show1 import Show1UNet3DConditionModel

    torch.manual_seed(seed)
    Show1UNet3DConditionModel(**config).save_pretrained(folder / "unet")
    cfg_path = folder / "unet" / "config.json"  # as in the real repos: Show-1's own class name
    _write_json(cfg_path, {**json.loads(cfg_path.read_text()), "_class_name": "UNet3DConditionModel"})


def _t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + c, -3.0) for c in string.ascii_lowercase]
    pieces += [(c, -4.0) for c in string.ascii_lowercase + string.digits + ",.'-"]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=77)


def _clip_tokenizer():
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in sorted(ByteLevel.alphabet()):
            vocab.setdefault(ch + suffix, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_show1(root: Path) -> Path:
    """Write miniature Show-1 repositories under ``root`` (hub layout); returns ``root``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    index = {"scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
             "unet": ["showone.models.unet_3d_condition", "UNet3DConditionModel"],
             "feature_extractor": ["transformers", "CLIPImageProcessor"]}
    # show-1-base
    base = root / "show-1-base"
    _write_json(base / "model_index.json", _index("show-1-base", "TextToVideoIFPipeline", **index))
    _write_json(base / "scheduler" / "scheduler_config.json", BASE_SCHEDULER)
    _save_show1_unet(base, PIXEL_UNET, seed=1)
    tokenizer = _t5_tokenizer()
    tokenizer.save_pretrained(base / "tokenizer")
    torch.manual_seed(2)
    T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=T5_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                            pad_token_id=0, eos_token_id=1)).save_pretrained(base / "text_encoder")
    # show-1-interpolation
    interp = root / "show-1-interpolation"
    _write_json(interp / "model_index.json", _index("show-1-interpolation", "TextToVideoIFInterpPipeline", **index))
    _write_json(interp / "scheduler" / "scheduler_config.json", BASE_SCHEDULER)
    _save_show1_unet(interp, {**PIXEL_UNET, "in_channels": 7}, seed=3)
    # show-1-sr1
    sr1 = root / "show-1-sr1"
    _write_json(sr1 / "model_index.json", _index("show-1-sr1", "TextToVideoIFSuperResolutionPipeline_Cond", **index,
                                                 image_noising_scheduler=["diffusers", "DDPMScheduler"]))
    _write_json(sr1 / "scheduler" / "scheduler_config.json", SR1_SCHEDULER)
    _write_json(sr1 / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    _save_show1_unet(sr1, SR1_UNET, seed=4)
    # DeepFloyd IF-II-L (only what the backend uses)
    if2 = root / "IF-II-L-v1.0"
    _write_json(if2 / "model_index.json", _index("IF-II-L-v1.0", "IFSuperResolutionPipeline",
                                                 unet=["diffusers", "UNet2DConditionModel"],
                                                 scheduler=["diffusers", "DDPMScheduler"],
                                                 image_noising_scheduler=["diffusers", "DDPMScheduler"]))
    _write_json(if2 / "scheduler" / "scheduler_config.json", IF_SCHEDULER)
    _write_json(if2 / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    torch.manual_seed(5)
    UNet2DConditionModel(**IF_UNET).save_pretrained(if2 / "unet")
    # show-1-sr2 (latent, ZeroScope style)
    sr2 = root / "show-1-sr2"
    _write_json(sr2 / "model_index.json", _index("show-1-sr2", "VideoToVideoSDPipeline",
                                                 scheduler=["diffusers", "DPMSolverMultistepScheduler"],
                                                 text_encoder=["transformers", "CLIPTextModel"],
                                                 tokenizer=["transformers", "CLIPTokenizer"],
                                                 unet=["showone.models.unet_3d_condition", "UNet3DConditionModel"],
                                                 vae=["diffusers", "AutoencoderKL"]))
    _write_json(sr2 / "scheduler" / "scheduler_config.json", SR2_SCHEDULER)
    _save_show1_unet(sr2, SR2_UNET, seed=6)
    torch.manual_seed(7)
    AutoencoderKL(block_out_channels=[32, 32, 32], down_block_types=["DownEncoderBlock2D"] * 3,
                  up_block_types=["UpDecoderBlock2D"] * 3, latent_channels=4, layers_per_block=1,
                  norm_num_groups=32, sample_size=64).save_pretrained(sr2 / "vae")
    clip_tokenizer = _clip_tokenizer()
    clip_tokenizer.save_pretrained(sr2 / "tokenizer")
    torch.manual_seed(8)
    CLIPTextModel(CLIPTextConfig(vocab_size=len(clip_tokenizer), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                 pad_token_id=1, bos_token_id=0, eos_token_id=1)).save_pretrained(sr2 / "text_encoder")
    return root


@pytest.fixture(scope="session")
def show1_root(tmp_path_factory) -> Path:
    return build_tiny_show1(tmp_path_factory.mktemp("show1-models"))


@pytest.fixture
def show1_env(monkeypatch):
    """Tiny sizes and steps; nothing from the user's environment."""
    for var in ("VMC_SHOW1_PATH", "VMC_SHOW1_REVISIONS", "VMC_SHOW1_INVERSION", "VMC_SHOW1_OFFLOAD",
                "VMC_SHOW1_GRADIENT_CHECKPOINTING"):
        monkeypatch.delenv(var, raising=False)
    for var, value in SIZE_ENV.items():
        monkeypatch.setenv(var, value)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty, offline hub cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _backend(**kwargs):
    from vmc_show1.backend import Show1Backend

    backend = Show1Backend(**kwargs)
    backend.name = "show1"
    return backend


# ------------------------------------------------------------------------------------------
# the whole cascade through the CLI
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_then_generate_the_whole_cascade(run_cli, clip_path, show1_root, show1_env, hub_cache, tmp_path):
    tuned = run_cli("tune", clip_path, "--prompt", "a disc is moving on the table", "--backend", "show1",
                    "--model-path", show1_root, "--steps", "2", "--device", "cpu", "--json")
    assert tuned.code == 0, tuned
    result = tuned.json()
    assert result["backend"] == "show1" and result["parameters"] > 0

    shown = run_cli("profiles", "show", result["profile"], "--json").json()
    models = shown["backend"]["models"]
    assert set(models) == {"keyframes"}  # tuning needs only the key-frame model
    assert models["keyframes"]["id"] == "showlab/show-1-base"
    assert models["keyframes"]["revision"].startswith("sha256:")
    assert shown["source"]["size"] == [16, 10]

    out = tmp_path / "out.mp4"
    made = run_cli("generate", result["profile"], "--prompt", "a red ball is rolling", "--steps", "2",
                   "--invert-steps", "2", "--device", "cpu", "--model-path", show1_root, "-o", out, "--json")
    assert made.code == 0, made
    video = made.json()["videos"][0]
    assert (video["frames"], video["width"], video["height"]) == (29, 144, 80)  # 576x320 scaled like 16x10

    from vmc_cli.io.video import read_frames

    frames = read_frames(out)
    assert frames.shape == (29, 80, 144, 3)


@pytest.mark.slow
def test_cascade_shapes_and_stage_hand_offs(show1_root, show1_env):
    backend = _backend()
    backend.load(device="cpu", model_path=show1_root, stages=("all",))
    assert set(backend.model_info()) == {"keyframes", "interpolation", "sr1_first_frame", "sr1", "sr2"}
    keyframes = torch.rand(1, 3, 8, 10, 16) * 2 - 1
    frames = backend.run_cascade(keyframes, "a cat", stages=("interpolation",))
    assert frames.shape == (29, 10, 16, 3)
    assert backend._text_encoder is None  # released between stages; embeddings cached
    frames = backend.run_cascade(keyframes, "a cat", stages=("interpolation", "sr1"))
    assert frames.shape == (29, 40, 64, 3)
    frames = backend.run_cascade(keyframes[:, :, :2], "a cat", stages=("sr2",))
    assert frames.shape == (2, 80, 144, 3) and frames.dtype.name == "uint8"


# ------------------------------------------------------------------------------------------
# missing files
# ------------------------------------------------------------------------------------------
def test_offline_without_files_is_one_clear_error(run_cli, clip_path, show1_env, hub_cache):
    started = time.time()
    res = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--backend", "show1", "--device", "cpu")
    assert time.time() - started < 20
    assert res.code == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("Error: ") and "showlab/show-1-base@main" in lines[0]
    assert "hub cannot be reached" in lines[0]
    assert lines[1].startswith("Hint: ") and "`hf download showlab/show-1-base`" in lines[1]
    assert "--model-path" in lines[1] and "VMC_SHOW1_PATH" in lines[1]


def test_offline_generate_names_every_missing_repository(show1_env, hub_cache):
    backend = _backend(revisions={"sr2": "v2"})
    with pytest.raises(VmcError) as err:
        backend.load(device="cpu", stages=("all",))
    message, hint = err.value.message, err.value.hint
    for repo in ("showlab/show-1-base", "showlab/show-1-interpolation", "showlab/show-1-sr1",
                 "DeepFloyd/IF-II-L-v1.0", "showlab/show-1-sr2@v2"):
        assert repo in message
    assert "hf download showlab/show-1-sr2 --revision v2" in hint
    assert "gated" in hint and "hf auth login" in hint


def test_missing_local_folder(tmp_path, show1_root, show1_env):
    root = tmp_path / "models"
    shutil.copytree(show1_root / "show-1-base", root / "show-1-base")
    (root / "show-1-base" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    backend = _backend()
    with pytest.raises(VmcError) as err:
        backend.load(device="cpu", model_path=root, stages=("all",))
    assert "show-1-base (key-frames and the T5 text encoder; lacks unet/ weights)" in err.value.message
    assert "show-1-sr2" in err.value.message
    assert f"hf download showlab/show-1-sr2 --local-dir {root / 'show-1-sr2'}" in err.value.hint
    with pytest.raises(VmcError, match="not a folder"):
        _backend().load(device="cpu", model_path=tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------
# revisions
# ------------------------------------------------------------------------------------------
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def _fake_hub_cache(cache: Path, root: Path) -> None:
    """Two cached commits of every repository; ``main`` points at the first."""
    from vmc_show1.repos import REPOS

    for spec in REPOS.values():
        repo = cache / ("models--" + spec.repo_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(COMMIT_A)
        (repo / "snapshots").mkdir()
        for commit in (COMMIT_A, COMMIT_B):
            (repo / "snapshots" / commit).symlink_to(root / spec.folder_name, target_is_directory=True)


def test_hub_revisions_are_recorded_and_checked(run_cli, clip_path, show1_root, show1_env, hub_cache, monkeypatch):
    _fake_hub_cache(hub_cache, show1_root)
    backend = _backend()
    backend.load(device="cpu")
    assert backend.model_info() == {"keyframes": {"id": "showlab/show-1-base", "revision": COMMIT_A, "source": "hub"}}
    pinned = _backend(revisions={"keyframes": COMMIT_B})
    pinned.load(device="cpu")
    assert pinned.model_info()["keyframes"]["revision"] == COMMIT_B

    tuned = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--backend", "show1", "--steps", "1",
                    "--device", "cpu", "--json")
    assert tuned.code == 0, tuned
    name = tuned.json()["profile"]
    shown = run_cli("profiles", "show", name, "--json").json()
    assert shown["backend"]["models"]["keyframes"]["revision"] == COMMIT_A

    from vmc_show1.backend import Show1Backend

    loads = []
    original = Show1Backend._load_keyframe_model
    monkeypatch.setattr(Show1Backend, "_load_keyframe_model", lambda self: loads.append(1) or original(self))
    monkeypatch.setenv("VMC_SHOW1_REVISIONS", f"keyframes={COMMIT_B}")
    refused = run_cli("generate", name, "--prompt", "a ball", "--stages", "keyframes", "--steps", "1",
                      "--invert-steps", "1", "--device", "cpu", "-o", hub_cache.parent / "x.mp4")
    assert refused.code == 1
    assert f"tuned on key-frame model showlab/show-1-base@{COMMIT_A}" in refused.stderr
    assert f"@{COMMIT_B}" in refused.stderr
    assert loads == []  # refused before the key-frame weights were read

    monkeypatch.setenv("VMC_SHOW1_REVISIONS", f"keyframes={COMMIT_A}")
    ok = run_cli("generate", name, "--prompt", "a ball", "--stages", "keyframes", "--steps", "1",
                 "--invert-steps", "1", "--device", "cpu", "-o", hub_cache.parent / "y.mp4", "--json")
    assert ok.code == 0, ok
    assert ok.json()["videos"][0]["frames"] == 8
    assert loads == [1]


def test_local_revision_is_a_hash_of_the_config_files(tmp_path, show1_root, show1_env):
    root = tmp_path / "models"
    shutil.copytree(show1_root / "show-1-base", root / "show-1-base")
    first = _backend()
    first.load(device="cpu", model_path=root)
    revision = first.model_info()["keyframes"]["revision"]
    assert revision.startswith("sha256:") and first.model_info()["keyframes"]["source"] == "local"
    again = _backend()
    again.load(device="cpu", model_path=root)
    assert again.model_info()["keyframes"]["revision"] == revision
    cfg = root / "show-1-base" / "unet" / "config.json"
    cfg.write_text(cfg.read_text().replace('"sample_size": 16', '"sample_size": 17'))
    changed = _backend()
    changed.load(device="cpu", model_path=root)
    assert changed.model_info()["keyframes"]["revision"] != revision


# ------------------------------------------------------------------------------------------
# the key-frame model
# ------------------------------------------------------------------------------------------
@pytest.fixture
def keyframe_backend(show1_root, show1_env):
    backend = _backend()
    backend.load(device="cpu", model_path=show1_root)
    return backend


def test_keyframe_model(keyframe_backend, show1_root):
    b = keyframe_backend
    assert (b.width, b.height, b.num_frames) == (16, 10, 8)
    assert b.defaults == {"invert_steps": 75, "sample_steps": 75, "guidance": 9.0, "negative_prompt": "",
                          "strength": 1.0, "motion_scale": 1.0}  # docs/method.md
    from vmc_cli.method.tuning import TuneConfig  # docs/method.md's tuning settings

    c = TuneConfig()
    assert (c.steps, c.lr, c.betas, c.weight_decay, c.adam_eps, c.max_grad_norm, c.batch_size, c.target) == \
        (400, 1e-4, (0.9, 0.999), 1e-2, 1e-8, 1.0, 1, "qkv")
    assert b.unet.config.out_channels == 6
    x = torch.randn(2, 3, 8, 10, 16)
    eps = b.predict_noise(x, torch.tensor([10, 500]), b.encode_prompts(["a cat", ""]))
    assert eps.shape == x.shape  # learned-variance channels split off
    assert b.noise_scheduler_config() == BASE_SCHEDULER
    names = [n for n, _ in b.unet.named_parameters() if "temp_attentions" in n and ".to_q." in n]
    assert names  # what tuning trains


def test_text_embeddings_are_cached_and_the_encoder_released(keyframe_backend):
    from transformers import T5Tokenizer

    b = keyframe_backend
    first = b.encode_prompts(["A cat is roaring", ""])
    assert first.shape == (2, 77, T5_DIM)
    assert isinstance(b._tokenizer, T5Tokenizer)
    calls = []
    handle = b._text_encoder.register_forward_hook(lambda *a: calls.append(1))
    assert torch.equal(b.encode_prompts(["a cat is roaring "])[0], first[0])  # IF's lower().strip()
    assert calls == []
    handle.remove()
    b.release_text_encoder()
    assert b._text_encoder is None
    assert torch.equal(b.encode_prompts([""])[0], first[1])  # cached: no reload
    assert b._text_encoder is None
    b.encode_prompts(["a dog"])  # new prompt: the encoder comes back
    assert b._text_encoder is not None


def test_inversion_schedules(show1_root, show1_env, monkeypatch):
    authors = _backend()
    authors.load(device="cpu", model_path=show1_root)
    info = {**authors.inversion_info(75), **kept_signal(authors.inversion_scheduler(), 75)}
    assert info["mode"] == "authors" and info["final_timestep"] == 963
    assert info["signal"] == pytest.approx(0.0844, abs=5e-4)  # ~8% of the clip survives
    scheduler = authors.inversion_scheduler()
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.steps_offset == 1
    assert scheduler.config.clip_sample is False

    monkeypatch.setenv("VMC_SHOW1_INVERSION", "model")
    own = _backend()
    own.load(device="cpu", model_path=show1_root)
    info = {**own.inversion_info(75), **kept_signal(own.inversion_scheduler(), 75)}
    assert info["mode"] == "model" and info["final_timestep"] == 999 and info["signal"] < 1e-3
    scheduler = own.inversion_scheduler()
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert not scheduler.config.clip_sample and not scheduler.config.thresholding

    # The model's inversion and sampling grids are the same: the sampler visits exactly the
    # timesteps the inversion reached, in reverse (a constant predictor could not tell a
    # wrong grid, so the grid is compared directly), and with the exact denoiser of Gaussian
    # data on the model's cosine schedule, inverting then sampling gives the clip back.
    from test_inversion import gaussian

    from vmc_cli.method.inversion import ddim_invert
    from vmc_cli.method.sampling import ddim_sample

    sampler = own.sampling_scheduler()
    for steps in (20, 75):
        scheduler.set_timesteps(steps)
        sampler.set_timesteps(steps)
        assert sampler.timesteps.tolist() == scheduler.timesteps.flip(0).tolist()
    predict = gaussian(0.5)
    x0 = 0.5 * torch.randn(1, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = x0.clamp(-0.95, 0.95)  # inside the sampler's clip_sample range, so clipping changes nothing
    back = ddim_sample(predict, own.sampling_scheduler(), ddim_invert(predict, scheduler, x0, 75), 75)
    assert float((back - x0).abs().max()) < 0.06  # DDIM's discretisation error at 75 steps


def test_half_precision_keeps_fp32_master_weights_for_tuning(show1_root, show1_env):
    b = _backend()
    b.load(device="cpu", dtype="bfloat16", model_path=show1_root)
    dtypes = {n: p.dtype for n, p in b.unet.named_parameters()}
    assert all(d == torch.float32 for n, d in dtypes.items() if ".temp_attentions." in n)
    assert dtypes["conv_in.weight"] == torch.bfloat16
    from vmc_cli.method.tuning import TuneConfig, tune

    clip = b.frames_to_model(torch.randint(0, 255, (8, 10, 16, 3), dtype=torch.uint8).numpy())
    result = tune(b, clip, b.encode_prompts(["a cat"]), TuneConfig(steps=2))
    assert all(torch.isfinite(torch.tensor(result["losses"])))
    assert all(w.dtype == torch.float32 for w in result["weights"].values())


def test_float16_sampling_stays_finite(show1_root, show1_env):
    """At t = 999 the predicted clean sample exceeds float16's range: the schedulers step in float32."""
    from vmc_cli.method.inversion import ddim_invert
    from vmc_cli.method.sampling import ddim_sample, guided

    b = _backend()
    b.load(device="cpu", dtype="float16", model_path=show1_root)
    clip = b.frames_to_model(torch.randint(0, 255, (8, 10, 16, 3), dtype=torch.uint8).numpy())
    empty = b.encode_prompts([""])
    x_t = ddim_invert(lambda x, t: b.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)), b.inversion_scheduler(),
                      clip, 3)
    cond, uncond = b.encode_prompts(["a red ball", ""]).chunk(2)
    keyframes = ddim_sample(guided(b.predict_noise, cond, uncond, 9.0), b.sampling_scheduler(), x_t, 3)
    assert keyframes.dtype == torch.float16 and torch.isfinite(keyframes).all()


def test_gradient_checkpointing_option(show1_root, show1_env, monkeypatch):
    monkeypatch.setenv("VMC_SHOW1_GRADIENT_CHECKPOINTING", "1")
    b = _backend()
    b.load(device="cpu", model_path=show1_root)
    assert b.unet.is_gradient_checkpointing
    assert not _backend(gradient_checkpointing=False).gradient_checkpointing


def test_cpu_warning_for_big_models(show1_root, show1_env):
    b = _backend()
    b.cpu_warning_parameters = 1000  # the tiny model counts as big here
    with pytest.warns(RuntimeWarning, match="CUDA GPU"):
        b.load(device="cpu", model_path=show1_root)
    quiet = _backend()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.load(device="cpu", model_path=show1_root)  # tiny: no warning


# ------------------------------------------------------------------------------------------
# options and helpers
# ------------------------------------------------------------------------------------------
def test_options(show1_env, monkeypatch):
    b = _backend()
    assert b.stage_settings["sr1"]["steps"] == 2 and b.stage_settings["sr1"]["guidance"] == 7.0
    assert b.sizes == {"keyframes": (16, 10), "interpolation": (16, 10), "sr1": (64, 40), "sr2": (144, 80)}
    monkeypatch.delenv("VMC_SHOW1_KEYFRAME_SIZE")
    monkeypatch.delenv("VMC_SHOW1_STEPS")
    real = _backend()
    assert real.sizes["sr1"] == (256, 160) and real.sizes["sr2"] == (576, 320)
    assert {k: v["steps"] for k, v in real.stage_settings.items()} == {
        "interpolation": 75, "sr1_first_frame": 70, "sr1": 125, "sr2": 50}
    assert real.inversion == "authors" and real.revisions == {}
    for var, value, match in [("VMC_SHOW1_STEPS", "sr3=2", "no stage"), ("VMC_SHOW1_STEPS", "sr1=0", "positive"),
                              ("VMC_SHOW1_STEPS", "sr1", "cannot read"), ("VMC_SHOW1_KEYFRAME_SIZE", "64", "size"),
                              ("VMC_SHOW1_INVERSION", "sd", "not one of authors, model"),
                              ("VMC_SHOW1_REVISIONS", "base=x", "no model"),
                              ("VMC_SHOW1_OFFLOAD", "maybe", "VMC_SHOW1_OFFLOAD='maybe' is not one of auto, 1, 0"),
                              ("VMC_SHOW1_GRADIENT_CHECKPOINTING", "often", "is not yes or no")]:
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with pytest.raises(VmcError, match=match):
                _backend()
    with pytest.raises(VmcError, match="dtype"):
        _backend().load(device="cpu", dtype="float8")
    # the same settings as options (the command line's --option), which win over the variables
    b = _backend()
    b.configure(stage_steps="sr1=3", keyframe_size="32x20", inversion="MODEL", offload="0")
    assert (b.stage_settings["sr1"]["steps"], b.sizes["keyframes"], b.inversion, b.offload) == (
        3, (32, 20), "model", False)


def test_windows_and_file_selection():
    from vmc_show1.repos import REPOS, select_files, variant_of
    from vmc_show1.stages import windows

    assert windows(29, 8, 7) == [0, 7, 14, 21]
    assert windows(30, 8, 7) == [0, 7, 14, 21, 22]
    assert windows(5, 8, 7) == [0]
    assert variant_of("unet/diffusion_pytorch_model.fp16.safetensors") == "fp16"
    assert variant_of("text_encoder/model.fp16-00001-of-00002.safetensors") == "fp16"
    assert variant_of("unet/diffusion_pytorch_model.bin") is None
    files = ["model_index.json", "README.md", "unet/config.json", "unet/diffusion_pytorch_model.bin",
             "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.safetensors",
             "unet/diffusion_flax_model.msgpack", "scheduler/scheduler_config.json", "tokenizer/spiece.model",
             "tokenizer/tokenizer_config.json", "text_encoder/config.json",
             "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
             "text_encoder/model.safetensors.index.fp16.json", "text_encoder/pytorch_model.bin",
             "safety_checker/model.safetensors"]
    half = select_files(files, REPOS["keyframes"], "fp16")
    assert "unet/diffusion_pytorch_model.fp16.bin" in half and "unet/diffusion_pytorch_model.safetensors" not in half
    assert "text_encoder/model.fp16-00002-of-00002.safetensors" in half
    assert "text_encoder/pytorch_model.bin" not in half and "safety_checker/model.safetensors" not in half
    assert "unet/diffusion_flax_model.msgpack" not in half and "README.md" not in half
    full = select_files(files, REPOS["keyframes"], None)
    assert "unet/diffusion_pytorch_model.safetensors" in full and "unet/diffusion_pytorch_model.fp16.bin" not in full
    assert "text_encoder/pytorch_model.bin" in full


def test_plugin_is_registered_and_cheap():
    import subprocess
    import sys

    code = ("import sys; from vmc_cli.models.plugins import get_backends; b = get_backends(); "
            "assert 'show1' in b, b; assert 'torch' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "VMC_LOAD_PLUGINS": "show1"})


# ------------------------------------------------------------------------------------------
# the real weights (RUN_SLOW=1; skipped unless they are present)
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="set RUN_SLOW=1 to run with the real Show-1 weights")
def test_real_weights(run_cli, clip_path, tmp_path, monkeypatch):
    """The real cascade with few steps: VMC_SHOW1_PATH or the hub cache (never a download), CUDA."""
    from huggingface_hub import constants

    from vmc_show1.backend import STAGE_ROLES, Show1Backend
    from vmc_show1.repos import REPOS, resolve_all

    if not torch.cuda.is_available():
        pytest.skip("the real Show-1 models need a CUDA GPU (hours on a CPU)")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    root = os.environ.get("VMC_SHOW1_PATH")
    try:
        resolve_all([REPOS[r] for roles in STAGE_ROLES.values() for r in roles], Show1Backend().revisions,
                    Path(root) if root else None, None, print)
    except VmcError as exc:
        pytest.skip(f"the real weights are not here: {exc.message}")
    monkeypatch.delenv("VMC_SHOW1_KEYFRAME_SIZE", raising=False)
    monkeypatch.setenv("VMC_SHOW1_STEPS", os.environ.get("VMC_SHOW1_STEPS", "interpolation=10,sr1_first_frame=10,"
                                                                            "sr1=10,sr2=10"))
    tuned = run_cli("tune", clip_path, "--prompt", "a disc is moving", "--backend", "show1", "--steps", "5", "--json")
    assert tuned.code == 0, tuned
    assert tuned.json()["parameters"] == 134_553_600  # the temporal q/k/v of show-1-base
    out = tmp_path / "real.mp4"
    made = run_cli("generate", tuned.json()["profile"], "--prompt", "a red ball is rolling", "--steps", "10",
                   "--invert-steps", "10", "-o", out, "--json")
    assert made.code == 0, made
    video = made.json()["videos"][0]
    assert (video["frames"], video["width"], video["height"]) == (29, 576, 320)


def test_authors_mode_samples_with_the_base_repositorys_dpm_solver(keyframe_backend, show1_root, show1_env,
                                                                  monkeypatch):
    """The authors sample key-frames with show-1-base's own scheduler config (DPM-Solver++,
    linspace spacing clipped at lambda_min_clipped) and feed the inverted tensor in at its
    first timestep; model mode keeps DDIM on the inversion's grid."""
    import numpy as np
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from vmc_cli.method.sampling import ddim_sample

    sampler = keyframe_backend.sampling_scheduler()
    assert isinstance(sampler, DPMSolverMultistepScheduler)
    assert {k: v for k, v in sampler.config.items() if k in BASE_SCHEDULER and not k.startswith("_")} == \
        {k: v for k, v in BASE_SCHEDULER.items() if not k.startswith("_")}
    assert keyframe_backend.sampling_scheduler() is not sampler  # fresh per run: the solver keeps state
    # The 75 timesteps worked out from the config: cosine alpha-bar (squaredcos_cap_v2), the
    # half-log-SNR lambda = log(sqrt(abar) / sqrt(1 - abar)); timesteps whose lambda is below
    # lambda_min_clipped are cut from the top, then linspace spacing over what is left.
    f = lambda s: np.cos((s / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    abar = np.cumprod(1 - np.minimum(1 - f(np.arange(1, 1001)) / f(np.arange(1000)), 0.999))
    lam = 0.5 * np.log(abar) - 0.5 * np.log(1 - abar)
    last = 1000 - int(np.sum(lam < BASE_SCHEDULER["lambda_min_clipped"]))
    expected = np.linspace(0, last - 1, 76).round()[::-1][:-1].astype(int)
    sampler.set_timesteps(75)
    assert sampler.timesteps.tolist() == expected.tolist()
    assert (expected[0], expected[1], expected[-1]) == (995, 982, 13)  # docs/method.md's figures

    seen = []
    x_t = torch.randn(1, 3, 8, 10, 16)

    def predict(x, t):
        seen.append((int(t[0]), x.clone()))
        return torch.zeros_like(x)

    ddim_sample(predict, keyframe_backend.sampling_scheduler(), x_t, 75)
    assert [t for t, _ in seen] == expected.tolist() and torch.equal(seen[0][1], x_t)

    monkeypatch.setenv("VMC_SHOW1_INVERSION", "model")
    own = _backend()
    own.load(device="cpu", model_path=show1_root)
    ddim = own.sampling_scheduler()
    ddim.set_timesteps(75)
    assert isinstance(ddim, DDIMScheduler) and int(ddim.timesteps[0]) == 999
