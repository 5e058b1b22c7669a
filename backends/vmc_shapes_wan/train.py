"""Train the ``shapes-wan`` model (VAE, then transformer and text encoder) on the shapes world.

    python -m vmc_shapes_wan.train --out runs/shapes-wan --vae-minutes 12 --minutes 90

Two parts, in order, each resumable (run the same command again after a stop: it continues from
``OUT/checkpoint-{vae,denoiser}.pt``, the step, optimiser, weight average and random state):

1. the VAE (``AutoencoderKLWan``) on 5-frame clips: L1 + MSE reconstruction from the posterior
   mean, the shape's pixels weighed 10x (a tenth of the frame: unweighed, the decoder settles on
   black), decoded without the final clamp (:func:`decode_unclamped`), plus a small KL term; afterwards the latents' per-channel mean and spread over the pool
   are written into its config (``latents_mean``/``latents_std``, as Wan's VAE ships them);
2. the transformer and text encoder on the pool's latents (the VAE's posterior mean, normalised),
   rectified flow: ``x_s = (1 - s) x0 + s eps`` with ``s`` uniform, target ``eps - x0``, timestep
   ``1000 s``; 10% of captions dropped for classifier-free guidance;
3. with ``--decoder-minutes``, the VAE's decoder alone, on the frozen encoder's latents (so the
   transformer trained on them stays valid): sharper edges for the same latents.

The pipeline (``WanPipeline.save_pretrained``, the weight average of each part) is written to
``OUT`` every ``--save-every`` minutes and at the end, atomically, with ``training.json`` (the
recipe, commands, steps, time, losses). The learning rate warms up then follows a cosine over
the part's minutes, so a run's length is set by time, not steps.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import model as M


def make_pool(n: int, seed: int, frames: int = M.FRAMES):
    """``n`` seeded clips of the shapes world, (n, frames, 32, 32, 3) uint8, and their captions."""
    from vmc_shapes.world import make_clip

    rng = np.random.default_rng(seed)
    clips = np.empty((n, frames, M.SIZE, M.SIZE, 3), np.uint8)
    captions = []
    for i in range(n):
        clip, caption, _ = make_clip(rng, size=M.SIZE, frames=frames)
        clips[i] = clip
        captions.append(caption)
    return clips, captions


def to_model(clips: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W, 3) uint8 -> (B, 3, F, H, W) in [-1, 1]."""
    return clips.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def decode_unclamped(vae, z: torch.Tensor) -> torch.Tensor:
    """``AutoencoderKLWan.decode`` without its final clamp to [-1, 1], for training: a decoder whose
    outputs start below -1 everywhere would get no gradient through the clamp and stay black
    (seen: the loss froze at the all-black value from step 100, whatever the learning rate). The
    same steps as diffusers' ``_decode``: ``post_quant_conv``, then one latent frame at a time
    through the decoder with its causal cache."""
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    out = []
    for i in range(x.shape[2]):
        vae._conv_idx = [0]
        out.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0))
    vae.clear_cache()
    return torch.cat(out, 2)


def encode_text(text, tokenizer, prompts: list[str]) -> torch.Tensor:
    """UMT5 states zeroed after each prompt's tokens, as WanPipeline (and the wan backend) encode."""
    tokens = tokenizer(prompts, padding="max_length", max_length=M.TEXT_LENGTH, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    states = text(tokens.input_ids, tokens.attention_mask).last_hidden_state
    return states * tokens.attention_mask[..., None].to(states.dtype)


class Part:
    """One part's training state: the live modules, their weight average, the optimiser, the
    clock; saved to and resumed from ``OUT/checkpoint-NAME.pt``."""

    def __init__(self, name: str, modules: dict, lr: float, minutes: float, warmup: int, ema: float, out: Path):
        self.name, self.modules, self.lr, self.minutes, self.warmup, self.decay = name, modules, lr, minutes, warmup, ema
        self.params = [p for m in modules.values() for p in m.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=1e-2)
        self.avg = [p.detach().clone() for p in self.params]
        self.step, self.seconds, self.losses = 0, 0.0, []
        self.path = out / f"checkpoint-{name}.pt"

    def resume(self) -> bool:
        if not self.path.exists():
            return False
        state = torch.load(self.path, weights_only=False)
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        self.opt.load_state_dict(state["opt"])
        self.avg = state["avg"]
        self.step, self.seconds, self.losses = state["step"], state["seconds"], state["losses"]
        torch.set_rng_state(state["torch_rng"])
        return True

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"modules": {k: m.state_dict() for k, m in self.modules.items()}, "opt": self.opt.state_dict(),
                    "avg": self.avg, "step": self.step, "seconds": self.seconds, "losses": self.losses,
                    "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(self.path)

    @property
    def done(self) -> bool:
        return self.seconds >= 60 * self.minutes

    def update(self, loss: torch.Tensor) -> None:
        fraction = min(1.0, self.seconds / (60 * self.minutes))
        for group in self.opt.param_groups:
            group["lr"] = self.lr * min(1.0, (self.step + 1) / self.warmup) * 0.5 * (1 + math.cos(math.pi * fraction))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.avg, [p.detach() for p in self.params],
                                 1 - min(self.decay, (self.step + 1) / (self.step + 10)))
        self.losses.append(float(loss.detach()))
        self.step += 1

    def averaged(self):
        """The modules with the weight average loaded (copies; the live ones keep training)."""
        import copy

        copies = {k: copy.deepcopy(m) for k, m in self.modules.items()}
        params = [p for m in copies.values() for p in m.parameters()]
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in params], self.avg)
        return copies

    def loss_now(self) -> float:
        return float(np.mean(self.losses[-200:])) if self.losses else float("nan")


