"""``vmc export PROFILE --format lora``: a profile as a standard LoRA file that other tools load.

The file is safetensors with diffusers' LoRA keys, ``<component>.<module>.lora_A.weight``
(rank x in) and ``.lora_B.weight`` (out x rank), no alphas (alpha = rank, scale 1: what
``load_lora_weights`` assumes for such a file), so ``weight + B A`` is the tuned weight.
``<component>`` is the backend's ``lora_prefix``: ``transformer`` for Wan, ``unet`` for the
U-Net backends (AnimateDiff's motion modules keep their ``motion_modules`` names: the layout
diffusers' ``AnimateDiffPipeline.load_lora_weights`` takes for motion LoRAs).

- A profile whose adapters are LoRA already (Wan; ``[adapter]`` in its manifest) is written
  as it is: its A and B under the file's keys, nothing approximated, no model loaded.
- A U-Net profile holds the tuned weights W themselves: the key-frame model is loaded for its
  base weights W0 and each change W - W0 is cut to ``rank`` by SVD (Eckart-Young: the best
  rank-r approximation in the Frobenius norm). The report gives the rank and the share of the
  change kept, ``sum(s_i^2, i <= r) / sum(s_i^2)`` over all tensors. Tensors a LoRA cannot
  hold (biases, norms, convolutions: tuned with ``--target temporal`` or a pattern) are left
  out and counted in the share's denominator.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import VmcError
from .profiles import WEIGHTS, ProfileStore
from .runtime import Runtime, load_profile

FORMATS = ("lora",)
#: the rank of a U-Net profile's low-rank approximation when --rank is not given
DEFAULT_RANK = 32


def check_export(fmt: str, out: Path, rank: int | None) -> None:
    """Refuse, before any work, a format other than ``lora``, a rank below 1, and an output that
    is not a ``.safetensors`` file that can be written."""
    from .video import check_output

    if fmt not in FORMATS:
        raise VmcError(f"--format {fmt!r} is not an export format", f"use --format {' or '.join(FORMATS)}")
    if rank is not None and rank < 1:
        raise VmcError(f"--rank {rank}: a LoRA's rank is at least 1", f"e.g. --rank {DEFAULT_RANK}")
    if Path(out).suffix.lower() != ".safetensors":
        raise VmcError(f"-o {out}: a LoRA file is written as .safetensors", f"e.g. -o {Path(out).stem or 'motion'}.safetensors")
    check_output(Path(out), None, "-o", suffix=".safetensors")


def peft_to_lora_key(name: str, prefix: str) -> str:
    """peft's parameter name -> the file's key: ``blocks.0.attn1.to_q.lora_A.default.weight`` ->
    ``transformer.blocks.0.attn1.to_q.lora_A.weight``."""
    for ab in ("lora_A", "lora_B"):
        marker = f".{ab}."
        if marker in name:
            module = name.split(marker, 1)[0]
            return f"{prefix}.{module}.{ab}.weight"
    raise VmcError(f"the profile's tensor {name!r} is not a LoRA factor", "tune the profile again with this vmc")


def low_rank(weights: dict, base: dict, prefix: str, rank: int) -> tuple[dict, dict]:
    """Each 2-D weight's change ``W - W0`` as LoRA factors of rank ``min(rank, its dims)``, by SVD
    (``B = U_r S_r``, ``A = V_r^T``). Returns (tensors, report)."""
    import torch

    tensors, kept, total, left_out, ranks = {}, 0.0, 0.0, [], set()
    for name in sorted(weights):
        value = weights[name].to(torch.float64)
        if name not in base or tuple(base[name].shape) != tuple(value.shape):
            raise VmcError(f"the profile's weights name {name!r}, which the model does not have as such",
                           "the profile was made with another model; tune again")
        delta = value - base[name].detach().to("cpu", torch.float64)
        energy = float((delta ** 2).sum())
        total += energy
        if value.ndim != 2 or not name.endswith(".weight"):
            left_out.append(name)
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.numel())
        ranks.add(r)
        kept += float((s[:r] ** 2).sum())
        module = name[: -len(".weight")]
        tensors[f"{prefix}.{module}.lora_A.weight"] = vh[:r].to(torch.float32).contiguous()
        tensors[f"{prefix}.{module}.lora_B.weight"] = (u[:, :r] * s[:r]).to(torch.float32).contiguous()
    if not tensors:
        raise VmcError("the profile tunes no 2-D weight a LoRA can hold (only biases, norms or convolutions)",
                       "export a profile tuned with --target qkv (the default)")
    report = {"rank": max(ranks), "ranks": sorted(ranks), "kept": kept / total if total > 0 else 1.0,
              "layers": len(tensors) // 2, "left_out": left_out, "approximated": True}
    return tensors, report


def export_profile(name: str, out: str | Path, *, store: ProfileStore, runtime: Runtime | None = None,
                   fmt: str = "lora", rank: int | None = None) -> dict:
    """Write profile ``name`` as a LoRA file at ``out`` (atomically: all of it or nothing). Returns the report."""
    import torch
    from safetensors.torch import save_file

    from .plugins import get_backend

    runtime = runtime or Runtime()
    out = Path(out)
    check_export(fmt, out, rank)
    manifest = store.manifest(name)
    made_by = manifest.get("backend", {}).get("name")
    backend = get_backend(made_by)
    prefix = getattr(backend, "lora_prefix", None)
    if not prefix:
        raise VmcError(f"backend {made_by!r} has no LoRA format, so profile {name!r} cannot be exported as one",
                       "use the profile with vmc generate")
    weights = store.load(name, WEIGHTS, manifest)
    layout = manifest.get("adapter") or {}
    if layout.get("kind") == "lora":
        if rank is not None and rank != layout.get("rank"):
            raise VmcError(f"profile {name!r} is LoRA adapters of rank {layout.get('rank')} already, not {rank}",
                           "drop --rank (or tune again with --option lora_rank=N)")
        tensors = {peft_to_lora_key(n, prefix): w.to(torch.float32).contiguous() for n, w in weights.items()}
        report = {"rank": layout.get("rank"), "ranks": [layout.get("rank")], "kept": 1.0,
                  "layers": len(tensors) // 2, "left_out": [], "approximated": False}
    else:
        runtime.progress.log(f"loading the key-frame model for the base weights of profile {name!r}")
        loaded, _ = load_profile(name, store=store, runtime=runtime, backend_name=made_by,
                                 stages=("keyframes",), motion_scale=0.0)  # scale 0: the base weights, W0
        base = dict(loaded.unet.named_parameters())
        tensors, report = low_rank(weights, base, prefix, rank or DEFAULT_RANK)
    metadata = {"format": "pt", "vmc_profile": name, "vmc_backend": str(made_by), "vmc_rank": str(report["rank"]),
                "vmc_kept": f"{report['kept']:.6f}"}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"profile": name, "backend": made_by, "format": fmt, "path": str(out), "prefix": prefix,
            "tensors": len(tensors), **report}
