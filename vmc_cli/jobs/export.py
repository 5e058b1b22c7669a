"""``vmc export PROFILE --format lora|comfyui``: a profile as a LoRA file other tools load.

The file is safetensors in one of the backend's layouts (:mod:`vmc_cli.models.lora_files`): ``lora``,
diffusers' keys (``<component>.<module>.lora_A.weight`` / ``.lora_B.weight``, no alphas, scale 1:
``weight + B A`` is the tuned weight; ``<component>`` is the backend's ``lora_prefix``), or
``comfyui``, the keys of the model's native tools where the backend has them (ComfyUI's Wan keys
with alpha = rank; the original AnimateDiff motion-LoRA keys for AnimateDiff-Evolved).

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

from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import WEIGHTS, ProfileStore
from vmc_cli.jobs.runtime import Runtime, load_profile

#: ``--format``: lora (diffusers' layout, every backend with a LoRA format), comfyui (the
#: backend's native tools' layout, where it has one)
FORMATS = ("lora", "comfyui")
#: the rank of a U-Net profile's low-rank approximation when --rank is not given
DEFAULT_RANK = 32


def check_export(fmt: str, out: Path, rank: int | None) -> None:
    """Refuse, before any work, an unknown format, a rank below 1, and an output that is not a
    ``.safetensors`` file that can be written."""
    from vmc_cli.io.video import check_output

    if fmt not in FORMATS:
        raise VmcError(f"--format {fmt!r} is not an export format", f"use --format {' or '.join(FORMATS)}")
    if rank is not None and rank < 1:
        raise VmcError(f"--rank {rank}: a LoRA's rank is at least 1", f"e.g. --rank {DEFAULT_RANK}")
    if Path(out).suffix.lower() != ".safetensors":
        raise VmcError(f"-o {out}: a LoRA file is written as .safetensors", f"e.g. -o {Path(out).stem or 'motion'}.safetensors")
    check_output(Path(out), None, "-o", suffix=".safetensors")


def peft_pairs(weights: dict) -> dict:
    """A LoRA profile's tensors (peft's names, ``blocks.0.attn1.to_q.lora_A.default.weight``) as
    pairs: ``{"blocks.0.attn1.to_q": {"A": ..., "B": ...}}``."""
    pairs: dict = {}
    for name, value in weights.items():
        for part in ("A", "B"):
            marker = f".lora_{part}."
            if marker in name:
                pairs.setdefault(name.split(marker, 1)[0], {})[part] = value
                break
        else:
            raise VmcError(f"the profile's tensor {name!r} is not a LoRA factor", "tune the profile again with this vmc")
    return pairs


def low_rank(weights: dict, base: dict, rank: int) -> tuple[dict, dict]:
    """Each 2-D weight's change ``W - W0`` as LoRA factors of rank ``min(rank, its dims)``, by SVD
    (``B = U_r S_r``, ``A = V_r^T``). Returns (pairs by module, report)."""
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
        tensors[name[: -len(".weight")]] = {"A": vh[:r].to(torch.float32).contiguous(),
                                            "B": (u[:, :r] * s[:r]).to(torch.float32).contiguous()}
    if not tensors:
        raise VmcError("the profile tunes no 2-D weight a LoRA can hold (only biases, norms or convolutions)",
                       "export a profile tuned with --target qkv (the default)")
    report = {"rank": max(ranks), "ranks": sorted(ranks), "kept": kept / total if total > 0 else 1.0,
              "layers": len(tensors), "left_out": left_out, "approximated": True}
    return tensors, report


def export_profile(name: str, out: str | Path, *, store: ProfileStore, runtime: Runtime | None = None,
                   fmt: str = "lora", rank: int | None = None) -> dict:
    """Write profile ``name`` as a LoRA file at ``out`` in format ``fmt`` (atomically: all of it or
    nothing). Returns the report."""
    import torch
    from safetensors.torch import save_file

    from vmc_cli.models.lora_files import metadata, write_tensors
    from vmc_cli.models.plugins import get_backend

    runtime = runtime or Runtime()
    out = Path(out)
    check_export(fmt, out, rank)
    manifest = store.manifest(name)
    made_by = manifest.get("backend", {}).get("name")
    backend = get_backend(made_by)
    layouts = backend.lora_layouts()
    if not layouts:
        raise VmcError(f"backend {made_by!r} has no LoRA format, so profile {name!r} cannot be exported as one",
                       "use the profile with vmc generate")
    if fmt not in layouts:
        raise VmcError(f"backend {made_by!r} has no {fmt} layout (no tool of that kind runs its model)",
                       f"use --format {' or '.join(layouts)}")
    layout = layouts[fmt]
    weights = store.load(name, WEIGHTS, manifest)
    adapter = manifest.get("adapter") or {}
    if adapter.get("kind") == "lora":
        if rank is not None and rank != adapter.get("rank"):
            raise VmcError(f"profile {name!r} is LoRA adapters of rank {adapter.get('rank')} already, not {rank}",
                           "drop --rank (or tune again with --option lora_rank=N)")
        scale = float(adapter.get("alpha", adapter.get("rank"))) / float(adapter.get("rank"))
        pairs = {m: {"A": p["A"].to(torch.float32), "B": p["B"].to(torch.float32) * scale}
                 for m, p in peft_pairs(weights).items()}
        report = {"rank": adapter.get("rank"), "ranks": [adapter.get("rank")], "kept": 1.0,
                  "layers": len(pairs), "left_out": [], "approximated": False}
    else:
        runtime.progress.log(f"loading the key-frame model for the base weights of profile {name!r}")
        loaded, _ = load_profile(name, store=store, runtime=runtime, backend_name=made_by,
                                 stages=("keyframes",), motion_scale=0.0)  # scale 0: the base weights, W0
        base = dict(loaded.unet.named_parameters())
        pairs, report = low_rank(weights, base, rank or DEFAULT_RANK)
    strength = float(backend.defaults.get("motion_scale", 1.0))
    tensors = write_tensors(pairs, layout)
    meta = {"format": "pt", **metadata(manifest, layout=layout, fmt=fmt, rank=int(report["rank"]), strength=strength),
            "vmc_kept": f"{report['kept']:.6f}"}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"profile": name, "backend": made_by, "format": fmt, "layout": layout.name, "loads_in": layout.tools,
            "path": str(out), "prefix": getattr(backend, "lora_prefix", None), "tensors": len(tensors),
            "suggested_strength": strength, **report}
