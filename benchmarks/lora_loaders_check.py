"""Do vmc's ``--format comfyui`` LoRA files load in the real third-party loaders? A check run by hand.

It writes LoRAs with vmc's own writer (``vmc_cli.models.lora_files.write_tensors``, what ``vmc export``
calls) and loads them with the loaders' own code, on models built with the loaders' own classes:

- Wan: ComfyUI's ``UNETLoader`` (model detection, ``model_base.WAN21``) on a random 2-block Wan 2.1
  T2V state dict (width 256 = 2 heads of 128: ComfyUI's detection takes the head width to be 128),
  then its ``LoraLoaderModelOnly`` node (``comfy.sd.load_lora_for_models``) on a vmc file with
  random rank-4 A/B on every block's self-attention q, k, v and o;
- AnimateDiff: AnimateDiff-Evolved's ``load_motion_lora_as_patches`` (what its motion-LoRA nodes
  call) on a full-size SD1.5 v2 motion model (its ``AnimateDiffModel``, random weights, the
  version and SD type found by its ``normalize_ad_state_dict``), with all 168 motion-attention
  projections of diffusers' ``UNetMotionModel``;
- negative controls: the same LoRAs in diffusers' layout (``--format lora``) must load nothing.

Each row: tensors in the file, tensors the loader took (ComfyUI logs the others as "lora key not
loaded"), weights it patched, the largest relative error of (patched - original) against
strength x B@A over the weights the LoRA names, and the largest change of any other weight.

Setup (once; a venv of its own: the loaders need packages vmc does not, and a CPU torch):

    mkdir -p /work/loader_check && cd /work/loader_check
    git clone https://github.com/Comfy-Org/ComfyUI ComfyUI
    git -C ComfyUI checkout a125cd84b054a57729b5eecab930ca9408719832      # checked 2026-12-07
    git clone https://github.com/Kosinkadink/ComfyUI-AnimateDiff-Evolved AnimateDiff-Evolved
    git -C AnimateDiff-Evolved checkout d8d163cd90b1111f6227495e3467633676fbb346
    python3 -m venv venv
    venv/bin/pip install torch==2.13.0          # first: the CPU build (a plain "torch" pulls CUDA)
    venv/bin/pip install einops safetensors numpy pyyaml Pillow scipy tqdm psutil transformers \\
        tokenizers sentencepiece torchsde aiohttp av pluggy   # pluggy: to import vmc's modules

Run (CPU, 1-2 minutes, about 4 GB of memory; vmc is imported from this checkout, not installed in that venv):

    nice -n 19 venv/bin/python /work/main/benchmarks/lora_loaders_check.py \\
        --comfyui ComfyUI --animatediff-evolved AnimateDiff-Evolved

torchvision is not installed (PyPI's wheels do not load beside the CPU torch 2.13.0); ComfyUI
imports it at module level only for models not used here, so an empty stand-in is registered.
Weights are float32 (``--fp32-unet``) so the errors show the mapping, not fp16 rounding.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import logging
import sys
import tempfile
import types
from pathlib import Path

VMC = Path(__file__).resolve().parents[1]
RANK = 4


def setup(comfyui: Path, ade: Path) -> None:
    """Put ComfyUI, AnimateDiff-Evolved and vmc on the path; ComfyUI on the CPU in float32."""
    sys.path[:0] = [str(comfyui), str(ade), str(VMC), str(VMC / "backends")]
    if importlib.util.find_spec("torchvision") is None:  # stand-in, see the docstring
        for name in ("torchvision", "torchvision.transforms"):
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.fp32_unet = True


class Warnings(logging.Handler):
    """Collects the loaders' warnings while it is attached to the root logger."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self)


