"""Does VMC transfer motion? The shapes-world experiment.

    python benchmarks/shapes_transfer.py [--seeds 3] [--prompts 3] [--strengths 1 0.9 0.8 0.7] [--out docs]

Source clips: one shape moving along each held-out path (a circle, a zig-zag, a figure
eight, a bounce off a wall, stop-and-go), paths the training generator never makes. For
each source, ``--prompts`` new appearances that change both colour and shape, and each
condition of ``--conditions`` (see ``CONDITIONS``): no tuning from fresh noise, no tuning
from the DDIM-inverted clip (the paper's "no adaptation"), and tuning settings written as
``LOSS:STEPS:LR[:TLO-THI[:TARGET]]`` (``benchmarks/shapes_tuning_check.py`` explains them).

A tuned condition samples like the tool does: DDIM-invert the clip with the tuned model
(empty prompt, no guidance) part-way (``--strengths``: 1 is the whole inversion; lower
keeps more of the clip), then sample each new prompt with guidance from the sampler's
timestep whose noise level matches. Everything runs through vmc's own functions
(``vmc_cli.method.tuning.tune``, ``inversion.ddim_invert``, ``sampling.ddim_sample``) on the
``shapes`` backend, in memory.

Measures, per output: centroid path error (mean distance between the source's and the
output's shape centroids, fractions of the frame width; frames without a shape are left
out), appearance right (the output shows the new prompt's colour and shape), source look
leaking (it shows the source's colour or shape instead) and motion fidelity against the
source (``vmc eval --source``'s metric). Each seed changes the tuning run (its timesteps
and noise) and the fresh noise. Means over sources and prompts per seed, then mean and
standard deviation over seeds. Writes ``shapes_transfer.json``, ``shapes_transfer.md``,
``shapes_transfer_curves.png`` (path error against appearance right, one point per
strength), ``shapes_transfer.png`` (source path vs generated paths) and
``shapes_transfer_frames.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "benchmarks")]

#: name -> (tuning setting or None, label); fresh_noise is sampled from noise, the rest from the inversion
CONDITIONS = {
    "fresh_noise": (None, "no tuning, fresh noise"),
    "inverted": (None, "no tuning, inverted clip (no adaptation)"),
    "paper": ("cos:400:1e-4", "VMC as published: cos, q/k/v, 400 x 1e-4"),
    "cos_long": ("cos:300:2e-3", "cos, q/k/v, 300 x 2e-3"),
    "l2": ("l2:300:2e-3", "l2 (eq. 16), q/k/v, 300 x 2e-3"),
    "x0cos": ("x0cos:300:2e-3", "x0cos (cos on denoised residuals), q/k/v, 300 x 2e-3"),
    "noise": ("noise:300:2e-3", "plain noise matching, q/k/v, 300 x 2e-3 (reference)"),
}
INVARIANT_PROMPT = "a shape is moving"
#: the source's appearance on each held-out path
SOURCES = {"circle": ("square", "red"), "zigzag": ("circle", "green"), "figure_eight": ("triangle", "yellow"),
           "bounce": ("square", "blue"), "stop_and_go": ("triangle", "white")}
KEYS = ["path_error", "appearance", "leak", "motion_fidelity", "colour_ok", "shape_ok", "empty"]


def target_appearances(shape: str, colour: str, n: int) -> list[tuple[str, str]]:
    """``n`` (shape, colour) pairs that differ from the source in both, spread over the options."""
    from vmc_shapes.world import COLOURS, SHAPES

    shapes = [s for s in SHAPES if s != shape]
    colours = [c for c in COLOURS if c != colour]
    offset = SHAPES.index(shape) + list(COLOURS).index(colour)
    return [(shapes[(offset + i) % len(shapes)], colours[(offset + i) % len(colours)]) for i in range(n)]


def path_error(source: np.ndarray, output: np.ndarray) -> float:
    """Mean centroid distance (fractions of the frame width; square frames) over frames
    where the output has a shape; NaN when it has none."""
    d = np.linalg.norm(source - output, axis=1)
    return float(np.nanmean(d)) if not np.isnan(d).all() else float("nan")


@torch.no_grad()
def parse_setting(text: str) -> dict | None:
    """``none`` -> None; ``LOSS:STEPS:LR[:TLO-THI[:TARGET]]`` -> TuneConfig keyword arguments."""
    if text == "none":
        return None
    parts = text.split(":")
    config = {"loss": parts[0], "steps": int(parts[1]), "lr": float(parts[2])}
    if len(parts) > 3:
        lo, hi = parts[3].split("-")
        config["timestep_range"] = (int(lo), int(hi))
    if len(parts) > 4:
        config["target"] = parts[4]
    return config


def sample_from(backend, x0, prompts, *, steps: int, guidance: float, strength: float = 1.0,
                noise: torch.Tensor | None = None, inverted: torch.Tensor | None = None):
    """uint8 clips, one per prompt, sampled like ``vmc generate`` (:class:`vmc_cli.method.pipeline.MotionPipeline`):
    from ``noise`` when given, else from the clip's DDIM inversion at ``strength`` (computed
    unless ``inverted`` is given)."""
    from vmc_cli.method.pipeline import MotionPipeline

    pipeline = MotionPipeline(backend)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if noise is not None:
        out = pipeline.keyframes(noise, prompts, steps=steps, guidance=guidance)
    else:
        out = pipeline.transfer(x0, prompts, steps=steps, guidance=guidance, strength=strength, inverted=inverted)
    return [backend.model_to_frames(out[i:i + 1]) for i in range(len(prompts))]


def measure(source_clip, source_path, clip, wanted, source_look, fidelity: bool = True) -> dict:
    from vmc_cli.method.metrics import motion_fidelity
    from vmc_shapes.world import centroid_path, classify_appearance

    colour, shape = classify_appearance(clip)
    path = centroid_path(clip)
    mf = motion_fidelity(source_clip, clip)["motion_fidelity"] if fidelity else None
    return {
        "motion_fidelity": float("nan") if mf is None else mf,
        "path_error": path_error(source_path, path),
        "appearance": (shape, colour) == wanted,
        "colour_ok": colour == wanted[1],
        "shape_ok": shape == wanted[0],
        "leak": colour == source_look[1] or shape == source_look[0],
        "empty": bool(np.isnan(path).all()),
        "got": [shape, colour],
        "path": np.nan_to_num(path, nan=-1.0).round(4).tolist(),
    }


def run(args) -> dict:
    from vmc_cli.method.pipeline import MotionPipeline
    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.world import caption, centroid_path, held_out_paths, render

    torch.set_num_threads(args.threads)
    backend = ShapesBackend(args.model_path)
    backend.load(device=args.device)
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    paths = held_out_paths()
    rows, frames_for_plot = [], {}
    started = time.time()
    tuning_text = backend.encode_prompts([INVARIANT_PROMPT])
    for source_name in args.sources:
        look = SOURCES[source_name]
        src_clip = render(*look, paths[source_name], (backend.width, backend.height))
        src_measured = centroid_path(src_clip)
        x0 = backend.frames_to_model(src_clip)
        targets = target_appearances(*look, args.prompts)
        prompts = [caption(*t) for t in targets]
        for cond_name in args.conditions:
            setting = CONDITIONS[cond_name][0] if cond_name in CONDITIONS else cond_name
            kwargs = parse_setting(setting) if setting else None
            for seed in range(args.seeds if kwargs or cond_name == "fresh_noise" else 1):
                backend.unet.load_state_dict(base)
                t0 = time.time()
                tuned = tune(backend, x0, tuning_text, TuneConfig(seed=seed, **kwargs))["weights"] if kwargs else {}
                tune_s = time.time() - t0
                runs = []
                for scale in args.motion_scales if kwargs else [1.0]:
                    # as vmc generate --motion-scale does it: W0 + scale (W - W0), from the base model
                    backend.unet.load_state_dict(base)
                    MotionPipeline(backend).apply_profile(tuned, scale)
                    if cond_name == "fresh_noise":
                        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1000 + seed))
                        runs += [(None, g, scale, sample_from(backend, x0, prompts, steps=args.sample_steps,
                                                              guidance=g, noise=noise)) for g in args.guidance]
                    else:
                        runs += [(s, g, scale, sample_from(backend, x0, prompts, steps=args.sample_steps, guidance=g,
                                                           strength=s)) for s in args.strengths for g in args.guidance]
                for strength, g, scale, clips in runs:
                    for i, (clip, wanted) in enumerate(zip(clips, targets)):
                        rows.append({"source": source_name, "source_look": list(look), "condition": cond_name,
                                     "seed": seed, "strength": strength, "guidance": g, "motion_scale": scale,
                                     "prompt": prompts[i],
                                     **measure(src_clip, src_measured, clip, wanted, look, not args.no_fidelity),
                                     "tune_s": round(tune_s, 2)})
                        if (seed == 0 and i == 0 and strength in (None, args.strengths[0]) and g == args.guidance[0]
                                and scale == (args.motion_scales[0] if kwargs else 1.0)):
                            frames_for_plot[(source_name, cond_name)] = clip
            done = [r for r in rows if r["source"] == source_name and r["condition"] == cond_name]
            print(f"{source_name:13s} {cond_name:14s} path {np.nanmean([r['path_error'] for r in done]):.3f} "
                  f"appearance {np.mean([r['appearance'] for r in done]):.2f} ({time.time() - started:.0f}s)",
                  flush=True)
        frames_for_plot[(source_name, "source")] = src_clip
    backend.unet.load_state_dict(base)
    return {"rows": rows, "frames": frames_for_plot, "seconds": time.time() - started, "guidance": args.guidance[0],
            "motion_scale": args.motion_scales[0]}


def group(row: dict, several_guidances: bool, several_scales: bool = False) -> str:
    """A row's condition, with ``@G`` for its guidance when a run compares several, and
    `` xS`` for a tuned condition's motion scale when a run compares several."""
    name = row["condition"]
    if several_scales and CONDITIONS.get(name, (name,))[0]:
        name += f" x{row.get('motion_scale', 1.0):g}"
    return f"{name}@{row['guidance']:g}" if several_guidances else name


