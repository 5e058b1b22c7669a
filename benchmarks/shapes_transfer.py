"""Does VMC transfer motion? The shapes-world experiment (issue #5).

    python benchmarks/shapes_transfer.py [--seeds 3] [--tune-steps 400] [--out docs]

Source clips: one shape moving along each held-out path (a circle, a zig-zag, a figure
eight, a bounce off a wall, stop-and-go), paths the training generator never makes. For
each source, new appearance prompts that change both colour and shape, and six
conditions:

1. ``fresh_noise``: no tuning, sampled from fresh noise;
2. ``inverted``: no tuning, sampled from the DDIM-inverted clip (the paper's "no adaptation");
3. ``vmc``: temporal attention q/k/v tuned with the cosine loss and an appearance-invariant
   prompt ("a shape is moving": neither the source's colour nor its shape);
4. ``vmc_l2``: the same with the l2 loss;
5. ``all_attention``: q/k/v of every attention layer tuned, spatial and cross included;
6. ``faithful_prompt``: VMC tuned with the source's own caption ("a red circle is moving").

Conditions 3-6 then sample like the tool does: DDIM-invert the clip with the tuned model
(empty prompt), sample the new prompt from there with guidance. Everything runs through
vmc's own functions (``vmc_cli.tuning.tune``, ``inversion.ddim_invert``,
``sampling.ddim_sample``) on the ``shapes`` backend, in memory: writing the 32x32 clips
to mp4 would smear their colours.

Measures, per output: motion fidelity against the source (``vmc eval --source``'s
metric), centroid path error (mean distance between the source's and the output's shape
centroids, in fractions of the frame width; frames without a shape are left out),
appearance accuracy (the output shows the new prompt's colour and shape) and leakage (it
shows the source's colour or shape instead). Each seed changes the tuning run (its
timesteps and noise) and the fresh noise; the inversion conditions' starting noise is the
clip's own. Means over sources and prompts per seed, then mean and standard deviation
over seeds. Writes ``shapes_transfer.json``, ``shapes_transfer.md`` and the plots
``shapes_transfer.png`` (source path vs generated paths) and
``shapes_transfer_frames.png`` (frames) into ``--out``.
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
sys.path[:0] = [str(ROOT), str(ROOT / "backends")]

CONDITIONS = {
    "fresh_noise": {"tune": None, "init": "noise", "label": "no tuning, fresh noise"},
    "inverted": {"tune": None, "init": "inverted", "label": "no tuning, inverted noise"},
    "vmc": {"tune": {"loss": "cos", "target": "qkv"}, "prompt": "invariant", "init": "inverted",
            "label": "VMC (temporal q/k/v, cos, invariant prompt)"},
    "vmc_l2": {"tune": {"loss": "l2", "target": "qkv"}, "prompt": "invariant", "init": "inverted",
               "label": "VMC with the l2 loss"},
    "all_attention": {"tune": {"loss": "cos", "target": "attention"}, "prompt": "invariant", "init": "inverted",
                      "label": "all attention layers tuned"},
    "faithful_prompt": {"tune": {"loss": "cos", "target": "qkv"}, "prompt": "faithful", "init": "inverted",
                        "label": "VMC, faithful prompt"},
}
INVARIANT_PROMPT = "a shape is moving"
#: the source's appearance on each held-out path
SOURCES = {"circle": ("square", "red"), "zigzag": ("circle", "green"), "figure_eight": ("triangle", "yellow"),
           "bounce": ("square", "blue"), "stop_and_go": ("triangle", "white")}


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


def measure(source_clip, source_path, clip, wanted, source_look) -> dict:
    from vmc_cli.metrics import motion_fidelity
    from vmc_shapes.world import centroid_path, classify_appearance

    colour, shape = classify_appearance(clip)
    path = centroid_path(clip)
    mf = motion_fidelity(source_clip, clip)["motion_fidelity"]
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
    from vmc_cli.inversion import ddim_invert
    from vmc_cli.sampling import ddim_sample, guided
    from vmc_cli.tuning import TuneConfig, tune
    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.world import caption, centroid_path, held_out_paths, render

    torch.set_num_threads(args.threads)
    backend = ShapesBackend(args.model_path)
    backend.load(device=args.device)
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    paths = held_out_paths()
    steps, inv_steps, guidance = args.sample_steps, args.invert_steps, args.guidance
    empty = backend.encode_prompts([""])
    rows, frames_for_plot = [], {}
    started = time.time()
    for source_name in args.sources:
        look = SOURCES[source_name]
        src_path = paths[source_name]
        src_clip = render(*look, src_path, (backend.width, backend.height))
        src_measured = centroid_path(src_clip)
        x0 = backend.frames_to_model(src_clip)
        targets = target_appearances(*look, args.prompts)
        prompts = [caption(*t) for t in targets]
        text = backend.encode_prompts(prompts)
        inverted_base = None
        for cond_name in args.conditions:
            cond = CONDITIONS[cond_name]
            for seed in range(args.seeds):
                backend.unet.load_state_dict(base)
                t0 = time.time()
                if cond["tune"]:
                    tuning_prompt = INVARIANT_PROMPT if cond["prompt"] == "invariant" else caption(*look)
                    config = TuneConfig(steps=args.tune_steps, lr=args.lr, seed=seed, **cond["tune"])
                    tune(backend, x0, backend.encode_prompts([tuning_prompt]), config)
                    backend.unet.eval()
                tune_s = time.time() - t0
                with torch.no_grad():
                    if cond["init"] == "noise":
                        x_t = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1000 + seed))
                    elif not cond["tune"] and inverted_base is not None:
                        x_t = inverted_base
                    else:
                        x_t = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                                          backend.inversion_scheduler(), x0, inv_steps)
                        if not cond["tune"]:
                            inverted_base = x_t
                    out = ddim_sample(guided(backend.predict_noise, text, empty, guidance),
                                      backend.sampling_scheduler(), x_t.expand(len(prompts), -1, -1, -1, -1), steps)
                for i, (prompt, wanted) in enumerate(zip(prompts, targets)):
                    clip = backend.model_to_frames(out[i:i + 1])
                    row = {"source": source_name, "source_look": list(look), "condition": cond_name, "seed": seed,
                           "prompt": prompt, **measure(src_clip, src_measured, clip, wanted, look),
                           "tune_s": round(tune_s, 2)}
                    rows.append(row)
                    if seed == 0 and i == 0:
                        frames_for_plot[(source_name, cond_name)] = clip
            done = [r for r in rows if r["source"] == source_name and r["condition"] == cond_name]
            print(f"{source_name:13s} {cond_name:16s} mf {np.nanmean([r['motion_fidelity'] for r in done]):+.3f} "
                  f"path {np.nanmean([r['path_error'] for r in done]):.3f} "
                  f"appearance {np.mean([r['appearance'] for r in done]):.2f} "
                  f"({time.time() - started:.0f}s)", flush=True)
        frames_for_plot[(source_name, "source")] = src_clip
    backend.unet.load_state_dict(base)
    return {"rows": rows, "frames": frames_for_plot, "seconds": time.time() - started}


def summarise(rows: list[dict], conditions: list[str], seeds: int) -> dict:
    """Per condition: mean and standard deviation over seeds of the per-seed means."""
    keys = ["motion_fidelity", "path_error", "appearance", "colour_ok", "shape_ok", "leak", "empty"]
    out = {}
    for cond in conditions:
        per_seed = {k: [] for k in keys}
        for seed in range(seeds):
            sel = [r for r in rows if r["condition"] == cond and r["seed"] == seed]
            for k in keys:
                per_seed[k].append(float(np.nanmean([float(r[k]) for r in sel])))
        out[cond] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in per_seed.items()}
    return out


def write_table(summary: dict, meta: dict, path: Path) -> str:
    lines = [
        "| condition | motion fidelity (higher is better) | centroid path error (lower is better) "
        "| appearance right | colour right | shape right | source look leaks |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cond, s in summary.items():
        def cell(k, pct=False):
            m, sd = s[k]["mean"], s[k]["std"]
            return f"{100 * m:.0f}% ± {100 * sd:.0f}" if pct else f"{m:.3f} ± {sd:.3f}"
        lines.append(f"| {CONDITIONS[cond]['label']} | {cell('motion_fidelity')} | {cell('path_error')} "
                     f"| {cell('appearance', True)} | {cell('colour_ok', True)} | {cell('shape_ok', True)} "
                     f"| {cell('leak', True)} |")
    table = "\n".join(lines)
    path.write_text(
        "# Shapes-world motion transfer\n\n"
        f"Made by `{meta['command']}` on {meta['date']} ({meta['machine']}, {meta['seconds']:.0f} s).\n\n"
        f"{meta['n_sources']} held-out source paths x {meta['n_prompts']} new appearances x {meta['seeds']} seeds per "
        f"condition; tuning {meta['tune_steps']} steps at lr {meta['lr']}, inversion {meta['invert_steps']} steps, "
        f"sampling {meta['sample_steps']} steps at guidance {meta['guidance']}. Mean ± standard deviation over "
        "seeds of the per-seed means.\n\n" + table + "\n")
    return table


def plot(result: dict, sources: list[str], conditions: list[str], path: Path, frames_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from vmc_shapes.world import held_out_paths

    paths = held_out_paths()
    fig, axes = plt.subplots(len(conditions), len(sources), figsize=(2.2 * len(sources), 2.2 * len(conditions)),
                             squeeze=False)
    for j, src in enumerate(sources):
        for i, cond in enumerate(conditions):
            ax = axes[i][j]
            p = paths[src]
            ax.plot(p[:, 0], p[:, 1], "k--", lw=1.5, marker="o", ms=2, label="source")
            for r in result["rows"]:
                if r["source"] == src and r["condition"] == cond:
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
    fig.suptitle("Centroid paths: source (black, dashed) and generated (one colour per seed)", fontsize=10)
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
    from PIL import Image

    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(frames_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=2, help="new appearances per source")
    ap.add_argument("--tune-steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--invert-steps", type=int, default=50)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--model-path", type=Path, default=None, help="shapes weights folder (default: the shipped one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()

    result = run(args)
    summary = summarise(result["rows"], args.conditions, args.seeds)
    import platform

    meta = {"command": "python benchmarks/shapes_transfer.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {args.threads} CPU threads, "
            f"torch {torch.__version__}", "seconds": result["seconds"], "n_sources": len(args.sources),
            "n_prompts": args.prompts, "seeds": args.seeds, "tune_steps": args.tune_steps, "lr": args.lr,
            "invert_steps": args.invert_steps, "sample_steps": args.sample_steps, "guidance": args.guidance,
            "invariant_prompt": INVARIANT_PROMPT}
    args.out.mkdir(parents=True, exist_ok=True)
    table = write_table(summary, meta, args.out / "shapes_transfer.md")
    (args.out / "shapes_transfer.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "rows": result["rows"]}, indent=1) + "\n")
    plot(result, args.sources, args.conditions, args.out / "shapes_transfer.png", args.out / "shapes_transfer_frames.png")
    print(table)
    print(f"wrote {args.out / 'shapes_transfer.md'}, .json, .png, _frames.png")


if __name__ == "__main__":
    main()