def random_pairs(shapes: dict, seed: int) -> dict:
    """{diffusers module: {"A": rank x in, "B": out x rank}} with random factors."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {m: {"A": torch.randn(RANK, i, generator=g) * 0.1, "B": torch.randn(o, RANK, generator=g) * 0.1}
            for m, (o, i) in shapes.items()}


def compare(before: dict, after: dict, expected: dict) -> tuple[float, float]:
    """(max relative error of the named weights' change against expected, max change elsewhere)."""
    err = max(((after[k] - before[k]) - want).abs().max().item() / want.abs().max().item()
              for k, want in expected.items())
    other = max(((after[k] - before[k]).abs().max().item() for k in before if k not in expected), default=0.0)
    return err, other


def wan_rows(tmp: Path) -> list[tuple]:
    import folder_paths
    import nodes
    import torch
    from comfy.ldm.wan.model import WanModel
    import comfy.ops
    from safetensors.torch import save_file
    from vmc_cli.models.lora_files import diffusers_layout, write_tensors
    from vmc_wan.backend import comfyui_layout

    # A random Wan 2.1 T2V state dict in the original key layout, loaded as a user would (UNETLoader).
    blocks, width = 2, 256
    net = WanModel(dim=width, ffn_dim=64, num_heads=2, num_layers=blocks, operations=comfy.ops.disable_weight_init)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * 0.02 for k, v in net.state_dict().items()}
    for name in ("diffusion_models", "loras"):
        (tmp / name).mkdir()
        folder_paths.add_model_folder_path(name, str(tmp / name))
    save_file(state, str(tmp / "diffusion_models" / "tiny_wan.safetensors"))
    model = nodes.UNETLoader().load_unet("tiny_wan.safetensors", "default")[0]
    assert type(model.model).__name__ == "WAN21", type(model.model)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}

    # vmc's modules (diffusers names) and, written out independently here, the weights they must change.
    native = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
    target = {f"blocks.{b}.attn1.{p}": f"diffusion_model.blocks.{b}.self_attn.{n}.weight"
              for b in range(blocks) for p, n in native.items()}
    pairs = random_pairs({m: tuple(before[k].shape) for m, k in target.items()}, seed=1)

    rows = []
    for label, layout in (("comfyui", comfyui_layout()), ("diffusers (control)", diffusers_layout("transformer"))):
        tensors = write_tensors(pairs, layout)
        name = f"vmc_{label.split()[0]}.safetensors"
        save_file(tensors, str(tmp / "loras" / name))
        for strength in (1.0, 0.5):
            with Warnings() as log:  # ComfyUI's own node: load_torch_file + comfy.sd.load_lora_for_models
                patched = nodes.LoraLoaderModelOnly().load_lora_model_only(model, name, strength)[0]
            missed = sum(line.startswith("lora key not loaded") for line in log.lines)
            if missed and strength == 1.0:
                print(f"  ComfyUI, {label}: {missed} x \"{log.lines[0]}\"")
            expected = {target[m]: strength * (p["B"] @ p["A"]) for m, p in pairs.items()}
            patched.patch_model()  # the weights as sampling would see them
            err, other = compare(before, patched.model.state_dict(), expected) if patched.patches else (float("nan"), 0.0)
            patched.unpatch_model()
            rows.append(("ComfyUI Wan 2.1", label, strength, len(tensors), len(tensors) - missed,
                         len(patched.patches), err, other))
    return rows