def summarise(rows: list[dict]) -> dict:
    """Per condition (and guidance, when several) and strength: mean and standard deviation
    over seeds of the per-seed means."""
    out: dict = {}
    several = (len({r.get("guidance") for r in rows}) > 1, len({r.get("motion_scale", 1.0) for r in rows}) > 1)
    for cond in dict.fromkeys(group(r, *several) for r in rows):
        for strength in dict.fromkeys(r["strength"] for r in rows if group(r, *several) == cond):
            sel = [r for r in rows if group(r, *several) == cond and r["strength"] == strength]
            per_seed = {k: [_mean([float(r[k]) for r in sel if r["seed"] == s])
                            for s in sorted({r["seed"] for r in sel})] for k in KEYS}
            out.setdefault(cond, {})["fresh" if strength is None else f"{strength:g}"] = {
                k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in per_seed.items()}
    return out


def _mean(values: list[float]) -> float:
    """Mean of the measured values (NaN marks one not measured, as with ``--no-fidelity``)."""
    kept = [v for v in values if v == v]
    return float(np.mean(kept)) if kept else float("nan")


def label(cond: str) -> str:
    name, _, g = cond.partition("@")
    name, _, scale = name.partition(" x")  # condition names and settings hold no spaces
    text = CONDITIONS[name][1] if name in CONDITIONS else name
    text += f", motion scale {scale}" if scale else ""
    return f"{text}, guidance {g}" if g else text


