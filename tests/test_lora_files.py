"""``vmc export --format comfyui`` and ``vmc import``: the layouts other tools' loaders take, and back.

The references are the loaders' rules as their sources state them, written out here on their own
(not through vmc's layout code):

- ComfyUI (``comfy/lora.py``, ``model_lora_keys_unet`` for Wan): the native weight
  ``blocks.N.self_attn.q.weight`` is patched by the LoRA named ``diffusion_model.blocks.N.self_attn.q``
  (or ``lora_unet_blocks_N_self_attn_q``), factors ``.lora_A.weight`` / ``.lora_B.weight`` (or
  ``lora_down`` / ``lora_up``), ``W += strength * alpha / rank * B A`` (alpha / rank = 1 without an
  ``.alpha``). Native ``self_attn.{q,k,v,o}`` are diffusers' ``attn1.to_{q,k,v,out.0}`` (diffusers'
  Wan conversion), so the patched model is the diffusers model with ``W + strength B A`` there.
- AnimateDiff-Evolved's motion-LoRA loader keeps keys containing ``temporal`` and reads the original
  AnimateDiff names ``...motion_modules.J.temporal_transformer.transformer_blocks.K.attention_blocks.
  {0,1}.processor.to_{q,k,v,out}_lora.{down,up}.weight`` (attention block 0 = diffusers' attn1), no
  alpha: the patch is ``strength * up @ down``.

The run against the real loaders is ``benchmarks/lora_loaders_check.py`` (docs/export.md).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))

from vmc_cli.store.profiles import ProfileStore  # noqa: E402

KEYFRAMES = "9x32x32"
WAN_NATIVE = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
COMFY_WAN_KEY = re.compile(r"diffusion_model\.blocks\.(\d+)\.self_attn\.([qkvo])\.(lora_A\.weight|lora_B\.weight|alpha)")
MOTION_LORA_KEY = re.compile(r"(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.(\d+)\.temporal_transformer"
                             r"\.transformer_blocks\.(\d+)\.attention_blocks\.([01])\.processor\.(to_q|to_k|to_v|to_out)_lora"
                             r"\.(down|up)\.weight")


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory) -> Path:
    from vmc_wan.tiny import write_tiny_wan

    return write_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny-wan")


@pytest.fixture
def wan(monkeypatch):
    monkeypatch.setenv("VMC_WAN_KEYFRAMES", KEYFRAMES)


@pytest.fixture
def wan_profile(wan, run_cli, clip_path, wan_folder):
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "wan", "--model-path", wan_folder,
                "--steps", "3", "--lr", "1e-2", "--target", "qkv", "--option", "lora_rank=4", "--name", "w")
    assert r.code == 0, r
    return "w"


def keyframes(run_cli, profile: str, out: Path, *extra) -> np.ndarray:
    """The key-frames ``vmc generate PROFILE --init noise`` writes (seed 0), as uint8 (F, H, W, 3)."""
    from vmc_cli.io.video import read_frames

    r = run_cli("generate", profile, "-p", "a square is moving", "--steps", "3", "--stages", "keyframes",
                "--init", "noise", "-o", out, "--format", "png", *extra)
    assert r.code == 0, r
    return read_frames(out)


def wan_backend(folder, scale_by: dict | None = None):
    """The tiny Wan loaded fresh; ``scale_by``: {diffusers weight name: delta} added to it."""
    from vmc_wan.backend import WanBackend

    backend = WanBackend()
    backend.name = "wan"
    backend.load(device="cpu", dtype="float32", model_path=str(folder))
    with torch.no_grad():
        for name, delta in (scale_by or {}).items():
            backend.unet.get_parameter(name).add_(delta)
    return backend


# ------------------------------------------------------------------------------------------
# export: ComfyUI's Wan keys
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_comfyui_wan_file_patches_as_the_profile_at_that_motion_scale(wan, run_cli, wan_profile, wan_folder,
                                                                      tmp_path, strength):
    out = tmp_path / "w.safetensors"
    r = run_cli("export", wan_profile, "--format", "comfyui", "-o", out, "--json")
    assert r.code == 0, r
    lora = load_file(out)
    assert all(COMFY_WAN_KEY.fullmatch(k) for k in lora), sorted(lora)[:3]
    modules = {k.rsplit(".", 2)[0] if "lora_" in k else k.rsplit(".", 1)[0] for k in lora}
    assert len(modules) == 2 * 3 and len(lora) == 3 * len(modules)  # 2 blocks x q/k/v; A, B, alpha each
    # ComfyUI's rule, applied by hand to the diffusers model: W += strength * alpha / rank * B A
    deltas = {}
    for module in modules:
        block, proj = module.split(".")[2], module.split(".")[4]  # diffusion_model.blocks.N.self_attn.P
        a, b, alpha = lora[f"{module}.lora_A.weight"], lora[f"{module}.lora_B.weight"], float(lora[f"{module}.alpha"])
        assert alpha == a.shape[0] == 4
        diffusers = {v: k for k, v in WAN_NATIVE.items()}[proj]
        deltas[f"blocks.{block}.attn1.{diffusers}.weight"] = strength * alpha / a.shape[0] * (b @ a)
    patched = wan_backend(wan_folder, deltas)
    from vmc_cli.jobs.runtime import Runtime, load_profile

    ours, _ = load_profile(wan_profile, store=ProfileStore(), runtime=Runtime("cpu", "float32"),
                           backend_name=None, stages=("keyframes",), motion_scale=strength)
    x = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    text = ours.encode_prompts(["a disc is moving"])
    t = torch.tensor([500.0])
    with torch.no_grad():
        theirs, mine = patched.model_output(x, t, text), ours.model_output(x, t, text)
        base = wan_backend(wan_folder).model_output(x, t, text)
    assert torch.allclose(theirs, mine, atol=1e-5) and (mine - base).abs().max() > 1e-3


def test_export_metadata_says_what_the_file_is(wan, run_cli, wan_profile, tmp_path):
    out = tmp_path / "w.safetensors"
    assert run_cli("export", wan_profile, "--format", "comfyui", "-o", out).code == 0
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    manifest = ProfileStore().manifest(wan_profile)
    model = manifest["backend"]["models"]["keyframes"]
    import json

    import vmc_cli

    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4" and meta["vmc_rank"] == "4"
    assert meta["ss_output_name"] == meta["vmc_profile"] == "w" and meta["vmc_backend"] == "wan"
    assert meta["vmc_base_model"] == model["id"] and meta["vmc_base_revision"] == model["revision"]
    assert meta["vmc_layout"] == "comfyui-wan" and meta["vmc_format"] == "comfyui"
    assert meta["vmc_tuning_prompt"] == manifest["prompt"]["tuning"] == "a disc is moving"
    assert json.loads(meta["vmc_tuning"]) == {k: manifest["tuning"][k] for k in ("loss", "target", "steps", "lr", "seed",
                                                                                 "stride")}
    assert meta["vmc_suggested_strength"] == "1" and meta["vmc_version"] == vmc_cli.__version__
    assert meta["ss_max_train_steps"] == "3" and meta["ss_learning_rate"] == "0.01"


def test_a_backend_without_a_comfyui_counterpart_names_its_formats(run_cli, clip_path, tmp_path):
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "tiny", "--steps", "1", "--name", "t")
    assert r.code == 0, r
    out = tmp_path / "t.safetensors"
    r = run_cli("export", "t", "--format", "comfyui", "-o", out)
    assert r.code == 1 and "backend 'tiny' has no comfyui layout" in r.stderr and "use --format lora" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 2 and not out.exists()
    r = run_cli("export", "t", "--format", "kohya", "-o", out)
    assert r.code == 1 and "not an export format" in r.stderr and not out.exists(), r


# ------------------------------------------------------------------------------------------
# export: the original motion-LoRA layout (AnimateDiff-Evolved)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ad_paths(tmp_path_factory) -> dict:
    from test_backend_contract import _tiny_animatediff

    return _tiny_animatediff(tmp_path_factory.mktemp("ad"))


def test_animatediff_comfyui_file_is_the_motion_lora_layout(run_cli, ad_paths, tmp_path):
    from make_clip import moving_disc

    from vmc_cli.io.video import write_video

    clip_path = write_video(moving_disc(16, 32, 32), tmp_path / "disc16.mp4")  # the backend's 16 frames
    r = run_cli("tune", clip_path, "-p", "a disc", "--backend", "animatediff", "--model-path", ad_paths["model_path"],
                "--option", f"adapter={ad_paths['adapter']}", "--steps", "2", "--lr", "1e-2",
                "--name", "a")
    assert r.code == 0, r
    out = tmp_path / "a.safetensors"
    r = run_cli("export", "a", "--format", "comfyui", "--rank", "4096", "-o", out, "--option",
                f"adapter={ad_paths['adapter']}", "--json")
    assert r.code == 0, r
    lora = load_file(out)
    assert lora and all(MOTION_LORA_KEY.fullmatch(k) and "temporal" in k for k in lora), sorted(lora)[:3]
    tuned = ProfileStore().load("a", "weights.safetensors")
    from vmc_cli.models.plugins import get_backend

    base = get_backend("animatediff")
    base.load(device="cpu", model_path=ad_paths["model_path"], adapter=ad_paths["adapter"])
    w0 = dict(base.unet.named_parameters())
    assert len(lora) == 2 * len(tuned)
    for key in (k for k in lora if k.endswith(".down.weight")):
        m = MOTION_LORA_KEY.fullmatch(key)
        name = (f"{m[1]}.motion_modules.{m[2]}.transformer_blocks.{m[3]}.attn{int(m[4]) + 1}."
                f"{'to_out.0' if m[5] == 'to_out' else m[5]}.weight")
        patch = lora[key.replace(".down.", ".up.")].double() @ lora[key].double()
        assert torch.allclose(patch, tuned[name].double() - w0[name].detach().double(), atol=1e-6), name
    assert r.json()["loads_in"].startswith("ComfyUI AnimateDiff-Evolved")
    # and back: the same key-frames from the same noise
    r = run_cli("import", out, "--backend", "animatediff", "--name", "ai", "--model-path", ad_paths["model_path"],
                "--option", f"adapter={ad_paths['adapter']}")
    assert r.code == 0, r
    common = ("--model-path", ad_paths["model_path"], "--option", f"adapter={ad_paths['adapter']}")
    one = keyframes(run_cli, "a", tmp_path / "k1", *common)
    two = keyframes(run_cli, "ai", tmp_path / "k2", *common)
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 1


# ------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["comfyui", "lora"])
def test_export_then_import_gives_the_same_keyframes(wan, run_cli, wan_profile, wan_folder, tmp_path, fmt):
    out = tmp_path / "w.safetensors"
    assert run_cli("export", wan_profile, "--format", fmt, "-o", out).code == 0
    r = run_cli("import", out, "--backend", "wan", "--name", "wi", "--model-path", wan_folder, "--json")
    assert r.code == 0, r
    assert r.json()["layout"] == {"comfyui": "comfyui-wan", "lora": "diffusers"}[fmt]
    assert np.array_equal(keyframes(run_cli, wan_profile, tmp_path / "k1"), keyframes(run_cli, "wi", tmp_path / "k2"))
    manifest = ProfileStore().manifest("wi")
    assert manifest["source"]["kind"] == "lora-file" and manifest["prompt"]["tuning"] == "a disc is moving"
    assert manifest["adapter"]["rank"] == 4 and "clip.safetensors" not in manifest["files"]


def test_kohya_names_an_alpha_and_mixed_ranks(wan, run_cli, wan_folder, tmp_path):
    """``lora_unet_blocks_N_self_attn_q.lora_down/up`` with alpha 2 at rank 4 (scale 0.5) and a
    rank-2 module beside it: the profile's adapters hold exactly ``scale B A`` each, the missing
    (projection, block) pairs hold nothing."""
    g = torch.Generator().manual_seed(1)
    a0, b0 = torch.randn(4, 24, generator=g), torch.randn(24, 4, generator=g)
    a1, b1 = torch.randn(2, 24, generator=g), torch.randn(24, 2, generator=g)
    path = tmp_path / "k.safetensors"
    save_file({"lora_unet_blocks_0_self_attn_q.lora_down.weight": a0, "lora_unet_blocks_0_self_attn_q.lora_up.weight": b0,
               "lora_unet_blocks_0_self_attn_q.alpha": torch.tensor(2.0),
               "lora_unet_blocks_1_self_attn_v.lora_down.weight": a1, "lora_unet_blocks_1_self_attn_v.lora_up.weight": b1},
              str(path))
    r = run_cli("import", path, "--backend", "wan", "--model-path", wan_folder, "--name", "k")
    assert r.code == 0, r
    weights = ProfileStore().load("k", "weights.safetensors")
    layout = ProfileStore().manifest("k")["adapter"]
    assert layout["rank"] == 4 and layout["projections"] == ["to_q", "to_v"] and layout["blocks"] == [0, 1]

    def product(module):
        return weights[f"{module}.lora_B.default.weight"] @ weights[f"{module}.lora_A.default.weight"]

    assert torch.allclose(product("blocks.0.attn1.to_q"), 0.5 * b0 @ a0, atol=1e-5)
    assert torch.allclose(product("blocks.1.attn1.to_v"), b1 @ a1, atol=1e-5)
    assert product("blocks.1.attn1.to_q").abs().max() == 0 and product("blocks.0.attn1.to_v").abs().max() == 0


def test_an_imported_profile_generates_from_noise_and_refuses_inversion(wan, run_cli, wan_profile, wan_folder,
                                                                       tmp_path):
    out = tmp_path / "w.safetensors"
    assert run_cli("export", wan_profile, "--format", "comfyui", "-o", out).code == 0
    assert run_cli("import", out, "--backend", "wan", "--name", "wi", "--model-path", wan_folder).code == 0
    r = run_cli("generate", "wi", "-p", "a square", "--steps", "2", "--stages", "keyframes", "-o", tmp_path / "a.gif")
    assert r.code == 0 and "has no source clip" in r.stderr and "--init noise" in r.stderr, r
    r = run_cli("generate", "wi", "-p", "a square", "--steps", "2", "--stages", "keyframes", "-o", tmp_path / "a.gif",
                "--json")
    assert r.code == 0 and r.json()["videos"][0]["init"] == "noise", r
    for args in (("generate", "wi", "-p", "x", "--init", "inverted", "-o", tmp_path / "b.gif"), ("invert", "wi")):
        r = run_cli(*args)
        assert r.code == 1 and "has no source clip to invert" in r.stderr, r
        assert len(r.stderr.strip().splitlines()) == 2
    assert not (tmp_path / "b.gif").exists()
    r = run_cli("profiles", "list")
    assert r.code == 0 and "imported" in r.stdout


def _bad_files(tmp_path: Path, wan_export: Path) -> dict:
    lora = load_file(wan_export)
    files = {}
    (tmp_path / "text.safetensors").write_text("not a tensor file")
    files["text"] = (tmp_path / "text.safetensors", "is not a safetensors file")
    (tmp_path / "w.pt").write_bytes(wan_export.read_bytes())
    files["suffix"] = (tmp_path / "w.pt", "is not a .safetensors file")
    save_file({**lora, "diffusion_model.blocks.0.ffn.0.lora_A.weight": torch.zeros(4, 24)}, str(tmp_path / "u.safetensors"))
    files["unknown"] = (tmp_path / "u.safetensors", "1 of its 19 keys are not a motion LoRA's")
    save_file({k: v for k, v in lora.items() if "blocks.0.self_attn.q.lora_B" not in k}, str(tmp_path / "p.safetensors"))
    files["partial"] = (tmp_path / "p.safetensors", "has only its A factor")
    save_file({**lora, "diffusion_model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 40),
               "diffusion_model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(40, 4)}, str(tmp_path / "s.safetensors"))
    files["shape"] = (tmp_path / "s.safetensors", "the model's 24 x 24")
    save_file({**lora, "diffusion_model.blocks.7.self_attn.q.lora_A.weight": torch.zeros(4, 24),
               "diffusion_model.blocks.7.self_attn.q.lora_B.weight": torch.zeros(24, 4)}, str(tmp_path / "b.safetensors"))
    files["block"] = (tmp_path / "b.safetensors", "the model has blocks 0-1")
    save_file({**lora, "diffusion_model.blocks.0.cross_attn.q.lora_A.weight": torch.zeros(4, 24),
               "diffusion_model.blocks.0.cross_attn.q.lora_B.weight": torch.zeros(24, 4)}, str(tmp_path / "c.safetensors"))
    files["cross"] = (tmp_path / "c.safetensors", "which a wan profile cannot hold")
    return files


@pytest.mark.parametrize("case", ["text", "suffix", "unknown", "partial", "shape", "block", "cross", "backend",
                                  "exists", "missing"])
def test_bad_imports_are_one_line_and_write_nothing(wan, run_cli, wan_profile, wan_folder, tmp_path, case):
    out = tmp_path / "w.safetensors"
    assert run_cli("export", wan_profile, "--format", "comfyui", "-o", out).code == 0
    files = _bad_files(tmp_path, out)
    backend, name = "wan", "bad"
    if case in files:
        path, message = files[case]
    elif case == "backend":  # a Wan LoRA offered to animatediff: none of its keys are AnimateDiff's
        path, message, backend = out, "are not a motion LoRA's this backend takes", "animatediff"
    elif case == "exists":
        path, message, name = out, "already exists", wan_profile
    else:
        path, message = tmp_path / "nowhere.safetensors", "no file"
    before = sorted(p.name for p in ProfileStore().root.iterdir())
    r = run_cli("import", path, "--backend", backend, "--name", name,
                *(("--model-path", wan_folder) if backend == "wan" else ()))
    assert r.code == 1 and message in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 2
    assert sorted(p.name for p in ProfileStore().root.iterdir()) == before
