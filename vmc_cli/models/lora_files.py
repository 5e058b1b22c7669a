"""LoRA files in the layouts other tools load, and reading them back (``vmc export``, ``vmc import``).

A LoRA is a set of modules, each with factors ``A`` (rank x in) and ``B`` (out x rank) and a
scale: the module's weight becomes ``W0 + scale B A``. Tools name the modules and the factors
differently; a :class:`LoraLayout` is one naming, as two functions: ``key(module, part)``, from the
module's name in the diffusers model the backend loads (``blocks.0.attn1.to_q``) to the file's
key, and ``parse(key)`` back (None for a key that is not this layout's).

- :func:`diffusers_layout` (``--format lora``): ``<prefix>.<module>.lora_A.weight`` and
  ``.lora_B.weight``, no alpha (scale 1), what diffusers' ``load_lora_weights`` takes;
- a backend adds layouts of its model's native tools with :meth:`Backend.lora_layouts`
  (``--format comfyui``: ComfyUI's native Wan keys; the original AnimateDiff motion-LoRA keys
  that AnimateDiff-Evolved loads).

Every file vmc writes is at scale 1 (its alpha, where the layout has one, is its rank), so a
loader's strength S gives the profile at ``--motion-scale S``. Its safetensors header carries what
the LoRA trainers write there (kohya's ``ss_*`` keys, which ComfyUI and other UIs show) and
vmc's own (:func:`metadata`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vmc_cli.errors import VmcError

#: a LoRA as modules -> {"A": tensor, "B": tensor, "alpha": float or None}
Pairs = dict


@dataclass(frozen=True)
class LoraLayout:
    """One way of naming a LoRA's tensors in a file."""

    #: short name, recorded in the file's metadata and an imported profile (``diffusers``, ``comfyui-wan``)
    name: str
    #: the tools that load it, for help texts and the export report
    tools: str
    #: (module, "A" | "B") -> the file's key
    key: Callable[[str, str], str]
    #: key -> (module, "A" | "B" | "alpha"), None when the key is not of this layout
    parse: Callable[[str], "tuple[str, str] | None"]
    #: module -> the key of its alpha (None: the layout writes no alphas, its scale is 1)
    alpha_key: "Callable[[str], str] | None" = None


def diffusers_layout(prefix: str) -> LoraLayout:
    """diffusers' keys: ``<prefix>.<module>.lora_A.weight`` / ``.lora_B.weight`` (``.alpha`` read)."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(.+)\.(lora_A\.weight|lora_B\.weight|alpha)")

    def parse(key: str):
        m = pattern.fullmatch(key)
        return (m[1], m[2][5] if m[2] != "alpha" else "alpha") if m else None

    return LoraLayout("diffusers", "diffusers (pipe.load_lora_weights)",
                      lambda module, part: f"{prefix}.{module}.lora_{part}.weight", parse)


def pairs_from_tensors(tensors: dict, layout: LoraLayout) -> tuple[Pairs, list[str]]:
    """The file's tensors read with ``layout``: (pairs, keys it does not know)."""
    pairs: Pairs = {}
    unknown = []
    for key, value in tensors.items():
        found = layout.parse(key)
        if found is None:
            unknown.append(key)
            continue
        module, part = found
        pairs.setdefault(module, {})[part] = float(value.reshape(-1)[0]) if part == "alpha" else value
    return pairs, unknown