def table(summary: dict) -> str:
    lines = ["| condition | strength | centroid path error (lower is better) | appearance right | source look leaks "
             "| motion fidelity (higher is better) |", "| --- | --- | --- | --- | --- | --- |"]
    for cond, by_strength in summary.items():
        for strength, s in by_strength.items():
            def cell(k, pct=False):
                m, sd = s[k]["mean"], s[k]["std"]
                if m != m:
                    return "not measured"
                return f"{100 * m:.0f}% ± {100 * sd:.0f}" if pct else f"{m:.3f} ± {sd:.3f}"
            lines.append(f"| {label(cond)} | {strength} | {cell('path_error')} | {cell('appearance', True)} "
                         f"| {cell('leak', True)} | {cell('motion_fidelity')} |")
    return "\n".join(lines)


def plot_curves(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (cond, by_strength) in enumerate(summary.items()):
        xs = [100 * s["appearance"]["mean"] for s in by_strength.values()]
        ys = [s["path_error"]["mean"] for s in by_strength.values()]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=label(cond))
        for x, y, strength in zip(xs, ys, by_strength):
            ax.annotate(strength, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points", color=f"C{i}")
    ax.axhline(0.10, color="grey", lw=0.8, ls=":")
    ax.axvline(90, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("appearance right (new colour and shape), %")
    ax.set_ylabel("centroid path error (fraction of frame width)")
    ax.set_title("Held-out paths: one point per inversion strength", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_paths(result: dict, sources: list[str], conditions: list[str], strength, path: Path,
               frames_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from vmc_shapes.world import held_out_paths

    paths = held_out_paths()
    fig, axes = plt.subplots(len(conditions), len(sources), figsize=(2.2 * len(sources), 2.2 * len(conditions)),
                             squeeze=False)
    for j, src in enumerate(sources):
        for i, cond in enumerate(conditions):
            ax = axes[i][j]
            p = paths[src]
            ax.plot(p[:, 0], p[:, 1], "k--", lw=1.5, marker="o", ms=2)
            for r in result["rows"]:
                if (r["source"] == src and r["condition"] == cond and r["strength"] in (None, strength)
                        and r.get("guidance") in (None, result["guidance"])
                        and r.get("motion_scale", 1.0) in (1.0, result["motion_scale"])):
                    q = np.array(r["path"], float)
                    q[q < 0] = np.nan
                    ax.plot(q[:, 0], q[:, 1], lw=0.8, alpha=0.6, color=f"C{r['seed']}")
            ax.set_xlim(0, 1)
            ax.set_ylim(1, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(src.replace("_", " "), fontsize=9)
            if j == 0:
                ax.set_ylabel(cond.replace("_", " "), fontsize=8)
    fig.suptitle(f"Centroid paths at strength {strength:g}: source (black, dashed), generated (a colour per seed)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

    rows = []
    for src in sources:
        for cond in ["source", *conditions]:
            clip = result["frames"].get((src, cond))
            if clip is not None:
                rows.append(np.concatenate(list(clip), axis=1))
                rows.append(np.full((2, rows[-1].shape[1], 3), 80, np.uint8))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(frames_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=3, help="new appearances per source")
    ap.add_argument("--strengths", nargs="+", type=float, default=[1.0, 0.9, 0.8, 0.7])
    ap.add_argument("--sample-steps", type=int, default=25, help="inversion and sampling steps")
    ap.add_argument("--guidance", nargs="+", type=float, default=[5.0],
                    help="classifier-free guidance scales (several: each condition once per scale)")
    ap.add_argument("--motion-scales", nargs="+", type=float, default=[1.0],
                    help="tuned conditions sampled at each motion scale (vmc generate --motion-scale)")
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS),
                    help=f"names ({', '.join(CONDITIONS)}) or settings LOSS:STEPS:LR[:TLO-THI[:TARGET]]")
    ap.add_argument("--no-fidelity", action="store_true", help="skip motion fidelity (the slowest measure)")
    ap.add_argument("--model-path", type=Path, default=None, help="shapes weights folder (default: the shipped one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()

    result = run(args)
    summary = summarise(result["rows"])
    import platform

    meta = {"command": "python benchmarks/shapes_transfer.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {args.threads} CPU threads, "
            f"torch {torch.__version__}", "seconds": round(result["seconds"], 1), "sources": args.sources,
            "prompts": args.prompts, "seeds": args.seeds, "strengths": args.strengths,
            "sample_steps": args.sample_steps,
            "guidance": args.guidance if len(args.guidance) > 1 else args.guidance[0],
            "motion_scales": args.motion_scales, "invariant_prompt": INVARIANT_PROMPT,
            "conditions": {c: CONDITIONS.get(c, (c, c)) for c in args.conditions}}
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(summary)
    (args.out / "shapes_transfer_table.md").write_text(
        f"Made by `{meta['command']}` on {meta['date']} ({meta['machine']}, {meta['seconds']:.0f} s).\n\n{text}\n")
    (args.out / "shapes_transfer.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "rows": result["rows"]}, indent=1) + "\n")
    plot_curves(summary, args.out / "shapes_transfer_curves.png")
    plot_paths(result, args.sources, args.conditions, args.strengths[0], args.out / "shapes_transfer.png",
               args.out / "shapes_transfer_frames.png")
    print(text)
    print(f"wrote {args.out}/shapes_transfer_table.md, .json, _curves.png, .png, _frames.png")


if __name__ == "__main__":
    main()
