"""benchmarks/latent_gpu.py: the full-size layouts it builds are the published models', and at
reduced size (the CPU self-check) it runs vmc's tuning, inversion and sampling end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module():
    sys.path.insert(0, str(BENCH))
    try:
        import latent_gpu
    finally:
        sys.path.remove(str(BENCH))
    return latent_gpu


def test_full_layouts_match_the_published_parameter_counts():
    """Built on the meta device (no memory): SD1.5's UNet, its VAE and CLIP ViT-L/14's text
    tower have their checkpoints' parameter counts; the ZeroScope UNet the reference's."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    L = _module()
    reference = json.loads((L.REFERENCE / "sr2.unet.config.json").read_text())["_provenance"]["total_params"]

    def count(model):
        return sum(p.numel() for p in model.parameters())

    with torch.device("meta"):
        assert count(UNet2DConditionModel(**L.SD15_UNET)) == 859_520_964
        assert count(AutoencoderKL(**L.vae_config("full"))) == 83_653_863
        assert count(CLIPTextModel(CLIPTextConfig(**L.SD15_CLIP_TEXT))) == 123_060_480
        assert count(UNet3DConditionModel(**L.zeroscope_unet_config("full"))) == reference == 1_411_233_860


@pytest.mark.slow
def test_reduced_run_tunes_only_the_temporal_qkv(tmp_path):
    out = tmp_path / "latent.json"
    import forked  # the script in a process of its own, without the interpreter's start-up

    r = forked.run_python(["--size", "reduced", "--steps", "2", "--sample-steps", "2", "--out", out],
                          path=BENCH / "latent_gpu.py")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):
        unet = UNet3DConditionModel(**_module().zeroscope_unet_config("reduced"))
    qkv = [n for n, _ in unet.named_parameters() if "temp_attentions" in n and n.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v")]
    assert report["backbones"]["zeroscope"]["tuned_parameters_changed"] == len(qkv) > 0
    for name, result in report["backbones"].items():
        # the script's own checks: finite losses, nothing but the temporal q/k/v changed, finite
        # inversion and samples, the decoded video at the key-frame shape
        assert result["checks"] == "passed", (name, result["checks"])
        assert result["keyframes"] == [8, 64, 64] and result["tuned_parameters_changed"] > 0
