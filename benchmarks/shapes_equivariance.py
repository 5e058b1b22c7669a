"""Does the temporal attention VMC tunes know the order of the frames? (#19, item 2's "why")

    python benchmarks/shapes_equivariance.py [--seeds 5]

For every temporal attention block (``temp_attentions``) of the shapes model, of Show-1's key-frame
UNet in the reference miniature (../shared/reference/show1/tiny_base.*, the real model's block
types with the reference's random weights, when present) and of the shapes model with frame positions
(``vmc_pixel.frame_positions``, gain 1): feed random features, and the same features with the
frames shuffled, and print ``max |f(P x) - P f(x)| / mean |f(x)|``. Zero means the block commutes
with any reordering of the frames: its q/k/v, the parameters VMC tunes, cannot tell frame 3 from
frame 6, so tuning them can change how each position mixes content across frames but cannot
write "frame n is here" into the model. The temporal convolutions (3 frames wide) are the only
order-aware layers of these UNets; they are printed for comparison. The shapes weights shipped
since 2026-12-06 have frame positions of their own, faint (gains about 0.03): their attention
no longer commutes exactly (about 6%), the earlier weights did to 1e-6. Last, the shipped
``shapes-wan`` transformer's self-attention (what VMC tunes on Wan), with its 3D rotary positions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "examples")]
REFERENCE = ROOT.parent / "shared" / "reference" / "show1"


def commutes(module, channels: int, frames: int = 8, seeds: int = 5, conv: bool = False) -> float:
    """The largest relative error of f(P x) = P f(x) over ``seeds`` random inputs and shuffles."""
    worst = 0.0
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(frames, channels, 6, 6, generator=gen)
        perm = torch.randperm(frames, generator=gen)
        with torch.no_grad():
            if conv:
                y, y_perm = module(x, num_frames=frames), module(x[perm], num_frames=frames)
            else:
                y = module(x, num_frames=frames, return_dict=False)[0]
                y_perm = module(x[perm], num_frames=frames, return_dict=False)[0]
        worst = max(worst, float((y_perm - y[perm]).abs().max() / y.abs().mean()))
    return worst


def survey(name: str, unet, seeds: int) -> dict:
    out = {}
    for kind, marker in (("attention", "temp_attentions"), ("convolution", "temp_convs")):
        values = []
        for module_name, module in unet.named_modules():
            if module_name.split(".")[-2:-1] == [marker]:
                channels = module.in_channels if kind == "attention" else module.in_dim
                values.append(commutes(module, channels, seeds=seeds, conv=kind == "convolution"))
        out[kind] = {"blocks": len(values), "max_relative_error": max(values) if values else None}
    print(f"{name:42s} temporal attention: {out['attention']['blocks']} blocks, max {out['attention']['max_relative_error']:.1e}"
          f"   temporal convolutions: {out['convolution']['blocks']} blocks, max "
          f"{'-' if out['convolution']['max_relative_error'] is None else format(out['convolution']['max_relative_error'], '.2f')}")
    return out


def wan_survey(folder, seeds: int) -> dict:
    """The same test on a Wan transformer's self-attention (``attn1`` of every block), VMC's tuned
    layers there: random tokens of 9 frames x 4 x 4 positions, the frames shuffled, through the
    attention with the model's own 3D rotary positions. Not zero: the rotary frame index tells
    the attention where in time each token is."""
    from diffusers import WanTransformer3DModel

    transformer = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer").eval()
    frames, h, w = 9, 4, 4
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    latents = torch.zeros(1, transformer.config.in_channels, frames, 2 * h, 2 * w)
    rotary = transformer.rope(latents)
    worst = 0.0
    for block in transformer.blocks:
        for seed in range(seeds):
            gen = torch.Generator().manual_seed(seed)
            x = torch.randn(1, frames, h * w, dim, generator=gen)
            perm = torch.randperm(frames, generator=gen)
            with torch.no_grad():
                y = block.attn1(x.reshape(1, -1, dim), rotary_emb=rotary).reshape(1, frames, h * w, dim)
                y_perm = block.attn1(x[:, perm].reshape(1, -1, dim), rotary_emb=rotary).reshape(1, frames, h * w, dim)
            worst = max(worst, float((y_perm - y[:, perm]).abs().max() / y.abs().mean()))
    print(f"{'shapes-wan transformer (self-attention + RoPE)':42s} self-attention: {len(transformer.blocks)} blocks, "
          f"max {worst:.1e}")
    return {"attention": {"blocks": len(transformer.blocks), "max_relative_error": worst}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--model-path", default=None, help="a shapes model folder (default: the shipped weights)")
    args = ap.parse_args()
    from vmc_pixel.unet import Show1UNet3DConditionModel
    from vmc_shapes.model import WEIGHTS, load, with_frame_positions

    results = {}
    unet = load(args.model_path or WEIGHTS)[0]
    label = f"shapes model ({args.model_path or 'shipped weights'})"
    results[label] = survey(label, unet, args.seeds)
    config = REFERENCE / "tiny_base.config.json"
    if config.exists():
        from safetensors.torch import load_file

        from vmc_cli.models.quiet import quiet_libraries

        with quiet_libraries():
            show1 = Show1UNet3DConditionModel.from_config(json.loads(config.read_text())["unet_config"]).eval()
        weights = load_file(REFERENCE / "tiny_base.safetensors")
        show1.load_state_dict({k[len("weights."):]: v.float() for k, v in weights.items() if k.startswith("weights.")})
        results["show1 reference miniature"] = survey("Show-1 key-frame UNet (reference layout)", show1, args.seeds)
    positioned = with_frame_positions(unet, 16)
    with torch.no_grad():
        for n, p in positioned.named_parameters():
            if n.endswith("frame_position_gain"):
                p.fill_(1.0)
    results["shapes + frame positions"] = survey("shapes model + frame positions (gain 1)", positioned, args.seeds)
    from vmc_shapes_wan.model import WEIGHTS as WAN_WEIGHTS

    if (WAN_WEIGHTS / "transformer" / "config.json").exists():
        results["shapes-wan"] = wan_survey(WAN_WEIGHTS, args.seeds)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
