"""The judge: does tuning beat no adaptation? Held-out shapes clips through the real CLI, paired.

    python benchmarks/shapes_cli_check.py [--backend shapes|shapes-wan] [--cases 12] [--seeds 2]
        [--tune ARGS ...] [--generate ARGS] [--log runs/judge.jsonl]
        [--out benchmarks/results/shapes_cli_check.json]

Each case draws a path family the shapes model never trained on and the transfer experiment
does not use (twelve: a diagonal, a spiral, a square loop, a sine, a V, a hook, an arc, an S,
a Z, out and back, an ellipse, an accelerating drop), a source look, a shape size and a frame
size (64 to 128 pixels, square or not), and writes the source as an mp4. Then, as a user would,
per tuning setting (``--tune``, repeatable; "" is the backend's defaults) and tuning seed:
``vmc tune SOURCE.mp4 -p "a shape is moving" --backend B --seed S [ARGS]`` and
``vmc generate PROFILE -p "a <new colour> <new shape> is moving" -o OUT.mp4 [--generate ARGS]``.
The untuned model ("no adaptation") is the same generate with ``--motion-scale 0``, once per
case (its output does not depend on the tuning seed or setting). The final mp4 is read back
and scored at the 8 key-frame times: centroid path error against the source (fractions of the
frame width) and whether it shows the new colour and shape. ``--generate "--init noise"`` judges
the profile alone (fresh noise, the untuned run from the same seed). Paths have the backend's
key-frame count (8 for ``shapes``, 9 for ``shapes-wan``).

Every third case (0, 3, 6, 9) changes to a colour that shares no RGB channel with the source's
(red, green and blue among themselves, yellow and blue): there the inverted pixels cannot carry
the shape's place into the new colour, so only the motion the profile holds can. Those cases
are also summarised apart (``disjoint``) from the rest (``shared``). The source is scored as the model
sees it: read like ``vmc tune`` reads it (center-cropped to the key-frames' square aspect), so a
non-square source is not charged for the strip the crop removes (the first version of this check
compared the uncropped source's coordinates).

Scored as paired differences tuned - untuned: per case (mean over seeds), the sign count
(wins = tuned lower by more than 0.005), the mean difference with a 95% bootstrap interval
over cases, and the ratio of the means. Rows are appended to ``--log`` as they finish, so an
interrupted run resumes where it stopped. This is a benchmark you run, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "examples")]
TIE = 0.005
UNTUNED = "untuned"
#: the CLI as a user runs it, from this interpreter (a venv need not be activated)
VMC = [sys.executable, "-m", "vmc_cli"]


def disjoint(a: str, b: str) -> bool:
    """Whether colours ``a`` and ``b`` share no RGB channel (no channel lit in both)."""
    from vmc_shapes.world import COLOURS

    return not any(x and y for x, y in zip(COLOURS[a], COLOURS[b]))


def paths(frames: int = 8) -> dict[str, np.ndarray]:
    """Twelve path families, centroid positions in fractions of the frame, ``frames`` long."""
    u = np.linspace(0, 1, frames)
    theta = 2 * np.pi * u
    corners = np.array([[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7], [0.3, 0.3]])
    square = np.stack([np.interp(u * 4, np.arange(5), corners[:, k]) for k in range(2)], 1)
    zed = np.array([[0.25, 0.28], [0.75, 0.28], [0.25, 0.72], [0.75, 0.72]])
    zpath = np.stack([np.interp(u * 3, np.arange(4), zed[:, k]) for k in range(2)], 1)
    return {
        "diagonal": np.stack([0.25 + 0.5 * u, 0.72 - 0.45 * u], 1),
        "spiral": np.stack([0.5 + (0.08 + 0.2 * u) * np.cos(1.5 * theta), 0.5 + (0.08 + 0.2 * u) * np.sin(1.5 * theta)], 1),
        "square_loop": square,
        "sine": np.stack([0.22 + 0.56 * u, 0.5 + 0.2 * np.sin(2 * theta)], 1),
        "v_shape": np.stack([0.22 + 0.56 * u, 0.3 + 0.4 * (1 - np.abs(2 * u - 1))], 1),
        "hook": np.stack([0.3 + 0.4 * np.minimum(u * 1.6, 1), 0.3 + 0.4 * np.maximum(0, u * 1.6 - 0.6) * 1.0], 1),
        "arc": np.stack([0.5 - 0.27 * np.cos(np.pi * u), 0.7 - 0.4 * np.sin(np.pi * u)], 1),
        "s_curve": np.stack([0.5 + 0.22 * np.sin(2 * np.pi * u), 0.22 + 0.56 * u], 1),
        "z_path": zpath,
        "out_and_back": np.stack([0.25 + 0.5 * (1 - np.abs(2 * u - 1)), 0.4 + 0.2 * u], 1),
        "ellipse": np.stack([0.5 + 0.28 * np.sin(theta), 0.5 - 0.15 * np.cos(theta)], 1),
        "drop": np.stack([0.35 + 0.3 * u, 0.22 + 0.56 * u ** 2], 1),
    }


def draw_cases(n: int, seed: int) -> list[dict]:
    """``n`` cases: family i % 12, and a seeded look, new look, shape size and frame size."""
    from vmc_shapes.world import COLOURS, SHAPES

    rng = np.random.default_rng(seed)
    families = list(paths())
    sizes = [(128, 128), (64, 64), (128, 96), (96, 128)]
    cases = []
    for i in range(n):
        shape, colour = SHAPES[rng.integers(3)], list(COLOURS)[rng.integers(5)]
        new_shape = [s for s in SHAPES if s != shape][rng.integers(2)]
        if i % 3 == 0:  # a colour sharing no channel with the source's (white shares one with every colour)
            colour = ["red", "green", "blue", "yellow"][rng.integers(4)]
            choices = [c for c in COLOURS if disjoint(c, colour)]
        else:
            choices = [c for c in COLOURS if c != colour]
        new_colour = choices[rng.integers(len(choices))]
        cases.append({"case": i, "path": families[i % len(families)], "size": sizes[(i + i // len(families)) % len(sizes)],
                      "shape_size": round(float(rng.uniform(0.22, 0.34)), 3), "source": [colour, shape],
                      "new": [new_colour, new_shape], "disjoint": disjoint(colour, new_colour)})
    return cases


def bootstrap(diffs: np.ndarray, n: int = 10000, seed: int = 0) -> list[float]:
    """95% percentile interval of the mean of ``diffs``, resampling cases with replacement."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n, len(diffs)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired(rows: list[dict], setting: str) -> dict | None:
    """Tuned (``setting``) against untuned, per case (tuned rows averaged over seeds); and the same
    for the cases whose new colour shares no channel with the source's and for the others."""
    whole = _paired(rows, setting)
    if whole is not None:
        for part, keep in (("disjoint", True), ("shared", False)):
            whole[part] = _paired([r for r in rows if bool(r.get("disjoint")) == keep], setting)
    return whole


