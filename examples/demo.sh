#!/usr/bin/env bash
# The README demo, on the built-in shapes model (shipped weights: no download, CPU):
# learn the motion of a yellow triangle tracing a figure eight, a path the model never
# saw in training, then generate the same motion as a red square.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${VMC_DEMO_OUT:-out}
mkdir -p "$out"
echo "vmc demo: learn the figure-eight motion of a yellow triangle from one clip, generate it as a red square," \
     "and measure how closely the new video follows the source's path (under a minute on two CPU cores)."
python examples/shapes_clip.py "$out/source.mp4" --path figure_eight --shape triangle --colour yellow >/dev/null
# The shapes backend's own tuning defaults (see `vmc tune --help`); VMC_DEMO_STEPS and
# VMC_DEMO_SAMPLE_STEPS shorten the run (the tests use them).
vmc tune "$out/source.mp4" --prompt "a shape is moving" --backend shapes --name demo-figure-eight --force \
    ${VMC_DEMO_STEPS:+--steps "$VMC_DEMO_STEPS"}
vmc generate demo-figure-eight --prompt "a red square is moving" -o "$out/demo.mp4" \
    --keyframes-out "$out/demo_keyframes.gif" --side-by-side "$out/side_by_side.gif" \
    ${VMC_DEMO_SAMPLE_STEPS:+--steps "$VMC_DEMO_SAMPLE_STEPS" --invert-steps "$VMC_DEMO_SAMPLE_STEPS"}
echo "motion of the generated video against the source:"
vmc eval "$out/demo.mp4" --source "$out/source.mp4" --keyframes 8 --no-clip --plot "$out/tracks.png"
python examples/shapes_score.py "$out/source.mp4" "$out/demo.mp4"
echo "video: $out/demo.mp4 (key-frames: $out/demo_keyframes.gif)"
echo "side by side (source | generated key-frames): $out/side_by_side.gif; motion tracks: $out/tracks.png"
echo "how well this model transfers motion, measured over held-out paths: docs/shapes_transfer.md"