def animatediff_rows(tmp: Path) -> list[tuple]:
    import folder_paths
    import torch
    from safetensors.torch import save_file
    from animatediff.model_injection import create_MotionModelPatcher, load_motion_lora_as_patches
    from animatediff.motion_lora import MotionLoraInfo
    from animatediff.motion_module_ad import AnimateDiffModel, normalize_ad_state_dict
    from animatediff.utils_model import Folders
    from vmc_animatediff.backend import motion_lora_layout
    from vmc_cli.models.lora_files import diffusers_layout, write_tensors

    # SD1.5 v2 motion modules: (block, channels, motion modules) in diffusers' UNetMotionModel order.
    blocks = ([(f"down_blocks.{i}", c, 2) for i, c in enumerate((320, 640, 1280, 1280))] + [("mid_block", 1280, 1)]
              + [(f"up_blocks.{i}", c, 3) for i, c in enumerate((1280, 1280, 640, 320))])
    # A few original-layout keys (positional encodings, 32 frames) are enough for AD-Evolved to
    # decide the model's type and version and to build it; then every weight gets random values.
    seed = {f"{b}.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe":
            torch.zeros(1, 32, c) for b, c, _ in blocks for a in (0, 1)}
    seed, info = normalize_ad_state_dict(seed, "random_mm_sd_v15_v2")
    net = AnimateDiffModel(mm_state_dict=seed, mm_info=info).float()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    motion_model = create_MotionModelPatcher(net, torch.device("cpu"), torch.device("cpu"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    print(f"AnimateDiff-Evolved motion model: {info.sd_type} {info.mm_version}, "
          f"{sum(p.numel() for p in net.parameters()):,} parameters")

    # vmc's modules (diffusers names) and, written out independently here, the weights they must change.
    target = {}
    for b, _, count in blocks:
        for j in range(count):
            for a in (1, 2):
                for p in ("to_q", "to_k", "to_v", "to_out.0"):
                    target[f"{b}.motion_modules.{j}.transformer_blocks.0.attn{a}.{p}"] = (
                        f"{b}.motion_modules.{j}.temporal_transformer.transformer_blocks.0."
                        f"attention_blocks.{a - 1}.{p}.weight")
    pairs = random_pairs({m: tuple(before[k].shape) for m, k in target.items()}, seed=2)

    (tmp / "motion_lora").mkdir()
    folder_paths.add_model_folder_path(Folders.MOTION_LORA, str(tmp / "motion_lora"))
    rows = []
    for label, layout in (("comfyui", motion_lora_layout()), ("diffusers (control)", diffusers_layout("unet"))):
        tensors = write_tensors(pairs, layout)
        name = f"vmc_{label.split()[0]}.safetensors"
        save_file(tensors, str(tmp / "motion_lora" / name))
        for strength in (1.0, 0.5):
            patched = motion_model.clone()
            try:
                load_motion_lora_as_patches(patched, MotionLoraInfo(name, strength=strength))
            except ValueError as exc:  # AD-Evolved refuses a file without motion-LoRA keys
                print(f"  AnimateDiff-Evolved refused {label} at {strength}: {exc}")
            # Each patch is (strength, (B@A,), ...): check the tuples, then apply them.
            expected = {target[m]: strength * (p["B"] @ p["A"]) for m, p in pairs.items()}
            tuples_ok = all(abs(v[0][0] - strength) < 1e-9 and torch.allclose(v[0][1][0], e / strength, atol=1e-6)
                            for k, v in patched.patches.items() for e in [expected.get(k)] if e is not None)
            err, other = float("nan"), 0.0
            if patched.patches:
                patched.patch_model()  # the weights as sampling would see them
                err, other = compare(before, patched.model.state_dict(), expected)
                patched.unpatch_model()
                err = err if tuples_ok and set(patched.patches) <= set(expected) else float("inf")
            # AD-Evolved logs no skipped keys: each patch it made took one down and one up tensor.
            rows.append(("AnimateDiff-Evolved v2", label, strength, len(tensors),
                         2 * len(patched.patches), len(patched.patches), err, other))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="a ComfyUI checkout")
    parser.add_argument("--animatediff-evolved", type=Path, required=True, help="a ComfyUI-AnimateDiff-Evolved checkout")
    args = parser.parse_args()
    setup(args.comfyui.resolve(), args.animatediff_evolved.resolve())
    logging.basicConfig(level=logging.WARNING)  # warnings reach the root logger, to be counted...
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)  # ...but only errors are printed
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("wan", "ad"):
            (Path(tmp) / part).mkdir()
        rows = wan_rows(Path(tmp) / "wan") + animatediff_rows(Path(tmp) / "ad")
    head = ("loader", "file layout", "strength", "tensors", "loaded", "patched", "max rel err", "other change")
    print("\n" + " | ".join(head))
    for loader, label, s, n, loaded, patched, err, other in rows:
        print(f"{loader} | {label} | {s:g} | {n} | {loaded} | {patched} | {err:.1e} | {other:.1e}")
    # vmc's files: every tensor loaded, one patch per module, change = strength B@A; controls: nothing.
    ok = all((loaded == n and err < 1e-5 and other == 0) if label == "comfyui" else (loaded == 0 and patched == 0)
             for _, label, _, n, loaded, patched, err, other in rows)
    print("\nall as expected" if ok else "\nNOT as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
