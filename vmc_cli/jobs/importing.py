"""``vmc import FILE --backend B --name NAME``: a motion LoRA made elsewhere becomes a profile.

The file's layout is told from its keys (any layout the backend reads: diffusers', ComfyUI's,
the original motion-LoRA one; :mod:`vmc_cli.models.lora_files`). The key-frame model is loaded, the
factors are checked against its modules' shapes, and the profile is written the way a tuned one
is (atomically, nothing on a refusal):

- on a backend whose profiles are LoRA adapters (Wan), as adapters
  (:meth:`Backend.adapter_from_lora`);
- on the others, as tuned weights: each module's ``W0 + scale B A`` (``scale`` alpha / rank, 1
  without an alpha), so ``--motion-scale S`` gives ``W0 + S scale B A`` as for a tuned profile.

An imported profile has no source clip: it generates from fresh noise (``--init noise``), and
asking it for an inversion is a one-line error. Its manifest records the file (path, sha256,
layout, rank, what the file's own metadata says of its prompt).
"""

from __future__ import annotations

from pathlib import Path

from vmc_cli import __version__
from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import SCHEMA, WEIGHTS, ProfileStore, now, validate_name
from vmc_cli.jobs.runtime import Runtime


def merged_weights(unet, pairs: dict, source: Path) -> dict:
    """``W0 + scale B A`` for each module's weight (float32), checked against the model's shapes."""
    import torch

    from vmc_cli.models.lora_files import scale_of

    params = dict(unet.named_parameters())
    weights = {}
    for module, parts in sorted(pairs.items()):
        name = f"{module}.weight"
        if name not in params:
            raise VmcError(f"{source}: the LoRA adapts {module}, which the loaded model does not have",
                           "import it with the model it was made for (--model-path)")
        w0 = params[name].detach().to("cpu", torch.float32)
        a, b = parts["A"].to(torch.float32), parts["B"].to(torch.float32)
        if w0.dim() != 2 or (b.shape[0], a.shape[1]) != tuple(w0.shape):
            raise VmcError(f"{source}: the LoRA's {module} is {b.shape[0]} x {a.shape[1]}, the model's "
                           f"{' x '.join(map(str, w0.shape))}", "import it with the model it was made for (--model-path)")
        weights[name] = w0 + scale_of(parts) * (b @ a)
    return weights


def import_lora(path: str | Path, *, backend_name: str, name: str, store: ProfileStore, runtime: Runtime,
                force: bool = False) -> dict:
    """Read the LoRA file at ``path`` and write it as profile ``name`` of ``backend_name``."""
    from vmc_cli.models.lora_files import read_lora
    from vmc_cli.io.media import file_sha256
    from vmc_cli.models.plugins import get_backend

    path = Path(path)
    validate_name(name)
    backend = get_backend(backend_name)
    layouts = backend.lora_layouts()
    if not layouts:
        raise VmcError(f"backend {backend_name!r} takes no LoRA files",
                       "import into a backend that `vmc backends` shows with a LoRA format (e.g. wan, animatediff)")
    if path.suffix.lower() != ".safetensors":
        raise VmcError(f"{path} is not a .safetensors file", "vmc import takes LoRA files in the safetensors format")
    if store.exists(name) and not force:
        raise VmcError(f"profile {name!r} already exists", "pass --name NEW, or --force to replace it")
    layout_name, pairs, meta = read_lora(path, layouts)
    layout = layouts[layout_name]
    runtime.backend_options(backend)
    backend = runtime.load(backend, ("keyframes",))
    made = backend.adapter_from_lora(pairs)
    if made is None:
        weights, adapter = merged_weights(backend.unet, pairs, path), None
    else:
        weights, adapter = made
    ranks = sorted({int(p["A"].shape[0]) for p in pairs.values()})
    alphas = sorted({p["alpha"] for p in pairs.values() if p.get("alpha") is not None})
    prompt = meta.get("vmc_tuning_prompt", "")
    manifest = {
        "schema": SCHEMA,
        "vmc_version": __version__,
        "name": name,
        "created": now(),
        "backend": {"name": backend_name, "models": backend.model_info(), "model_path": runtime.model_path},
        "source": {"kind": "lora-file", "path": str(path.resolve()), "sha256": file_sha256(path),
                   "size": [backend.width, backend.height]},
        "prompt": {"original": prompt, "tuning": prompt, "appearance_invariant": False},
        "imported": {"layout": layout.name, "format": layout_name,
                     "modules": len(pairs), "ranks": ranks, "alphas": alphas,
                     "made_by": f"vmc {meta['vmc_version']}" if meta.get("vmc_version") else "another tool",
                     "metadata": {k: v for k, v in meta.items() if k.startswith(("ss_", "vmc_"))}},
        **({"adapter": adapter} if adapter else {}),
    }
    store.create(name, manifest, {WEIGHTS: weights}, overwrite=force)
    return {"profile": name, "backend": backend_name, "path": str(store.path(name)), "layout": layout.name,
            "loads_in": layout.tools, "modules": len(pairs), "ranks": ranks, "tensors": len(weights)}