def _paired(rows: list[dict], setting: str) -> dict | None:
    base = {r["case"]: r for r in rows if r["setting"] == UNTUNED}
    tuned: dict[int, list[dict]] = {}
    for r in rows:
        if r["setting"] == setting and r["case"] in base:
            tuned.setdefault(r["case"], []).append(r)
    cases = sorted(c for c, rs in tuned.items()
                   if base[c]["path_error"] is not None and all(r["path_error"] is not None for r in rs))
    if not cases:
        return None
    t = np.array([np.mean([r["path_error"] for r in tuned[c]]) for c in cases])
    u = np.array([base[c]["path_error"] for c in cases])
    d = t - u
    per_row = [r["path_error"] - base[r["case"]]["path_error"] for c in cases for r in tuned[c]]
    return {
        "cases": len(cases), "runs": len(per_row),
        "tuned_mean": float(t.mean()), "untuned_mean": float(u.mean()), "ratio": float(t.mean() / u.mean()),
        "mean_difference": float(d.mean()), "difference_95ci": bootstrap(d),
        "cases_won": int((d < -TIE).sum()), "cases_lost": int((d > TIE).sum()), "cases_tied": int((abs(d) <= TIE).sum()),
        "runs_won": int(sum(x < -TIE for x in per_row)), "runs_lost": int(sum(x > TIE for x in per_row)),
        "tuned_appearance_right": float(np.mean([r["appearance"] for c in cases for r in tuned[c]])),
        "untuned_appearance_right": float(np.mean([base[c]["appearance"] for c in cases])),
    }


def run(cmd: list, env: dict) -> None:
    proc = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(map(str, cmd))}\n{proc.stderr}")


