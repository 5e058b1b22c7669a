"""How long the README demo takes after install, as a user runs it: ``bash examples/demo.sh``.

    python benchmarks/demo_time.py [--runs 1] [--out benchmarks/results/demo_time.json]

Runs the demo in a fresh profile store and output folder (``VMC_HOME``, ``VMC_DEMO_OUT`` in a
temporary folder) with the shapes backend's defaults, and times each of its commands by
reading the shell's trace (``set -x`` with a timestamped ``PS4``): drawing the clip, ``vmc
tune``, ``vmc generate``, ``vmc eval`` and the path score. Prints the wall time of the whole
demo (median over ``--runs``) and of each command, and the demo's own last lines (the path
error and fidelity it measured). The issue's target is at most 60 s on 2 CPU cores. This is a
benchmark you run, not a test: a noisy machine gives noisy seconds, so quote the median and
the command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^\++ (\d+\.\d+) (.*)$")  # one + per level: the sourced demo is ++


def label(command: str) -> str | None:
    """The demo's command a trace line starts, by name (None: not one we time)."""
    for key, name in (("shapes_clip.py", "draw clip"), ("vmc tune", "tune"), ("vmc generate", "generate"),
                      ("vmc eval", "eval"), ("shapes_score.py", "score")):
        if key in command:
            return name
    return None


def run_once() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VMC_HOME": str(Path(tmp) / "home"), "VMC_DEMO_OUT": str(Path(tmp) / "out"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        started = time.perf_counter()
        # PS4 is set inside (bash ignores it from the environment when run as root)
        trace = 'PS4="+ \\${EPOCHREALTIME} "; set -x; source "$0"'
        r = subprocess.run(["bash", "-c", trace, str(ROOT / "examples" / "demo.sh")], capture_output=True,
                           text=True, env=env, cwd=ROOT)
        total = time.perf_counter() - started
        if r.returncode != 0:
            raise SystemExit(f"the demo failed ({r.returncode}):\n{r.stderr[-3000:]}")
        marks = []  # (time, name) at each traced command; a command lasts until the next trace line
        for line in r.stderr.splitlines():
            m = STEP.match(line)
            if m:
                marks.append((float(m.group(1)), label(m.group(2))))
        end = marks[0][0] + total if marks else 0.0
        steps: dict[str, float] = {}
        for (t, name), (t_next, _) in zip(marks, marks[1:] + [(end, None)]):
            if name:
                steps[name] = round(steps.get(name, 0.0) + t_next - t, 2)
        return {"seconds": round(total, 2), "steps": steps, "printed": r.stdout.splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    runs = [run_once() for _ in range(args.runs)]
    median = statistics.median(r["seconds"] for r in runs)
    steps = {k: statistics.median(r["steps"].get(k, 0.0) for r in runs) for k in runs[0]["steps"]}
    print(f"demo: {median:.1f} s (median of {len(runs)}; target <= 60 s on 2 CPU cores)")
    for name, seconds in steps.items():
        print(f"  {name:<10} {seconds:6.1f} s")
    for line in runs[-1]["printed"]:
        if line.startswith(("centroid path error", "motion fidelity")):
            print(f"  {line}")
    if args.out:
        doc = {"command": "python benchmarks/demo_time.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
               "median_seconds": median, "steps": steps, "runs": runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