def run(part: Part, batch_loss, save_pipeline, save_every: float) -> None:
    last_save = time.time()
    while not part.done:
        t0 = time.time()
        loss = batch_loss()
        part.update(loss)
        part.seconds += time.time() - t0
        if part.step % 50 == 0:
            print(f"{part.name} step {part.step} loss {part.loss_now():.4f} "
                  f"{part.seconds / 60:.1f}/{part.minutes:g} min", flush=True)
        if save_every and time.time() - last_save > 60 * save_every:
            part.save()
            save_pipeline()
            last_save = time.time()
    part.save()
    save_pipeline()


def write_pipeline(out: Path, vae, transformer, text, record: dict) -> None:
    """``WanPipeline.save_pretrained`` into ``out`` (float32, a temporary folder renamed into place),
    with ``training.json``; the checkpoints in ``out`` are kept."""
    from diffusers import WanPipeline

    from vmc_cli.models.quiet import no_progress_bars, quiet_libraries

    tmp = out.with_name(out.name + ".writing")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_libraries(), no_progress_bars():
        WanPipeline(tokenizer=M.tokenizer(), text_encoder=text, vae=vae, scheduler=M.scheduler(),
                    transformer=transformer).save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    for child in tmp.iterdir():
        target = out / child.name
        if target.is_dir():
            shutil.rmtree(target)
        child.replace(target)
    tmp.rmdir()


