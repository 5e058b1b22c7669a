"""Temporal attention adaptation: the VMC training loop, backend-agnostic.

Only the target parameters of the backend's key-frame model are trained (by
default the query/key/value projections of every temporal attention block)
with the motion-distillation loss; everything else stays frozen.
"""

from __future__ import annotations

import re
from typing import Callable

import torch

from vmc_cli.errors import VmcError
from vmc_cli.method.motion import motion_distillation_loss
from vmc_cli.progress import SILENT, Reporter
from vmc_cli.method.tune_config import (BACKEND_TUNABLE, LOSSES, TARGETS, TuneConfig, check_tune_defaults,  # noqa: F401
                          describe_defaults, resolve_config)

QKV = ("to_q", "to_k", "to_v")


def select_parameters(unet: torch.nn.Module, target: str, marker: str = "temp_attentions") -> dict[str, torch.nn.Parameter]:
    """The parameters to train, by name.

    - ``qkv``: to_q/to_k/to_v of every module whose name contains ``marker``
      (the temporal attention blocks): the paper's setting;
    - ``temporal``: every parameter inside the temporal attention blocks;
    - ``attention``: to_q/to_k/to_v (and added-KV projections) of every
      attention layer, spatial and cross-attention included (the paper's ablation);
    - anything else is a regular expression searched in parameter names.
    """
    params = dict(unet.named_parameters())
    proj = r"\.(to_q|to_k|to_v)\.(weight|bias)$"
    inside = rf"(^|\.){re.escape(marker)}\."
    if target == "qkv":
        pat = re.compile(inside + ".*" + proj)
    elif target == "temporal":
        pat = re.compile(inside)
    elif target == "attention":
        pat = re.compile(r"\.(to_q|to_k|to_v|add_k_proj|add_v_proj)\.(weight|bias)$")
    else:
        try:
            pat = re.compile(target)
        except re.error as exc:
            raise VmcError(f"--target {target!r} is not a valid regular expression ({exc})",
                           f"use one of {', '.join(TARGETS)} or a regular expression over parameter names") from None
    chosen = {n: p for n, p in params.items() if pat.search(n)}
    if not chosen:
        raise VmcError(f"--target {target!r} matches no parameter of the key-frame model",
                       f"use one of {', '.join(TARGETS)} or a pattern that matches parameter names")
    return chosen


def keep_master_weights(unet: torch.nn.Module, dtype: torch.dtype, marker: str = "temp_attentions",
                        layers: tuple[str, ...] | None = QKV) -> list[str]:
    """fp32 master weights for what tuning trains, on a key-frame model loaded in half precision
    (float16 or bfloat16; it runs under autocast, where the half layers and these meet in the half
    dtype, and float16 loss scaling needs float32 parameters): the ``layers`` (to_q/to_k/to_v) of
    the temporal blocks (modules whose name contains ``marker``), or with ``layers`` None the
    temporal blocks (modules named ``marker``) whole. Nothing for float32. Returns the names of
    the modules it moved to float32."""
    if dtype == torch.float32:
        return []
    moved = []
    for name, module in unet.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if (leaf == marker) if layers is None else (marker in name and leaf in layers):
            module.to(torch.float32)
            moved.append(name)
    return moved


