#!/usr/bin/env bash
# The README demo, on the built-in shapes model (shipped weights: no download, CPU):
# learn the motion of a yellow triangle tracing a figure eight, a path the model never
# saw in training, then generate the same motion as a red square.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${VMC_DEMO_OUT:-out}
mkdir -p "$out"
python examples/shapes_clip.py "$out/source.gif" --path figure_eight --shape triangle --colour yellow >/dev/null
vmc tune "$out/source.gif" --prompt "a shape is moving" --backend shapes \
    --name demo-figure-eight --steps "${VMC_DEMO_STEPS:-60}" --lr 1e-3 --force
vmc generate demo-figure-eight --prompt "a red square is moving" -o "$out/demo.mp4"
vmc generate demo-figure-eight --prompt "a red square is moving" --stages keyframes -o "$out/demo_keyframes.gif"
python examples/side_by_side.py "$out/source.gif" "$out/demo_keyframes.gif" "$out/side_by_side.gif" >/dev/null
vmc eval "$out/demo_keyframes.gif" --source "$out/source.gif" --no-clip
echo "video: $out/demo.mp4"
echo "side by side (source | generated key-frames): $out/side_by_side.gif"
echo "how well this model transfers motion, measured: docs/shapes_transfer.md"