def latent_stats(vae, clips: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, list[float], list[float]]:
    """The pool's posterior means (N, C, F, h, w) and their per-channel mean and spread."""
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            out.append(vae.encode(to_model(clips[i:i + batch])).latent_dist.mean)
    z = torch.cat(out)
    mean = z.mean(dim=(0, 2, 3, 4))
    std = z.std(dim=(0, 2, 3, 4))
    return z, mean.tolist(), std.tolist()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=20000, help="size of the generated training pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vae-minutes", type=float, default=18)
    ap.add_argument("--vae-batch", type=int, default=8)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--kl", type=float, default=1e-5, help="weight of the VAE's KL term")
    ap.add_argument("--minutes", type=float, default=90, help="minutes for the transformer and text encoder")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--decoder-minutes", type=float, default=0,
                    help="afterwards, train the VAE's decoder alone this long (the encoder, so the latents and the "
                         "transformer trained on them, stay as they are)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=float, default=10, metavar="MINUTES")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m vmc_shapes_wan.train " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.time()
    clips_np, captions = make_pool(args.clips, args.seed)
    clips = torch.from_numpy(clips_np)
    print(f"pool: {len(clips)} clips in {time.time() - started:.0f}s", flush=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    record = json.loads((args.out / "training.json").read_text()) if (args.out / "training.json").exists() else {}
    record.setdefault("commands", [])
    if command not in record["commands"]:
        record["commands"].append(command)
    record["recipe"] = recipe

    # -- 1. the VAE ------------------------------------------------------------------------
    vae = M.build_vae(args.seed)
    vae_part = Part("vae", {"vae": vae}, args.vae_lr, args.vae_minutes, 100, 0.999, args.out)
    if vae_part.resume():
        print(f"vae: resumed at step {vae_part.step}", flush=True)
    transformer, text = M.build_denoiser(args.seed)
    tokenizer = M.tokenizer()

    def vae_loss():
        idx = torch.randint(len(clips), (args.vae_batch,), generator=gen)
        start = int(torch.randint(0, M.FRAMES - 4, (1,), generator=gen))
        x = to_model(clips[idx, start:start + 5])
        post = vae.encode(x).latent_dist
        y = decode_unclamped(vae, post.mode())
        # the shape is a tenth of the pixels: weighed 10x, or the decoder settles on black
        weight = 1 + 9 * (x.amax(1, keepdim=True) > -0.5).float()
        return (((y - x).abs() + (y - x).pow(2)) * weight).mean() + args.kl * post.kl().mean() / x[0].numel()

    def vae_record():
        return {"steps": vae_part.step, "minutes": round(vae_part.seconds / 60, 1), "loss_last_200": vae_part.loss_now()}

    def save_vae_only():
        record["vae"] = vae_record()
        write_pipeline(args.out, vae_part.averaged()["vae"], transformer, text, record)

    if not vae_part.done:
        vae.train()
        run(vae_part, vae_loss, save_vae_only, args.save_every)
    trained_vae = vae_part.averaged()["vae"].eval().requires_grad_(False)
    z, mean, std = latent_stats(trained_vae, clips)
    trained_vae.register_to_config(latents_mean=mean, latents_std=std)
    with torch.no_grad():
        n = min(512, len(z))
        recon = torch.cat([trained_vae.decode(z[i:min(i + 64, n)]).sample for i in range(0, n, 64)])
        error = (recon.clamp(-1, 1) - to_model(clips[:n])).abs().mean().item() * 127.5
    record["vae"] = {**vae_record(), "latents_mean": mean, "latents_std": std,
                     "reconstruction_mean_abs_error_0_255": round(error, 3),
                     "reconstruction_of": "the first 512 pool clips, posterior mean, 9 frames"}
    print(f"vae: reconstruction error {error:.2f} of 255 (mean absolute, 512 clips)", flush=True)
    zn = (z - torch.tensor(mean).view(1, -1, 1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1, 1)
    del z

    # -- 2. the transformer and text encoder --------------------------------------------------
    part = Part("denoiser", {"transformer": transformer, "text": text}, args.lr, args.minutes, args.warmup,
                args.ema, args.out)
    if part.resume():
        print(f"denoiser: resumed at step {part.step}", flush=True)
    transformer.train()
    text.train()
    captions_dropped = np.array(captions, dtype=object)

    def flow_loss():
        idx = torch.randint(len(zn), (args.batch,), generator=gen)
        x0 = zn[idx]
        prompts = [("" if drop else captions_dropped[i]) for i, drop in
                   zip(idx.tolist(), (torch.rand(args.batch, generator=gen) < 0.1).tolist())]
        s = torch.rand(args.batch, generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        sv = s.view(-1, 1, 1, 1, 1)
        xs = (1 - sv) * x0 + sv * eps
        emb = encode_text(text, tokenizer, prompts)
        pred = transformer(hidden_states=xs, timestep=s * 1000, encoder_hidden_states=emb, return_dict=False)[0]
        return torch.nn.functional.mse_loss(pred, eps - x0)

    def save_all():
        models = part.averaged()
        record["denoiser"] = {"steps": part.step, "minutes": round(part.seconds / 60, 1),
                              "loss_last_200": part.loss_now(), "batch": args.batch}
        record["parameters"] = {"transformer": sum(p.numel() for p in transformer.parameters()),
                                "text_encoder": sum(p.numel() for p in text.parameters()),
                                "vae": sum(p.numel() for p in trained_vae.parameters())}
        record["torch"] = torch.__version__
        write_pipeline(args.out, trained_vae, models["transformer"].eval(), models["text"].eval(), record)

    run(part, flow_loss, save_all, args.save_every)
    print(f"saved {args.out}: denoiser {part.step} steps, loss {part.loss_now():.4f}, "
          f"{(time.time() - started) / 60:.0f} min in this run", flush=True)

    # -- 3. optionally, the decoder alone: sharper shapes from the same latents ------------------
    if args.decoder_minutes:
        import copy

        final = part.averaged()
        tuned_vae = copy.deepcopy(trained_vae)
        trainable = {"decoder": tuned_vae.decoder, "post_quant_conv": tuned_vae.post_quant_conv}
        for module in trainable.values():
            module.requires_grad_(True).train()
        dpart = Part("decoder", trainable, args.vae_lr / 3, args.decoder_minutes, 50, 0.999, args.out)
        if dpart.resume():
            print(f"decoder: resumed at step {dpart.step}", flush=True)

        def decoder_loss():
            idx = torch.randint(len(clips), (args.vae_batch,), generator=gen)
            start = int(torch.randint(0, M.FRAMES - 4, (1,), generator=gen))
            x = to_model(clips[idx, start:start + 5])
            with torch.no_grad():
                z = trained_vae.encode(x).latent_dist.mode()
            y = decode_unclamped(tuned_vae, z)
            weight = 1 + 9 * (x.amax(1, keepdim=True) > -0.5).float()
            return (((y - x).abs() + (y - x).pow(2)) * weight).mean()

        def save_decoder():
            averaged = dpart.averaged()
            out_vae = copy.deepcopy(trained_vae)
            for key, module in averaged.items():
                getattr(out_vae, key).load_state_dict(module.state_dict())
            record["decoder"] = {"steps": dpart.step, "minutes": round(dpart.seconds / 60, 1),
                                 "loss_last_200": dpart.loss_now()}
            write_pipeline(args.out, out_vae.eval(), final["transformer"].eval(), final["text"].eval(), record)

        run(dpart, decoder_loss, save_decoder, args.save_every)
        print(f"saved {args.out}: decoder {dpart.step} steps, loss {dpart.loss_now():.4f}", flush=True)


if __name__ == "__main__":
    main()