def main() -> None:
    from shapes_score import score

    from vmc_cli.io.clips import read_clip
    from vmc_cli.io.video import read_frames, write_video
    from vmc_shapes.world import caption, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="shapes", choices=["shapes", "shapes-wan"])
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2, help="tuning seeds per case")
    ap.add_argument("--seed", type=int, default=0, help="seed of the case draw")
    ap.add_argument("--tune", action="append", default=None, metavar="ARGS",
                    help="a tuning setting: extra `vmc tune` options (repeatable; '' = the backend's defaults)")
    ap.add_argument("--generate", action="append", default=None, metavar="ARGS",
                    help="extra `vmc generate` options for every run; repeatable: each is judged apart from the same "
                         "tuned profiles (e.g. '' and '--init noise')")
    ap.add_argument("--prompt", default="a shape is moving", help="tuning prompt ('source' = each source's caption)")
    ap.add_argument("--log", type=Path, default=ROOT / "runs" / "judge.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shapes_cli_check.json")
    args = ap.parse_args()
    settings = args.tune if args.tune is not None else [""]
    generates = args.generate if args.generate is not None else [""]
    from vmc_cli.models.plugins import get_backend

    frames = get_backend(args.backend).num_frames

    def context_of(generate: str) -> dict:
        """What identifies a run's rows in the log: everything that changes its output."""
        # draw 2: every third case to a colour sharing no channel (rows of the first draw stay apart)
        return {"seed": args.seed, "generate": generate, "prompt": args.prompt, "backend": args.backend, "draw": 2}

    args.log.parent.mkdir(parents=True, exist_ok=True)
    done: dict = {g: {} for g in generates}
    if args.log.exists():
        for line in args.log.read_text().splitlines():
            r = json.loads(line)
            for g in generates:
                if r.get("context") == context_of(g):
                    done[g][(r["case"], r["setting"], r["tuning_seed"])] = r
    started = time.time()
    families = paths(frames)
    with tempfile.TemporaryDirectory() as tmp, args.log.open("a") as log:
        tmp = Path(tmp)
        env = {**os.environ, "VMC_HOME": str(tmp / "home")}

        def record(g: str, case: dict, setting: str, seed: int, out: Path, source: Path, t0: float) -> None:
            generated = read_frames(out)
            kept = read_clip(source, (generated.shape[2], generated.shape[1])).frames  # as vmc tune crops it
            s = score(np.asarray(kept), generated)
            row = {**case, "setting": setting, "tuning_seed": seed, "context": context_of(g),
                   "path_error": s["path_error"], "appearance": (s["colour"], s["shape"]) == tuple(case["new"]),
                   "got": [s["colour"], s["shape"]], "seconds": round(time.time() - t0, 1)}
            done[g][(case["case"], setting, seed)] = row
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps({k: row[k] for k in ("case", "path", "setting", "tuning_seed", "path_error",
                                                     "appearance", "seconds")} | {"generate": g}), flush=True)

        for case in draw_cases(args.cases, args.seed):
            i = case["case"]
            colour, shape = case["source"]
            source = write_video(render(shape, colour, families[case["path"]], tuple(case["size"]), case["shape_size"]),
                                 tmp / f"src{i}.mp4", fps=4)
            tune_prompt = caption(shape, colour) if args.prompt == "source" else args.prompt
            prompt = caption(case["new"][1], case["new"][0])
            for k, setting in enumerate(settings):
                for seed in range(args.seeds):
                    need_base = {g for g in generates if (i, UNTUNED, 0) not in done[g] and k == 0 and seed == 0}
                    need = {g for g in generates if (i, setting, seed) not in done[g]}
                    if not need and not need_base:
                        continue
                    t0 = time.time()
                    name = f"c{i}s{k}x{seed}"
                    run([*VMC, "tune", source, "-p", tune_prompt, "--keep-prompt", "--backend", args.backend,
                         "--name", name, "--seed", seed, "-q", *setting.split()], env)
                    for j, g in enumerate(generates):
                        if g in need:
                            out = tmp / f"{name}-g{j}.mp4"
                            run([*VMC, "generate", name, "-p", prompt, "-o", out, "-q", *g.split()], env)
                            record(g, case, setting, seed, out, source, t0)
                        if g in need_base:
                            out = tmp / f"{name}-g{j}-untuned.mp4"
                            run([*VMC, "generate", name, "-p", prompt, "-o", out, "-q", *g.split(),
                                 "--motion-scale", "0"], env)
                            record(g, case, UNTUNED, 0, out, source, t0)
    summary = {"backend": args.backend, "cases": args.cases, "seeds": args.seeds,
               "seconds_this_run": round(time.time() - started, 1),
               "command": shlex.join(["python", "benchmarks/shapes_cli_check.py", *sys.argv[1:]]), "tie": TIE,
               "generate": {}}
    rows_all = []
    for g in generates:
        rows = [r for r in done[g].values()
                if r["case"] < args.cases and (r["setting"] == UNTUNED or r["setting"] in settings)]
        rows_all += rows
        summary["generate"][g or "defaults"] = {s or "defaults": paired(rows, s) for s in settings}
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": sorted(
        rows_all, key=lambda r: (r["context"]["generate"], r["case"], r["setting"], r["tuning_seed"]))},
        indent=1) + "\n")


if __name__ == "__main__":
    main()