def _training_state(targets: dict, optimizer, gen: torch.Generator, scaler) -> tuple[dict, dict]:
    """Everything a resumed run needs, as (tensors, JSON-able extra): tuned weights, AdamW
    state, the tuning generator's and torch's RNG states (CUDA's too), the loss scaler."""
    tensors = {f"weight.{n}": p.detach().to("cpu") for n, p in targets.items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"adam.{index}.{key}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu()
    tensors["rng.tuning"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    extra = {"param_groups": opt["param_groups"], "scaler": scaler.state_dict() if scaler.is_enabled() else None}
    return tensors, extra


def _restore_state(meta: dict, tensors: dict, targets: dict, optimizer, gen: torch.Generator, scaler) -> None:
    with torch.no_grad():
        for n, p in targets.items():
            if f"weight.{n}" not in tensors:
                raise VmcError(f"--resume: the checkpoint lacks {n}", "start over without --resume")
            p.copy_(tensors[f"weight.{n}"].to(p.device, p.dtype))
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, field = key.split(".", 2)
            state.setdefault(int(index), {})[field] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    gen.set_state(tensors["rng.tuning"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])


def tune(backend, video: torch.Tensor, text: torch.Tensor, config: TuneConfig,
         progress: Reporter = SILENT, on_step: Callable[[int, float], None] | None = None,
         checkpoint=None, resume: bool = False) -> dict:
    """Fine-tune the backend's key-frame model on one clip.

    ``video``: the clip in model space, (1, channels, frames, height, width);
    ``text``: the tuning prompt's embedding, (1, tokens, dim).
    ``checkpoint``: a :class:`vmc_cli.store.checkpoints.Checkpointer`: the state is saved every
    ``checkpoint.every`` steps, and with ``resume`` the run continues from its last save.
    Returns ``{"weights": {name: tensor}, "losses": [...], "parameters": n, "resumed_at": step}``;
    the trained weights are also left in ``backend.unet``.
    """
    from vmc_cli.method.schedule import Schedule

    unet = backend.unet
    targets = backend.tunable_parameters(config.target)
    unet.requires_grad_(False)
    trainable = list(targets.values())
    for p in trainable:
        p.requires_grad_(True)
    # the training schedule's forward process (diffusion: diffusers' DDPM noising; flow: x_t =
    # (1 - sigma) x0 + sigma eps at sigma = t / num_train_timesteps)
    schedule = Schedule.of(backend)
    t_lo, t_hi = config.timestep_range
    last = schedule.num_train_timesteps - 1
    t_hi = last if t_hi < 0 else t_hi
    if t_hi > last:
        raise VmcError(f"--timesteps reaches {t_hi}, past the schedule's last timestep {last}",
                       f"give LO:HI with HI at most {last}, e.g. --timesteps 0:{last}")
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay, eps=config.adam_eps)
    gen = torch.Generator("cpu").manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout in train mode draws from the global generator
    device = video.device
    x0 = video.expand(config.batch_size, *video.shape[1:])
    emb = text.expand(config.batch_size, *text.shape[1:])
    # float16 gradients underflow without loss scaling (bfloat16 and float32 need none); the
    # scaler needs float32 master weights, which backends keep for their default targets.
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and backend.dtype == torch.float16)
    half = sorted(n for n, p in targets.items() if p.dtype == torch.float16)
    if scaler.is_enabled() and half:
        raise VmcError(f"--target {config.target!r} selects {len(half)} float16 parameters (e.g. {half[0]}), "
                       "which cannot be trained with float16 loss scaling",
                       "use --dtype bfloat16 or --dtype float32, or the default --target qkv")
    losses: list[float] = []
    first = 0
    if checkpoint is not None and resume:
        meta, tensors = checkpoint.load()
        _restore_state(meta, tensors, targets, optimizer, gen, scaler)
        first, losses = int(meta["step"]), [float(v) for v in meta["losses"]]
        progress.log(f"resuming {checkpoint.name!r} at step {first} of {config.steps}")
    unet.train()
    task = progress.task("tuning", config.steps)
    task.advance(first)
    try:
        for step in range(first, config.steps):
            t = torch.randint(t_lo, t_hi + 1, (config.batch_size,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(device)
            abar = schedule.abar(t)
            x_t = schedule.add_noise(x0.float(), noise, t)
            eps = backend.predict_noise(x_t, t.to(device), emb)
            loss = motion_distillation_loss(eps.float(), noise, config.loss, config.stride, abar.to(device),
                                            schedule.variance_preserving(x_t, t))
            if not torch.isfinite(loss):
                raise VmcError(f"the loss became {loss.item()} at step {step + 1}",
                               "lower --lr, or use --dtype float32")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())
            losses.append(value)
            task.advance(info=f"loss {value:.4f}")
            if on_step is not None:
                on_step(step, value)
            done = step + 1
            if checkpoint is not None and checkpoint.every and done % checkpoint.every == 0 and done < config.steps:
                checkpoint.save(done, losses, *_training_state(targets, optimizer, gen, scaler))
    finally:
        unet.eval()
        unet.requires_grad_(False)
    # a snapshot (copy=True): on a CPU fp32 model a plain .to() would alias the live parameters,
    # and a caller that then reloads the base weights would see its "tuned" weights change
    weights = {n: p.detach().to("cpu", torch.float32, copy=True).contiguous() for n, p in targets.items()}
    return {"weights": weights, "losses": losses, "parameters": sum(w.numel() for w in weights.values()),
            "resumed_at": first}


def loss_summary(losses: list[float]) -> dict:
    tail = losses[-10:]
    return {
        "first": losses[0],
        "last": losses[-1],
        "min": min(losses),
        "mean_last_10": sum(tail) / len(tail),
    }


def apply_weights(unet: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy tuned parameters into the key-frame model, refusing unknown names or shapes."""
    params = dict(unet.named_parameters())
    for name, value in weights.items():
        if name not in params:
            raise VmcError(f"the profile's weights name {name!r}, which the model does not have",
                           "the profile was made with another model; tune again")
        if params[name].shape != value.shape:
            raise VmcError(f"the profile's {name} has shape {tuple(value.shape)}, the model's is "
                           f"{tuple(params[name].shape)}", "the profile was made with another model; tune again")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def blend_weights(unet: torch.nn.Module, weights: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """The tuned parameters at motion scale ``scale``: W0 + scale (W - W0), W0 being the
    model's current (base) values, computed in float32. Scale 1 is the profile exactly,
    0 the base model exactly. LoRA adapters (peft's ``lora_A``/``lora_B``): B is blended
    (its base is zero, so it becomes scale B) and A taken as tuned, so the change to the
    weight, B A, becomes scale B A: the motion scale is the LoRA scale, as elsewhere, not
    scale B (A0 + scale (A - A0)). Unknown names or shapes are refused as by :func:`apply_weights`."""
    if scale == 1:
        return weights
    params = dict(unet.named_parameters())
    out = {}
    for name, value in weights.items():
        if name not in params or params[name].shape != value.shape:
            return weights  # apply_weights gives the one-line refusal
        if is_lora_down(name):
            out[name] = value  # a LoRA's A is taken as tuned: the scale goes on B (below)
            continue
        base = params[name].detach().to("cpu", torch.float32)
        out[name] = base.clone() if scale == 0 else base + scale * (value.to(torch.float32) - base)
    return out


def is_lora_down(name: str) -> bool:
    """A LoRA adapter's down projection A (peft's ``lora_A``), whose partner B starts at zero."""
    return ".lora_A." in name or name.endswith(".lora_A")