def read_lora(path: Path, layouts: dict[str, LoraLayout]) -> tuple[str, Pairs, dict]:
    """A LoRA file: (the layout its keys are in, its pairs, its metadata). One line for a file
    that is not safetensors, keys no layout knows, a module with one factor, factors whose shapes
    do not chain (``A`` rank x in, ``B`` out x rank)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise VmcError(f"no file {path}", "pass the path of a LoRA .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own errors for a file that is not one
        raise VmcError(f"{path} is not a safetensors file ({str(exc).splitlines()[0][:120]})",
                       "vmc import takes LoRA files in the safetensors format") from None
    if not tensors:
        raise VmcError(f"{path} holds no tensors", "pass a LoRA file")
    best = None
    for name, layout in layouts.items():
        pairs, unknown = pairs_from_tensors(tensors, layout)
        if best is None or len(unknown) < len(best[2]):
            best = (name, pairs, unknown)
    name, pairs, unknown = best
    if unknown:
        known = " or ".join(layout.tools for layout in layouts.values())
        raise VmcError(f"{path}: {len(unknown)} of its {len(tensors)} keys are not a motion LoRA's this backend takes "
                       f"(e.g. {sorted(unknown)[0]!r})", f"the layouts it reads: {known}")
    for module, parts in sorted(pairs.items()):
        if "A" not in parts or "B" not in parts:
            raise VmcError(f"{path}: {module} has only its {'A' if 'A' in parts else 'B'} factor (a partial LoRA)",
                           "pass a whole LoRA file")
        a, b = parts["A"], parts["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise VmcError(f"{path}: {module}'s factors are shaped {tuple(a.shape)} and {tuple(b.shape)}, "
                           "which do not make a LoRA (A rank x in, B out x rank)", "pass a whole LoRA file")
    return name, pairs, meta


def scale_of(parts: dict) -> float:
    """A module's scale: alpha / rank, or 1 without an alpha."""
    alpha = parts.get("alpha")
    return 1.0 if alpha is None else alpha / parts["A"].shape[0]


def write_tensors(pairs: Pairs, layout: LoraLayout) -> dict:
    """Pairs at scale 1 as ``layout``'s tensors (an alpha equal to the rank where it has alphas)."""
    import torch

    tensors = {}
    for module, parts in sorted(pairs.items()):
        tensors[layout.key(module, "A")] = parts["A"].to(torch.float32).contiguous()
        tensors[layout.key(module, "B")] = parts["B"].to(torch.float32).contiguous()
        if layout.alpha_key is not None:
            tensors[layout.alpha_key(module)] = torch.tensor(float(parts["A"].shape[0]))
    return tensors


def metadata(manifest: dict, *, layout: LoraLayout, fmt: str, rank: int, strength: float) -> dict[str, str]:
    """The safetensors header of an exported file: kohya's ``ss_*`` keys (what ComfyUI and other
    UIs list for a LoRA) and vmc's own; every value a string, as the format requires."""
    from vmc_cli import __version__

    backend = manifest.get("backend", {})
    model = backend.get("models", {}).get("keyframes", {})
    base = backend.get("models", {}).get("base", {})
    tuning = manifest.get("tuning", {})
    prompt = manifest.get("prompt", {})
    alpha = rank if layout.alpha_key is not None else None
    settings = {k: tuning[k] for k in ("loss", "target", "steps", "lr", "seed", "stride") if k in tuning}
    meta = {
        "ss_output_name": str(manifest.get("name", "")),
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha if alpha is not None else rank),
        "ss_sd_model_name": str(base.get("id") or model.get("id", "")),
        "ss_base_model_version": str(backend.get("name", "")),
        "ss_training_comment": (f"VMC motion LoRA (vmc {__version__}), tuned on {prompt.get('tuning', '')!r}; "
                                f"strength {strength:g} = vmc --motion-scale {strength:g}"),
        "ss_learning_rate": str(tuning.get("lr", "")),
        "ss_max_train_steps": str(tuning.get("steps", "")),
        "ss_seed": str(tuning.get("seed", "")),
        "vmc_version": __version__,
        "vmc_profile": str(manifest.get("name", "")),
        "vmc_backend": str(backend.get("name", "")),
        "vmc_base_model": str(model.get("id", "")),
        "vmc_base_revision": str(model.get("revision", "")),
        "vmc_layout": layout.name,
        "vmc_format": fmt,
        "vmc_rank": str(rank),
        "vmc_alpha": str(alpha) if alpha is not None else "none (scale 1)",
        "vmc_tuning_prompt": str(prompt.get("tuning", "")),
        "vmc_tuning": json.dumps(settings, sort_keys=True),
        "vmc_suggested_strength": f"{strength:g}",
    }
    if base.get("id"):  # a second model under the tuned one (AnimateDiff: the SD1.5 base under the adapter)
        meta["vmc_image_model"] = str(base.get("id"))
        meta["vmc_image_model_revision"] = str(base.get("revision", ""))
    return meta
